--- Ids the gateway shows its clients (task ids, request ids) that tell nothing of its traffic.
-- A counter in them (a task id's, nginx's connection number in a request id) let any client
-- count the creates and connections of every other client between two of its own. Each id is
-- random now, taken from a worker's buffer of random bytes, so that one draw from OpenSSL
-- serves many ids (a draw per create cost more than the rest of its answer).
-- @module kling.gateway.ids
local core = require "kling.core"

local M = {}

M.POOL_BYTES = 1024 -- random bytes drawn at once, the most core.random_hex draws (about 46 creates' ids)

-- The buffer, as hex, and where the next id starts in it. One per worker process (nginx's
-- workers share no Lua state), taken from without yielding: no two requests of a worker can
-- take the same bytes. A buffer drawn before a fork (nginx's master) would repeat in every
-- worker: each worker starts from an empty one (reset, in init_worker).
local pool, at = "", 1

--- reset(): the buffer emptied; the next id draws anew. In each nginx worker as it starts.
function M.reset()
  pool, at = "", 1
end

--- random(n) -> n random hex digits (1 <= n <= 2 * POOL_BYTES).
---@param n integer
---@return string
function M.random(n)
  if at + n - 1 > #pool then
    pool, at = core.random_hex(M.POOL_BYTES), 1
  end
  local s = pool:sub(at, at + n - 1)
  at = at + n
  return s
end

--- A task id: "gw" and 96 random bits (26 characters, as before).
---@return string
function M.task()
  return "gw" .. M.random(24)
end

--- A request id for the official envelope's request_id: 80 random bits.
---@return string
function M.request()
  return M.random(20)
end

return M
