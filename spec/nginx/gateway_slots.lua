-- The upstream's parallel slots (kling.gateway.upstream_pace): a create the upstream refused with
-- 1303 (its parallel tasks full) was forwarded, journaled and released, free for its client,
-- so one client could keep sending the upstream creates that could not run. The gateway now
-- learns the slot count from the 1303 (its tasks open then: on a Redis store every node's) and
-- refuses creates itself (429, 1303) while as many are open: nothing forwarded, journaled or
-- held, a refusal of reason upstream_slots in /metrics. Not a pause: once tasks end, creates
-- go again. One node (shared dict and journal), then two nodes of one Redis store, in front of
-- a simulator with 3 parallel slots.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local ADMIN_KEY = "admin-0123456789abcdef"
local base = h.tempdir("gateway-slots")
local sim_dir = base .. "/sim"
h.sh("mkdir -p " .. h.q(sim_dir) .. " " .. h.q(base .. "/journal") .. " && chmod 777 " .. h.q(base .. "/journal"))
local sim, redis
local dirs = {}

local function stop(dir)
  h.gateway_stop(dir)
end

local function cleanup()
  for _, dir in ipairs(dirs) do
    stop(dir)
  end
  if redis then
    redis.stop()
  end
  h.tidy(base, sim_dir)
end

-- start(name, extra config) -> the gateway's start line
local function start(name, extra)
  local doc = {
    upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key },
    admin_key = ADMIN_KEY, poll = { min_interval = 0.3, max_interval = 0.5 },
    accounts = { { name = "carol", api_key = "gw-carol-key", credit = "100000" } },
  }
  for k, v in pairs(extra) do
    doc[k] = v
  end
  local dir = base .. "/" .. name
  dirs[#dirs + 1] = dir
  h.write(base .. "/" .. name .. ".json", json.encode(doc))
  local out, ok = h.sh(("lua5.4 %s/bin/kling gateway start --config %s --dir %s"):format(h.q(h.src),
    h.q(base .. "/" .. name .. ".json"), h.q(dir)))
  assert(ok, "kling gateway start: " .. out)
  local info = assert(json.decode(out:match("{.*}")), out)
  info.dir = dir
  return info
end

local function create(at)
  return h.request("POST", at.http .. "/v1/videos/text2video", { headers = { authorization = "Bearer gw-carol-key" },
    body = { model_name = "kling-v1", mode = "std", duration = "5", prompt = "a lantern" } })
end

-- The creates the simulator was sent (taken or refused).
local function sent()
  local n = 0
  for _, r in ipairs(h.sim_admin(sim, "GET", "/_sim/requests?n=1000")) do
    if r.method == "POST" and tostring(r.path):find("/v1/videos/text2video", 1, true) then
      n = n + 1
    end
  end
  return n
end

local function refusals(at, reason)
  local m = h.request("GET", at.http .. "/metrics").body or ""
  return tonumber(m:match('\nkling_gateway_refusals_total{reason="' .. reason .. '"} (%S+)')) or 0
end

local function carol(at)
  return h.gateway_admin(at.http, ADMIN_KEY).by.carol
end

-- nodes: the gateways (one, or two of one store); recorded() -> what the store has recorded
-- (the journal's size, the Redis ledger's length), which a refusal must not change.
local function slots_are_learned(what, nodes, recorded)
  assert(h.sim_admin(sim, "POST", "/_sim/config", { task_seconds = 600, max_parallel = 3 }))
  local a = nodes[1]
  for i = 1, 3 do -- spread over the nodes: a's count of open tasks is the store's
    local res = create(nodes[(i - 1) % #nodes + 1])
    h.check(what .. ": create " .. i .. " of the upstream's 3 slots is taken", res.status == 200, res.body)
  end
  local before = sent()
  local res = create(a)
  h.check(what .. ": the 4th, refused by the upstream, answers 429, 1303", res.status == 429 and res.json
    and res.json.code == 1303 and sent() == before + 1, res.body)
  -- On a Redis store the refusal is recorded (and the slots learned) from a timer just after the
  -- answer: its notice in the node's error log says when.
  local by = h.now() + 10
  while not (h.read(a.dir .. "/error.log") or ""):find("refused a create for its parallel slots", 1, true)
    and h.now() < by do
    h.sleep(0.05)
  end
  local size, bal = recorded(), carol(a)
  local all, last = true, nil
  for _ = 1, 5 do
    res = create(a)
    all = all and res.status == 429 and res.json and res.json.code == 1303 and res.headers["retry-after"] == "1"
      and res.json.message:find("had 3 tasks open", 1, true) ~= nil
    last = tostring(res.status) .. " " .. tostring(res.body)
  end
  h.check(what .. ": the creates that follow are refused by the gateway itself (429, 1303, Retry-After 1),"
    .. " having learned the upstream's 3 slots", all, last)
  h.check(what .. ": ... none of them forwarded", sent() == before + 1, sent() - before)
  local after = carol(a)
  h.check(what .. ": ... nor recorded nor held", recorded() == size and after.reserved == bal.reserved
    and after.balance == bal.balance, json.encode { size, recorded(), bal, after })
  h.check(what .. ": ... counted in /metrics as refusals of reason upstream_slots", refusals(a, "upstream_slots") == 5,
    refusals(a, "upstream_slots"))
  local b = nodes[2]
  if b then
    -- The other node learns the count from Redis (its sync, every SLOTS_SYNC_S), not from a 1303
    -- of its own: a create whose body is not JSON (refused before anything is sent, 400, while
    -- the node knows nothing) shows when it does.
    local limit = h.now() + 10
    local got
    repeat
      got = h.request("POST", b.http .. "/v1/videos/text2video", { headers = { authorization = "Bearer gw-carol-key" },
        body = "not json" })
      if got.status ~= 429 then
        h.sleep(0.1)
      end
    until got.status == 429 or h.now() > limit
    res = create(b)
    h.check(what .. ": the other node refuses creates too, having learned the count from Redis (nothing forwarded)",
      got.status == 429 and got.json and got.json.code == 1303 and res.status == 429 and res.json
      and res.json.code == 1303 and sent() == before + 1, tostring(got.body) .. " " .. tostring(res.body))
    h.check(what .. ": ... not from a 1303 of its own", not (h.read(b.dir .. "/error.log") or "")
      :find("refused a create for its parallel slots", 1, true))
  end
  -- Not a pause: the tasks end, and creates go again.
  assert(h.sim_admin(sim, "POST", "/_sim/clock", { advance = 601 }))
  local c
  by = h.now() + 30
  repeat
    h.sleep(0.3)
    c = carol(a)
  until c.open == 0 or h.now() > by
  h.check(what .. ": the upstream's tasks end", c.open == 0, json.encode(c))
  res = create(a)
  h.check(what .. ": ... and the next create is taken, with slots free", res.status == 200, res.body)
  assert(h.sim_admin(sim, "POST", "/_sim/clock", { advance = 601 }))
  assert(h.sim_admin(sim, "DELETE", "/_sim/config"))
  for _, n in ipairs(nodes) do
    stop(n.dir)
  end
end

local function run()
  sim = h.sim_start(sim_dir, { task_seconds = 1 })
  local journal = base .. "/journal/one.jsonl"
  local one = start("one", { journal = journal })
  slots_are_learned("one node", { one }, function()
    return h.file_size(journal)
  end)
  redis = h.redis(base .. "/redis")
  redis.start()
  local store = { redis = "redis://127.0.0.1:" .. redis.port .. "/0" }
  local n1, n2 = start("node1", { store = store }), start("node2", { store = store })
  slots_are_learned("two nodes of a Redis store", { n1, n2 }, function()
    return redis.cli("llen kgw:ledger")
  end)
end

h.main(run, function() return nil end, cleanup)
