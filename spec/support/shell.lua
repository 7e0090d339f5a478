-- Commands from specs: a word quoted for the shell (kling.nginx_run's quoting) and a command's
-- output with its exit status.
local nginx_run = require "kling.nginx_run"

local M = {}

M.q = nginx_run.q

-- run(cmd) -> stdout, exit status (0 on success)
function M.run(cmd)
  local p = io.popen(cmd, "r")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

return M
