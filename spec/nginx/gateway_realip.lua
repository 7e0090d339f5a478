-- Who is a loopback caller (/metrics, the admin API) when the embedding nginx sets up its realip
-- module (set_real_ip_from, real_ip_header X-Forwarded-For: common behind a load balancer): the
-- TCP peer, never what a header says. remote_addr is the header's address there, so a client
-- that sent X-Forwarded-For: 127.0.0.1 through the balancer read /metrics (account names and
-- spend). Here the peer is loopback and the header says otherwise: the peer is what counts.
-- The gateway embedded (examples/nginx), its upstream never called.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local base, _, prefix = h.dirs("gateway-realip")
local srv

local function cleanup()
  if srv then
    srv.stop()
  end
  h.tidy(base)
end

h.main(function()
  local port = h.free_port()
  h.write(prefix .. "/gateway.json", json.encode {
    upstream = { provider = "kling", base_url = "http://127.0.0.1:9", api_key = "upstream-key" },
    journal = prefix .. "/ledger.jsonl",
    accounts = { { name = "alice", api_key = "gw-alice-key", credit = "10" } },
  })
  local conf = h.conf_head(prefix) .. "http {\n  access_log off;\n" .. h.lua_paths() .. h.temp_paths(prefix)
    .. ([[
  include %s/examples/nginx/http.conf;
  server {
    listen 127.0.0.1:%d;
    set_real_ip_from 0.0.0.0/0;
    real_ip_header X-Forwarded-For;
    include %s/examples/nginx/server.conf;
  }
}
]]):format(h.src, port, h.src)
  srv = h.nginx_start(prefix, conf, port)
  local url = "http://127.0.0.1:" .. port
  local res = h.request("GET", url .. "/metrics", { headers = { ["x-forwarded-for"] = "203.0.113.9" } })
  h.check("a loopback peer reads /metrics whatever its X-Forwarded-For says (the realip module's remote_addr)",
    res.status == 200 and res.body:find("kling_gateway_", 1, true) ~= nil, res.status .. " " .. res.body:sub(1, 200))
  h.check_no_lua_error(srv)
end, function()
  return srv
end, cleanup)
