-- Budgets on the gateways against the simulator: a budgeted client runs a mixed set (durations,
-- modes or resolutions, sound on and off, a failure) on apiinone, apimodels and evolink, and its
-- ledger ends equal, to the micro-unit, to what the simulator says that gateway bills, in the
-- gateway's own currency. The amounts are chosen so that precision matters: apimodels' v3 prices
-- have four decimals in USD, EvoLink's 1080p silent rate is 5.4 x 1.333 = 7.1982 credits/s.
local sim = require "support.sim"

local PROMPT = "a lighthouse beam sweeping over a stormy sea"
local IMAGE = "https://example.com/first.png"
local V3 = "kling-v3"

-- One case per gateway: its ledger currency and unit (its money, named apart from the other
-- gateways'), the requests, and the total the seeds give for the successful ones (worked out
-- by hand below each list), in micro-units.
local CASES = {
  apiinone = {
    currency = "credits",
    unit = "apiinone-credits",
    -- seed 001: "std no-audio 40/s, std with-audio 60/s, pro no-audio 54/s, pro with-audio 80/s";
    -- sound defaults to on ("default std 5s with audio is 300 credits").
    reqs = {
      { prompt = PROMPT, mode = "std", duration = 3, sound = false }, -- 40 x 3 = 120
      { prompt = PROMPT, duration = 5 }, -- std, sound by default: 60 x 5 = 300
      { prompt = PROMPT, mode = "pro", duration = 7, sound = false }, -- 54 x 7 = 378
      { prompt = PROMPT, mode = "pro", duration = 15, sound = true }, -- 80 x 15 = 1200
      { image = IMAGE, mode = "std", sound = true, multi_shot = true, -- 60 x (2 + 4) = 360
        multi_prompt = { { prompt = "the beam turns", duration = 2 }, { prompt = "a wave breaks", duration = 4 } } },
      { prompt = PROMPT .. " [sim:fail]", mode = "pro", duration = 10, sound = true }, -- failed: free
    },
    total = 2358000000, -- 120 + 300 + 378 + 1200 + 360 credits
  },
  apimodels = {
    currency = "USD",
    unit = "USD",
    -- seed 002 (价格 8.5折): kling-v2-6 by the clip, kling-v3 per second.
    reqs = {
      { model = "kling-v2-6", prompt = PROMPT, mode = "std", duration = 5, sound = false }, -- 0.0159
      { model = "kling-v2-6", prompt = PROMPT, mode = "pro", duration = 10, sound = true }, -- 0.1064
      { model = "kling-v2-6", prompt = PROMPT, mode = "pro", duration = 5, sound = true, -- 0.0639
        voice_list = { "voice-1" } },
      { model = "kling-v3", prompt = PROMPT, mode = "std", duration = 7, sound = false }, -- 0.0633 x 7 = 0.4431
      { model = "kling-v3", prompt = PROMPT, image = IMAGE, mode = "pro", duration = 3, sound = true }, -- 0.384
      { model = "kling-v3", prompt = PROMPT, mode = "std", duration = 11, sound = true }, -- 0.0956 x 11 = 1.0516
      { model = "kling-v3", prompt = PROMPT .. " [sim:fail]", mode = "pro", duration = 5, sound = false },
    },
    total = 2064900, -- 0.0159 + 0.1064 + 0.0639 + 0.4431 + 0.384 + 1.0516 USD
  },
  evolink = {
    currency = "credits",
    unit = "evolink-credits",
    -- seed 003: 5.4 credits/s x 1.0 / 1.5 / 1.333 / 2.0 (720p/1080p, sound off/on); 1 credit per element.
    reqs = {
      { model = V3, prompt = PROMPT, resolution = "720p", duration = 5, sound = false }, -- 5.4 x 5 = 27
      { model = V3, prompt = PROMPT, resolution = "1080p", duration = 3, sound = false }, -- 7.1982 x 3 = 21.5946
      { model = V3, prompt = PROMPT, image = IMAGE, resolution = "1080p", duration = 4, sound = false }, -- 28.7928
      { model = V3, prompt = PROMPT, mode = "std", duration = 6, sound = true }, -- 720p: 8.1 x 6 = 48.6
      { model = V3, prompt = PROMPT, mode = "pro", duration = 10, sound = true }, -- 1080p: 10.8 x 10 = 108
      { model = "kling-custom-element", element_name = "Beacon", element_description = "a striped lighthouse",
        reference_type = "image_refer", element_image_list = { frontal_image = IMAGE } }, -- 1
      { model = V3, prompt = PROMPT .. " [sim:fail]", resolution = "1080p", duration = 5, sound = false }, -- free
    },
    total = 234987400, -- 27 + 21.5946 + 28.7928 + 48.6 + 108 + 1 credits
  },
}

local function integer(v)
  return math.type(v) == "integer"
end

-- The simulator's ledger rows of one dialect, by store id (the digits that end each public id).
local function sim_rows(ledger, dialect)
  local rows, total = {}, 0
  for _, row in ipairs(ledger.tasks) do
    if row.dialect == dialect then
      assert(integer(row.micros), dialect .. " row " .. row.task_id .. ": micros " .. tostring(row.micros))
      rows[row.task_id] = row
      total = total + row.micros
    end
  end
  return rows, total
end

-- totals[unit] is the sum of every row in that unit (one money: a currency, or one gateway's
-- credits), whichever dialect booked it; the stats' `billed` is the same.
local function check_totals(ledger)
  local want = {}
  for _, row in ipairs(ledger.tasks) do
    want[row.unit] = (want[row.unit] or 0) + row.micros
  end
  assert.are.same(want, ledger.totals)
  assert.are.same(want, sim.stats().billed)
end

local function run(name)
  local case = CASES[name]
  local client = sim.gateway(name, { budget = { limit = "100000", currency = case.currency } })
  local tasks = {}
  for n, req in ipairs(case.reqs) do
    tasks[n] = assert(client:submit(req))
  end
  local done, failed = {}, 0
  for n, t in ipairs(tasks) do
    local ok, err = t:wait { timeout = 60 }
    if ok then
      done[#done + 1] = ok
    else
      assert(tostring(case.reqs[n].prompt):find("[sim:fail]", 1, true), name .. " request " .. n .. ": "
        .. tostring(err))
      failed = failed + 1
    end
  end
  assert.are.equal(#case.reqs - 1, #done)
  assert.are.equal(1, failed)
  local ledger = client.ledger
  assert.are.equal(0, ledger:reserved())
  local ledger_sim = sim.admin("GET", "/_sim/ledger")
  local rows, total = sim_rows(ledger_sim, name)
  -- The client's charges, task by task and in all, are the simulator's, to the micro-unit.
  for _, t in ipairs(done) do
    local row = rows[t.id:match("(%d+)$")]
    assert(row, name .. " task " .. t.id .. " is not in the simulator's ledger")
    assert.are.equal(case.currency, row.currency)
    assert(t.charge_quote, name .. " task " .. t.id .. " settled without a price: " .. tostring(t.billing_error))
    assert.are.equal(row.micros, t.charge_quote.micros, name .. " task " .. t.id)
  end
  local count = 0
  for _ in pairs(rows) do
    count = count + 1
  end
  assert.are.equal(#done, count) -- the failure is not billed
  assert.are.equal(case.total, total)
  assert.are.equal(total, ledger:spent())
  assert.are.same({ currency = case.currency, unit = case.unit, micros = total, tasks = #done },
    ledger_sim.by_dialect[name])
  local ops = {}
  for _, e in ipairs(ledger:entries()) do
    ops[e.op] = (ops[e.op] or 0) + 1
  end
  assert.are.same({ reserve = #case.reqs, settle = #done, release = 1 }, ops)
  check_totals(ledger_sim)
  return ledger_sim, rows
end

describe("gateway budgets against the simulator", function()
  setup(function()
    sim.reset()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)

  teardown(function()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)

  it("apiinone: the ledger ends equal to the credits the gateway bills", function()
    run("apiinone")
  end)

  it("apimodels: the ledger ends equal to the USD the gateway bills, to the micro-dollar", function()
    local ledger, rows = run("apimodels")
    -- The ledger's older `units` stay in US cents (thousandths of a cent): 0.4431 USD is 44.31.
    local found = false
    for _, row in pairs(rows) do
      if row.model == "kling-v3" and row.duration == 7 then
        assert.are.equal(443100, row.micros)
        assert.are.equal("44.31", row.units)
        found = true
      end
    end
    assert.is_true(found)
    assert.are.equal(ledger.totals.USD, CASES.apimodels.total)
  end)

  it("evolink: the ledger ends equal to the credits the gateway bills, 1080p silent at 7.1982/s", function()
    local ledger, rows = run("evolink")
    -- Thousandths could not hold 21.5946 credits: `units` keeps its rounding, `micros` is exact.
    local found = false
    for _, row in pairs(rows) do
      if row.duration == 3 then
        assert.are.equal(21594600, row.micros)
        assert.are.equal("21.595", row.units)
        found = true
      end
    end
    assert.is_true(found)
    -- Both credit gateways call their money "credits", which are not the same money: totals
    -- keeps them apart (it added API in One's and EvoLink's together under "credits").
    local _, own = sim_rows(ledger, "apiinone")
    assert.is_true(own > 0)
    assert.is_nil(ledger.totals.credits)
    assert.are.equal(own, ledger.totals["apiinone-credits"])
    assert.are.equal(CASES.evolink.total, ledger.totals["evolink-credits"])
  end)

  it("wait_all's spend is what the simulator charged, also where the gateway reports no charge", function()
    -- apimodels reports no charge: wait_all said spend "0" for two charged tasks while the
    -- client's own ledger had settled 0.853 USD, the simulator's charge
    local before = select(2, sim_rows(sim.admin("GET", "/_sim/ledger"), "apimodels"))
    local client = sim.gateway("apimodels", { budget = { limit = "5", currency = "USD" },
      engine = { learn_file = false } })
    local req = { model = "kling-v3", mode = "pro", duration = 5, prompt = PROMPT }
    local r = client:wait_all(client:submit_many { req, req }, { timeout = 60 })
    assert.are.equal(2, r.succeeded)
    local charged = select(2, sim_rows(sim.admin("GET", "/_sim/ledger"), "apimodels")) - before
    assert.are.equal(853000, charged)
    assert.are.equal(charged, r.spend_micros)
    assert.are.equal("0.853", r.spend)
    assert.are.equal(2, r.charged)
    assert.are.equal(charged, client.ledger:spent("USD"))
    -- without a budget nothing prices them: spend counts what is known, and charged says how many
    local free = sim.gateway("apimodels", { engine = { learn_file = false } })
    r = free:wait_all(free:submit_many { req }, { timeout = 60 })
    assert.are.equal(1, r.succeeded)
    assert.are.equal(0, r.charged)
  end)

  it("reports the exact charge where a gateway reports one", function()
    local evo = sim.gateway("evolink")
    local t = assert(evo:run({ prompt = PROMPT, resolution = "1080p", duration = 3, sound = false }, { timeout = 60 }))
    assert.are.equal("21.5946", t.charge)
    local one = sim.gateway("apiinone")
    t = assert(one:run({ prompt = PROMPT, mode = "pro", duration = 7, sound = false }, { timeout = 60 }))
    assert.are.equal("378", t.charge)
  end)
end)
