-- Tasks the gateway ended on its own: kept holds looked up again upstream and settled from
-- what the upstream says (the operator's end standing), and ended by the upstream's callback
-- once their records are gone; a found gone task counted once however
-- its callbacks race. Against a simulator whose callbacks the gateway verifies; the race over the Redis
-- store, whose writes are paused meanwhile (CLIENT PAUSE WRITE): the first callback's write of
-- what it found waits, and every other reads the record as it was before, as a callback in
-- another worker may at any instant.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local core = require "kling.core"
local json = require "kling.json"

local SECRET = "whsec_" .. core.b64encode(("k"):rep(32))
local ADMIN = "admin-0123456789abcdef"
local fleet = h.fleet("gateway-kept")
local base, sim_dir = fleet.base, fleet.sim_dir
local sim, redis

-- The Redis is the spec's own (h.redis), not the fleet's: fleet.cleanup does not stop it, and a
-- daemonized redis-server outlived every run.
local function cleanup()
  fleet.cleanup()
  if redis then
    redis.stop()
  end
end

local function start(name, store, extra)
  return fleet.start(name, function(http)
    local doc = {
      upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key },
      admin_key = ADMIN, callback_url = http .. "/kling/callback", webhook_secret = SECRET,
      poll = { min_interval = 0.3, max_interval = 0.5, silence = 1, deadline = 2 },
      accounts = { { name = "ivy", api_key = "gw-ivy-key", credit = "10" } },
    }
    for k, v in pairs(extra or {}) do
      doc[k] = v or nil -- false: left out
    end
    return doc
  end, store)
end

-- create(http, prompt) -> the task's id (a Redis node just started opens its accounts first:
-- its 503s are waited out).
local function create(http, prompt)
  local by, res = h.now() + 10
  repeat
    res = h.request("POST", http .. "/v1/videos/text2video", { headers = { authorization = "Bearer gw-ivy-key" },
      body = { model_name = "kling-v1", mode = "std", duration = "5", prompt = prompt } })
    if res.status == 503 then
      h.sleep(0.2)
    end
  until res.status ~= 503 or h.now() > by
  return assert(res.json and res.json.data and res.json.data.task_id, res.body)
end

local function view(http, id)
  local r = h.request("GET", http .. "/v1/videos/text2video/" .. id, { headers = { authorization =
    "Bearer gw-ivy-key" } })
  return r.json and r.json.data or {}
end

-- until_true(fn, seconds) -> fn's last value: fn asked until it is truthy (or seconds passed).
local function until_true(fn, seconds)
  local by, v = h.now() + seconds
  repeat
    v = fn()
    if v then
      return v
    end
    h.sleep(0.2)
  until h.now() > by
  return v
end

-- A verified callback's headers and body for the task the gateway knows as id.
local function signed(id, n, status)
  local body = json.encode { task_id = "up-" .. id, task_status = status, task_info = { external_task_id = id },
    task_result = status == "succeed" and { videos = { { id = "v1", url = "https://example.com/v.mp4",
      duration = "5" } } } or nil }
  local ts, msg = tostring(math.floor(core.wall_s())), "msg_" .. id .. "_" .. n
  return { ["content-type"] = "application/json", ["webhook-id"] = msg, ["webhook-timestamp"] = ts,
    ["webhook-signature"] = core.webhook_sign { secret = SECRET, id = msg, timestamp = ts, body = body } }, body
end

-- racing_callbacks(https, id, count): count signed callbacks for id, all sent at once (curl in
-- parallel), each to the next of the nodes https in turn, waited for -> their statuses.
local function racing_callbacks(https, id, count)
  local dir = base .. "/race-" .. id
  h.sh("mkdir -p " .. h.q(dir))
  local args = {}
  for n = 1, count do
    local headers, body = signed(id, n, "succeed")
    h.write(dir .. "/" .. n .. ".body", body)
    local hs = {}
    for k, v in pairs(headers) do
      hs[#hs + 1] = "-H " .. h.q(k .. ": " .. v)
    end
    local to = https[(n - 1) % #https + 1] .. "/kling/callback"
    h.write(dir .. "/" .. n .. ".sh", ("curl -s -m 60 -o /dev/null -w '%%{http_code}' %s --data-binary @%s %s > %s.out")
      :format(table.concat(hs, " "), h.q(dir .. "/" .. n .. ".body"), h.q(to), h.q(dir .. "/" .. n)))
    args[n] = h.q(dir .. "/" .. n .. ".sh")
  end
  h.write(dir .. "/all", table.concat(args, "\n") .. "\n")
  h.sh(("xargs -P %d -n 1 sh < %s >/dev/null 2>&1"):format(count, h.q(dir .. "/all")))
  local out = {}
  for n = 1, count do
    out[n] = h.read(dir .. "/" .. n .. ".out")
  end
  return out
end

-- The metric's value in /metrics, once the flush has it (nil: not there yet, or none counted).
local function gone_found(http)
  local m = h.request("GET", http .. "/metrics").body or ""
  return tonumber(m:match("\nkling_gateway_gone_found_total (%d+)\n"))
end

-- A lost create its lookup did not find ends gone (released); then many verified callbacks
-- saying the upstream has it land at once, on two nodes of the store: the task is counted once
-- across them (each node's own claim in its shared memory counted it once a node).
local function gone_race(store)
  local extra = { poll = { min_interval = 0.3, max_interval = 0.5, silence = 1, lookups = 1 },
    upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key, timeout = 1, connect_timeout = 1 } }
  local http, dir = start("gone-race", store, extra)
  local http2, dir2 = start("gone-race-2", store, extra)
  assert(h.sim_admin(sim, "POST", "/_sim/faults", { rules = { { kind = "reset", method = "POST", phase = "after",
    count = 1 }, { kind = "not_found", method = "GET", count = 1 } } }))
  local id = create(http, "a kite [sim:seconds=600][sim:callbacks=succeed]")
  local v = until_true(function()
    local got = view(http, id)
    return got.task_status == "failed" and got
  end, 30)
  assert(h.sim_admin(sim, "DELETE", "/_sim/faults"))
  h.check("gone race: the lost create ends failed, released", v and v.task_status == "failed", json.encode(v))
  -- Shorter than the nodes' Redis timeout (2 s): the claims wait it out, not time out.
  redis.cli("CLIENT", "PAUSE", "1500", "WRITE")
  local statuses = racing_callbacks({ http, http2 }, id, 16)
  local all200 = true
  for _, s in ipairs(statuses) do
    all200 = all200 and s == "200"
  end
  -- The error line is written in the callback's own request, with the count: every callback
  -- answered, the lines are all there; the metric, flushed by each worker in its time, is
  -- waited for until the nodes' sum has every line's count.
  local lines = 0
  for _, d in ipairs { dir, dir2 } do
    local _, n = (h.read(d .. "/error.log") or ""):gsub("task " .. id .. " ended as never made", "")
    lines = lines + n
  end
  local count = until_true(function()
    local sum = (gone_found(http) or 0) + (gone_found(http2) or 0) -- a node that counted none shows none
    return sum > 0 and sum >= lines and sum
  end, 10)
  h.check("gone race: 16 callbacks at once on two nodes for one found task count it once (one error line,"
    .. " kling_gateway_gone_found_total 1 over the nodes)", all200 and lines == 1 and count == 1,
    json.encode { statuses = statuses, lines = lines, count = count })
end

-- Kept holds, callbacks off: the gateway's deadline (2 s) ends three tasks with their holds
-- kept; the operator settles one at once; the leader's looks (a window of 2,560 s: the first
-- 10 s after the end) find the other two ended upstream and settle one from its result and
-- release the failed one, once; the operator's charge stands.
local function relooked(name, store)
  local http = start(name, store, { callback_url = false, webhook_secret = false, retention_days = 2560 / 86400 })
  local ok_id, bad_id = create(http, "a kite [sim:seconds=5]"), create(http, "a kite [sim:fail][sim:seconds=5]")
  local op_id = create(http, "a kite [sim:seconds=5]")
  local views = until_true(function()
    local v = { view(http, ok_id), view(http, bad_id), view(http, op_id) }
    return v[1].task_status == "failed" and v[2].task_status == "failed" and v[3].task_status == "failed" and v
  end, 20)
  local f = h.gateway_admin(http, ADMIN).by.ivy
  h.check(name .. ": past the gateway's deadline the three tasks failed there, their holds kept", views
    and f.reserved == "3" and f.spent == "0", json.encode { f, views })
  local res = h.request("POST", http .. "/gateway/admin/tasks/" .. op_id .. "/settle", { headers = { authorization =
    "Bearer " .. ADMIN }, body = { amount = "0.5" } })
  h.check(name .. ": the operator settles one of them at 0.5", res.status == 200, res.body)
  f = until_true(function()
    local got = h.gateway_admin(http, ADMIN).by.ivy
    return got.reserved == "0" and got
  end, 60)
  local ok_v, bad_v, op_v = view(http, ok_id), view(http, bad_id), view(http, op_id)
  h.check(name .. ": the looks settle the others from the upstream's result: the success charged 1, the failure"
    .. " released, the operator's 0.5 standing", f and f.spent == "1.5" and f.balance == "8.5", json.encode(f))
  h.check(name .. ": ... the client's tasks show it", ok_v.task_status == "succeed"
    and ok_v.final_unit_deduction == "1" and ok_v.task_result and #ok_v.task_result.videos == 1
    and bad_v.final_unit_deduction == "0" and op_v.final_unit_deduction == "0.5",
    json.encode { ok_v, bad_v, op_v })
  res = h.request("GET", http .. "/gateway/admin/holds", { headers = { authorization = "Bearer " .. ADMIN } })
  h.check(name .. ": ... and no hold is listed for the operator any more", res.json and res.json.holds
    and #res.json.holds == 0, res.body)
end

-- Kept holds whose records pass retention_days (3 s) before the upstream's end (9 s): the
-- callback that brings it finds the hold alone, and ends it by the task's id (its external id
-- upstream): the success settled at its hold (its request, which priced it, went with the
-- record), the failure released.
local function expired(name, store)
  local http = start(name, store, { retention_days = 3 / 86400 })
  local ok_id, bad_id = create(http, "a kite [sim:seconds=9]"), create(http, "a kite [sim:fail][sim:seconds=9]")
  local kept = until_true(function()
    return view(http, ok_id).task_status == "failed" and view(http, bad_id).task_status == "failed"
  end, 20)
  local gone = until_true(function()
    return view(http, ok_id).task_status == nil and view(http, bad_id).task_status == nil
  end, 20)
  local f = h.gateway_admin(http, ADMIN).by.ivy
  h.check(name .. ": the tasks failed at the gateway's deadline, their holds kept past their records",
    kept and gone and f.reserved == "2" and f.spent == "0", json.encode(f))
  f = until_true(function()
    local got = h.gateway_admin(http, ADMIN).by.ivy
    return got.reserved == "0" and got
  end, 30)
  h.check(name .. ": the upstream's callbacks end the holds by the task's id: the success settled at its hold,"
    .. " the failure released", f and f.spent == "1" and f.balance == "9", json.encode(f))
  local res = h.request("GET", http .. "/gateway/admin/holds", { headers = { authorization = "Bearer " .. ADMIN } })
  h.check(name .. ": ... and no hold is listed for the operator any more", res.json and res.json.holds
    and #res.json.holds == 0, res.body)
end

local function run()
  sim = h.sim_start(sim_dir, { webhook_secret = SECRET })
  relooked("relook")
  expired("expired")
  redis = h.redis(base .. "/redis")
  redis.start()
  local store = { redis = "redis://127.0.0.1:" .. redis.port .. "/0" }
  gone_race(store) -- first: the pause of its writes must hold no other node's
  -- a store of its own (its prefix): the poll leader of another's, with its own deadline, is not its
  relooked("relook-redis", { redis = store.redis, prefix = "kgr:" })
  expired("expired-redis", { redis = store.redis, prefix = "kge:" })
end

h.main(run, function() return nil end, cleanup)
