-- Every price row of seeds 001 (API in One, credits), 002 (apimodels, USD) and 003 (EvoLink,
-- credits), and seed 004's absence of prices. Expected amounts are worked out by hand from
-- the seeds: credits per second x seconds (x the EvoLink factor), USD rows as printed.
local billing = require "kling.billing"

local function priced(provider, req)
  req.provider = provider
  local q, err = billing.estimate(req)
  assert(q, err and tostring(err))
  assert.equal("integer", math.type(q.micros))
  return q
end

local function fails(provider, req, kind, field)
  req.provider = provider
  local q, err = billing.estimate(req)
  assert.is_nil(q)
  assert.equal(kind, err.kind)
  assert.equal(field, err.field)
  return err
end

describe("seed 001 API in One (credits per second, 100 credits = $1.00)", function()
  -- { mode, sound, seconds, credits, usd }
  local rows = {
    { "std", false, 5, "200", "2" },    -- 40/s
    { "std", true, 5, "300", "3" },     -- 60/s: the documented default, "300 credits (~$3.00)"
    { "pro", false, 5, "270", "2.7" },  -- 54/s
    { "pro", true, 5, "400", "4" },     -- 80/s
    { "std", false, 3, "120", "1.2" },  -- the cheapest: "120 credits (~$1.20)"
    { "pro", true, 15, "1200", "12" },  -- the dearest: "1200 credits (~$12.00)"
    { "std", true, 10, "600", "6" },
    { "pro", false, 7, "378", "3.78" },
  }
  for _, row in ipairs(rows) do
    local mode, sound, seconds, credits, usd = table.unpack(row)
    it(string.format("%s sound=%s %d s = %s credits ($%s)", mode, tostring(sound), seconds, credits, usd), function()
      local q = priced("apiinone", { model = "kling-3", mode = mode, sound = sound, duration = seconds })
      assert.equal("credits", q.currency)
      assert.equal(credits, q.amount)
      assert.equal(usd, q.usd.amount)
    end)
  end

  it("applies its documented defaults: kling-v3, std, 5 s, sound on", function()
    local q = priced("apiinone", {})
    assert.equal("300", q.amount)
    assert.equal("kling-3/std/sound", q.rule)
    assert.equal("3", q.usd.amount)
    assert.equal("400", priced("apiinone", { mode = "pro" }).amount)
    assert.equal("200", priced("apiinone", { sound = false, endpoint = "videos/text2video" }).amount)
  end)

  it("settles a delivered clip by its whole seconds", function()
    local req = { provider = "apiinone", mode = "std", sound = true, duration = 5 }
    assert.equal("300", billing.settle(req, { duration = "5.041" }).amount)
    assert.equal("360", billing.settle(req, { duration = "5.5" }).amount) -- 6 s x 60
  end)

  it("prices a multi-shot request by its total", function()
    assert.equal("560", priced("apiinone", {
      mode = "pro", multi_shot = true,
      multi_prompt = { { prompt = "a", duration = 3 }, { prompt = "b", duration = 4 } },
    }).amount) -- 80 x 7
  end)

  it("refuses durations outside 3-15 s", function()
    fails("apiinone", { duration = 2 }, "validation", "duration")
    fails("apiinone", { duration = 16 }, "validation", "duration")
  end)

  it("does not price what it does not serve", function()
    fails("apiinone", { model = "kling-v2-6", mode = "pro", duration = 5 }, "unpriced", nil)
    fails("apiinone", { endpoint = "videos/motion-control", model = "kling-v3", duration = 5 }, "unpriced", nil)
  end)
end)

describe("seed 002 apimodels (USD)", function()
  -- kling-v2-6: { mode, sound, voice, seconds, usd }
  local v26 = {
    { "std", false, false, 5, "0.0159" },
    { "std", false, false, 10, "0.032" },
    { "pro", false, false, 5, "0.0267" },
    { "pro", false, false, 10, "0.0531" },
    { "pro", true, false, 5, "0.0531" },
    { "pro", true, false, 10, "0.1064" },
    { "pro", true, true, 5, "0.0639" },
    { "pro", true, true, 10, "0.1275" },
  }
  for _, row in ipairs(v26) do
    local mode, sound, voice, seconds, usd = table.unpack(row)
    it(string.format("kling-v2-6 %s sound=%s voice=%s %d s = $%s", mode, tostring(sound), tostring(voice),
      seconds, usd), function()
      local q = priced("apimodels", { model = "kling-v2-6", mode = mode, sound = sound, duration = seconds,
        voice_list = voice and { { voice_id = "v" } } or nil })
      assert.equal("USD", q.currency)
      assert.equal(usd, q.amount)
      assert.equal(usd, q.usd.amount)
    end)
  end

  -- kling-v3 per second: { mode, sound, seconds, usd }
  local v3 = {
    { "std", false, 5, "0.3165" },  -- 0.0633 x 5
    { "std", true, 5, "0.478" },    -- 0.0956 x 5
    { "pro", false, 5, "0.4265" },  -- 0.0853 x 5
    { "pro", true, 5, "0.64" },     -- 0.1280 x 5
    { "std", false, 3, "0.1899" },  -- 0.0633 x 3
    { "pro", true, 15, "1.92" },    -- 0.1280 x 15
  }
  for _, row in ipairs(v3) do
    local mode, sound, seconds, usd = table.unpack(row)
    it(string.format("kling-v3 %s sound=%s %d s = $%s", mode, tostring(sound), seconds, usd), function()
      assert.equal(usd, priced("apimodels", { model = "kling-v3", mode = mode, sound = sound,
        duration = seconds }).amount)
    end)
  end

  -- motion control per second: { version, resolution, seconds, usd }
  local motion = {
    { "kling-v2-6", "720p", 10, "0.6" },   -- 0.06 x 10
    { "kling-v2-6", "1080p", 10, "1" },    -- 0.10 x 10
    { "kling-v3", "720p", 10, "1.2" },     -- 0.12 x 10
    { "kling-v3", "1080p", 10, "1.5" },    -- 0.15 x 10
    { "kling-v3", "1080p", 30, "4.5" },    -- up to 30 s
    { "kling-v2-6", "720p", 1, "0.06" },
  }
  for _, row in ipairs(motion) do
    local model, resolution, seconds, usd = table.unpack(row)
    it(string.format("motion control %s %s %d s = $%s", model, resolution, seconds, usd), function()
      assert.equal(usd, priced("apimodels", { endpoint = "videos/motion-control", model = model,
        resolution = resolution, duration = seconds }).amount)
    end)
  end

  it("issue 11.7: motion control as the gateway is asked for it (kling-motion-control) is priced per second "
    .. "by resolution", function()
    local req = { endpoint = "videos/motion-control", duration = 10 }
    for resolution, usd in pairs { ["720p"] = "0.6", ["1080p"] = "1" } do
      req.resolution = resolution
      local q = priced("apimodels", req)
      assert.equal(usd, q.amount)
      assert.equal("motion-control/kling-motion-control/" .. resolution, q.rule)
    end
    req.resolution = nil
    assert.equal("1", priced("apimodels", { endpoint = "videos/motion-control", mode = "pro", duration = 10 }).amount)
    -- The request the provider builds (model kling-motion-control) prices the same.
    local P = require("kling.providers").get("apimodels")
    local mc = { image = "https://example.com/a.png", motion_video = "https://example.com/m.mp4",
      resolution = "1080p", duration = 8 }
    assert.is_nil(P.validate(mc, "videos/motion-control"))
    local body = P.build(mc, "videos/motion-control").body
    assert.equal("0.8", priced("apimodels", { endpoint = "videos/motion-control", model = body.model,
      resolution = body.resolution, duration = 8 }).amount)
    fails("apimodels", { endpoint = "videos/motion-control", duration = 10 }, "validation", "resolution")
  end)

  it("takes the motion-control resolution from the mode (pro = 1080p) and refuses more than 30 s", function()
    assert.equal("1.5", priced("apimodels", { endpoint = "videos/motion-control", model = "kling-v3",
      mode = "pro", duration = 10 }).amount)
    fails("apimodels", { endpoint = "videos/motion-control", model = "kling-v3", resolution = "720p",
      duration = 31 }, "validation", "duration")
    fails("apimodels", { endpoint = "videos/motion-control", model = "kling-v3", duration = 10 },
      "validation", "resolution")
  end)

  it("needs the mode (no documented default) and prices no std sound for kling-v2-6", function()
    fails("apimodels", { model = "kling-v2-6", duration = 5 }, "validation", "mode")
    fails("apimodels", { model = "kling-v2-6", mode = "std", sound = true, duration = 5 }, "unpriced", nil)
    fails("apimodels", { model = "kling-v2-6", mode = "pro", sound = false, voice_list = { { voice_id = "v" } },
      duration = 5 }, "validation", "voice_list")
    fails("apimodels", { model = "kling-v2-6", mode = "pro", duration = 7 }, "validation", "duration")
    fails("apimodels", { model = "kling-v3", mode = "pro", duration = 2 }, "validation", "duration")
  end)

  it("settles kling-v3 from the actual duration in whole seconds, motion control to the ms", function()
    local req = { provider = "apimodels", model = "kling-v3", mode = "std", duration = 5 }
    assert.equal("0.3165", billing.settle(req, { duration = "5.041" }).amount) -- 5 s
    assert.equal("0.3798", billing.settle(req, { duration = "5.5" }).amount)   -- 6 s x 0.0633
    local mc = { provider = "apimodels", endpoint = "videos/motion-control", model = "kling-v2-6",
      resolution = "720p", duration = 5 }
    assert.equal("0.30246", billing.settle(mc, { duration = "5.041" }).amount) -- 0.06 x 5.041
    assert.equal("0.00006", billing.settle(mc, { duration = "0.001" }).amount)   -- one millisecond
    assert.equal("0.0159", billing.settle({ provider = "apimodels", model = "kling-v2-6", mode = "std",
      duration = 5 }, { duration = "5.1" }).amount)
  end)
end)

describe("seed 003 EvoLink (5.4 credits per second x factor, $0.014 per credit)", function()
  -- { resolution, sound, seconds, credits, usd }
  local rows = {
    { "720p", false, 5, "27", "0.378" },       -- 5.4 x 5 x 1.0
    { "720p", true, 5, "40.5", "0.567" },      -- x 1.5
    { "1080p", false, 5, "35.991", "0.503874" }, -- x 1.333
    { "1080p", true, 5, "54", "0.756" },       -- x 2.0
    { "720p", false, 3, "16.2", "0.2268" },
    { "1080p", true, 15, "162", "2.268" },
    { "1080p", false, 10, "71.982", "1.007748" },
    { "720p", true, 15, "121.5", "1.701" },
  }
  for _, row in ipairs(rows) do
    local resolution, sound, seconds, credits, usd = table.unpack(row)
    it(string.format("%s sound=%s %d s = %s credits ($%s)", resolution, tostring(sound), seconds, credits, usd),
      function()
        local q = priced("evolink", { model = "kling-v3", resolution = resolution, sound = sound, duration = seconds })
        assert.equal("credits", q.currency)
        assert.equal(credits, q.amount)
        assert.equal(usd, q.usd.amount)
      end)
  end

  it("accepts its own model ids and takes the resolution from the mode", function()
    assert.equal("27", priced("evolink", { model = "kling-v3-text-to-video", resolution = "720p",
      duration = 5 }).amount)
    assert.equal("35.991", priced("evolink", { model = "kling-v3-image-to-video", mode = "pro", duration = 5,
      image = "https://example.com/a.png" }).amount)
    fails("evolink", { model = "kling-v3", duration = 5 }, "validation", "resolution")
  end)

  it("bills less than 3 s as 3 s when settling, and refuses asking for it", function()
    local req = { provider = "evolink", model = "kling-v3", resolution = "720p", duration = 3 }
    local q = assert(billing.settle(req, { duration = 2 }))
    assert.equal("16.2", q.amount)
    assert.is_true(q.breakdown.minimum_applied)
    assert.equal("3", q.breakdown.billed_seconds)
    assert.equal("16.2", billing.settle(req, { duration = "2.999" }).amount)
    assert.equal("16.2", billing.settle(req, { duration = 3 }).amount)
    assert.equal("16.2", billing.settle(req, { duration = "3.499" }).amount) -- 3 s
    assert.equal("21.6", billing.settle(req, { duration = "3.5" }).amount)   -- 4 s x 5.4
    req.resolution, req.sound = "1080p", true
    assert.equal("32.4", billing.settle(req, { duration = "2.5" }).amount)   -- 3 s x 5.4 x 2
    fails("evolink", { model = "kling-v3", resolution = "720p", duration = 2 }, "validation", "duration")
    fails("evolink", { model = "kling-v3", resolution = "720p", duration = 16 }, "validation", "duration")
  end)

  it("custom elements: 1 credit ($0.014) per creation", function()
    local q = priced("evolink", { model = "kling-custom-element" })
    assert.equal("1", q.amount)
    assert.equal("0.014", q.usd.amount)
    assert.equal("1", priced("evolink", { endpoint = "general/custom-elements" }).amount)
  end)

  it("leaves models with unstated factors unpriced", function()
    fails("evolink", { model = "kling-o3-text-to-video", resolution = "720p", duration = 5 }, "unpriced", nil)
  end)
end)

describe("seed 004 compat gateway (no prices)", function()
  it("is unpriced for everything, never 0", function()
    for _, req in ipairs {
      { model = "kling-v3-std-silent", duration = 5 },
      { model = "kling-v3-pro-audio", duration = 10 },
      {},
    } do
      local err = fails("compat", req, "unpriced", nil)
      assert.matches("seed 004", err.message)
    end
  end)

  it("is priced once the user supplies a catalog", function()
    assert(billing.set_catalog("compat", {
      provider = "compat", date = "2026-11-01", currency = "USD", rules = {
        { id = "mine", match = { model = "kling-v3-std-silent" }, kind = "per_second", price = "0.07" },
      },
    }))
    finally(function()
      billing.set_catalog("compat", nil)
    end)
    local q = priced("compat", { model = "kling-v3-std-silent", duration = 5 })
    assert.equal("0.35", q.amount)
    assert.equal("0.35", q.usd.amount)
    assert.equal("2026-11-01", q.breakdown.catalog_date)
    fails("compat", { model = "kling-v3-pro-audio", duration = 5 }, "unpriced", nil)
  end)
end)

describe("quote across providers", function()
  local function lines(list)
    local got = {}
    for i, q in ipairs(list) do
      got[i] = q.provider .. " " .. q.amount .. " " .. q.currency_id
    end
    return got
  end

  it("groups kling-v3 std 5 s with sound by currency, listing the providers that cannot price it", function()
    local list = billing.quote { model = "kling-v3", mode = "std", duration = 5, sound = true }
    assert.is_false(list.ranked)
    assert.matches("not ranked against each other", list.note)
    assert.same({
      "apimodels 0.478 USD",
      "apiinone 300 apiinone-credits",
      "evolink 40.5 evolink-credits",  -- std = 720p, sound: 5.4 x 5 x 1.5
    }, lines(list))
    local out = {}
    for _, u in ipairs(list.unavailable) do
      out[#out + 1] = u.provider .. ":" .. u.error.kind
    end
    assert.same({ "kling:unpriced", "compat:unpriced" }, out)
  end)

  it("issue 11.8: ranks across currencies only with a rate for each currency", function()
    local req = { model = "kling-v2-6", mode = "pro", duration = 5 }
    local list = billing.quote(req)
    assert.is_false(list.ranked)
    assert.same({ "kling 2.5 CNY", "apimodels 0.0267 USD" }, lines(list)) -- CNY group, then USD
    list = billing.quote(req, { rates = { CNY = "0.0100" } })
    assert.is_true(list.ranked)
    assert.same({ "kling 2.5 CNY", "apimodels 0.0267 USD" }, lines(list)) -- $0.025 < $0.0267
    list = billing.quote(req, { rates = { CNY = "0.14" } })
    assert.same({ "apimodels 0.0267 USD", "kling 2.5 CNY" }, lines(list)) -- $0.35
    -- The gateways' credits are two currencies, never summed or ranked as one.
    list = billing.quote({ model = "kling-v3", duration = 5 }, { rates = { ["apiinone-credits"] = "0.01" } })
    assert.is_false(list.ranked)
    assert.equal(3, #list.groups)
  end)

  it("issue 11.8: quotes the same product everywhere: defaults made explicit first", function()
    -- API in One makes sound unless told otherwise: the quote asks it for the silent clip the
    -- others make by default (40 credits/s, not 60).
    local list = billing.quote { model = "kling-v3", duration = 5 }
    assert.same({ sound = false, mode = "std" }, list.assumed)
    assert.same({ "apimodels 0.3165 USD", "apiinone 200 apiinone-credits", "evolink 27 evolink-credits" },
      lines(list))
    -- 1080p is pro everywhere (API in One priced it as its default std before).
    list = billing.quote { model = "kling-v3", duration = 5, resolution = "1080p" }
    assert.same({ sound = false, mode = "pro" }, list.assumed)
    assert.same({ "apimodels 0.4265 USD", "apiinone 270 apiinone-credits", "evolink 35.991 evolink-credits" },
      lines(list))
  end)

  it("issue 11.8: says which field a provider cannot honour", function()
    local list = billing.quote { model = "kling-v3", duration = 5, image = "https://example.com/a.png",
      last_image = "https://example.com/b.png" }
    local cannot = {}
    for _, u in ipairs(list.unavailable) do
      cannot[u.provider] = u.field
    end
    assert.equal("last_image", cannot.apiinone)
    assert.equal("last_image", cannot.apimodels)
    assert.same({ "evolink 27 evolink-credits" }, lines(list))
  end)

  it("asks only the providers named", function()
    local list = billing.quote({ duration = 5, sound = true }, { providers = { "apiinone" } })
    assert.equal(1, #list)
    assert.equal("300", list[1].amount)
    assert.equal(0, #list.unavailable)
  end)
end)
