-- bin/kling as scripts run it: in a process of its own from the checkout, with the
-- simulator's official keys in its environment.
local sim = require "support.sim"

local M = {}

-- env([provider]) -> the environment prefix of a command: the simulator's official API and
-- keys (KLING_API_KEY emptied, so that no key of the caller's leaks in).
function M.env(provider)
  local i = sim.info()
  return string.format("KLING_PROVIDER=%s KLING_BASE_URL='%s' KLING_ACCESS_KEY='%s' KLING_SECRET_KEY='%s' "
    .. "KLING_API_KEY= ", provider or "kling", i.http, i.access_key, i.secret_key)
end

-- kling(args [, env]) -> exit status, output (stdout and stderr together)
function M.kling(args, env)
  local p = io.popen((env or M.env()) .. "lua5.4 bin/kling " .. args .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  return tonumber(out:match("exit=(%d+)%s*$")), out
end

return M
