-- kling.resty inside real nginx (LuaJIT build) against a simulator of its own: the client in
-- content, access and timer contexts, HTTPS verified, keep-alive, the HTTP client's edge
-- cases, the C retry policy, and clear errors where nginx has no cosockets. The checks run
-- in nginx (spec/nginx/driver_checks.lua); this script sets up, counts and cleans up.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local base, sim_dir, prefix = h.dirs("resty")
local srv
local function cleanup()
  h.tidy(base, sim_dir, srv)
end

h.main(function()
  local sim = h.sim_start(sim_dir, { task_seconds = 1 })
  -- A certificate no trusted CA signed, for the refusal check.
  local _, made = h.sh(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
    .. "-addext subjectAltName=DNS:localhost -keyout %s/u.key -out %s/u.pem"):format(prefix, prefix))
  assert(made, "openssl could not make a certificate")
  local port, untrusted, closed = h.free_port(), h.free_port(), h.free_port()
  h.write(prefix .. "/env.json", json.encode {
    http = sim.http, https_port = tonumber(sim.https:match(":(%d+)$")), access_key = sim.access_key,
    secret_key = sim.secret_key, untrusted_port = untrusted, closed_port = closed,
  })
  local conf = h.conf_head(prefix) .. "http {\n  access_log off;\n" .. h.lua_paths(h.src .. "/spec/nginx/?.lua;")
    .. h.temp_paths(prefix) .. ([[
  lua_ssl_trusted_certificate %s;
  lua_ssl_verify_depth 3;
  lua_socket_log_errors off;
  lua_shared_dict checks 1m;
  init_worker_by_lua_block { require("driver_checks").init_worker() }
  server {
    listen 127.0.0.1:%d;
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s/u.pem;
    ssl_certificate_key %s/u.key;
    location = /checks/content { content_by_lua_block { require("driver_checks").content() } }
    location = /checks/access {
      access_by_lua_block { require("driver_checks").access() }
      content_by_lua_block { require("driver_checks").access_report() }
    }
    location = /checks/timer { content_by_lua_block { require("driver_checks").timer() } }
    location = /checks/phases { content_by_lua_block { require("driver_checks").phases() } }
    location = /checks/header_filter {
      content_by_lua_block { ngx.say("x") }
      header_filter_by_lua_block { require("driver_checks").header_filter() }
    }
    location ~ ^/fixture/(\w+)$ { content_by_lua_block { require("driver_checks").fixture(ngx.var[1]) } }
    location ~ ^/hostile/(\w+)/ { content_by_lua_block { require("driver_checks").fixture(ngx.var[1]) } }
  }
}
]]):format(sim.ca_file, port, untrusted, prefix, prefix)
  srv = h.nginx_start(prefix, conf, port)
  for _, name in ipairs { "content", "access", "timer", "phases" } do
    local res = h.request("GET", "http://127.0.0.1:" .. port .. "/checks/" .. name, { timeout_ms = 120000 })
    h.check(name .. " checks answered", res.ok and res.status == 200, res.message or res.status)
    for l in (res.body or ""):gmatch("[^\n]+") do
      local good, rest = l:match("^ok %- (.*)$"), l:match("^not ok %- (.*)$")
      if good or rest then
        h.check(good or rest, good ~= nil, nil)
      end
    end
  end
  h.check_no_lua_error(srv)
end, function()
  return srv
end, cleanup)
