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

return M
