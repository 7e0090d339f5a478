-- A stand-in for nginx's `ngx` global, for unit specs of the modules that read a little of it
-- outside nginx (the stores and the task table: ngx.now, ngx.null, ngx.log, ngx.worker.pid).
--   local saved = fake_ngx.install { worker = ... }   -- extra fields over the defaults
--   fake_ngx.restore(saved)                            -- in teardown
--   fake_ngx.suite(setup, teardown [, extra])          -- both, for a describe block
local M = {}

function M.install(extra)
  local saved = rawget(_G, "ngx")
  local ngx = { now = os.time, null = {}, sleep = function() end, log = function() end, ERR = 4, WARN = 5,
    worker = { pid = function() return 0 end } }
  for k, v in pairs(extra or {}) do
    ngx[k] = v
  end
  rawset(_G, "ngx", ngx)
  return saved
end

function M.restore(saved)
  rawset(_G, "ngx", saved)
end

-- Installed in a describe block's setup and restored in its teardown (busted's two, passed in).
function M.suite(setup, teardown, extra)
  local saved
  setup(function()
    saved = M.install(extra)
  end)
  teardown(function()
    M.restore(saved)
  end)
end

return M
