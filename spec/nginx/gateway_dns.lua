-- Issue 12.1: a client's callback_url that names a host is delivered to the address the
-- gateway resolved and checked itself. A name pointing at loopback or a metadata address is
-- not called (the create was taken: names are checked when the callback is sent), a name that
-- does not exist is not retried, and with allow_private_callbacks a name is called at the
-- address its DNS gave, with its own Host header, though nginx has no resolver configured.
-- Real nginx (the gateway of examples/nginx), a simulator, and a name server of the test's own.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local PROMPT = "a kite over a windy beach"
local base, sim_dir, prefix = h.dirs("gateway-dns")
local srv, sim, port, dns_pid
local dns_log = base .. "/dns.log"

local function cleanup()
  if dns_pid then
    h.sh("kill " .. dns_pid)
  end
  h.tidy(base, sim_dir, srv)
end

local function url(path)
  return "http://127.0.0.1:" .. port .. path
end

local function start_gateway(allow_private, dns_port)
  h.write(prefix .. "/gateway.json", json.encode {
    upstream = { provider = "kling", base_url = "https://localhost:" .. sim.https:match(":(%d+)$"),
      access_key = sim.access_key, secret_key = sim.secret_key, timeout = 30 },
    journal = prefix .. "/ledger.jsonl", allow_private_callbacks = allow_private,
    resolver = { "127.0.0.1:" .. dns_port },
    poll = { min_interval = 0.3, max_interval = 0.5 },
    accounts = { { name = "alice", api_key = "gw-alice-key", credit = "1000" } },
  })
  -- No `resolver` directive: nginx itself cannot resolve a name, so a delivery to one proves
  -- that the gateway resolved it and connected to the address.
  local conf = h.conf_head(prefix) .. "http {\n  access_log off;\n" .. h.lua_paths() .. h.temp_paths(prefix) .. ([[
  lua_ssl_trusted_certificate %s;
  lua_shared_dict receiver 1m;
  include %s/examples/nginx/http.conf;
  server {
    listen 127.0.0.1:%d;
    listen [::1]:%d;
    include %s/examples/nginx/server.conf;
    location = /receiver {
      content_by_lua_block {
        local n = ngx.shared.receiver:incr("n", 1, 0)
        ngx.shared.receiver:set(n, ngx.var.http_host)
        ngx.say("ok")
      }
    }
    location = /received {
      content_by_lua_block {
        local out = {}
        for i = 1, ngx.shared.receiver:get("n") or 0 do out[i] = ngx.shared.receiver:get(i) end
        ngx.say(table.concat(out, " "))
      }
    }
  }
}
]]):format(sim.ca_file, h.src, port, port, h.src)
  srv = h.nginx_start(prefix, conf, port)
end

local function create(callback_url)
  local res = h.request("POST", url("/v1/videos/text2video"), { headers = { authorization = "Bearer gw-alice-key" },
    body = json.encode { model_name = "kling-v1", mode = "std", duration = "5", prompt = PROMPT,
      callback_url = callback_url } })
  return res.status == 200 and res.json and res.json.data and res.json.data.task_id, res
end

local function ended(id)
  local limit = h.now() + 30
  while h.now() < limit do
    local res = h.request("GET", url("/v1/videos/text2video/" .. id),
      { headers = { authorization = "Bearer gw-alice-key" } })
    local st = res.json and res.json.data and res.json.data.task_status
    if st == "succeed" or st == "failed" then
      return true
    end
    h.sleep(0.2)
  end
  return false
end

local function received()
  local res = h.request("GET", url("/received"))
  local out = {}
  for host in (res.body or ""):gmatch("%S+") do
    out[#out + 1] = host
  end
  return out
end

local function run()
  sim = h.sim_start(sim_dir, { task_seconds = 1 })
  port = h.free_port()
  local dns_port = h.free_port()
  dns_pid = tonumber(h.sh(("lua5.4 %s/spec/support/fake_dns.lua %d %s evil.test=127.0.0.1 "
    .. "meta.test=169.254.169.254 good.test=127.0.0.1 evil6.test=::1 good6.test=::1 >/dev/null 2>&1 & echo $!")
    :format(h.src, dns_port,
    h.q(dns_log))):match("%d+"))

  -- Private addresses refused (the default).
  start_gateway(false, dns_port)
  local ids = {}
  for _, name in ipairs { "evil.test", "meta.test", "nowhere.test", "evil6.test" } do
    local id, res = create("http://" .. name .. ":" .. port .. "/receiver")
    h.check("issue 12.1: a create with a callback_url naming " .. name .. " is taken (names are checked at the send)",
      id ~= nil, res.body)
    ids[#ids + 1] = id
  end
  local all_ended = true
  for _, id in ipairs(ids) do
    all_ended = ended(id) and all_ended
  end
  h.check("issue 12.1: ... and the four tasks end (by polling)", all_ended)
  h.sleep(1.5) -- the callbacks' timers
  h.check("issue 12.1: nothing reached the receiver on loopback through a name", #received() == 0,
    table.concat(received(), " "))
  local asked = h.read(dns_log) or ""
  h.check("issue 12.1: the gateway asked the name server for each name", asked:find("evil.test", 1, true)
    and asked:find("meta.test", 1, true) and asked:find("nowhere.test", 1, true), asked)
  local log = srv.error_log()
  h.check("issue 12.1: the error log says where each name points and that it was not sent",
    log:find("evil.test points at 127.0.0.1", 1, true) and log:find("meta.test points at 169.254.169.254", 1, true)
    and log:find("nowhere.test does not resolve", 1, true), log:sub(-2000))
  h.check("issue 12.1: a name with only an IPv6 address is asked for it (AAAA) and refused where it points",
    asked:find("AAAA evil6.test", 1, true) and log:find("evil6.test points at [0:0:0:0:0:0:0:1]", 1, true),
    asked .. "\n" .. log:sub(-2000))
  local _, nxdomain_asks = asked:gsub("nowhere%.test", "")
  h.check("issue 12.1: a name that does not exist is not asked again (no retry)", nxdomain_asks == 1,
    "asked " .. nxdomain_asks .. " times")
  srv.stop()

  -- With allow_private_callbacks the name is called at the address the gateway resolved.
  start_gateway(true, dns_port)
  local id, res = create("http://good.test:" .. port .. "/receiver")
  h.check("issue 12.1: with allow_private_callbacks a create naming good.test is taken", id ~= nil, res.body)
  h.check("issue 12.1: ... and ends", id ~= nil and ended(id))
  local limit, got = h.now() + 10, {}
  while h.now() < limit and #got == 0 do
    got = received()
    h.sleep(0.1)
  end
  h.check("issue 12.1: ... and its end reached the receiver through the gateway's own resolution, Host good.test",
    #got == 1 and got[1] == "good.test:" .. port, table.concat(got, " ") .. "\n" .. srv.error_log():sub(-1500))

  -- An IPv6-only name is called at its IPv6 address (the receiver listens on [::1] too).
  id, res = create("http://good6.test:" .. port .. "/receiver")
  h.check("issue 12.1: with allow_private_callbacks a create naming IPv6-only good6.test is taken", id ~= nil, res.body)
  h.check("issue 12.1: ... and ends", id ~= nil and ended(id))
  limit = h.now() + 10
  while h.now() < limit and #got < 2 do
    got = received()
    h.sleep(0.1)
  end
  h.check("issue 12.1: ... and its end reached the receiver at [::1], Host good6.test",
    #got == 2 and got[2] == "good6.test:" .. port, table.concat(got, " ") .. "\n" .. srv.error_log():sub(-1500))
end

local ok, err = pcall(run)
if not ok then
  h.check("the DNS checks ran to the end", false, tostring(err))
end
h.finish(cleanup)
