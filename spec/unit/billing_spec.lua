-- Billing API shapes, the money bindings of kling.core, catalog overrides, and the ledger:
-- a hard cap with thousands of reservations in flight, settle and release, JSON lines.
local core = require "kling.core"
local billing = require "kling.billing"
local json = require "kling.json"

describe("kling.core money bindings", function()
  it("parses decimal strings to integer micro-units and back", function()
    assert.equal(25000, core.money_parse("0.025"))
    assert.equal("integer", math.type(core.money_parse("12")))
    assert.equal(-1500000, core.money_parse("-1.5"))
    assert.equal("0.025", core.money_format(25000))
    assert.equal("-1.5", core.money_format(-1500000))
    assert.equal("9223372036854.775807", core.money_format(math.maxinteger))
    assert.equal("0.02", core.money_format(15900, 2))
    assert.equal("3.00", core.money_format(3000000, 2))
  end)

  it("refuses too many decimals, garbage and overflow with a message", function()
    for _, s in ipairs { "1.1234567", "abc", "1e3", " 1", "", "9223372036855" } do
      local v, err = core.money_parse(s)
      assert.is_nil(v)
      assert.is_string(err)
    end
    assert.matches("more than 6 decimals", select(2, core.money_parse("0.0000001")))
  end)

  -- An admin top-up of "1\0" was answered "'1': not a decimal number" (the NUL cut the quote),
  -- and one of "1\xFF" echoed the byte raw (an answer that was not UTF-8).
  it("quotes what it refuses as printable ASCII, cut to 40 bytes", function()
    assert.equal("'1\\x00': not a decimal number", select(2, core.money_parse("1\0")))
    assert.equal("'1\\xFF': not a decimal number", select(2, core.money_parse("1\255")))
    assert.equal("'it\\x27s': not a decimal number", select(2, core.money_parse("it's")))
    assert.equal("'" .. ("9"):rep(40) .. "'... (100 bytes): amount out of range",
      select(2, core.money_parse(("9"):rep(100))))
  end)

  it("never takes a float as an amount", function()
    assert.has_error(function()
      core.money_format(1.5)
    end)
    assert.has_error(function()
      core.money_add(1, 0.5)
    end)
    assert.has_error(function()
      core.money_parse(12)
    end)
  end)

  it("adds, subtracts and scales with overflow checks", function()
    assert.equal(3, core.money_add(1, 2))
    assert.is_nil(core.money_add(math.maxinteger, 1))
    assert.is_nil(core.money_sub(math.mininteger, 1))
    assert.equal(567000, core.money_scale(40500000, "0.014"))
    assert.is_nil(core.money_scale(math.maxinteger, "2"))
  end)

  it("reads durations as decimal milliseconds", function()
    assert.equal(5041, core.seconds_ms("5.041"))
    assert.equal(5000, core.seconds_ms(5))
    assert.equal(5500, core.seconds_ms(5.5))
    assert.equal("5.041", core.seconds_format(5041))
    assert.is_nil(core.seconds_ms("5 s"))
    assert.is_nil(core.seconds_ms(-1))
    assert.is_nil(core.seconds_ms(0 / 0))
  end)

  it("rounds a duration given as a number as the same decimal given as a string: half up beyond the ms", function()
    -- a provider's "duration": 1.0005 (a double just under 1.0005) or 0.0625 (exact: printf's
    -- half-even) was a millisecond short of its string, billed a per_second rule under it
    for _, s in ipairs({ "1.0005", "0.0625", "5.0415", "123456.0005", "86399.9995", "0.0005", "0.3" }) do
      assert.equal(core.seconds_ms(s), core.seconds_ms(tonumber(s)), s)
    end
    assert.equal(1001, core.seconds_ms(1.0005))
    assert.equal(300, core.seconds_ms(0.1 + 0.2))
    assert.equal(1000000000000000000, core.seconds_ms(1e15))
  end)

  it("evaluates a rule and explains it; bad rule data raises", function()
    local micros, bd = core.price_eval({ kind = "per_second", price = "5.4", minimum = 3, multiplier = "1.333" },
      { duration = 2 })
    assert.equal(21594600, micros)
    assert.equal("16.2", bd.base)
    assert.equal("3", bd.billed_seconds)
    assert.equal("1.333", bd.multiplier)
    assert.is_true(bd.minimum_applied)
    local none, msg, field = core.price_eval({ kind = "per_second", price = "1" }, {})
    assert.is_nil(none)
    assert.equal("duration", field)
    assert.matches("per_second", msg)
    assert.has_error(function()
      core.price_eval({ kind = "per_second", price = 0.6 }, { duration = 1 })
    end)
    assert.has_error(function()
      core.price_eval({ kind = "sometimes", price = "1" }, {})
    end)
    assert.is_nil(core.price_check {
      kind = "tiered", tiers = { { seconds = 10, price = "2" }, { seconds = 5, price = "1" } },
    })
    assert.is_true(core.price_check { kind = "ceil_to_unit", price = "0.5", unit = 5 })
  end)

  it("returns a charge beyond 2^53 micro-units as out of range under LuaJIT (nginx's Lua), never raises", function()
    -- Lua 5.4 holds it; LuaJIT's doubles do not, and price_eval raised there (push_micros)
    assert.equal(10 ^ 16 // 1, core.price_eval({ kind = "per_unit", price = "1000" }, { count = 10000000 }))
    local nginx = require "support.nginx"
    local jit_cpath, none = nginx.jit_cpath()
    if not jit_cpath then
      pending(none)
      return
    end
    local http = require "socket.http"
    local srv = nginx.start([[
      location = /price {
        content_by_lua_block {
          local core = require "kling.core"
          local out = {}
          for _, c in ipairs({
            { { kind = "per_unit", price = "1000" }, { count = 10000000 } },
            { { kind = "per_second", price = "1000000" }, { duration = 9100 } },
            { { kind = "per_call", price = "10000000000" } },
          }) do
            local ok, m, err, field = pcall(core.price_eval, c[1], c[2])
            out[#out + 1] = table.concat({ tostring(ok), tostring(m), tostring(err), tostring(field) }, ",")
          end
          local ok, m = pcall(core.price_eval, { kind = "per_unit", price = "1000" }, { count = 9007199 })
          ngx.say(type(jit), " ", table.concat(out, "|"), " ", tostring(ok), ",", string.format("%d", m))
        }
      }
    ]], { cpath = jit_cpath })
    local body, code = http.request(srv.url .. "/price")
    local log = srv.error_log()
    srv.stop()
    assert.equal(200, code, log)
    assert.equal("table true,nil,amount out of range,count|true,nil,amount out of range,duration"
      .. "|true,nil,amount out of range,rule true,9007199000000000\n", body)
  end)

  it("refuses a kind, round or tier_match that is a known name followed by a NUL and more", function()
    -- they were compared with strcmp: "per_call\0 x 100" was per_call, "exact\0" exact
    for _, rule in ipairs({
      { kind = "per_call\0 x 100", price = "1" },
      { kind = "per_second", price = "1", round = "exact\0" },
      { kind = "tiered", tiers = { { seconds = 5, price = "1" } }, tier_match = "ceil\0" },
    }) do
      local ok, err = core.price_check(rule)
      assert.is_nil(ok)
      assert.matches("unknown value", err, 1, true)
    end
  end)
end)

describe("billing.estimate shape", function()
  it("returns {provider, currency, micros, amount, rule, breakdown}", function()
    local q = assert(billing.estimate { provider = "kling", model = "kling-video-o1", mode = "pro", duration = 5,
      image = "https://example.com/a.png" })
    assert.equal("kling", q.provider)
    assert.equal("CNY", q.currency)
    assert.equal(6000000, q.micros)
    assert.equal("integer", math.type(q.micros))
    assert.equal("6", q.amount)
    assert.equal("video/kling-video-o1/pro/reference", q.rule)
    assert.equal("per_second", q.breakdown.kind)
    assert.equal("1.2", q.breakdown.unit_price)
    assert.equal("5", q.breakdown.seconds)
    assert.equal("2026-01-20", q.breakdown.catalog_date)
    assert.matches("seeds/000", q.breakdown.source)
    assert.is_nil(q.usd)
  end)

  it("errors are tables with kind, field and message", function()
    local q, err = billing.estimate { model = "kling-v1" }
    assert.is_nil(q)
    assert.equal("validation", err.kind)
    assert.equal("provider", err.field)
    q, err = billing.estimate { provider = "nobody" }
    assert.is_nil(q)
    assert.equal("provider", err.field)
    assert.matches("nobody", tostring(err))
  end)

  it("refuses shot durations whose sum overflows, never pricing the wrapped-around sum", function()
    -- three shots of about 6.1e15 s add up to 2^64 ms + 10 s: an unchecked + on Lua 5.4 wrapped
    -- to 10 000 ms, the request's duration, and priced 800 credits
    local shots = { { prompt = "a", duration = "6148914691236520.539" },
      { prompt = "b", duration = "6148914691236520.539" }, { prompt = "c", duration = "6148914691236520.538" } }
    local q, err = billing.estimate { provider = "apiinone", model = "kling-v3", mode = "pro", duration = 10,
      multi_shot = true, shot_type = "customize", multi_prompt = shots }
    assert.is_nil(q)
    assert.equal("validation", err.kind)
    assert.equal("multi_prompt[2].duration", err.field)
    assert.matches("out of range", err.message)
  end)

  it("raises on misuse", function()
    assert.has_error(function()
      billing.estimate "kling"
    end)
    assert.has_error(function()
      billing.settle({ provider = "kling" }, 5)
    end)
  end)
end)

describe("kling.money.usage", function()
  local usage = require "kling.money.usage"
  it("reads what a provider says of its outputs leniently: a length that is no length says nothing", function()
    assert.same({ count = 2, duration = "10.1" }, usage.of_task { videos = { { duration = "5.1" }, { duration = 5 } } })
    for _, bad in ipairs { "1e16", "1e400", "-1e400", "nan", "-5", "86400.5", {}, true } do
      local ok, u = pcall(usage.of_task, { videos = { { id = "v", duration = bad } } })
      assert.is_true(ok, tostring(u))
      assert.same({ count = 1 }, u)
    end
    assert.same({ count = 2, duration = "5" }, usage.of_task { videos = { { duration = "5" }, { duration = "1e16" } } })
  end)

  -- kling run downloads every file of a row (kling.task's files): a text-to-audio's audio is
  -- its mp3 and its wav, one audio, priced once (not two audios of twice the length).
  it("prices a row's files as the outputs they are: an audio's mp3 and wav are one audio", function()
    local t = require("kling.task").new({}, { audios = { { url = "https://x/a.mp3", url_mp3 = "https://x/a.mp3",
      url_wav = "https://x/a.wav", duration = 3.5, duration_mp3 = 3.5, duration_wav = 3.5 } } })
    local files = t:files()
    assert.same({ { "mp3", nil }, { "wav", true } }, { { files[1].format, files[1].alt }, { files[2].format,
      files[2].alt } })
    assert.same({ count = 1, duration = "3.5" }, usage.of_outputs(files))
    assert.same(usage.of_task(t), usage.of_outputs(files))
    -- a wav alone is the audio's one file
    local wav = require("kling.task").new({}, { audios = { { url = "https://x/b.wav", url_wav = "https://x/b.wav",
      duration_wav = 2 } } }):files()
    assert.is_nil(wav[1].alt)
    assert.same({ count = 1, duration = "2" }, usage.of_outputs(wav))
  end)
end)

describe("billing.product", function()
  it("makes the catalog's defaults explicit: what a task was made with", function()
    local p = assert(billing.product { endpoint = "videos/text2video", prompt = "x" })
    assert.same({ "kling-v1", "std", 5 }, { p.model, p.mode, p.duration })
    p = assert(billing.product { endpoint = "videos/text2video", model = "kling-v1-6", mode = "pro", duration = 10 })
    assert.same({ "kling-v1-6", "pro", 10 }, { p.model, p.mode, p.duration })
  end)
  it("prices by the request's provider, or opts.provider", function()
    local ev = assert(billing.product({ prompt = "x" }, { provider = "evolink" }))
    assert.equal("kling-v3", ev.model)
    assert.equal("kling-v3", assert(billing.product { provider = "evolink", prompt = "x" }).model)
  end)
  -- A request with an image and no endpoint goes to image2video (the provider's
  -- default_endpoint); it was priced, and its product named, as the catalog's text2video.
  it("an image request without an endpoint is the image2video the provider sends it to", function()
    local img = "https://example.com/a.png"
    assert.equal("videos/image2video", assert(billing.product { prompt = "x", image = img }).endpoint)
    assert.equal("videos/text2video", assert(billing.product { prompt = "x" }).endpoint)
    finally(function() billing.set_catalog("kling", nil) end)
    assert(billing.set_catalog("kling", {
      provider = "kling", date = "2027-01-01", currency = "CNY", endpoint_default = "videos/text2video",
      rules = { { id = "t2v", match = { endpoint = "videos/text2video" }, kind = "per_second", price = "0.3" } },
    }))
    assert.equal("1.5", assert(billing.estimate { provider = "kling", prompt = "x", duration = 5 }).amount)
    local q, err = billing.estimate { provider = "kling", prompt = "x", image = img, duration = 5 }
    assert.is_nil(q)
    assert.equal("unpriced", err.kind)
    assert.matches("videos/image2video", err.message, 1, true)
  end)
  it("refuses unknown options and mistyped facts by name", function()
    assert.has_error(function() billing.product({}, { provder = "kling" }) end)
    local p, err = billing.product { endpoint = "videos/text2video", mode = 1 }
    assert.is_nil(p)
    assert.equal("mode", err.field)
  end)
end)

describe("catalog overrides", function()
  after_each(function()
    billing.set_catalog("kling", nil)
  end)

  it("set_catalog replaces a provider's prices and nil restores them", function()
    assert(billing.set_catalog("kling", {
      provider = "kling", date = "2027-01-01", currency = "CNY", endpoint_default = "videos/text2video",
      rules = { { id = "flat", match = { model = "kling-v1" }, kind = "per_second", price = "0.3" } },
    }))
    assert.equal("1.5", billing.estimate({ provider = "kling", model = "kling-v1", duration = 5 }).amount)
    billing.set_catalog("kling", nil)
    assert.equal("1", billing.estimate({ provider = "kling", model = "kling-v1", duration = 5 }).amount)
  end)

  it("issue 10: two clients with different catalog overrides do not see each other's", function()
    local kling = require "kling"
    local function flat(price)
      return { provider = "kling", date = "2027-01-01", currency = "CNY", endpoint_default = "videos/text2video",
        rules = { { id = "flat", match = { model = "kling-v1" }, kind = "per_second", price = price } } }
    end
    local req = { model = "kling-v1", duration = 5 }
    local a = assert(kling.new { provider = "kling", api_key = "k", catalogs = { kling = flat("0.3") } })
    local b = assert(kling.new { provider = "kling", api_key = "k" })
    local c = assert(kling.new { provider = "kling", api_key = "k" })
    assert(b:set_catalog("kling", flat("0.5")))
    assert.equal("1.5", a:estimate(req).amount)
    assert.equal("2.5", b:estimate(req).amount)
    assert.equal("1", c:estimate(req).amount) -- the shipped catalog
    assert.equal("1", kling.estimate { provider = "kling", model = "kling-v1", duration = 5 }.amount)
    -- The process default (kling.set_catalog) still reaches a client without its own.
    assert(kling.set_catalog("kling", flat("0.7")))
    assert.equal("3.5", c:estimate(req).amount)
    assert.equal("1.5", a:estimate(req).amount)
    assert(b:set_catalog("kling", nil))
    assert.equal("3.5", b:estimate(req).amount)
    -- A bad catalog is refused by name when the client is made.
    local none, err = kling.new { provider = "kling", api_key = "k", catalogs = { kling = { currency = "CNY" } } }
    assert.is_nil(none)
    assert.equal("catalog.rules", err.field)
    assert.has_error(function() billing.estimate(req, { provider = "kling", catalogs = {} }) end)
  end)

  it("refuses malformed catalogs, naming the rule", function()
    local ok, err = billing.set_catalog("kling", {
      date = "2027-01-01", currency = "CNY", rules = { { id = "bad", kind = "per_second", price = "0.1234567" } },
    })
    assert.is_nil(ok)
    assert.equal("validation", err.kind)
    assert.equal("catalog.rules[1]", err.field)
    ok, err = billing.set_catalog("kling", { currency = "CNY", rules = {} })
    assert.is_nil(ok)
    assert.equal("catalog.date", err.field)
    ok, err = billing.set_catalog("kling", { date = "x", currency = "CNY",
      rules = { { id = "r", match = { colour = "red" }, kind = "fixed", price = "1" } } })
    assert.is_nil(ok)
    assert.equal("catalog.rules[1].match.colour", err.field)
  end)

  it("estimate can take a catalog for one call", function()
    local cat = { provider = "x", date = "2027-01-01", currency = "USD",
      rules = { { id = "one", kind = "per_call", price = "0.5" } } }
    local q = assert(billing.estimate({ provider = "kling", endpoint = "audio/tts" }, { catalog = cat }))
    assert.equal("0.5", q.amount)
    assert.equal("USD", q.currency)
  end)

  it("every shipped catalog is well formed and dated", function()
    for _, name in ipairs(billing.providers) do
      local cat = require("kling.prices." .. name)
      assert(billing.check_catalog(name, cat))
      assert.matches("^%d%d%d%d%-%d%d%-%d%d$", cat.date)
      assert.matches("seeds/00%d_", cat.source)
    end
  end)
end)

local function clock()
  local t = 1700000000000
  return function()
    t = t + 1
    return t
  end
end

describe("ledger", function()
  local function ledger(limit, currency)
    return assert(billing.ledger { limit = limit or "50.00", currency = currency or "CNY", clock = clock() })
  end

  it("refuses a bad budget, naming the field", function()
    local l, err = billing.ledger { limit = 50, currency = "CNY" }
    assert.is_nil(l)
    assert.equal("budget.limit", err.field)
    l, err = billing.ledger { limit = "50.001x", currency = "CNY" }
    assert.is_nil(l)
    assert.equal("budget.limit", err.field)
    l, err = billing.ledger { limit = "5" }
    assert.is_nil(l)
    assert.equal("budget.currency", err.field)
  end)

  it("holds the cap with 10000 reservations in flight", function()
    local l = ledger("50.00")
    local quote = assert(billing.estimate { provider = "kling", endpoint = "videos/identify-face" }) -- 0.05
    local ok_count, refused = 0, 0
    for i = 1, 10000 do
      local e, err = l:reserve("task-" .. i, quote)
      if e then
        ok_count = ok_count + 1
      else
        assert.equal("budget", err.kind)
        refused = refused + 1
      end
      assert(l:spent() + l:reserved() <= l:limit())
    end
    assert.equal(1000, ok_count) -- 50.00 / 0.05
    assert.equal(9000, refused)
    assert.equal(50000000, l:reserved())
    assert.equal(0, l:balance())
    assert.equal(1000, l:summary().in_flight)
    -- releasing restores room; settling at a lower actual charge does too
    assert(l:release("task-1"))
    assert(l:release("task-2"))
    assert(l:settle("task-3", 0))
    assert.equal(150000, l:balance())
    assert(l:reserve("late-1", quote))
    assert(l:reserve("late-2", quote))
    assert(l:reserve("late-3", quote))
    local none, err = l:reserve("late-4", quote)
    assert.is_nil(none)
    assert.equal("budget", err.kind)
    assert.matches("would pass the limit of 50", err.message)
  end)

  it("keeps exact totals over thousands of mixed movements", function()
    local l = ledger("1000")
    local seed = 12345
    local function rand(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    end
    local spent, held, open = 0, {}, {}
    for i = 1, 5000 do
      local key = "t" .. i
      local m = rand(2000000) + 1 -- up to 2 units
      local e = l:reserve(key, m)
      local shadow_reserved = 0
      for _, v in pairs(held) do
        shadow_reserved = shadow_reserved + v
      end
      if spent + shadow_reserved + m <= 1000000000 then
        assert.truthy(e)
        held[key] = m
        open[#open + 1] = key
      else
        assert.is_nil(e)
      end
      if #open > 0 and rand(3) == 0 then
        local k = table.remove(open, rand(#open) + 1)
        if rand(2) == 0 then
          local actual = rand(held[k] + 1)
          assert(l:settle(k, actual))
          spent = spent + actual
        else
          assert(l:release(k))
        end
        held[k] = nil
      end
      if i % 500 == 0 then
        local r = 0
        for _, v in pairs(held) do
          r = r + v
        end
        assert.equal(spent, l:spent())
        assert.equal(r, l:reserved())
        assert(l:spent() + l:reserved() <= l:limit())
      end
    end
  end)

  it("settles to the charge from the ACTUAL duration", function()
    local l = ledger("10")
    local req = { provider = "kling", model = "kling-video-o1", mode = "std", duration = 5 }
    local est = assert(billing.estimate(req))
    assert(l:reserve("a", est))
    assert.equal(3000000, l:reserved())
    local actual = assert(billing.settle(req, { duration = "5.041" }))
    local e = assert(l:settle("a", actual, { task_id = "task-123" }))
    assert.equal("3.0246", e.amount)
    assert.equal("3", e.reserved_amount)
    assert.equal("task-123", e.task_id)
    assert.equal(3024600, l:spent())
    assert.equal(0, l:reserved())
    assert.equal("6.9754", l:summary().balance)
  end)

  it("records a charge past the limit (it was incurred) and then refuses more", function()
    local l = ledger("3")
    assert(l:reserve("a", 3000000))
    assert(l:settle("a", 3024600))
    assert.equal(-24600, l:balance())
    local none, err = l:reserve("b", 0 + 1)
    assert.is_nil(none)
    assert.equal("budget", err.kind)
  end)

  it("refuses double settles, releases without reservation, and mixed currencies", function()
    local l = ledger("10")
    assert(l:reserve("a", 1000000))
    local none, err = l:reserve("a", 1)
    assert.is_nil(none)
    assert.equal("task_key", err.field)
    assert(l:settle("a", 1000000))
    none, err = l:settle("a", 1000000)
    assert.is_nil(none)
    assert.equal("task_key", err.field)
    none, err = l:release("zzz")
    assert.is_nil(none)
    assert.equal("task_key", err.field)
    local credits = assert(billing.estimate { provider = "apiinone" })
    none, err = l:reserve("c", credits)
    assert.is_nil(none)
    assert.equal("quote", err.field)
    none, err = l:reserve("d", -5)
    assert.is_nil(none)
    assert.equal("quote", err.field)
    assert.has_error(function()
      l:reserve(nil, 1)
    end)
    none, err = l:reserve("e", 1.5) -- a float is never an amount
    assert.is_nil(none)
    assert.equal("quote", err.field)
  end)

  it("a USD budget counts gateway credits at the seed's rate", function()
    local l = ledger("5.00", "USD")
    local q = assert(billing.estimate { provider = "apiinone" }) -- 300 credits = $3
    assert(l:reserve("a", q))
    assert.equal(3000000, l:reserved())
    local none, err = l:reserve("b", q)
    assert.is_nil(none)
    assert.equal("budget", err.kind)
    local evo = assert(billing.estimate { provider = "evolink", model = "kling-v3", resolution = "720p",
      duration = 5, sound = true }) -- $0.567
    assert(l:reserve("c", evo))
    assert.equal("3.567", l:summary().reserved)
  end)

  it("records every movement with task id and time, as JSON lines that replay", function()
    local seen = {}
    local l = assert(billing.ledger { limit = "20", currency = "CNY", clock = clock(),
      on_entry = function(e, line)
        seen[#seen + 1] = { e.op, line }
      end })
    assert(l:reserve("k1", 3500000, { task_id = "t-1" }))
    assert(l:reserve("k2", 2000000))
    assert(l:reserve("k3", 7000000))
    assert(l:settle("k1", 3500000))
    assert(l:release("k2", { task_id = "t-2" }))
    local entries = l:entries()
    assert.equal(5, #entries)
    assert.same({ "reserve", "reserve", "reserve", "settle", "release" }, {
      entries[1].op, entries[2].op, entries[3].op, entries[4].op, entries[5].op })
    assert.equal("t-1", entries[1].task_id)
    assert.equal("t-1", entries[4].task_id)
    assert.equal("t-2", entries[5].task_id)
    assert.equal(1700000000001, entries[1].time_ms)
    assert.is_true(entries[5].time_ms > entries[1].time_ms)
    assert.equal(5, #seen)
    assert.equal("settle", seen[4][1])
    local decoded = json.decode(seen[4][2])
    assert.equal("3.5", decoded.amount)
    assert.equal("k1", decoded.task_key)

    local lines = l:lines()
    assert.equal(5, #lines)
    assert.equal(2, #l:lines(4))
    local r = assert(billing.ledger { limit = "20", currency = "CNY", lines = lines })
    assert.equal(l:spent(), r:spent())
    assert.equal(l:reserved(), r:reserved())
    assert.equal(7000000, r:reservation("k3"))
    assert.equal(1, r:summary().in_flight)
    assert.equal(lines[5], r:lines()[5])
    -- the restored ledger goes on where the first stopped
    assert(r:settle("k3", 6500000))
    assert.equal(10000000, r:spent())
    local none, err = r:reserve("k4", 10000001)
    assert.is_nil(none)
    assert.equal("budget", err.kind)
  end)

  it("refuses lines that do not follow from the ledger", function()
    local l, err = billing.ledger { limit = "1", currency = "CNY", lines = {
      json.encode { op = "release", task_key = "x", amount = "1", currency = "CNY" } } }
    assert.is_nil(l)
    assert.equal("lines[1].task_key", err.field)
    l, err = billing.ledger { limit = "1", currency = "CNY", lines = { "{not json" } }
    assert.is_nil(l)
    assert.equal("lines[1].line", err.field)
    l, err = billing.ledger { limit = "1", currency = "USD", lines = {
      json.encode { op = "reserve", task_key = "x", amount = "1", currency = "CNY" } } }
    assert.is_nil(l)
    assert.equal("lines[1].line.currency", err.field)
  end)

  it("keeps amounts beyond 2^53 micro-units exact through JSON lines", function()
    local l = ledger("9000000000000")
    local big = 8999999999999999999 -- 8999999999999.999999 units
    assert(l:reserve("big", big))
    local r = assert(billing.ledger { limit = "9000000000000", currency = "CNY", lines = l:lines() })
    assert.equal(big, r:reserved())
  end)
end)

describe("the pricing calls' options", function()
  -- catalog = 5 raised "attempt to index a number value" from deep inside; providers = "kling"
  -- asked nobody and said nothing (no quote, nothing unavailable)
  it("raise naming a catalog that is no table or providers that are no list of names", function()
    local kling = require "kling"
    local req = { provider = "kling", model = "kling-v2-6", mode = "pro", duration = 5 }
    assert.has_error(function()
      kling.estimate(req, { catalog = 5 })
    end, "kling.estimate: catalog must be a catalog table (got a number (5))")
    assert.has_error(function()
      kling.settle(req, { duration = "5" }, { catalog = "kling" })
    end, 'kling.settle: catalog must be a catalog table (got a string ("kling"))')
    assert.has_error(function()
      kling.quote(req, { providers = "kling" })
    end, 'kling.quote: providers must be a list of provider names (got a string ("kling"))')
    assert.has_error(function()
      kling.quote(req, { providers = { kling = true } })
    end, "kling.quote: providers must be a list of provider names (got an object)")
    local list = kling.quote(req, { providers = { "kling" } })
    assert.are.equal("kling", list[1].provider)
  end)
end)
