-- A callback's news must not carry a task past its deadline: a verified non-final callback
-- defers the task's next poll by poll.silence, and a deadline inside that silence passed
-- unseen until the silence's end (poll.deadline = 2 s, silence 60 s: still "processing" a
-- minute on). The next poll after news comes at the deadline at the latest, where the task
-- ends failed, its hold kept. Over one node's store (shared dict + journal) and the Redis store,
-- against a simulator whose signed callbacks the gateway verifies.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local core = require "kling.core"
local json = require "kling.json"

local SECRET = "whsec_" .. core.b64encode(("s"):rep(32))
local ADMIN = "admin-0123456789abcdef"
local SILENCE = 3600 -- the news' silence: the deadline (2 s) falls far inside it
local fleet = h.fleet("gateway-news-deadline")
local sim

local function start(name, store)
  return fleet.start(name, function(http)
    return {
      upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key },
      admin_key = ADMIN, callback_url = http .. "/kling/callback", webhook_secret = SECRET,
      poll = { min_interval = 0.3, max_interval = 0.5, silence = SILENCE, deadline = 2 },
      accounts = { { name = "ivy", api_key = "gw-ivy-key", credit = "10" } },
    }
  end, store)
end

-- The simulator's delivered callbacks saying `status` of the task whose external id is id.
local function delivered(id, status)
  for _, c in ipairs(h.sim_admin(sim, "GET", "/_sim/callbacks?n=1000")) do
    local b = c.delivered and c.status == 200 and type(c.body) == "string" and json.decode(c.body)
    if b and b.task_status == status and type(b.task_info) == "table" and b.task_info.external_task_id == id then
      return true
    end
  end
  return false
end

local function scenario(name, store)
  local http, dir = start(name, store)
  -- Processing from 1 s (a fifth of its 5 s), its callback the only one sent: the news arrives
  -- before the deadline, and no later callback ends the task.
  local res = h.request("POST", http .. "/v1/videos/text2video", { headers = { authorization =
    "Bearer gw-ivy-key" }, body = { model_name = "kling-v1", mode = "std", duration = "5",
    prompt = "a kite [sim:seconds=5][sim:callbacks=processing]" } })
  local id = assert(res.json and res.json.data and res.json.data.task_id, res.body)
  local by, heard = h.now() + 30
  repeat
    h.sleep(0.2)
    heard = delivered(id, "processing")
  until heard or h.now() > by
  h.check(name .. ": the simulator's processing callback was taken (the task has news)", heard)
  local function view()
    local r = h.request("GET", http .. "/v1/videos/text2video/" .. id, { headers = { authorization =
      "Bearer gw-ivy-key" } })
    return r.json and r.json.data or {}
  end
  -- The limit is generous (the deadline is 2 s), and far short of the silence (an hour).
  local v
  by = h.now() + 60
  repeat
    h.sleep(0.3)
    v = view()
  until v.task_status == "failed" or h.now() > by
  local f = h.gateway_admin(http, ADMIN).by.ivy
  h.check(name .. ": after the news, the task is polled by its deadline (not a silence later): it ends failed"
    .. " there, its hold kept", v.task_status == "failed" and f.reserved == "1" and f.spent == "0",
    json.encode { v, f })
  local log = h.read(dir .. "/error.log") or ""
  h.check(name .. ": no Lua error", not log:find("runtime error", 1, true), log:match("[^\n]*runtime error[^\n]*"))
end

local function run()
  sim = h.sim_start(fleet.sim_dir, { webhook_secret = SECRET })
  scenario("shared")
  scenario("redis", fleet.redis_store())
end

h.main(run, function() return nil end, fleet.cleanup)
