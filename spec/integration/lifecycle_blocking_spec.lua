-- The lifecycle scenarios (spec/support/lifecycle_scenarios.lua) through the blocking runner
-- (kling.runner.blocking, what client:submit and task:wait drive) against the real simulator:
-- each must reach the end the machine alone reaches and leave the same ledger lines in the
-- client's real ledger. A scenario the simulator cannot stage is reported pending, saying why.
local core = require "kling.core"
local sim = require "support.sim"
local blocking = require "kling.runner.blocking"
local scenarios = require "support.lifecycle_scenarios"

local TERMINAL = { succeeded = true, failed = true, cancelled = true }
-- The simulator's fault kinds (lua/kling_sim/faults.lua).
local SIM_FAULTS = { ["5xx"] = true, ["429"] = true, ["1303"] = true, reset = true, stall = true, malformed = true,
  content_type = true }

-- How the simulator stages a scenario: {faults, marker, timeout_s, budget, request}, or nil and why not.
local function staging(sc)
  if sc.callbacks or sc.callback then
    return nil, "callbacks reach a blocking runner through no intake of its own"
  end
  if sc.cancel_at_wake then
    return nil, "a blocking runner takes no cancel while it waits"
  end
  local st = { faults = {}, marker = "", timeout_s = 30, expired = {} }
  local found, lookup_faults = false, 0
  for _, a in ipairs(sc.lookup or {}) do
    found = found or a == "found"
    if SIM_FAULTS[a] then
      lookup_faults = lookup_faults + 1
      st.faults[#st.faults + 1] = { kind = a, method = "GET", path = "^/v1/videos/text2video$", count = 1,
        seconds = 2, retry_after = 0 }
    end
  end
  if sc.adopt and found then
    return nil, "the simulator holds no task under the machine's fresh external id"
  end
  if lookup_faults > 1 then
    return nil, "two faults on lookups"
  end
  local creates = sc.create or {}
  for i, a in ipairs(creates) do
    if SIM_FAULTS[a] then
      if creates[i + 1] ~= nil and creates[i + 1] ~= "submitted" then
        return nil, "two different faults in a row on a create"
      end
      -- the last answer repeats: a fault last in the list strikes every create
      st.faults[#st.faults + 1] = { kind = a, method = "POST", count = creates[i + 1] and 1 or 1000, seconds = 2,
        retry_after = 0, phase = found and "after" or "before" }
    elseif a == "1004" then
      st.expired[i] = true -- this request carries a token that expired in flight
    elseif a ~= "submitted" then
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
    st.marker, st.timeout_s = " [sim:seconds=60]", math.min(sc.timeout_ms // 1000, 5)
  end
  return st
end

-- The client's driver, sending a token that expired in flight (a real JWT of the simulator's
-- keys, signed two hours ago) on the requests numbered in `expired` (or, "forged", one signed
-- with a wrong secret): the simulator answers 1004 (or its auth failure) as the official API does.
local function expiring(client, expired)
  local real, info = client.driver, sim.info()
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
    if expired[n] == "forged" then
      local forged = core.jwt_hs256(info.access_key, "not-the-secret", math.floor(real:wall_s()), 1800)
      req.headers.authorization = "Bearer " .. forged
    elseif expired[n] then
      local stale = core.jwt_hs256(info.access_key, info.secret_key, math.floor(real:wall_s()) - 7200, 1800)
      req.headers.authorization = "Bearer " .. stale
    end
    return real:request(req)
  end
  client.driver, client.ctx.driver = d, d
end

local function ops(ledger)
  local out = {}
  for _, e in ipairs(ledger and ledger:entries() or {}) do
    out[#out + 1] = e.op
  end
  return out
end

describe("issue 10: the lifecycle scenarios through the blocking runner against the simulator", function()
  setup(function()
    sim.reset()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)

  after_each(function()
    sim.clear_faults()
  end)

  for _, sc in ipairs(scenarios.scenarios) do
    local st, why = staging(sc)
    if not st then
      pending(sc.name .. " (" .. sc.profile .. "): " .. why)
    else
      it(sc.name .. " (" .. sc.profile .. ")", function()
        local copts = { timeout = 1, call_budget = 10 }
        if sc.budget ~= false then
          copts.budget = { limit = sc.reserve == "budget" and "0.01" or "100", currency = "CNY" }
        end
        local c = sim.client(copts)
        expiring(c, st.expired)
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
        if #st.faults > 0 then
          sim.faults(st.faults)
        end
        local m = c:lifecycle(req, scenarios.machine_options(sc))
        local now = c.driver:now_ms()
        local sched = core.sched { min_interval_ms = 200, max_interval_ms = 1000, seed = 7 }
        local acts = m:watch(now, sched, now + st.timeout_s * 1000)
        for _, a in ipairs(m:start(now)) do
          acts[#acts + 1] = a
        end
        local how, t, err = blocking.drive(c, m, acts)
        assert.are.equal("done", how)
        local e = sc.expect
        if e.err then
          assert.is_table(err)
          assert.are.equal(e.err, err.kind)
        else
          assert.is_nil(err)
        end
        if TERMINAL[e.status] or e.status == "pending" then
          assert.are.equal(e.status, t.status)
        else
          assert.is_nil(TERMINAL[t.status]) -- still running at the provider
        end
        if e.uncertain then
          assert.is_true(err.uncertain)
          assert.are.equal(t.external_task_id, err.ledger_key)
        end
        assert.are.same(e.money, ops(c.ledger))
        if e.money[1] == "reserve" then
          -- the reservation is the estimate; a settle is the price of what was delivered
          local q = assert(c:estimate(req))
          assert.are.equal(q.micros, c.ledger:entries()[1].micros)
        end
      end)
    end
  end
end)
