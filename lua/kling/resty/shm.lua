--- Writes to an ngx.shared dict that free its expired entries when it is full.
-- A dict frees expired entries on a write only from the tail of its LRU queue, and stops at
-- the first one there that never expires (an open task, an account, a hold): behind it,
-- expired entries keep their memory, and a full dict refused every new task while most of it
-- had expired. flush_expired frees them all in one walk of the queue under the dict's lock,
-- so it is done only when a write finds the dict full; safe_* never evicts a live entry.
-- @module kling.resty.shm
local M = {}

--- write(dict, "safe_add" | "safe_set", key, value [, ttl]) -> ok, err (as safe_add's, safe_set's)
function M.write(dict, how, key, value, ttl)
  local ok, err = dict[how](dict, key, value, ttl)
  if not ok and err == "no memory" and dict:flush_expired(0) > 0 then
    ok, err = dict[how](dict, key, value, ttl)
  end
  return ok, err
end

return M
