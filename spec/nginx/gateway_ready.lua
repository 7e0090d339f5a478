-- A node takes creates once GET /gateway/ready says so. With a Redis store the node opens its
-- config file's accounts there after nginx answers (retried each second while Redis cannot
-- answer): /gateway/health said 200 and `kling gateway start` returned while creates were
-- still 503s ("the gateway cannot read its records now"). Now the start waits for readiness,
-- and says why when it cannot have it yet (Redis away): it does not hang, and the node becomes
-- ready once Redis answers.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"

local ADMIN = "admin-0123456789abcdef"
local fleet = h.fleet("gateway-ready")
local sim

local function config(http)
  return {
    upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key },
    admin_key = ADMIN, callback_url = http .. "/kling/callback", insecure_callbacks = true,
    accounts = { { name = "ivy", api_key = "gw-ivy-key", credit = "10" } },
  }
end

local function create(http)
  return h.request("POST", http .. "/v1/videos/text2video", { headers = { authorization = "Bearer gw-ivy-key" },
    body = { model_name = "kling-v1", mode = "std", duration = "5", prompt = "a kite" } })
end

local function run()
  sim = h.sim_start(fleet.sim_dir)
  -- A Redis node started with its Redis up: ready when the start returns, its first create taken.
  local store = fleet.redis_store()
  local http = fleet.start("up", config, store)
  local ready = h.request("GET", http .. "/gateway/ready")
  h.check("redis up: /gateway/ready answers 200 when kling gateway start returns", ready.status == 200, ready.body)
  local res = create(http)
  h.check("redis up: the first create right after the start is taken (200, not a 503)", res.status == 200
    and res.json and res.json.code == 0, res.body)

  -- The same store's Redis stopped: a new node answers, and the start says why it takes no creates.
  local port = store.redis:match(":(%d+)/")
  h.sh("redis-cli -p " .. port .. " shutdown nosave")
  local dir = fleet.base .. "/gw-down"
  h.write(fleet.base .. "/down.json", require("kling.json").encode((function()
    local c = config("http://127.0.0.1:1")
    c.store = store
    return c
  end)()))
  local gw_port = h.free_port()
  local out, ok = h.sh(("lua5.4 %s/bin/kling gateway start --config %s --dir %s --port %d"):format(h.q(h.src),
    h.q(fleet.base .. "/down.json"), h.q(dir), gw_port))
  h.check("redis down: kling gateway start returns (exit 0), warning that the node takes no creates yet and why",
    ok and out:find("not taking creates yet", 1, true) and out:find("Redis store", 1, true), out)
  local down = "http://127.0.0.1:" .. gw_port
  ready = h.request("GET", down .. "/gateway/ready")
  h.check("redis down: /gateway/ready answers 503 naming the Redis store", ready.status == 503
    and ready.json and ready.json.code == 5001 and tostring(ready.json.message):find("Redis store", 1, true),
    ready.body)
  local health = h.request("GET", down .. "/gateway/health")
  h.check("redis down: /gateway/health (nginx answers) is 200", health.status == 200, health.body)

  -- Redis back: the node opens its accounts by itself and becomes ready.
  h.sh(("redis-server --port %s --bind 127.0.0.1 --appendonly yes --appendfsync always --save '' --dir %s"
    .. " --daemonize yes --logfile %s"):format(port, h.q(fleet.base .. "/redis"),
    h.q(fleet.base .. "/redis/redis.log")))
  local by = h.now() + 30
  repeat
    h.sleep(0.2)
    ready = h.request("GET", down .. "/gateway/ready")
  until ready.status == 200 or h.now() > by
  h.check("redis back: /gateway/ready answers 200 once the node opened its accounts", ready.status == 200, ready.body)
  res = create(down)
  h.check("redis back: a create is taken", res.status == 200 and res.json and res.json.code == 0, res.body)
  h.gateway_stop(dir)
end

h.main(run, function() return nil end, fleet.cleanup)
