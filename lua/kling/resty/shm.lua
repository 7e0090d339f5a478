--- Writes to an ngx.shared dict that free its expired entries when it is full.
-- A dict frees expired entries on a write only from the tail of its LRU queue, and stops at
-- the first one there that never expires (an open task, an account, a hold): behind it,
-- expired entries keep their memory, and a full dict refused every new task while most of it
-- had expired. flush_expired frees them all in one walk of every entry under the dict's lock,
-- so it is done only when the dict is found full, and at most once a second in a worker (a
-- flood of creates against a full dict must not walk it once each). safe_* never evicts a
-- live entry.
-- @module kling.resty.shm
local M = {}

local Shm = {}
Shm.__index = Shm
Shm.__name = "kling.resty.shm"

-- The longest expiry a store or task table gives its entries: a hundred years (the gateway's
-- ten of retention_days, and its margins, within it). nginx took an infinite one as none: the
-- entry never expired.
M.TTL_MAX_S = 36500 * 86400

--- ttl_problem(v) -> why v cannot be an entry's time to live in seconds, or nil: a positive
-- number from a millisecond up to TTL_MAX_S (math.huge, NaN and 1e-4 were taken, and the entries kept
-- for good).
function M.ttl_problem(v)
  -- (nginx keeps it in whole milliseconds: under one, it was 0, no expiry either)
  if type(v) ~= "number" or v ~= v or v < 0.001 or v > M.TTL_MAX_S then
    return "must be a positive number of seconds, from 0.001 to " .. M.TTL_MAX_S .. " (a hundred years), got "
      .. tostring(v)
  end
  return nil
end

--- new(dict) -> this worker's writer to dict (it keeps when it last freed the dict's expired entries)
function M.new(dict)
  return setmetatable({ dict = dict, freed_at = -1 }, Shm)
end

--- Frees the dict's expired entries, unless this worker did within the last second -> how many
function Shm:reclaim()
  local now = ngx.now()
  if now - self.freed_at < 1 then
    return 0
  end
  self.freed_at = now
  return self.dict:flush_expired(0)
end

--- write("safe_add" | "safe_set", key, value [, ttl]) -> ok, err (as safe_add's, safe_set's)
function Shm:write(how, key, value, ttl)
  local d = self.dict
  local ok, err = d[how](d, key, value, ttl)
  if not ok and err == "no memory" and self:reclaim() > 0 then
    ok, err = d[how](d, key, value, ttl)
  end
  return ok, err
end

--- room(bytes) -> whether the dict has at least `bytes` in whole free pages (its expired entries
-- freed first when it has not)
function Shm:room(bytes)
  local d = self.dict
  if d:free_space() >= bytes then
    return true
  end
  self:reclaim()
  return d:free_space() >= bytes
end

--- lock(dict, key, seconds [, tries [, block]]) -> true | nil, err: a lock of every worker's
-- (and nginx's master's) in dict, taken by adding key with a life of `seconds`, so that it
-- ends should its holder die holding it; the holder deletes key to let it go. Tried `tries`
-- times (1 by default: no wait), 5 ms apart: by ngx.sleep where the phase yields; where it
-- cannot, by a blocking sleep when `block` is true (nginx's master at a start or reload, where
-- no request waits on it), else not again. err: "exists" (held all along), or the dict's own.
---@param dict table an ngx.shared dict
---@param key string
---@param seconds number
---@param tries? integer
---@param block? boolean
---@return boolean|nil ok
---@return string|nil err
function M.lock(dict, key, seconds, tries, block)
  local err
  for i = 1, tries or 1 do
    local ok
    ok, err = dict:safe_add(key, true, seconds)
    if ok then
      return true
    elseif err ~= "exists" or i == (tries or 1) then
      break
    end
    if not pcall(ngx.sleep, 0.005) then
      if not block then
        break
      end
      require("kling.core").sleep_ms(5)
    end
  end
  return nil, err
end

-- A process's start time (field 22 of /proc/<pid>/stat, in clock ticks since boot) and state, or
-- nil where it is not there (gone, or no /proc).
local function proc_start(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "rb")
  local s = f and f:read("*a")
  if f then
    f:close()
  end
  local rest = s and s:match("%) (.*)$") -- the fields after the command's name (which may hold spaces)
  if not rest then
    return nil
  end
  local state = rest:match("^(%S+)")
  local n = 2 -- rest begins at field 3
  for v in rest:gmatch("%S+") do
    n = n + 1
    if n == 22 then
      return v, state
    end
  end
  return nil
end

local own = {}
--- owner() -> this process, as a mark in shared memory names its writer: "<pid>/<start time>"
-- (a pid the kernel gave again to another process has another start time).
---@return string
function M.owner()
  local pid = ngx.worker and ngx.worker.pid and ngx.worker.pid() or 0
  if own.pid ~= pid then
    own.pid, own.text = pid, pid .. "/" .. (proc_start(pid) or "?")
  end
  return own.text
end

--- gone(owner) -> whether the process owner() named has ended (a zombie has): false while it
-- may run, also when it cannot be told (no /proc, an owner of another form).
---@param owner string
---@return boolean
function M.gone(owner)
  local pid, start = tostring(owner):match("^(%d+)/(%d+)$")
  if not pid or pid == "0" or not proc_start("self") then
    return false
  end
  local now, state = proc_start(pid)
  return now ~= start or state == "Z" or state == "X"
end

return M
