-- The learnt task durations kept across runs: one small JSON file (by default
-- $XDG_CACHE_HOME/kling/durations.json, else ~/.cache/kling/durations.json) mapping a kind
-- ("provider|host|model|endpoint|mode|duration|sound") to its latest samples {wall_s, took_ms}
-- (wall_s: when the task was created; took_ms: how long it took).
-- Several processes may share it: a write reads the file again, merges its own new samples
-- into it, writes a temporary file and renames it over the old one, so a reader sees the old file or
-- the new one, never half of one. Two writers at the same instant may lose one's samples (no
-- lock): a cache, not a record. A file that cannot be read or parsed counts as empty; nothing
-- here raises on its content. A path that is not a regular file, or a file over M.MAX_BYTES,
-- is neither read nor written (M.read says why).
local core = require "kling.core"
local json = require "kling.json"
local durable_file = require "kling.durable_file"

local M = {}

M.KEEP = 8 -- samples kept per kind: recent enough to follow a provider that got slower
M.MAX_KINDS = 500 -- kinds kept; those with the oldest latest sample go first
-- The longest duration kept (ms): core.sched's default max task age (24 h). A longer one (a hand
-- edit, a corrupt file) would give a window core.sched refuses, raising in every later run.
M.MAX_MS = 86400000
-- The largest file read: 500 kinds of 8 samples take about 100 KB, so a larger one is not ours.
M.MAX_BYTES = 4 * 1024 * 1024
-- How far in the future a sample's time may be (s: clocks of machines sharing a home disagree).
-- One later would stay the latest for good: every real sample would be dropped at each merge.
M.SKEW_S = 300

-- The default path, or nil when neither XDG_CACHE_HOME nor HOME is set.
function M.default_path()
  local base = os.getenv("XDG_CACHE_HOME")
  if not base or base == "" then
    local home = os.getenv("HOME")
    if not home or home == "" then
      return nil
    end
    base = home .. "/.cache"
  end
  return base .. "/kling/durations.json"
end

local function valid_sample(s)
  return type(s) == "table" and type(s[1]) == "number" and type(s[2]) == "number" and s[2] >= 0
    and s[2] <= M.MAX_MS and s[1] == s[1] and s[1] > -math.huge and s[1] < math.huge
end
M.valid_sample = valid_sample

local function by_time(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

-- kind -> list of samples (oldest first); {} for a missing or unreadable file. A path that is not a
-- regular file (a FIFO would block the read for ever, /dev/zero never end) or is larger than
-- M.MAX_BYTES is not read: {} and a message saying why, and M.merge leaves it alone.
function M.read(path)
  if not path then
    return {}
  end
  local text, err, what = core.read_regular(path, M.MAX_BYTES + 1)
  if not text then
    return {}, what and err or nil -- missing or unreadable: as empty (and written over)
  end
  if #text > M.MAX_BYTES then
    return {}, string.format("%s is larger than %d bytes", path, M.MAX_BYTES)
  end
  local ok, doc = pcall(json.decode, text or "")
  if not ok or type(doc) ~= "table" or type(doc.kinds) ~= "table" then
    return {}
  end
  local kinds, latest = {}, core.wall_s() + M.SKEW_S
  for kind, samples in pairs(doc.kinds) do
    if type(kind) == "string" and type(samples) == "table" then
      local list = {}
      for _, s in ipairs(samples) do
        if valid_sample(s) and s[1] <= latest then
          list[#list + 1] = { s[1], s[2] }
        end
      end
      if #list > 0 then
        table.sort(list, by_time) -- oldest first even in a file written by hand (M.insert keeps it so)
        kinds[kind] = list
      end
    end
  end
  return kinds
end

local function same(a, b)
  return a[1] == b[1] and a[2] == b[2]
end

-- Two sample lists as one, each sample once, the latest M.KEEP. A sample can reach a merge
-- twice (M.merge writes again when it cannot find its samples; a file written before this
-- check held doubles): counted twice, it would narrow the kind's window.
local function union(a, b)
  local all = {}
  for _, list in ipairs { a or {}, b or {} } do
    for _, s in ipairs(list) do
      all[#all + 1] = s
    end
  end
  table.sort(all, by_time)
  local kept = {}
  for _, s in ipairs(all) do
    if #kept == 0 or not same(kept[#kept], s) then
      kept[#kept + 1] = s
    end
  end
  local out = {}
  for i = math.max(1, #kept - M.KEEP + 1), #kept do
    out[#out + 1] = kept[i]
  end
  return out
end
M.union = union

--- Adds one sample to a kind's list (oldest first, at most M.KEEP) in place: what union does
-- for one, without a new list and a sort (the engine adds one at each task's end).
function M.insert(list, s)
  for _, o in ipairs(list) do
    if same(o, s) then
      return list
    end
  end
  local i = #list + 1
  while i > 1 and by_time(s, list[i - 1]) do
    list[i] = list[i - 1]
    i = i - 1
  end
  list[i] = s
  while #list > M.KEEP do
    table.remove(list, 1)
  end
  return list
end

local function merge_once(path, fresh)
  local kinds, refused = M.read(path)
  if refused then
    return nil, refused -- not a file we wrote: left as it is
  end
  for kind, samples in pairs(fresh) do
    kinds[kind] = union(kinds[kind], samples)
  end
  local names = {}
  for kind in pairs(kinds) do
    names[#names + 1] = kind
  end
  if #names > M.MAX_KINDS then
    table.sort(names, function(a, b)
      local la, lb = kinds[a], kinds[b]
      return la[#la][1] > lb[#lb][1]
    end)
    for i = M.MAX_KINDS + 1, #names do
      kinds[names[i]] = nil
    end
  end
  local text, jerr = json.encode { v = 1, kinds = kinds }
  if not text then
    return nil, jerr
  end
  local ok, werr = durable_file.replace(path, text .. "\n")
  local dir = path:match("^(.*)/[^/]*$")
  if not ok and dir then -- the cache directory may not exist yet
    core.mkdir_p(dir) -- only the cache's own directory; a failure shows as the write's
    ok, werr = durable_file.replace(path, text .. "\n")
  end
  if not ok then
    return nil, werr
  end
  return true
end

-- Whether the file holds the latest (by time: the one no merge drops) of `fresh`'s samples
-- of every kind. Samples reach `fresh` in the order tasks end, not by their create time.
local function holds(path, fresh)
  local kinds = M.read(path)
  for kind, samples in pairs(fresh) do
    local last, found = samples[1], false
    for _, s in ipairs(samples) do
      last = by_time(last, s) and s or last
    end
    for _, s in ipairs(kinds[kind] or {}) do
      found = found or (s[1] == last[1] and s[2] == last[2])
    end
    if not found then
      return false
    end
  end
  return true
end

-- Merges `fresh` (kind -> samples) into the file at path. Returns true, or nil and a message
-- (the caller goes on without the cache). When another process's rename replaced ours
-- between our read and write, the samples are merged once more.
function M.merge(path, fresh)
  local ok, err = merge_once(path, fresh)
  if ok and not holds(path, fresh) then
    ok, err = merge_once(path, fresh)
  end
  return ok, err
end

return M
