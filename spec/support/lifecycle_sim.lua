-- How the lifecycle scenarios (spec/support/lifecycle_scenarios.lua) are staged against the
-- real simulator, for every runner's spec (spec/integration/lifecycle_*_spec.lua): the
-- simulator's faults and prompt markers for each scripted answer, the requests that carry
-- a token that expired in flight, and the scenarios a runner cannot stage, with why.
local core = require "kling.core"
local sim = require "support.sim"
local scenarios = require "support.lifecycle_scenarios"

local M = {}

M.TERMINAL = { succeeded = true, failed = true, cancelled = true }
-- The simulator's fault kinds (lua/kling_sim/faults.lua).
local SIM_FAULTS = { ["5xx"] = true, ["429"] = true, ["1303"] = true, reset = true, stall = true, malformed = true,
  content_type = true }

-- A port nothing listens on: a request sent there fails to connect (it never left the host).
M.DEAD = "http://127.0.0.1:9"

--- How the simulator stages a scenario for a runner, or nil and why not. caps = {callbacks
-- (the runner has a callback intake), cancel (it takes a cancel while it runs), connect
-- (its requests can be sent to a dead port), profiles = {the machine profiles it runs}}.
-- Returns {faults, marker, timeout_s, expired = {[request number] = true | "forged"},
-- dead = {[request number] = true}, precreate (a task under the external id first), callback_url}.
function M.staging(sc, caps)
  if not caps.profiles[sc.profile] then
    return nil, "the " .. sc.profile .. " profile's scenario is another runner's"
  end
  if (sc.callbacks or sc.callback) and not caps.callbacks then
    return nil, "callbacks reach this runner through no intake of its own"
  end
  if sc.cancel_at_wake and not caps.cancel then
    return nil, "this runner takes no cancel while it waits"
  end
  local st = { faults = {}, marker = "", timeout_s = 30, expired = {}, dead = {},
    callback_url = (sc.callbacks or sc.callback) and (M.DEAD .. "/hook") or nil }
  local lookups = sc.lookup or {}
  local found = false
  for _, a in ipairs(lookups) do
    found = found or a == "found"
  end
  st.faults = M.sequence(lookups, "GET", "^/v1/videos/text2video$", found)
  if sc.adopt and found then
    if not caps.precreate then
      return nil, "the simulator holds no task under the machine's fresh external id"
    end
    st.precreate = true
  end
  local creates = sc.create or {}
  for i, a in ipairs(creates) do
    if SIM_FAULTS[a] then
      if creates[i + 1] == "not_found_dup" and found then
        -- the first create was made (its answer lost): the simulator itself refuses the second,
        -- its external id taken
        st.dup = true
      elseif creates[i + 1] ~= nil and creates[i + 1] ~= "submitted" then
        return nil, "two different faults in a row on a create"
      end
      -- the last answer repeats: a fault last in the list strikes every create
      st.faults[#st.faults + 1] = { kind = a, method = "POST", count = creates[i + 1] and 1 or 1000, seconds = 2,
        retry_after = 0, phase = found and "after" or "before" }
    elseif a == "1004" then
      st.expired[i] = true -- this request carries a token that expired in flight
    elseif a == "connect" and caps.connect then
      st.dead[i] = true -- sent to a port nothing listens on
    elseif a ~= "submitted" and not (a == "not_found_dup" and st.dup) then
      return nil, "the simulator injects no '" .. a .. "' on a create"
    end
  end
  local bad = 0
  for j, a in ipairs(sc.poll or {}) do
    if a == "1004" or a == "auth" then
      st.expired[math.max(#creates, 1) + j] = a == "1004" or "forged" -- expired, or signed with a wrong key
    elseif SIM_FAULTS[a] then
      bad = bad + 1
      st.fault_kind = a
    elseif a == "connect" and caps.connect then
      st.dead[math.max(#creates, 1) + j] = true
    elseif a == "failed" then
      st.marker = " [sim:fail=the model could not render the scene]" -- the fake's reason
    elseif a == "unknown_status" then
      st.marker = " [sim:status=paused]"
    elseif a ~= "processing" and a ~= "succeed" then
      return nil, "the simulator injects no '" .. a .. "' on a poll"
    end
  end
  if bad > 0 then
    st.faults[#st.faults + 1] = { kind = st.fault_kind, method = "GET", path = "^/v1/videos/text2video/",
      count = bad, seconds = 2, retry_after = 0 }
  end
  if sc.timeout_ms then -- the deadline: a task far longer than the wait
    st.marker, st.timeout_s = " [sim:seconds=60]", math.min(math.floor(sc.timeout_ms / 1000), 5)
  end
  return st
end

--- The simulator's fault rules for a list of scripted answers to one kind of request (method,
-- path): each fault, and each "not_found" where the task exists (`exists`: a later answer
-- finds it), strikes the request of its place in the list (rules with `skip`, which count every
-- matching request); a fault last in the list strikes every request from there on. The real
-- answers in between are the simulator's own.
function M.sequence(answers, method, path, exists)
  local rules = {}
  for j, a in ipairs(answers) do
    local kind = SIM_FAULTS[a] and a or (a == "not_found" and exists and "not_found") or nil
    if kind then
      rules[#rules + 1] = { kind = kind, method = method, path = path, count = answers[j + 1] and 1 or 1000,
        skip = j > 1 and j - 1 or nil, seconds = 2, retry_after = 0 }
    end
  end
  return rules
end

--- A task made beforehand under the request's external id (a fresh one, set in req), by
-- another client (made by make(copts), default the simulator's over libcurl): what an
-- adopting runner must find.
function M.precreate(req, make)
  req.external_task_id = scenarios.EXT .. tostring(os.time())
  local pre = {}
  for k, v in pairs(req) do
    pre[k] = v
  end
  assert((make or sim.client)({}):submit(pre))
end

--- The scenario's request as the simulator stages it.
function M.request(sc, st)
  local req = {}
  for k, v in pairs(sc.request or scenarios.REQUEST) do
    req[k] = v
  end
  if sc.reserve == "unpriced" then
    req.model, req.duration = "kling-v3", 7
  end
  if req.prompt ~= "" then
    req.prompt = req.prompt .. st.marker
  end
  req.callback_url = st.callback_url
  return req
end

--- The client for a scenario: the simulator's, with a real budget unless the scenario has none.
-- make(copts) makes it (default support.sim's client over libcurl; inside nginx one over the
-- resty driver).
function M.client(sc, extra, make)
  local copts = { timeout = 1, call_budget = 10 }
  if sc.budget ~= false then
    copts.budget = { limit = sc.reserve == "budget" and "0.01" or "100", currency = "CNY" }
  end
  for k, v in pairs(extra or {}) do
    copts[k] = v
  end
  return (make or sim.client)(copts)
end

-- The request numbered n of the client: a token that expired in flight (a real JWT of the
-- simulator's keys, signed two hours ago), or one signed with a wrong secret ("forged"): the
-- simulator answers 1004 (or its auth failure) as the official API does; or sent to a dead port.
local function stage_request(real, st, n, req)
  local info = sim.info()
  if st.expired[n] == "forged" then
    local forged = core.jwt_hs256(info.access_key, "not-the-secret", math.floor(real:wall_s()), 1800)
    req.headers.authorization = "Bearer " .. forged
  elseif st.expired[n] then
    local stale = core.jwt_hs256(info.access_key, info.secret_key, math.floor(real:wall_s()) - 7200, 1800)
    req.headers.authorization = "Bearer " .. stale
  end
  if st.dead[n] then
    req.url = M.DEAD .. req.url:gsub("^https?://[^/]+", "")
  end
end

--- Wraps the client's driver so that its requests (blocking `request` and the engine's
-- `start`, numbered together from 1) are staged as st says. opts.on_answer(n, res, feed) is
-- called when the answer of request n comes to the engine: feed() hands it on.
function M.stage(client, st, opts)
  local real = client.driver
  local n = 0
  local d = setmetatable({}, { __index = function(_, k)
    local v = real[k]
    if type(v) == "function" then
      return function(_, ...)
        return v(real, ...)
      end
    end
    return v
  end })
  function d.request(_, req)
    n = n + 1
    stage_request(real, st, n, req)
    return real:request(req)
  end
  function d.start(_, req, done, arg)
    n = n + 1
    local k = n
    stage_request(real, st, k, req)
    return real:start(req, function(a, res)
      if opts and opts.on_answer then
        return opts.on_answer(k, res, function()
          done(a, res)
        end)
      end
      done(a, res)
    end, arg)
  end
  client.driver, client.ctx.driver = d, d
  return d
end

--- The ledger's lines, as their ops.
function M.ops(ledger)
  local out = {}
  for _, e in ipairs(ledger and ledger:entries() or {}) do
    out[#out + 1] = e.op
  end
  return out
end

return M
