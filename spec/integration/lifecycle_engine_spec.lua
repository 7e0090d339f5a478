-- The lifecycle scenarios (spec/support/lifecycle_scenarios.lua) through the engine runner
-- (kling.engine: submit, wait_all, deliver, cancel) over libcurl against the real simulator:
-- each must reach the end the machine alone reaches and leave the same ledger lines in the
-- client's real ledger. The engine has a callback intake (deliver) and takes a cancel, so
-- callbacks before, after and instead of polls and cancels are staged here; a scenario the
-- simulator cannot stage is reported pending, saying why (spec/support/lifecycle_sim.lua).
-- The run and the comparison are spec/support/lifecycle_run.lua's, which the same
-- engine inside nginx goes through too (spec/nginx/engine_scenarios.lua).
local sim = require "support.sim"
local scenarios = require "support.lifecycle_scenarios"
local staged = require "support.lifecycle_sim"
local run = require "support.lifecycle_run"

describe("issue 10: the lifecycle scenarios through the engine runner against the simulator", function()
  setup(function()
    sim.reset()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)

  after_each(function()
    sim.clear_faults()
  end)

  for _, sc in ipairs(scenarios.scenarios) do
    local st, why = staged.staging(sc, run.ENGINE_CAPS)
    if not st then
      pending(sc.name .. " (" .. sc.profile .. "): " .. why)
    else
      it(sc.name .. " (" .. sc.profile .. ")", function()
        local seen = run.engine(sc, st, { client = sim.client, faults = sim.faults })
        assert.are.same({}, run.mismatches(sc, seen))
      end)
    end
  end
end)
