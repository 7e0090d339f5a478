-- kling.journal: an append-only file of JSON lines, each on disk before append() returns.
-- The batch runner writes what it is about to do (and what the provider answered) here, so
-- that a process killed at any instant can be started again and pick up where it stopped.
--
-- Durability: kling.core.append_sync (write + fsync of the file, and of its directory when
-- the file was created) when the C core has it. A core without it falls back to write +
-- flush + close: the record then survives a killed process (it is in the kernel), not a
-- power cut. journal.durable says which is in use.
local core = require "kling.core"
local json = require "kling.json"
local durable_file = require "kling.durable_file"

local M = {}

M.durable = type(core.append_sync) == "function"

local function append_flush(path, data)
  local f, err = io.open(path, "ab")
  if not f then
    return nil, err
  end
  local ok, werr = f:write(data)
  if ok then
    ok, werr = f:flush()
  end
  f:close()
  if not ok then
    return nil, werr
  end
  return true
end

local append_raw = M.durable and core.append_sync or append_flush

-- read(path) -> records, info | nil, message. info = {lines, torn, good_bytes, missing}.
-- A last line without its newline is a write cut short by a kill (a record and its newline
-- go out in one write): it is reported as torn and not returned. Any other unreadable line
-- is an error naming the line.
function M.read(path)
  -- only a regular file, its type checked before any open (kling.core.read_regular): opening a
  -- FIFO planted at the journal's name blocked kling run, kling status and kling storyboard
  local text, why, kind, missing = core.read_regular(path, math.maxinteger or 2 ^ 53)
  if kind then
    return nil, tostring(why) .. ": a journal is a regular file"
  elseif not text and missing then
    return {}, { lines = 0, missing = true, good_bytes = 0 }
  elseif not text then
    -- one that is there but cannot be read is no empty journal: its rows would be sent again
    return nil, tostring(why) .. ": the journal is there but cannot be read (nothing was sent)"
  end
  local records, n, pos = {}, 0, 1
  while pos <= #text do
    local nl = text:find("\n", pos, true)
    if not nl then
      return records, { lines = n, torn = true, good_bytes = pos - 1 }
    end
    n = n + 1
    local line = text:sub(pos, nl - 1)
    if line:find("%S") then
      local rec, err = json.decode(line)
      if type(rec) ~= "table" then
        return nil, string.format("%s:%d: not a journal record (%s)", path, n, tostring(err or "not an object"))
      end
      records[#records + 1] = rec
    end
    pos = nl + 1
  end
  return records, { lines = n, good_bytes = #text }
end

-- Cuts a torn last line off: the good part replaces the journal whole and durably (a
-- temporary file renamed over it), so no later append lands after the torn line.
local function repair(path, good_bytes)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, err
  end
  local good = f:read(good_bytes) or ""
  f:close()
  return durable_file.replace(path, good)
end

local Journal = {}
Journal.__index = Journal
Journal.__name = "kling.journal"

-- open(path) -> journal, records | nil, message: the records already there (a torn last line
-- is cut off first), and a journal to append to.
function M.open(path)
  if type(path) ~= "string" or path == "" then
    error("kling.journal.open: a path is required", 2)
  end
  local records, info = M.read(path)
  if not records then
    return nil, info
  end
  if info.torn then
    local ok, err = repair(path, info.good_bytes)
    if not ok then
      return nil, "cannot repair the torn last line of " .. path .. ": " .. tostring(err)
    end
  end
  return setmetatable({ path = path, appended = 0, repaired = info.torn or nil }, Journal), records
end

-- append(record) -> true | nil, message. The record (a table) is one JSON line; it is on disk
-- when this returns.
function Journal:append(rec)
  local line, err = json.encode(rec)
  if not line then
    return nil, "cannot encode a journal record: " .. tostring(err)
  end
  local ok, werr = append_raw(self.path, line .. "\n")
  if not ok then
    return nil, "cannot append to " .. self.path .. ": " .. tostring(werr)
  end
  self.appended = self.appended + 1
  return true
end

function Journal:__tostring()
  return "kling.journal(" .. self.path .. ")"
end

M.Journal = Journal
return M
