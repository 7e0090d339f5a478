--- kling inside nginx: the same client over cosockets.
-- kling inside nginx (OpenResty / Debian's nginx with its Lua module): the same client,
-- providers, retry policy, scheduler and billing as plain Lua, over cosockets instead of
-- libcurl, so a worker never blocks.
--
--   local kling = require "kling"
--   local client = kling.new { provider = "kling", api_key = "...",
--     driver = require("kling.resty").driver { timeout_ms = 60000 } }
--   local task, err = client:submit { prompt = "...", duration = 5 }   -- content, access, timer
--
-- client:submit and task:wait run the one lifecycle machine (kling.lifecycle.machine) through
-- the blocking runner (kling.runner.blocking), whose waits are ngx.sleep here.
--
-- Many tasks in one handler or timer: client:submit_many, wait_all, wait_any and cancel run the
-- engine (kling.engine) on this driver's asynchronous seam (kling.resty.multi: a light thread
-- per request, waits on a semaphore).
--
-- Many tasks across workers: kling.resty.tasks (a task table in a lua_shared_dict),
-- kling.resty.poller (a timer loop in one worker at a time, over core.sched),
-- kling.resty.callback (a location that takes verified callbacks), and kling.runner.resty,
-- which carries a machine's actions out one event at a time (the gateway's poller and
-- callbacks: kling.gateway.track); money in shared memory is the Ledger (kling.money.ledger)
-- over kling.money.stores.shared (with a journal file), moved through kling.lifecycle.effects.
-- @module kling.resty
local M = {}

--- The nginx driver for `kling.new{driver = ...}`.
-- driver(opts) -> a driver for kling.new{driver = ...} (see kling.resty.driver).
---@param opts? table timeout_ms, connect_timeout_ms, keepalive_ms, pool_size, verify, server_name, reuse_posts
---@return table driver
function M.driver(opts)
  return require("kling.resty.driver").new(opts)
end

--- One HTTP request over cosockets (kling.resty.http.request).
---@param req table
---@param opts? table
---@return table answer
M.http = function(req, opts)
  return require("kling.resty.http").request(req, opts)
end

return M
