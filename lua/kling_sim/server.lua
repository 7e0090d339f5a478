-- The simulator's entry points in nginx: init (master, from the generated init file),
-- init_worker, content and log. Everything is required here, in the master, so workers
-- running as nobody never need to read the source tree.
local registry = require "kling_sim.registry"
local media = require "kling_sim.media"
local router = require "kling_sim.router"
local settings = require "kling_sim.settings"
local stats = require "kling_sim.stats"

local M = {}

-- opts = {dir, media_dir, dialects = {names}, config = {task_seconds, max_parallel, access_key,
-- secret_key, api_key, fault_seed}}
function M.init(opts)
  registry.load(opts.dialects)
  media.load(opts.media_dir)
  local ok, err = settings.check(opts.config)
  if not ok then
    error("kling sim: bad launch settings: " .. err)
  end
  settings.init(opts.config)
end

function M.init_worker()
  math.randomseed(ngx.now() * 1000 + ngx.worker.pid())
end

function M.content()
  return router.handle()
end

function M.log()
  local ctx = ngx.ctx
  if ctx.admin then
    return
  end
  local start = ngx.req.start_time()
  stats.record {
    time_ms = math.floor(start * 1000),
    duration_ms = math.floor((ngx.now() - start) * 1000 + 0.5),
    method = ngx.req.get_method(),
    path = ngx.var.uri,
    query = ngx.var.args,
    status = tonumber(ngx.var.status) or ngx.status,
    route = ctx.route or "unmatched",
    dialect = ctx.dialect,
    fault = ctx.fault,
    auth = ctx.auth,
    request_id = ctx.request_id,
    task_id = ctx.task_id,
  }
end

return M
