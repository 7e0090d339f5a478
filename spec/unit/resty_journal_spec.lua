-- kling.resty.journal: every worker appends to one file; a line is one write(2), so lines of
-- several processes never interleave, however long they are.
local journal = require "kling.resty.journal"
local json = require "kling.json"
local files = require "support.files"

describe("kling.resty.journal", function()
  it("keeps whole the lines of processes appending at once, past 64 KB a line", function()
    local dir = files.tempdir()
    local path = dir .. "/ledger.jsonl"
    local child = dir .. "/child.lua"
    local f = assert(io.open(child, "w"))
    f:write([[
local w, path = tonumber(arg[1]), arg[2]
local j = require("kling.resty.journal").open(path)
for i = 1, 30 do
  local pad = string.rep(string.char(96 + w), 40000 + (i * 7919) % 90000)
  assert(j:append('{"w":' .. w .. ',"i":' .. i .. ',"pad":"' .. pad .. '"}'))
end
]])
    f:close()
    local env = ("LUA_PATH=%q LUA_CPATH=%q "):format(package.path, package.cpath)
    local cmd = {}
    for w = 1, 4 do
      cmd[#cmd + 1] = env .. "lua5.4 " .. child .. " " .. w .. " " .. path .. " &"
    end
    assert(os.execute("(" .. table.concat(cmd, " ") .. " wait)"))
    local seen, n = {}, 0
    for line in io.lines(path) do
      local e = json.decode(line)
      assert.is_table(e, "a line is not JSON: " .. line:sub(1, 40) .. "...")
      assert.equals(string.rep(string.char(96 + e.w), #e.pad), e.pad)
      local k = e.w .. ":" .. e.i
      assert.is_nil(seen[k], k)
      seen[k], n = true, n + 1
    end
    assert.equals(120, n)
    -- A table entry and a line that ends with its newline are written as one line each.
    local j = journal.open(path)
    assert(j:append { op = "x" })
    assert(j:append('{"op":"y"}\n'))
    local entries, skipped = journal.read(path)
    assert.equals(0, skipped)
    assert.equals("y", entries[#entries].op)
    assert.equals("x", entries[#entries - 1].op)
    files.remove(dir)
  end)
end)
