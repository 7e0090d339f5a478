local billing = require "kling.billing"
local price_cache = require "kling.gateway.price_cache"

-- A create as the gateway prices it (kling.gateway.api admit).
local function req(over)
  local r = { provider = "kling", endpoint = "videos/text2video", method = "POST", model = "kling-v1", mode = "std",
    duration = 5, prompt = "a paper boat on a rain-soaked street" }
  for k, v in pairs(over or {}) do
    r[k] = v
  end
  return r
end

describe("kling.gateway.price_cache", function()
  after_each(function()
    billing.set_catalog("kling", nil)
  end)

  it("issue 12.5: a cached price is the catalog's, and the prompt does not change the key", function()
    local c = price_cache.new()
    local q1 = assert(c:estimate(req()))
    assert.equal(billing.estimate(req()).micros, q1.micros)
    local q2 = assert(c:estimate(req { prompt = "something else entirely" }))
    assert.equal(q1, q2) -- served from the cache
    assert.equal(price_cache.key(req()), price_cache.key(req { prompt = "x", negative_prompt = "y" }))
  end)

  it("issue 12.5: a request differing only in a priced field is priced anew", function()
    local c = price_cache.new()
    local base = assert(c:estimate(req())).micros
    for _, over in ipairs { { mode = "pro" }, { duration = 10 }, { model = "kling-v2-master" }, { sound = true },
      { duration = 5.000000000000001 }, { resolution = "1080p" }, { n = 2 } } do
      local want, werr = billing.estimate(req(over))
      local got, gerr = c:estimate(req(over))
      if want then
        assert.equal(want.micros, got and got.micros, next(over))
      else
        assert.is_nil(got, next(over))
        assert.equal(werr.field, gerr.field)
      end
      assert.not_equal(price_cache.key(req()), price_cache.key(req(over)), next(over))
    end
    assert.equal(base, c:estimate(req()).micros)
    assert.not_equal(base, c:estimate(req { duration = 10 }).micros)
  end)

  it("issue 12.5: a catalog override is priced by the new catalog, not the cache", function()
    local c = price_cache.new()
    assert.equal(1000000, c:estimate(req()).micros)
    assert(billing.set_catalog("kling", {
      provider = "kling", date = "2027-01-01", currency = "CNY", endpoint_default = "videos/text2video",
      rules = { { id = "flat", match = { model = "kling-v1" }, kind = "per_second", price = "0.3" } },
    }))
    assert.equal(1500000, c:estimate(req()).micros)
    billing.set_catalog("kling", nil)
    assert.equal(1000000, c:estimate(req()).micros)
  end)

  it("issue 12.5: refusals are not kept, and tables or long strings are never keyed", function()
    local c = price_cache.new()
    local q, err = c:estimate(req { duration = 7 })
    assert.is_nil(q)
    assert.equal("validation", err.kind)
    assert.is_nil(price_cache.key(req { image_list = { { image = "https://example.com/a.png" } } }))
    assert.is_nil(price_cache.key(req { image = ("A"):rep(price_cache.LONG + 1) }))
    -- Field names and values cannot run into each other.
    assert.not_equal(price_cache.key { ab = "c" }, price_cache.key { a = "bc" })
    assert.not_equal(price_cache.key { a = "1" }, price_cache.key { a = 1 })
  end)

  it("issue 12.5: the cache is bounded", function()
    local c = price_cache.new()
    for i = 1, price_cache.MAX + 10 do
      assert(c:estimate(req { aspect_ratio = "16:9", external_seed = tostring(i) }))
    end
    for _, entry in pairs(c.by_catalog) do
      assert.is_true(entry.n <= price_cache.MAX)
    end
  end)
end)
