-- Budgets against the simulator: the estimate is reserved before a create, settled from the
-- delivered result, released on failure; the ledger ends equal to what the simulator (the
-- provider) bills, to the micro-unit; a budget is a hard cap before any network call.
local sim = require "support.sim"
local kling = require "kling"

local PROMPT = "a paper boat on a rain-soaked street"

describe("budget against the simulator", function()
  before_each(function()
    sim.reset()
    sim.config { task_seconds = 1 }
  end)

  after_each(function()
    sim.clear_faults()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)

  it("ends a mixed run with the ledger equal to the provider's charges", function()
    local ledger = assert(kling.ledger { limit = "1000", currency = "CNY" })
    local client = sim.client { budget = ledger }
    local reqs = {
      { prompt = PROMPT, model = "kling-v1", mode = "std", duration = 5 },
      { prompt = PROMPT, model = "kling-v1", mode = "pro", duration = 10 },
      { prompt = PROMPT, model = "kling-v2-6", mode = "pro", duration = 5, sound = true },
      { prompt = PROMPT, model = "kling-v2-5-turbo", mode = "std", duration = 10 },
      { prompt = PROMPT .. " [sim:fail]", model = "kling-v1", mode = "pro", duration = 10 },
      { prompt = PROMPT .. " [sim:fail]", model = "kling-v2-6", mode = "pro", duration = 10, sound = true },
    }
    local tasks = {}
    for i, r in ipairs(reqs) do
      tasks[i] = assert(client:submit(r))
    end
    -- Every estimate is held while the tasks run: 1 + 7 + 5 + 3 + 7 + 10.
    assert.are.equal(33000000, ledger:reserved())
    assert.are.equal(0, ledger:spent())
    -- A synchronous call is charged at once (TTS: 0.05 per call), the failed one not at all.
    local tts = assert(client:submit { endpoint = "audio/tts", text = "one moment please",
      voice_id = "kling_narrator_en", voice_language = "en" })
    assert.are.equal("succeeded", tts.status)
    assert.are.equal(50000, ledger:spent())
    local no_tts, terr = client:submit { endpoint = "audio/tts", text = "no [sim:fail]", voice_id = "v" }
    assert.is_nil(no_tts)
    assert.is_table(terr)
    assert.are.equal(50000, ledger:spent())
    local ok, failed = 0, 0
    for _, t in ipairs(tasks) do
      if t:wait { timeout = 30 } then
        ok = ok + 1
      else
        failed = failed + 1
      end
    end
    assert.are.equal(4, ok)
    assert.are.equal(2, failed)
    assert.are.equal(0, ledger:reserved())
    assert.are.equal(16050000, ledger:spent()) -- failures are free
    assert.are.equal(sim.charges("kling"), ledger:spent())
    local ops = {}
    for _, e in ipairs(ledger:entries()) do
      ops[e.op] = (ops[e.op] or 0) + 1
      assert.is_string(e.task_key)
    end
    assert.are.same({ reserve = 8, settle = 5, release = 3 }, ops)
  end)

  it("refuses a create that would pass the limit before any network call", function()
    local client = sim.client { budget = { limit = "3", currency = "CNY" } }
    local req = { prompt = PROMPT, model = "kling-v1", mode = "std", duration = 5 } -- 1 CNY each
    local tasks = {}
    for i = 1, 3 do
      tasks[i] = assert(client:submit(req))
    end
    local before = sim.stats().requests
    local t, err = client:submit(req)
    assert.is_nil(t)
    assert.are.equal("budget", err.kind)
    assert.matches("would pass the limit of 3", err.message)
    assert.are.equal(before, sim.stats().requests)
    assert.are.equal(3, sim.stats().creates)
    for _, task in ipairs(tasks) do
      assert(task:wait { timeout = 30 })
    end
    assert.are.equal(3000000, client.ledger:spent())
  end)

  it("releases the reservation of a create the provider refused, and keeps the one of an uncertain create", function()
    local client = sim.client { budget = { limit = "100", currency = "CNY" }, timeout = 1, call_budget = 5 }
    local req = { prompt = PROMPT, model = "kling-v1", mode = "pro", duration = 5 } -- 3.5 CNY
    sim.faults({ { kind = "1303", method = "POST", count = 100 } }) -- refused past the call budget
    local t, err = client:submit(req)
    assert.is_nil(t)
    assert.are.equal("rate_limited", err.kind)
    assert.are.equal(0, client.ledger:reserved())
    -- lost, then not found by the lookups (nor after a resend refused as a duplicate)
    sim.faults({ { kind = "reset", method = "POST", count = 1, phase = "after" },
      { kind = "not_found", method = "GET", path = "^/v1/videos/text2video$", count = 6 } })
    t, err = client:submit(req)
    assert.is_nil(t)
    assert.is_true(err.uncertain)
    assert.are.equal(3500000, client.ledger:reserved())
    assert.are.equal(err.external_task_id, err.ledger_key)
  end)

  it("refuses an unpriced request under a budget rather than spend without a cap", function()
    local client = sim.client { budget = { limit = "100", currency = "CNY" } }
    local t, err = client:submit { prompt = PROMPT, model = "kling-v3", duration = 7 }
    assert.is_nil(t)
    assert.are.equal("unpriced", err.kind)
    assert.matches("set_catalog", err.message)
  end)
end)
