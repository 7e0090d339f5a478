-- Issue 10: the lifecycle scenarios (spec/support/lifecycle_scenarios.lua) through the OpenResty
-- runner INSIDE REAL NGINX against a simulator of its own. The OpenResty runner is the gateway's:
-- its create handler (the create's machine, kling.lifecycle.machine forwarded, which decides
-- what each answer makes of the create, run by kling.runner.resty over cosockets), then its
-- poller and callback location (kling.gateway.track: a machine rebuilt from the shared-dict
-- record at each event, kling.runner.resty), money through lifecycle/effects on its Ledger over
-- ngx.shared and the journal. Four gateways: one that follows tasks by polling alone, one that
-- takes the simulator's signed callbacks (and polls only after a long silence), one that takes
-- them and polls after 2 s of silence, then every 6 s (a callback placed before or after a poll:
-- the simulator sends only the callbacks [sim:callbacks=...] names), and one with a 3 s deadline.
--
-- Each staged scenario must reach the machine-alone end and leave the same ledger lines (the
-- lines the scenario added to the gateway's journal). How the gateway shows an end:
--   nothing created (budget, unpriced, validation, a refused create): the create's HTTP
--   refusal, which names the machine's error kind (429/1101, 400/1201, 429/1302|1303);
--   a machine end that leaves the task running upstream (an unknown status): the task stays
--   live, its reservation held, the error logged (and the task watched again);
--   the deadline: the record ends "failed" with the deadline's message, its reservation held.
-- A scenario the gateway cannot stage is reported "pending", with why.
package.path = "spec/nginx/?.lua;spec/?.lua;" .. package.path
local h = require "harness"
local core = require "kling.core"
local json = require "kling.json"
local scenarios = require "support.lifecycle_scenarios"

local SIM_SECRET = "whsec_" .. core.b64encode("simulator-to-gateway-secret")
local KEY, POOR = "gw-scenario-key", "gw-poor-key"
local base = h.tempdir("lifecycle-resty")
local sim_dir = base .. "/sim"
h.sh("mkdir -p " .. h.q(sim_dir))
local sim
local gws = {}
local pending = 0

local function cleanup()
  for _, g in pairs(gws) do
    g.srv.stop()
  end
  h.tidy(base, sim_dir)
end

local function config(g, o)
  local cfg = {
    upstream = { provider = "kling", base_url = sim.http, access_key = sim.access_key, secret_key = sim.secret_key,
      timeout = 1, connect_timeout = 1 },
    journal = g.prefix .. "/ledger.jsonl", admin_key = "gw-admin-key-0123456789",
    poll = { min_interval = o.interval or 0.2, max_interval = o.interval or 1, silence = o.silence or 2, lookups = 3,
      deadline = o.deadline },
    accounts = { { name = "scenarios", api_key = KEY, credit = "1000" }, { name = "poor", api_key = POOR,
      credit = "0.01" } },
  }
  if o.callbacks then
    cfg.callback_url = "http://127.0.0.1:" .. g.port .. "/kling/callback"
    cfg.webhook_secret = SIM_SECRET
  end
  h.write(g.prefix .. "/gateway.json", json.encode(cfg))
end

local function start(name, o)
  local g = { prefix = base .. "/" .. name, port = h.free_port() }
  h.sh("mkdir -p " .. h.q(g.prefix) .. " && chmod 755 " .. h.q(g.prefix))
  config(g, o)
  local conf = h.conf_head(g.prefix) .. "http {\n  access_log off;\n" .. h.lua_paths() .. h.temp_paths(g.prefix)
    .. ("  include %s/examples/nginx/http.conf;\n  server {\n    listen 127.0.0.1:%d;\n"
      .. "    include %s/examples/nginx/server.conf;\n  }\n}\n"):format(h.src, g.port, h.src)
  g.srv = h.nginx_start(g.prefix, conf, g.port)
  gws[name] = g
  return g
end

local function gw(g, method, path, body, key)
  return h.request(method, "http://127.0.0.1:" .. g.port .. path, { body = body,
    headers = { authorization = "Bearer " .. (key or KEY) } })
end

-- The ledger lines (ops) of the gateway's journal from line `from` on.
local function ledger_lines(g)
  local out = {}
  for l in (h.read(g.prefix .. "/ledger.jsonl") or ""):gmatch("[^\n]+") do
    local e = json.decode(l)
    if e and (e.op == "reserve" or e.op == "settle" or e.op == "release") then
      out[#out + 1] = e
    end
  end
  return out
end

local function ops_since(g, n)
  local out = {}
  local lines = ledger_lines(g)
  for i = n + 1, #lines do
    out[#out + 1] = lines[i].op
  end
  return out
end

local SIM_FAULTS = { ["5xx"] = true, ["429"] = true, ["1303"] = true, reset = true, stall = true, malformed = true,
  content_type = true }
local CREATE_PATH, POLL_PATH = "^/v1/videos/text2video$", "^/v1/videos/text2video/"

-- How the gateway stages a scenario: {gateway, faults, marker, key, model, duration, wait =
-- "end" | "refused" | "held" | "deadline"}, or nil and why it cannot.
local function staging(sc)
  if sc.cancel_at_wake then
    return nil, "the gateway's clients have no cancel (management calls are not forwarded)"
  end
  if sc.adopt then
    return nil, "the gateway never adopts a task: its create handler always creates"
  end
  if sc.budget == false then
    return nil, "a gateway meters every create: there is no run without a reservation"
  end
  local st = { gateway = "polls", faults = {}, marker = "", key = KEY, wait = "end" }
  local e = sc.expect
  -- A callback between two polls: the simulator sends only the callbacks the marker names (the
  -- others are lost on the way), to a gateway that polls after 2 s of silence, then every 6 s.
  local placed = { ["callback before a poll"] = "processing", ["callback after a poll"] = "succeed" }
  if placed[sc.name] then
    return { gateway = "quiet", faults = {}, key = KEY, wait = "end", polls = 1, callback = placed[sc.name],
      marker = " [sim:callbacks=" .. placed[sc.name] .. "]" .. (placed[sc.name] == "succeed" and " [sim:seconds=4]"
        or "") }
  end
  if sc.callbacks or sc.callback then
    local ok = { ["callback instead of polls"] = true, ["duplicate callback: settled once"] = true,
      ["callback before the create's answer"] = true }
    if not ok[sc.name] and sc.name:find("out of order", 1, true) == nil then
      return nil, "the simulator chooses when its callbacks come: a callback between two polls cannot be placed"
    end
    st.gateway = "callbacks"
    if sc.name:find("before the create", 1, true) then
      -- the simulator makes the task, its callbacks start, and the create's answer stalls (the
      -- gateway's upstream timeout is 1 s): the end's callback comes first
      st.faults[#st.faults + 1] = { kind = "stall", method = "POST", path = CREATE_PATH, count = 1, seconds = 3,
        phase = "after" }
    end
    st.replay = sc.name:find("duplicate", 1, true) and "succeed" or (sc.name:find("out of order", 1, true)
      and "processing") or nil
    return st
  end
  local creates = sc.create or {}
  for i, a in ipairs(creates) do
    if a == "1004" then
      -- the simulator answers 1004 as if the token had expired on the way: this create (the
      -- machine renews the token and sends it again), or every one (the last answer repeats)
      st.faults[1] = { kind = "expired", method = "POST", path = CREATE_PATH, count = creates[i + 1] and 1 or 1000 }
      st.wait = creates[i + 1] and st.wait or "refused"
    elseif a == "connect" then
      return nil, "a connect failure happens before any server sees the request: the gateway's one upstream, "
        .. "the simulator, listens (the blocking and engine runners send to a dead port)"
    elseif a == "429" or a == "1303" then
      if sc.expect.err ~= "rate_limited" then
        return nil, "the gateway answers a refused create to its client (429), it does not queue it again "
          .. "(the row that ends refused is staged)"
      end
      st.faults[#st.faults + 1] = { kind = a, method = "POST", path = CREATE_PATH, count = 1000, retry_after = 0 }
      st.wait = "refused"
    elseif SIM_FAULTS[a] then
      if sc.profile == "blocking" then
        return nil, "the gateway follows an uncertain create up by its external id (the engine row is staged)"
      end
      if (sc.lookup or {})[1] == "not_found" then
        return nil, "the gateway never sends a create twice: after lookups find nothing the task is gone, "
          .. "released (spec/unit/lifecycle_track_spec.lua)"
      end
      st.faults[#st.faults + 1] = { kind = a, method = "POST", path = CREATE_PATH, count = 1, seconds = 2,
        phase = "after" }
    end
  end
  for _, a in ipairs(sc.lookup or {}) do
    if SIM_FAULTS[a] then
      st.faults[#st.faults + 1] = { kind = a, method = "GET", path = CREATE_PATH, count = 1, seconds = 2 }
    elseif a ~= "found" and a ~= "not_found" then
      return nil, "the simulator injects no '" .. a .. "' on a lookup"
    end
  end
  local bad, kind = 0, nil
  for _, a in ipairs(sc.poll or {}) do
    if SIM_FAULTS[a] then
      bad, kind = bad + 1, a
    elseif a == "1004" then -- the simulator answers as if the token had expired on the way
      bad, kind = bad + 1, "expired"
    elseif a == "auth" then -- refused for good: the machine ends, the task runs on, held
      bad, kind, st.wait = 1000, "auth", "held"
    elseif a == "connect" then
      return nil, "a connect failure happens before any server sees the request: the gateway's one upstream, "
        .. "the simulator, listens"
    elseif a ~= "processing" and a ~= "succeed" and a ~= "failed" and a ~= "unknown_status" then
      return nil, "the simulator injects no '" .. a .. "' on a poll"
    elseif a == "failed" then
      st.marker = " [sim:fail=the model could not render the scene]"
    elseif a == "unknown_status" then
      st.marker, st.wait = " [sim:status=paused]", "held"
    end
  end
  if bad > 0 then
    st.faults[#st.faults + 1] = { kind = kind, method = "GET", path = POLL_PATH, count = bad, seconds = 2,
      retry_after = 0 }
  end
  st.injected = 0 -- what the simulator must inject: each rule strikes once, a poll rule `bad` times
  for _, f in ipairs(st.faults) do
    st.injected = st.injected + (f.path == POLL_PATH and f.count or 1)
  end
  if bad >= 1000 then
    st.injected = nil -- strikes every poll until the row ends
  end
  if sc.timeout_ms then
    if e.status ~= "running" then
      return nil, "the gateway answers a refused create to its client, it does not queue it until a deadline"
    end
    st.marker, st.gateway, st.wait = " [sim:seconds=60]", "deadline", "deadline"
  end
  if sc.reserve == "budget" then
    st.key, st.wait = POOR, "refused"
  elseif sc.reserve == "unpriced" then
    st.model, st.duration, st.wait = "kling-v3", "7", "refused"
  elseif e.err == "validation" then
    st.wait = "refused"
  end
  return st
end

-- The create's refusal, as the machine's error kind.
local function refusal_kind(res)
  local code = res.json and res.json.code
  if res.status == 429 and code == 1101 then
    return "budget"
  elseif res.status == 429 and (code == 1302 or code == 1303) then
    return "rate_limited"
  elseif res.status == 400 and code == 1201 and (res.json.message or ""):find("no price", 1, true) then
    return "unpriced"
  elseif res.status == 400 then
    return "validation"
  elseif res.status == 503 and code == 5001 then
    return "auth" -- the gateway's upstream account cannot serve (auth, quota): its own business
  end
  return "HTTP " .. tostring(res.status) .. " " .. tostring(code)
end

local STATUS = { succeed = "succeeded", failed = "failed", submitted = "queued", processing = "running" }

local function view(g, id)
  local res = gw(g, "GET", "/v1/videos/text2video/" .. id)
  return res.json and res.json.data
end

-- Polls the gateway's table until `done(view)` or the time runs out.
local function wait_for(g, id, done, seconds)
  local limit, v = h.now() + (seconds or 20), nil
  while h.now() < limit do
    v = view(g, id)
    if v and done(v) then
      return v
    end
    h.sleep(0.2)
  end
  return nil, v
end

-- Posts the simulator's callback for this task again, signed (a duplicate, or a stale one).
local function replay(g, upstream_id, id, status)
  local body = json.encode { task_id = upstream_id, task_status = status, task_status_msg = "",
    task_info = { external_task_id = id }, created_at = 1700000000000, updated_at = 1700000000000,
    task_result = status == "succeed" and { videos = { { id = "v-1", url = "https://cdn.example.com/v.mp4",
      duration = "5" } } } or nil }
  local msg_id, ts = "msg_replay_" .. id .. status, tostring(math.floor(core.wall_s()))
  return h.request("POST", "http://127.0.0.1:" .. g.port .. "/kling/callback", { body = body, headers = {
    ["content-type"] = "application/json", ["webhook-id"] = msg_id, ["webhook-timestamp"] = ts,
    ["webhook-signature"] = core.webhook_sign { secret = SIM_SECRET, id = msg_id, timestamp = ts, body = body } } })
end

local function run_one(sc, st)
  local g = gws[st.gateway]
  local e = sc.expect
  h.sim_admin(sim, "DELETE", "/_sim/faults")
  if #st.faults > 0 then
    h.sim_admin(sim, "POST", "/_sim/faults", { rules = st.faults })
  end
  local n = #ledger_lines(g)
  local injected = h.sim_admin(sim, "GET", "/_sim/stats").faults_injected or 0
  local req = sc.request or scenarios.REQUEST
  local body = { model_name = st.model or req.model, mode = req.mode, duration = st.duration
    or (req.duration and tostring(req.duration)), prompt = req.prompt ~= "" and (req.prompt .. st.marker) or "" }
  local res = gw(g, "POST", "/v1/videos/text2video", body, st.key)
  local name = sc.name .. " (" .. sc.profile .. ")"
  if st.wait == "refused" then
    h.sim_admin(sim, "DELETE", "/_sim/faults")
    h.check(name .. ": refused as " .. e.err, refusal_kind(res) == e.err, res.body)
    h.check(name .. ": ledger lines " .. json.encode(e.money), json.encode(ops_since(g, n)) == json.encode(e.money),
      json.encode(ops_since(g, n)))
    return
  end
  local id = res.json and res.json.data and res.json.data.task_id
  if not h.check(name .. ": the create is taken (200)", res.status == 200 and id ~= nil, res.body) then
    return
  end
  if st.wait == "held" then
    -- The machine ends with its error and the task runs on: live, held, the error logged.
    local limit, seen = h.now() + 20, nil
    while h.now() < limit and not seen do
      seen = g.srv.error_log():match("task " .. id .. " %([^)]*%): kling: (%a+)")
      h.sleep(0.2)
    end
    local v = view(g, id)
    h.check(name .. ": the machine's end is " .. e.err .. ", the task runs on", seen == e.err
      and v and not scenarios.TERMINAL_VIEW[v.task_status], json.encode { seen, v })
  elseif st.wait == "deadline" then
    local v, last = wait_for(g, id, function(x)
      return x.task_status == "failed"
    end, 20)
    h.check(name .. ": the deadline ends it (timeout: 'failed' with the deadline's message, held)", v ~= nil
      and v.task_status_msg:find("deadline", 1, true) and v.final_unit_deduction == nil, json.encode(v or last))
  else
    local v, last = wait_for(g, id, function(x)
      return x.task_status == "succeed" or x.task_status == "failed"
    end, 30)
    h.check(name .. ": ends " .. e.status, v ~= nil and STATUS[v.task_status] == e.status, json.encode(v or last))
    if st.replay and v then
      -- named by the gateway's id, which is the task's external id upstream, and by its own
      -- upstream id (a callback about another upstream task is no task's: gateway_peers.lua)
      local upstream_id
      for _, a in ipairs(h.sim_admin(sim, "GET", "/_sim/callbacks?n=1000")) do
        if a.meta and a.meta.external_task_id == id then
          upstream_id = a.meta.task_id
        end
      end
      local rr = replay(g, assert(upstream_id, "no callback of " .. id), id, st.replay)
      local after = view(g, id)
      h.check(name .. ": a replayed '" .. st.replay .. "' callback is taken and changes nothing", rr.status == 200
        and after.task_status == v.task_status and after.final_unit_deduction == v.final_unit_deduction,
        json.encode { rr.status, rr.body, after })
    end
    if st.polls then
      local st2 = h.sim_admin(sim, "GET", "/_sim/stats")
      h.check(name .. ": ... with " .. st.polls .. " poll", (st2.by_method.GET or 0) == g.gets_before + st.polls,
        json.encode(st2.by_method))
      local sent = {}
      for _, a in ipairs(h.sim_admin(sim, "GET", "/_sim/callbacks?n=1000")) do
        if a.meta and a.meta.external_task_id == id and a.delivered then
          sent[#sent + 1] = a.meta.task_status
        end
      end
      h.check(name .. ": ... and its one callback, '" .. st.callback .. "', taken", #sent == 1
        and sent[1] == st.callback, json.encode(sent))
    end
    if sc.name == "callback instead of polls" then
      local st2 = h.sim_admin(sim, "GET", "/_sim/stats")
      h.check(name .. ": ... and no poll was sent", (st2.by_method.GET or 0) == g.gets_before,
        json.encode(st2.by_method))
    end
  end
  h.sleep(0.3) -- a settle's journal line follows the record's end
  h.sim_admin(sim, "DELETE", "/_sim/faults")
  if (st.injected or 0) > 0 then
    local got = (h.sim_admin(sim, "GET", "/_sim/stats").faults_injected or 0) - injected
    h.check(name .. ": the simulator injected its " .. st.injected .. " fault(s)", got == st.injected, got)
  end
  h.check(name .. ": ledger lines " .. json.encode(e.money), json.encode(ops_since(g, n)) == json.encode(e.money),
    json.encode(ops_since(g, n)))
end

scenarios.TERMINAL_VIEW = { succeed = true, failed = true }

local ok, err = pcall(function()
  sim = h.sim_start(sim_dir, { task_seconds = 1, webhook_secret = SIM_SECRET })
  start("polls", {})
  start("callbacks", { callbacks = true, silence = 30 })
  start("quiet", { callbacks = true, silence = 2, interval = 6 })
  start("deadline", { deadline = 3 })
  -- Scenarios whose task never ends run last: their polls would take faults meant for others.
  local staged, last = {}, {}
  for _, sc in ipairs(scenarios.scenarios) do
    local st, why = staging(sc)
    if not st then
      pending = pending + 1
      print("pending - " .. sc.name .. " (" .. sc.profile .. "): " .. why)
    elseif st.wait == "held" or st.wait == "deadline" then
      last[#last + 1] = { sc, st }
    else
      staged[#staged + 1] = { sc, st }
    end
  end
  for _, p in ipairs(last) do
    staged[#staged + 1] = p
  end
  for _, p in ipairs(staged) do
    local g = gws[p[2].gateway]
    g.gets_before = (h.sim_admin(sim, "GET", "/_sim/stats").by_method.GET or 0)
    run_one(p[1], p[2])
  end
  for name, g in pairs(gws) do
    local log = g.srv.error_log()
    h.check("no Lua error in the " .. name .. " gateway's error log", not log:find("runtime error", 1, true)
      and not log:find("lua entry thread aborted", 1, true), log:match("[^\n]*runtime error[^\n]*"))
  end
end)
if not ok then
  h.check("the test ran to its end", false, err)
end
print(("# %d scenarios pending (the gateway cannot stage them)"):format(pending))
h.finish(cleanup)
