-- The lifecycle scenarios (spec/support/lifecycle_scenarios.lua) through the engine runner
-- (kling.engine: submit, wait_all, deliver, cancel) over libcurl against the real simulator:
-- each must reach the end the machine alone reaches and leave the same ledger lines in the
-- client's real ledger. The engine has a callback intake (deliver) and takes a cancel, so
-- callbacks before, after and instead of polls and cancels are staged here; a scenario the
-- simulator cannot stage is reported pending, saying why (spec/support/lifecycle_sim.lua).
-- The run and the comparison are spec/support/lifecycle_run.lua's, which the same
-- engine inside nginx goes through too (spec/nginx/engine_scenarios.lua).
local run = require "support.lifecycle_run"

run.spec({ describe = describe, it = it, pending = pending, setup = setup, after_each = after_each, assert = assert },
  "engine runner", run.ENGINE_CAPS, run.engine)
