-- The per-currency budget (issue 11.5) at the level of the one Ledger (kling.billing) and the
-- spellings kling.money.hold reads for the command line: each provider's unit is its own
-- currency, a budget per currency, rates the user gives, nothing summed without them.
local billing = require "kling.billing"
local budget = require "kling.money.hold"

local function quote(provider, currency, micros)
  return { provider = provider, currency = currency, micros = micros }
end

describe("issue 11.5: budgets per currency", function()
  it("names each provider's unit apart: apiinone-credits and evolink-credits are not one currency", function()
    assert.are.equal("apiinone-credits", billing.unit(quote("apiinone", "credits", 1)))
    assert.are.equal("evolink-credits", billing.unit("credits", "evolink"))
    assert.are.equal("CNY", billing.unit(quote("kling", "CNY", 1)))
    assert.are.equal("evolink-credits", billing.unit("evolink-credits", "evolink")) -- already qualified
  end)

  it("keeps one budget per currency and refuses (code no_budget) a unit none counts", function()
    local l = assert(billing.ledger { budgets = { { limit = "10", currency = "CNY" },
      { limit = "300", currency = "evolink-credits" } } })
    assert(l:reserve("a", quote("kling", "CNY", 4000000)))
    assert(l:reserve("b", quote("evolink", "credits", 270000000)))
    local none, err = l:reserve("c", quote("apiinone", "credits", 1000000))
    assert.is_nil(none)
    assert.are.equal("budget", err.kind)
    assert.are.equal("no_budget", err.code)
    assert.matches("no budget in apiinone%-credits", err.message)
    -- The evolink budget is full; the CNY one is not touched by credits.
    none, err = l:reserve("d", quote("evolink", "credits", 40000000))
    assert.is_nil(none)
    assert.is_nil(err.code)
    assert.matches("evolink%-credits", err.message)
    assert(l:settle("b", quote("evolink", "credits", 270000000)))
    assert.are.same({ 270000000, "evolink-credits" }, { l:settled("b") })
    assert.is_nil(l:settled("a"))
    assert(l:settle("a", 3000000)) -- micros: in the currency of the reservation
    assert.are.same({ 3000000, "CNY" }, { l:settled("a") })
    assert.are.equal(3000000, l:spent("CNY"))
    assert.are.equal(270000000, l:spent("evolink-credits"))
    assert.are.same({ "CNY", "evolink-credits" }, l:currencies())
  end)

  it("qualifies a bare 'credits' in a client's list of budgets as the provider's unit", function()
    -- (beside a budget the client's creates count against: one in CNY beside it never would)
    local l = assert(budget.open({ budgets = { { limit = "300", currency = "credits" } } }, "evolink"))
    assert.are.same({ "evolink-credits" }, l:currencies())
    assert(l:reserve("a", quote("evolink", "credits", 270000000)))
  end)

  it("converts with the user's rates into one budget, and replays the converted lines", function()
    local lines = {}
    local l = assert(billing.ledger { budgets = { { limit = "20", currency = "CNY" } },
      rates = { currency = "CNY", rates = { ["apiinone-credits"] = "0.072" } },
      on_entry = function(_, line)
        lines[#lines + 1] = line
      end })
    local e = assert(l:reserve("a", quote("apiinone", "credits", 200000000)))
    assert.are.equal("14.4", e.amount)
    assert.are.equal("CNY", e.currency)
    assert.are.equal("apiinone-credits", e.from_currency)
    local none, err = l:reserve("b", quote("evolink", "credits", 1000000))
    assert.is_nil(none)
    assert.are.equal("no_budget", err.code)
    local again = assert(billing.ledger { budgets = { { limit = "20", currency = "CNY" } },
      rates = { currency = "CNY", rates = { ["apiinone-credits"] = "0.072" } }, lines = lines })
    assert.are.equal(14400000, again:reserved("CNY"))
  end)

  it("reads the command line's spellings, and refuses 'credits' alone", function()
    assert.are.same({ limit = "50", currency = "CNY" }, budget.parse("50CNY"))
    assert.are.same({ limit = "300", currency = "evolink-credits" }, budget.parse("300:evolink-credits"))
    assert.are.same({ limit = "12.5", currency = "USD" }, budget.parse("12.5", "USD"))
    local none, err = budget.parse("400", "credits")
    assert.is_nil(none)
    assert.matches("credits\" is not one currency", err)
    none, err = budget.parse_all({ "5CNY", "6:CNY" })
    assert.is_nil(none)
    assert.matches("two budgets in CNY", err)
  end)

  -- "5cny" suggested apiinone-cny, "1e999CNY" apiinone-e999CNY, "0x10CNY" apiinone-x10CNY; an
  -- amount with 7 decimals or out of range only got the generic message.
  it("says why a budget is refused: the code's case, the money parser's reason for the amount", function()
    for text, said in pairs {
      ["5cny"] = 'budget 5cny: "cny" is not a currency code: codes are upper case (CNY)',
      ["5Evolink-Credits"] = '"Evolink-Credits" is not a currency: an ISO code in upper case (CNY, USD) or a provider',
      ["1e999CNY"] = '(got "1e999CNY": not a decimal number)',
      ["0x10CNY"] = '(got "0x10CNY": not a decimal number)',
      ["5.0000001CNY"] = '(got "5.0000001CNY": more than 6 decimals)',
      ["99999999999999999999CNY"] = '(got "99999999999999999999CNY": amount out of range)',
      ["-5CNY"] = '(got "-5CNY": negative)',
      ["5dollars"] = '"dollars" is not a currency: an ISO code in upper case (CNY, USD) or a provider\'s unit',
    } do
      local none, err = budget.parse(text, "CNY")
      assert.is_nil(none, text)
      assert.matches(said, err, 1, true)
      assert.is_nil(err:find("apiinone%-[^c]"), err) -- never a made-up unit
    end
    assert.are.same({ limit = "300", currency = "evolink-credits" }, budget.parse("300evolink-credits"))
    assert.are.same({ limit = "5.5", currency = "USD" }, budget.parse(" 5.5 USD "))
  end)

  -- The gateway's hole (issue 12.5) in the library's own budgets: the provider bills an
  -- avatar by its audio's real length, so a 2 s declaration must not be what is held.
  it("issue 11.5: a client's budget holds media billed by its real length at the endpoint's longest", function()
    local kling = require "kling"
    local c = assert(kling.new { provider = "kling", api_key = "k", base_url = "http://127.0.0.1:9",
      budget = { limit = "10", currency = "CNY" }, max_attempts = 1 })
    local req = { provider = "kling", endpoint = "videos/avatar/image2video", image = "https://example.com/a.png",
      audio_id = "1", mode = "pro", duration = 2 }
    local t, err = c:submit(req)
    assert.is_nil(t)
    assert.are.equal("budget", err.kind, tostring(err)) -- not the network: nothing was sent
    assert.are.equal(0, c.ledger:reserved())
    local q = assert(budget.worst_case(billing.estimate, budget.endpoint_def(c.provider, req), req))
    assert.are.equal(240000000, q.micros) -- 300 s at 0.8 a second, not 2 s (1.6)
    -- A request that says its own length is held at its own estimate.
    local t2v = { provider = "kling", prompt = "p", model = "kling-v1", mode = "std", duration = 5 }
    assert.are.equal(assert(billing.estimate(t2v)).micros, assert(budget.worst_case(billing.estimate,
      budget.endpoint_def(c.provider, t2v), t2v)).micros)
  end)

  -- A rates file {"currency": "CNY", "rate": {...}} (a misspelt key) or without its currency got
  -- the generic "rates must be a JSON object {...}".
  it("names a rates file's unknown field with the closest known one, and a missing or mistyped one", function()
    local path = os.tmpname()
    local function read(body)
      local f = assert(io.open(path, "w"))
      f:write(body)
      f:close()
      local r, err = budget.read_rates(path)
      assert.is_nil(r, body)
      return err
    end
    for body, said in pairs {
      ['{"currency": "CNY", "rate": {"USD": "7"}}'] = ": rate: is not a field of a rates file; did you mean rates? "
        .. "(known: currency, rates)",
      ['{"curency": "CNY", "rates": {"USD": "7"}}'] = ": curency: is not a field of a rates file; did you mean "
        .. "currency?",
      ['{"currency": "CNY", "rates": {"USD": "7"}, "x": 1}'] = ": x: is not a field of a rates file (known: currency, "
        .. "rates)",
      ['{"rates": {"USD": "7"}}'] = ": currency: is required: the currency the rates count in",
      ['{"currency": "CNY"}'] = ": rates: is required: each other currency's rate, in units of CNY",
      ['{"currency": 5, "rates": {}}'] = ": currency: must be a currency's name (such as CNY), got a number (5)",
      ['{"currency": "CNY", "rates": ["USD"]}'] = ": rates: must be an object of each other currency's rate "
        .. '(such as USD: "7.1"), got an array',
      ['["CNY"]'] = ': rates must be a JSON object {"currency": "CNY", "rates": {"USD": "7.10", ...}} (got an array)',
      ['{"currency": "CNY",'] = ': rates must be a JSON object {"currency": "CNY", "rates": {"USD": "7.10", ...}} (',
    } do
      assert.matches(path .. said, read(body), 1, true)
    end
    os.remove(path)
    -- the ledger's rates in Lua, by the same rule
    local _, err = billing.ledger { budgets = { { limit = "5", currency = "CNY" } },
      rates = { currency = "CNY", rate = { USD = "7" } } }
    assert.are.equal("rates.rate", err.field)
    assert.matches("is not a field of the rates; did you mean rates?", err.message, 1, true)
    _, err = billing.ledger { budgets = { { limit = "5", currency = "CNY" } }, rates = { rates = { USD = "7" } } }
    assert.are.equal("rates.currency", err.field)
  end)

  -- "kling run m --out DIR --budget 50XYZ" said why and exited 2, but made DIR and DIR/.lock first
  it("refuses a budget or rates nothing could count against before the out directory is made", function()
    local files = require "support.files"
    local batch = require "kling.batch"
    local root = files.tempdir()
    local m = root .. "/m.jsonl"
    files.write(m, '{"id": "a", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    local rates = root .. "/rates.json"
    files.write(rates, '{"currency": "CNY", "rates": {"XYZ": "1"}}')
    for _, c in ipairs {
      { { budget = "50XYZ" }, "budget 50 XYZ: no provider charges in XYZ" },
      { { budget = "5CNY", rates = rates }, "--rates: rates.XYZ: no provider charges in XYZ" },
      { { budget = "5CNY", rates = root .. "/none.json" }, "none.json" },
    } do
      local out = root .. "/out"
      local o = { manifest = m, out = out, progress = "none" }
      for k, v in pairs(c[1]) do
        o[k] = v
      end
      local r, err, status = batch.run(o)
      assert.is_nil(r)
      assert.are.equal(2, status)
      assert.matches(c[2], err, 1, true)
      assert.is_nil(os.rename(out, out), "the out directory was made for " .. c[2])
    end
    files.remove(root)
  end)

  -- with no budget, from the flags or the journal, --rates were dropped and the batch ran uncapped
  it("refuses --rates when the batch has no budget for them to count against", function()
    local files = require "support.files"
    local batch = require "kling.batch"
    local root = files.tempdir()
    local m = root .. "/m.jsonl"
    files.write(m, '{"id": "a", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    local rates = root .. "/rates.json"
    files.write(rates, '{"currency": "CNY", "rates": {"USD": "7.1"}}')
    local r, err, status = batch.run { manifest = m, out = root .. "/out", progress = "none", rates = rates }
    assert.is_nil(r)
    assert.are.equal(2, status)
    assert.matches("--rates counts other currencies against a budget, and this batch has none", err, 1, true)
    files.remove(root)
  end)
end)

describe("kling.new's budget in a currency its provider never charges in", function()
  local kling = require "kling"
  local function new(provider, b)
    return kling.new { provider = provider, api_key = "k", base_url = "http://127.0.0.1:9", budget = b }
  end

  it("is refused naming budget.currency and the provider's unit, where every create was refused 'no budget'",
    function()
      local c, err = new("evolink", { limit = "5", currency = "CNY" })
      assert.is_nil(c)
      assert.are.equal("validation", err.kind)
      assert.are.equal("budget.currency", err.field)
      assert.matches("evolink charges in evolink-credits", err.message, 1, true)
      assert.matches("give a budget in evolink-credits, or budget.rates", err.message, 1, true)
      err = select(2, new("kling", { limit = "5", currency = "evolink-credits" }))
      assert.are.equal("budget.currency", err.field)
      assert.matches("kling charges in CNY", err.message, 1, true)
      -- rates, but none for the provider's unit; a second budget the creates never reach
      err = select(2, new("evolink", { budgets = { { limit = "5", currency = "CNY" } },
        rates = { currency = "CNY", rates = { USD = "7" } } }))
      assert.are.equal("budget.budgets[1].currency", err.field)
      assert.matches("budget.rates has no rate for evolink-credits", err.message, 1, true)
      err = select(2, new("evolink", { budgets = { { limit = "5", currency = "evolink-credits" },
        { limit = "5", currency = "CNY" } } }))
      assert.are.equal("budget.budgets[2].currency", err.field)
      assert.matches("count against the budget in evolink-credits, never this one in CNY", err.message, 1, true)
    end)

  it("is taken where rates convert the provider's unit into it, or the catalog's USD rate counts it", function()
    local c = assert(new("evolink", { budgets = { { limit = "5", currency = "CNY" } },
      rates = { currency = "CNY", rates = { ["evolink-credits"] = "0.1" } } }))
    local q = assert(c:estimate { model = "kling-v3", prompt = "x", duration = 5, resolution = "720p" })
    assert(c.ledger:reserve("a", q))
    assert.are.equal("CNY", c.ledger:summary().currency)
    assert(new("evolink", { limit = "5", currency = "credits" }))
    local u = assert(new("evolink", { limit = "5", currency = "USD" })) -- evolink's catalog has a USD rate
    assert(u.ledger:reserve("a", q))
    assert(new("kling", { limit = "5", currency = "CNY" }))
    assert(new("compat", { limit = "5", currency = "USD" })) -- no price of its own: its creates say unpriced
  end)
end)

describe("an empty rates map", function()
  it("is refused by name: the ledger's, kling.new's budget.rates, a rates file's and kling.quote's convert nothing",
    function()
      local _, err = billing.ledger { limit = "5", currency = "CNY", rates = { currency = "CNY", rates = {} } }
      assert.are.equal("rates.rates", err.field)
      assert.matches("is empty, so it converts nothing", err.message, 1, true)
      _, err = require("kling").new { provider = "kling", api_key = "k", base_url = "http://127.0.0.1:9",
        budget = { limit = "5", currency = "CNY", rates = { currency = "CNY", rates = {} } } }
      assert.are.equal("budget.rates.rates", err.field)
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write('{"currency": "CNY", "rates": {}}')
      f:close()
      local r, rerr = budget.read_rates(path)
      os.remove(path)
      assert.is_nil(r)
      assert.matches(path .. ": rates: is empty, so it converts nothing", rerr, 1, true)
      local ok, qerr = pcall(billing.quote, { prompt = "x" }, { rates = {} })
      assert.is_false(ok)
      assert.matches("rates: is empty, so it converts nothing", tostring(qerr), 1, true)
    end)

  it("in a batch journal written before it was refused is read as no rates, so the batch resumes", function()
    local b, r = budget.from_header { budgets = { { limit = "5", currency = "CNY" } },
      rates = { currency = "CNY", rates = {} } }
    assert.are.same({ { limit = "5", currency = "CNY" } }, b)
    assert.is_nil(r)
    assert(budget.ledger(b, r))
  end)
end)

describe("a rate out of range", function()
  it("names the range, and kling quote's CUR=RATE given to kling run's --rates says what the file holds", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('{"currency": "CNY", "rates": {"USD": "' .. ("9"):rep(44) .. '"}}')
    f:close()
    local r, err = budget.read_rates(path)
    os.remove(path)
    assert.is_nil(r)
    -- the value cut short once, not echoed again by money_parse's own reason
    assert.matches(': rates.USD: a positive decimal string with at most 6 decimals is required, such as "0.14" (got "'
      .. ("9"):rep(40) .. '... (44 bytes)": amount out of range: at most 9223372036854.775807, as every amount)', err,
      1, true)
    r, err = budget.read_rates("CNY=99999999999999999999")
    assert.is_nil(r)
    assert.matches("--rates takes a JSON file {\"currency\": \"CNY\", \"rates\": {\"USD\": \"7.10\"}}", err, 1, true)
    assert.matches("not CURRENCY=RATE pairs (those are kling quote's, in USD)", err, 1, true)
    r, err = budget.read_rates("/nonexistent/rates.json") -- a path is not taken for pairs
    assert.is_nil(r)
    assert.is_nil(err:find("CURRENCY=RATE", 1, true))
  end)
end)
