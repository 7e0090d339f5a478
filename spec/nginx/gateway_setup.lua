-- An operator's mistake embedding the gateway (examples/nginx): server.conf included in a
-- server {} but http.conf, with its lua_shared_dicts, init_by_lua and init_worker_by_lua, left
-- out of http {}. Every gateway location then raised inside nginx ("attempt to index local
-- 'accounts'", a 500 in nginx's HTML page, nothing saying what was wrong). Each answers 503 in
-- its own form, nothing metered or forwarded, and the error log says what to include.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"

local srv

-- prefix/gateway.json: one account (alice) before an upstream nobody answers, its journal at journal.
local function gateway_json(prefix, journal)
  h.write(prefix .. "/gateway.json", require("kling.json").encode {
    upstream = { provider = "kling", base_url = "http://127.0.0.1:9", api_key = "k" },
    journal = journal,
    accounts = { { name = "alice", api_key = "gw-alice-0123456789abcdef", credit = "10" } },
  })
end

h.main(function()
  local prefix = h.tempdir("gateway-setup")
  local port = h.free_port()
  local conf = table.concat {
    h.conf_head(prefix),
    "http {\n", h.lua_paths(), h.temp_paths(prefix),
    "  access_log off;\n",
    "  server {\n    listen 127.0.0.1:", port, ";\n",
    "    include ", h.src, "/examples/nginx/server.conf;\n  }\n}\n",
  }
  srv = h.nginx_start(prefix, conf, port)
  local base = "http://127.0.0.1:" .. port
  local key = { authorization = "Bearer gw-alice-0123456789abcdef" }
  for _, c in ipairs {
    { "POST", "/v1/videos/text2video", { model_name = "kling-v1", prompt = "a cat", duration = "5" } },
    { "GET", "/v1/videos/text2video/gw1" },
    { "GET", "/gateway/balance" },
    { "POST", "/kling/callback", { task_id = "x", task_status = "succeed" } },
    { "GET", "/metrics" },
  } do
    local res = h.request(c[1], base .. c[2], { headers = key, body = c[3] })
    h.check(c[1] .. " " .. c[2] .. " without http.conf: 503, code 5001, in the official envelope",
      res.status == 503 and res.json and res.json.code == 5001
      and tostring(res.json.message):find("not set up", 1, true) ~= nil,
      tostring(res.status) .. " " .. tostring(res.body))
  end
  local res = h.request("GET", base .. "/gateway/admin", { headers = { authorization = "Bearer x" } })
  h.check("the admin API without http.conf: 503 in its own form, naming http.conf",
    res.status == 503 and res.json and tostring(res.json.error):find("http.conf", 1, true) ~= nil,
    tostring(res.status) .. " " .. tostring(res.body))
  local log = srv.error_log()
  h.check("the error log says what to include", log:find("include examples/nginx/http.conf in http {}", 1, true) ~= nil,
    log:sub(-1500))
  h.check_no_lua_error(srv, "nothing raised inside nginx")
  srv.stop()
  h.sh("rm -rf " .. h.q(prefix))

  -- lua_code_cache off: nginx runs init_by_lua again in each request's own Lua VM, in a worker
  -- (with master_process off, in its one process, where the per-request check below cannot tell
  -- a request's VM from the start's). Where the conf says so around the gateway's handlers
  -- (http {}, their server {}, an included file, a glob's), nginx refuses to start, naming it;
  -- it started, and only each request was refused (with master_process off, not even that).
  prefix = h.tempdir("gateway-setup-cache")
  gateway_json(prefix, prefix .. "/ledger.jsonl")
  port = h.free_port()
  h.write(prefix .. "/gw-server.conf", table.concat {
    "server {\n  listen 127.0.0.1:", port, ";\n  lua_code_cache off;\n",
    "  include ", h.src, "/examples/nginx/server.conf;\n}\n",
  })
  for _, c in ipairs {
    { "in http {}", "  lua_code_cache off;\n  server {\n    listen 127.0.0.1:" .. port .. ";\n    include "
      .. h.src .. "/examples/nginx/server.conf;\n  }\n", "nginx.conf:%d+", "" },
    { "in the server {} of an included glob's file, master_process off", "  include gw-*.conf;\n",
      "gw%-server%.conf:3", " master_process off;" },
  } do
    h.write(prefix .. "/nginx.conf", table.concat {
      h.conf_head(prefix),
      "http {\n", h.lua_paths(), h.temp_paths(prefix), "  access_log off;\n",
      "  include ", h.src, "/examples/nginx/http.conf;\n", c[2], "}\n",
    })
    local out = h.sh(("timeout 5 nginx -p %s -c %s -g 'daemon off;%s'; echo \"exit $?\""):format(h.q(prefix),
      h.q(prefix .. "/nginx.conf"), c[4]))
    h.check("lua_code_cache off " .. c[1] .. ": nginx does not start, the error names lua_code_cache and where",
      out:find("exit 1", 1, true) ~= nil and out:find("lua_code_cache is off in this nginx", 1, true) ~= nil
      and out:find("%(lua_code_cache off at [^)]*" .. c[3] .. "%)") ~= nil, out:sub(1, 800))
  end

  -- What the conf does not show (handlers in *_by_lua_file, which name nothing): nginx starts,
  -- and every location answers 503 in its own form naming lua_code_cache, nothing metered or
  -- forwarded (the start's checks cannot run in a request's VM: with user root every request
  -- was nginx's HTML 500 saying the journal was not writable by nobody).
  for name, call in pairs { api = "api()", balance = "balance()", admin = "admin()" } do
    h.write(prefix .. "/" .. name .. ".lua", "require(\"kling.gateway\")." .. call .. "\n")
  end
  port = h.free_port()
  srv = h.nginx_start(prefix, table.concat {
    h.conf_head(prefix),
    "http {\n", h.lua_paths(), h.temp_paths(prefix), "  access_log off;\n  lua_code_cache off;\n",
    "  include ", h.src, "/examples/nginx/http.conf;\n",
    "  server {\n    listen 127.0.0.1:", port, ";\n",
    "    location /v1/ { content_by_lua_file ", prefix, "/api.lua; }\n",
    "    location = /gateway/balance { content_by_lua_file ", prefix, "/balance.lua; }\n",
    "    location /gateway/admin { content_by_lua_file ", prefix, "/admin.lua; }\n  }\n}\n",
  }, port)
  base = "http://127.0.0.1:" .. port
  for _, c in ipairs {
    { "POST", "/v1/videos/text2video", { model_name = "kling-v1", prompt = "a cat", duration = "5" } },
    { "GET", "/v1/videos/text2video/gw1" },
    { "GET", "/gateway/balance" },
  } do
    res = h.request(c[1], base .. c[2], { headers = key, body = c[3] })
    h.check(c[1] .. " " .. c[2] .. " with lua_code_cache off: 503, code 5001, naming lua_code_cache",
      res.status == 503 and res.json and res.json.code == 5001
      and tostring(res.json.message):find("lua_code_cache is off", 1, true) ~= nil,
      tostring(res.status) .. " " .. tostring(res.body):sub(1, 300))
  end
  res = h.request("GET", base .. "/gateway/admin", { headers = { authorization = "Bearer x" } })
  h.check("the admin API with lua_code_cache off: 503 in its own form, naming lua_code_cache",
    res.status == 503 and res.json and tostring(res.json.error):find("lua_code_cache", 1, true) ~= nil,
    tostring(res.status) .. " " .. tostring(res.body):sub(1, 300))
  h.check_no_lua_error(srv, "nothing raised inside nginx with lua_code_cache off")
  srv.stop()
  srv = nil
  h.sh("rm -rf " .. h.q(prefix))

  -- The workers' user given on the command line (nginx -g 'user www-data;'), not in the conf:
  -- the start's check took nginx's default (nobody), passed a journal only nobody can write, and
  -- every create was then refused (503) by workers that could not open it.
  if h.is_root() and h.sh("id -u www-data"):match("^%d+") then
    prefix = h.tempdir("gateway-setup-user")
    h.sh("mkdir -p " .. h.q(prefix .. "/private") .. " && chown nobody " .. h.q(prefix .. "/private")
      .. " && chmod 700 " .. h.q(prefix .. "/private"))
    gateway_json(prefix, prefix .. "/private/ledger.jsonl")
    port = h.free_port()
    h.write(prefix .. "/nginx.conf", table.concat {
      (h.conf_head(prefix):gsub("user root root;\n", "")),
      "http {\n", h.lua_paths(), h.temp_paths(prefix), "  access_log off;\n",
      "  include ", h.src, "/examples/nginx/http.conf;\n",
      "  server {\n    listen 127.0.0.1:", port, ";\n",
      "    include ", h.src, "/examples/nginx/server.conf;\n  }\n}\n",
    })
    local out = h.sh(("timeout 3 nginx -p %s -c %s -g 'user www-data; daemon off;'"):format(h.q(prefix),
      h.q(prefix .. "/nginx.conf")))
    h.check("nginx -g 'user www-data;': a journal www-data cannot write stops the start, naming www-data",
      out:find("not writable by the nginx workers' user www-data", 1, true) ~= nil, out:sub(1, 600))
    h.sh("rm -rf " .. h.q(prefix))
  else
    print("# skipped: the -g user check needs root and a www-data user")
  end
end, function()
  return srv
end, function()
  if srv then
    srv.stop()
  end
end)
