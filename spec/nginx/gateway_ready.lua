-- A node takes creates once GET /gateway/ready says so. With a Redis store the node opens its
-- config file's accounts there after nginx answers (retried each second while Redis cannot
-- answer): /gateway/health said 200 and `kling gateway start` returned while creates were
-- still 503s ("the gateway cannot read its records now"). Now the start waits for readiness,
-- and says why when it cannot have it yet (Redis away): it does not hang, and the node becomes
-- ready once Redis answers. A node says so too when Redis goes away after its start, or (one
-- node) its journal cannot be written: it is not taking creates then.
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

-- GET /gateway/ready until it answers status (a node looks at its store at most once a second),
-- giving up after 30 s: its last answer.
local function until_ready(http, status)
  local by, res = h.now() + 30
  repeat
    res = h.request("GET", http .. "/gateway/ready")
    if res.status ~= status then
      h.sleep(0.2)
    end
  until res.status == status or h.now() > by
  return res
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

  -- The same store's Redis stopped: the started node says it takes no creates now (it said 200).
  local port = store.redis:match(":(%d+)/")
  h.sh("redis-cli -p " .. port .. " shutdown nosave")
  ready = until_ready(http, 503)
  h.check("redis gone after the start: /gateway/ready answers 503 naming the Redis store", ready.status == 503
    and ready.json and ready.json.code == 5001 and tostring(ready.json.message):find("Redis store", 1, true),
    ready.body)
  res = create(http)
  h.check("redis gone after the start: ... as its creates are refused (503)", res.status == 503, res.body)

  -- A new node answers, and the start says why it takes no creates.
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
  ready = until_ready(http, 200)
  h.check("redis back: the node started before it is ready again", ready.status == 200, ready.body)
  h.gateway_stop(dir)

  -- One node: not ready while its journal cannot be written (a link to /dev/full at its name, which
  -- its workers refuse to write through), ready again once it can.
  local one = fleet.start("one", config)
  local jpath = fleet.base .. "/journal/one.jsonl"
  res = create(one)
  h.check("one node: a create is taken", res.status == 200 and res.json and res.json.code == 0, res.body)
  local function reopen()
    return h.request("POST", one .. "/gateway/admin/journal/reopen",
      { headers = { authorization = "Bearer " .. ADMIN } })
  end
  h.sh(("mv %s %s.keep && cp -p %s.keep %s"):format(h.q(jpath), h.q(jpath), h.q(jpath), h.q(jpath)))
  h.check("one node: the journal is reopened on the admin's word", reopen().status == 200)
  h.sh(("rm %s && ln -s /dev/full %s"):format(h.q(jpath), h.q(jpath)))
  ready = until_ready(one, 503)
  h.check("one node, its journal not writable: /gateway/ready answers 503 naming the journal", ready.status == 503
    and tostring(ready.json and ready.json.message):find("journal", 1, true), ready.body)
  res = create(one)
  h.check("one node, its journal not writable: ... as its creates are refused (503)", res.status == 503, res.body)
  h.sh(("rm %s && mv %s.keep %s"):format(h.q(jpath), h.q(jpath), h.q(jpath)))
  reopen()
  ready = until_ready(one, 200)
  h.check("one node, its journal writable again: ready (200)", ready.status == 200, ready.body)
  res = create(one)
  h.check("one node, its journal writable again: a create is taken", res.status == 200, res.body)
end

h.main(run, function() return nil end, fleet.cleanup)
