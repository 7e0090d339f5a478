-- Who may call the operators' routes (/gateway/admin, /metrics): a caller on this machine's
-- loopback (127.0.0.0/8, ::1, a unix socket), as nginx sees it. The one rule of both routes.
local M = {}

local EXACT = { ["::1"] = true, ["unix:"] = true }

-- caller() -> whether the request's peer is on loopback
function M.caller()
  local addr = ngx.var.remote_addr or ""
  return EXACT[addr] or addr:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

M.REFUSAL = "this route answers loopback callers only"

return M
