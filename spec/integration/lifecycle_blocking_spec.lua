-- The lifecycle scenarios (spec/support/lifecycle_scenarios.lua) through the blocking runner
-- (kling.runner.blocking, what client:submit and task:wait drive) against the real simulator:
-- each must reach the end the machine alone reaches and leave the same ledger lines in the
-- client's real ledger. A scenario the simulator cannot stage is reported pending, saying why
-- (the staging is spec/support/lifecycle_sim.lua, shared with the engine runner's spec; the
-- run and the comparison spec/support/lifecycle_run.lua's, which nginx goes through too:
-- spec/nginx/engine_scenarios.lua).
local run = require "support.lifecycle_run"

run.spec({ describe = describe, it = it, pending = pending, setup = setup, after_each = after_each, assert = assert },
  "blocking runner", run.BLOCKING_CAPS, run.blocking)
