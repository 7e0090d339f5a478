-- The lifecycle scenarios (spec/support/lifecycle_scenarios.lua) through the blocking runner
-- (kling.runner.blocking, what client:submit and task:wait drive) against the real simulator:
-- each must reach the end the machine alone reaches and leave the same ledger lines in the
-- client's real ledger. A scenario the simulator cannot stage is reported pending, saying why
-- (the staging is spec/support/lifecycle_sim.lua, shared with the engine runner's spec).
local core = require "kling.core"
local sim = require "support.sim"
local blocking = require "kling.runner.blocking"
local scenarios = require "support.lifecycle_scenarios"
local staged = require "support.lifecycle_sim"

-- What the blocking runner can stage: both profiles' scenarios (the machine's options are the
-- scenario's), requests sent to a dead port, a task made beforehand under the request's
-- external id (adopt); no callback intake, no cancel while it waits.
local CAPS = { profiles = { engine = true, blocking = true }, connect = true, precreate = true }

describe("issue 10: the lifecycle scenarios through the blocking runner against the simulator", function()
  setup(function()
    sim.reset()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)

  after_each(function()
    sim.clear_faults()
  end)

  for _, sc in ipairs(scenarios.scenarios) do
    local st, why = staged.staging(sc, CAPS)
    if not st then
      pending(sc.name .. " (" .. sc.profile .. "): " .. why)
    else
      it(sc.name .. " (" .. sc.profile .. ")", function()
        local c = staged.client(sc)
        staged.stage(c, st)
        local req = staged.request(sc, st)
        if st.precreate then -- a task already under the external id the machine adopts
          staged.precreate(req)
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
        if staged.TERMINAL[e.status] or e.status == "pending" then
          assert.are.equal(e.status, t.status)
        else
          assert.is_nil(staged.TERMINAL[t.status]) -- still running at the provider
        end
        if e.uncertain then
          assert.is_true(err.uncertain)
          assert.are.equal(t.external_task_id, err.ledger_key)
        end
        assert.are.same(e.money, staged.ops(c.ledger))
        if e.money[1] == "reserve" then
          -- the reservation is the estimate; a settle is the price of what was delivered
          local q = assert(c:estimate(req))
          assert.are.equal(q.micros, c.ledger:entries()[1].micros)
        end
      end)
    end
  end
end)
