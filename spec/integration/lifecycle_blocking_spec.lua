-- The lifecycle scenarios (spec/support/lifecycle_scenarios.lua) through the blocking runner
-- (kling.runner.blocking, what client:submit and task:wait drive) against the real simulator:
-- each must reach the end the machine alone reaches and leave the same ledger lines in the
-- client's real ledger. A scenario the simulator cannot stage is reported pending, saying why
-- (the staging is spec/support/lifecycle_sim.lua, shared with the engine runner's spec; the
-- run and the comparison spec/support/lifecycle_run.lua's, which nginx goes through too:
-- spec/nginx/engine_scenarios.lua).
local sim = require "support.sim"
local scenarios = require "support.lifecycle_scenarios"
local staged = require "support.lifecycle_sim"
local run = require "support.lifecycle_run"

describe("issue 10: the lifecycle scenarios through the blocking runner against the simulator", function()
  setup(function()
    sim.reset()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)

  after_each(function()
    sim.clear_faults()
  end)

  for _, sc in ipairs(scenarios.scenarios) do
    local st, why = staged.staging(sc, run.BLOCKING_CAPS)
    if not st then
      pending(sc.name .. " (" .. sc.profile .. "): " .. why)
    else
      it(sc.name .. " (" .. sc.profile .. ")", function()
        local seen = run.blocking(sc, st, { client = sim.client, faults = sim.faults })
        assert.are.same({}, run.mismatches(sc, seen))
      end)
    end
  end
end)
