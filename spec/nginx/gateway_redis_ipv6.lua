-- A Redis store at an IPv6 address: store.redis = redis://[::1]:PORT/0 was refused ("must be
-- redis://...host[:port][/db]"), the brackets not parsed; now the node starts on it and meters.
-- A bare IPv6 host (redis://::1:PORT/0) is refused naming the rule (brackets).
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local fleet = h.fleet("gateway-redis-ipv6")
local port, dir = h.free_port(), nil
local sim

local function config(http)
  return {
    upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key },
    admin_key = "admin-0123456789abcdef", callback_url = http .. "/kling/callback", insecure_callbacks = true,
    accounts = { { name = "ivy", api_key = "gw-ivy-key", credit = "10" } },
  }
end

local function cli(...)
  return (h.sh("redis-cli -h ::1 -p " .. port .. " " .. table.concat({ ... }, " ")))
end

local function run()
  sim = h.sim_start(fleet.sim_dir)
  dir = fleet.base .. "/redis6"
  local out, ok = h.sh(("mkdir -p %s && redis-server --port %d --bind ::1 --appendonly yes --appendfsync always"
    .. " --save '' --dir %s --daemonize yes --logfile %s"):format(h.q(dir), port, h.q(dir), h.q(dir .. "/redis.log")))
  assert(ok, "redis-server: " .. out)
  local limit = h.now() + 10
  while not cli("ping"):find("PONG", 1, true) do
    assert(h.now() < limit, "redis did not answer on [::1]")
    h.sleep(0.05)
  end

  -- A bare IPv6 host: refused by the config check, naming the field and the rule.
  local bare = config("http://127.0.0.1:1")
  bare.store = { redis = "redis://::1:" .. port .. "/0" }
  h.write(fleet.base .. "/bare.json", json.encode(bare))
  out, ok = h.sh(("lua5.4 %s/bin/kling gateway start --config %s --dir %s --port %d"):format(h.q(h.src),
    h.q(fleet.base .. "/bare.json"), h.q(fleet.base .. "/gw-bare"), h.free_port()))
  h.check("redis://::1:PORT/0 is refused naming store.redis and the brackets", not ok
    and out:find("store.redis", 1, true) and out:find("in brackets", 1, true), out)

  -- In brackets: the node starts, is ready and meters through that Redis.
  local http = fleet.start("v6", config, { redis = "redis://[::1]:" .. port .. "/0" })
  local ready = h.request("GET", http .. "/gateway/ready")
  h.check("redis://[::1]:PORT/0: the node is ready", ready.status == 200, ready.body)
  local res = h.request("POST", http .. "/v1/videos/text2video", { headers = { authorization = "Bearer gw-ivy-key" },
    body = { model_name = "kling-v1", mode = "std", duration = "5", prompt = "a kite" } })
  h.check("redis://[::1]:PORT/0: a create is taken", res.status == 200 and res.json and res.json.code == 0, res.body)
  h.check("redis://[::1]:PORT/0: its hold is in that Redis", cli("--scan"):find("kgw:", 1, true) ~= nil)
end

h.main(run, function() return nil end, function()
  fleet.cleanup()
  if dir then
    cli("shutdown nosave")
  end
end)
