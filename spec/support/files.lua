-- Files for specs: a temp directory and fresh directories under it, whole files written and
-- read back, JSON lines both ways, and a batch directory's journal.
--
--   local files = require "support.files"
--   local root = files.tempdir()
--   local fresh_dir = files.subdirs(root)
--   files.write(fresh_dir() .. "/rows.jsonl", files.jsonl { { id = "a", prompt = "a" } })
local json = require "kling.json"

local M = {}

-- tempdir() -> a new directory, made now with the usual mode (755: a test may run a command
-- as another user inside it).
function M.tempdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  return dir
end

-- remove(dir): a tempdir() and all it holds.
function M.remove(dir)
  os.execute("rm -rf '" .. dir .. "'")
end

-- subdirs(root [, prefix]) -> fresh(), which makes and returns root/<prefix>1, root/<prefix>2, ...
function M.subdirs(root, prefix)
  local n = 0
  return function()
    n = n + 1
    local dir = root .. "/" .. (prefix or "d") .. n
    assert(os.execute("mkdir -p '" .. dir .. "'"))
    return dir
  end
end

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end

-- read(path) -> the whole file, or nil when there is none (kling.nginx_run's, which the
-- launchers read pid files and logs with).
M.read = require("kling.nginx_run").read

-- size(path) -> the file's size in bytes, or nil when there is none.
function M.size(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local n = f:seek("end")
  f:close()
  return n
end

-- jsonl(rows) -> one JSON line per row, each ended by a newline.
function M.jsonl(rows)
  local out = {}
  for i, r in ipairs(rows) do
    out[i] = assert(json.encode(r))
  end
  return table.concat(out, "\n") .. "\n"
end

-- read_jsonl(path) -> the decoded lines (every line must be JSON).
function M.read_jsonl(path)
  local out = {}
  for line in io.lines(path) do
    out[#out + 1] = assert(json.decode(line))
  end
  return out
end

-- journal(dir) -> the records of a batch directory's journal.
function M.journal(dir)
  return M.read_jsonl(dir .. "/journal.jsonl")
end

return M
