-- Who may call the operators' routes (/gateway/admin, /metrics): a caller on this machine's
-- loopback (127.0.0.0/8, ::1, a unix socket), as nginx sees it. The one rule of both routes.
local M = {}

local EXACT = { ["::1"] = true, ["unix:"] = true }

-- caller() -> whether the request's peer is on loopback. The TCP peer's address: where nginx's
-- realip module is set up (set_real_ip_from, real_ip_header X-Forwarded-For: common behind a
-- load balancer) remote_addr is what a header says, and a client that sent X-Forwarded-For:
-- 127.0.0.1 read /metrics; realip_remote_addr keeps the peer's (nil without the module).
function M.caller()
  local addr = ngx.var.realip_remote_addr or ngx.var.remote_addr or ""
  return EXACT[addr] or addr:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

M.REFUSAL = "this route answers loopback callers only"

return M
