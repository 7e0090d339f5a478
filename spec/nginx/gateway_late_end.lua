-- The upstream's end of a task the gateway already ended with its hold kept (its deadline
-- passed while the upstream had not answered the end): the verified callback that brings the
-- end settles the hold from the ACTUAL result (a success at its charge, a failure released),
-- once, and the client's task shows it. Dropped, the result and usage were lost and the hold
-- waited for an operator. Over one node's store (shared dict + journal) and the Redis store,
-- against a simulator whose callbacks the gateway verifies.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local core = require "kling.core"
local json = require "kling.json"

local SECRET = "whsec_" .. core.b64encode(("s"):rep(32))
local ADMIN = "admin-0123456789abcdef"
local fleet = h.fleet("gateway-late-end")
local sim

local function start(name, store, extra)
  return fleet.start(name, function(http)
    local doc = {
      upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key },
      admin_key = ADMIN, callback_url = http .. "/kling/callback", webhook_secret = SECRET,
      poll = { min_interval = 0.3, max_interval = 0.5, silence = 1, deadline = 2 },
      accounts = { { name = "ivy", api_key = "gw-ivy-key", credit = "10" } },
    }
    for k, v in pairs(extra or {}) do
      doc[k] = v
    end
    return doc
  end, store)
end

local function scenario(name, store)
  local http, dir = start(name, store)
  local function create(prompt)
    local res = h.request("POST", http .. "/v1/videos/text2video", { headers = { authorization =
      "Bearer gw-ivy-key" }, body = { model_name = "kling-v1", mode = "std", duration = "5", prompt = prompt } })
    return assert(res.json and res.json.data and res.json.data.task_id, res.body)
  end
  local function view(id)
    local res = h.request("GET", http .. "/v1/videos/text2video/" .. id, { headers = { authorization =
      "Bearer gw-ivy-key" } })
    return res.json and res.json.data or {}
  end
  local function ivy()
    return h.gateway_admin(http, ADMIN).by.ivy
  end
  local ok_id, bad_id = create("a kite [sim:seconds=12]"), create("a kite [sim:fail][sim:seconds=12]")
  local by, one, two = h.now() + 9
  repeat
    h.sleep(0.2)
    one, two = view(ok_id), view(bad_id)
  until (one.task_status == "failed" and two.task_status == "failed") or h.now() > by
  local f = ivy()
  h.check(name .. ": past the gateway's deadline (2 s) both tasks failed there, their holds kept",
    one.task_status == "failed" and two.task_status == "failed" and f.reserved == "2" and f.spent == "0",
    json.encode { f, one, two })
  by = h.now() + 20
  repeat
    h.sleep(0.3)
    f = ivy()
  until (f.reserved == "0" and view(ok_id).task_status == "succeed") or h.now() > by
  local v = view(ok_id)
  h.check(name .. ": the upstream's later end (its callback) settles the kept holds from the actual result:"
    .. " the success charged 1, the failure released", f.spent == "1" and f.reserved == "0" and f.balance == "9",
    json.encode(f))
  h.check(name .. ": ... and the client's task shows the upstream's result and its charge",
    v.task_status == "succeed" and v.final_unit_deduction == "1" and v.task_result and v.task_result.videos
    and #v.task_result.videos == 1, json.encode(v))
  h.check(name .. ": ... the failed one shows failed, charged nothing", view(bad_id).final_unit_deduction == "0",
    json.encode(view(bad_id)))
  -- The same end once more (the upstream retries; a second node hears it too): nothing moves.
  -- About the upstream's own task: a callback about another is no task's (gateway_peers.lua).
  local up = h.request("GET", sim.http .. "/v1/videos/text2video?external_task_id=" .. ok_id, { headers = {
    authorization = "Bearer " .. sim.api_key } })
  local body = json.encode { task_id = assert(up.json and up.json.data and up.json.data.task_id, up.body),
    task_status = "succeed",
    task_info = { external_task_id = ok_id }, task_result = { videos = { { id = "v1",
      url = "https://example.com/v.mp4", duration = "5" } } } }
  local ts = tostring(math.floor(core.wall_s()))
  local res = h.request("POST", http .. "/kling/callback", { headers = { ["content-type"] = "application/json",
    ["webhook-id"] = "msg_again", ["webhook-timestamp"] = ts, ["webhook-signature"] = core.webhook_sign {
      secret = SECRET, id = "msg_again", timestamp = ts, body = body } }, body = body })
  local again = res
  res = h.request("POST", http .. "/gateway/admin/tasks/" .. ok_id .. "/settle", { headers = { authorization =
    "Bearer " .. ADMIN }, body = { amount = "0.5" } })
  f = ivy()
  h.check(name .. ": ... settled once: a repeated end and the operator's settle move nothing (409)",
    again.status == 200 and res.status == 409 and f.spent == "1" and f.reserved == "0",
    again.status .. " " .. res.body .. " " .. json.encode(f))
  -- What the late end shows is ivy's: her video, extended (unrecorded, it was no account's: any
  -- other could name it, and ivy's own extend was refused as of a video she never made here).
  local video = v.task_result and v.task_result.videos and v.task_result.videos[1] or {}
  local ext = h.request("POST", http .. "/v1/videos/video-extend", { headers = { authorization = "Bearer gw-ivy-key" },
    body = { video_id = video.id, prompt = "more" } })
  h.check(name .. ": ... its video is ivy's: her video-extend of it is taken", ext.status == 200 and ext.json
    and ext.json.code == 0, ext.body)
  local log = h.read(dir .. "/error.log") or ""
  h.check(name .. ": no Lua error", not log:find("runtime error", 1, true), log:match("[^\n]*runtime error[^\n]*"))
end

-- A create whose answer was lost, looked up by its external id and not found: ended as never
-- made, its hold released. The upstream's callback then shows it made it (and may bill it): the
-- client is not charged after the fact, the operator is told (a metric counted once, an error
-- line naming both ids), and the record keeps what the upstream said, out of the client's view.
local function gone_then_found()
  local http, dir = start("gone", nil, { poll = { min_interval = 0.3, max_interval = 0.5, silence = 1, lookups = 1 },
    upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key, timeout = 1,
      connect_timeout = 1 } })
  assert(h.sim_admin(sim, "POST", "/_sim/faults", { rules = { { kind = "reset", method = "POST", phase = "after",
    count = 1 }, { kind = "not_found", method = "GET", count = 1 } } }))
  local res = h.request("POST", http .. "/v1/videos/text2video", { headers = { authorization = "Bearer gw-ivy-key" },
    body = { model_name = "kling-v1", mode = "std", duration = "5", prompt = "a kite [sim:seconds=22]"
      .. "[sim:callbacks=succeed]" } })
  local id = assert(res.json and res.json.data and res.json.data.task_id, res.body)
  local function view()
    local r = h.request("GET", http .. "/v1/videos/text2video/" .. id, { headers = { authorization =
      "Bearer gw-ivy-key" } })
    return r.json and r.json.data or {}
  end
  local by, v = h.now() + 25
  repeat
    h.sleep(0.3)
    v = view()
  until v.task_status == "failed" or h.now() > by
  local f = h.gateway_admin(http, ADMIN).by.ivy
  h.check("gone: a lost create its lookup did not find ends failed, released", v.task_status == "failed"
    and f.reserved == "0" and f.spent == "0", json.encode { v, f })
  assert(h.sim_admin(sim, "DELETE", "/_sim/faults"))
  local log, found
  by = h.now() + 30
  repeat
    h.sleep(0.3)
    log = h.read(dir .. "/error.log") or ""
    found = log:match("%[error%][^\n]*task " .. id .. " ended as never made[^\n]*")
  until found or h.now() > by
  h.check("gone: the upstream's callback showing it made the task is logged as an error naming the task and"
    .. " its upstream id", found ~= nil and found:find("upstream has it as %S+ %(succeeded%)") ~= nil,
    found or log:sub(-2000))
  h.sleep(1.5) -- past the metrics' flush
  local m = h.request("GET", http .. "/metrics").body or ""
  h.check("gone: ... counted once in /metrics (kling_gateway_gone_found_total 1)",
    m:find("\nkling_gateway_gone_found_total 1\n") ~= nil, m:match("[^\n]*gone_found[^\n]*"))
  f, v = h.gateway_admin(http, ADMIN).by.ivy, view()
  h.check("gone: ... and no one is charged after the fact: the client's task still says failed, nothing charged,"
    .. " no result", f.spent == "0" and f.reserved == "0" and v.task_status == "failed"
    and v.final_unit_deduction == "0" and v.task_result == nil, json.encode { f, v })
  local kept
  for l in (h.read(fleet.base .. "/journal/gone.jsonl") or ""):gmatch("[^\n]+") do
    local e = json.decode(l)
    if e and e.op == "task" and type(e.record) == "table" and e.record.id == id and e.record.found then
      kept = e.record.found
    end
  end
  h.check("gone: ... the record keeps what the upstream said, for the operator", kept and kept.status == "succeeded"
    and type(kept.upstream_id) == "string" and kept.result ~= nil, json.encode(kept))
end

local function run()
  sim = h.sim_start(fleet.sim_dir, { webhook_secret = SECRET })
  gone_then_found()
  scenario("shared")
  scenario("redis", fleet.redis_store())
end

h.main(run, function() return nil end, fleet.cleanup)
