-- Every row of every price table of seed 000 (official Kling API, CNY). Each expected amount is
-- worked out by hand from the seed's row: a per-second row times the duration asked, a tier
-- row as printed, a per-image row times n.
local billing = require "kling.billing"

local function estimate(req)
  req.provider = req.provider or "kling"
  return billing.estimate(req)
end

local function amount(req)
  local q, err = estimate(req)
  assert(q, err and tostring(err))
  assert.equal("CNY", q.currency)
  assert.equal("integer", math.type(q.micros))
  return q.amount
end

local function fails(req, kind, field)
  local q, err = estimate(req)
  assert.is_nil(q)
  assert.equal(kind, err.kind)
  assert.equal(field, err.field)
  return err
end

local VIDEO = { "videos/text2video", "videos/omni-video", "videos/image2video", "videos/multi-image2video" }

describe("seed 000 1.1-1.4 video tables (text2video, omni-video, image2video, multi-image2video)", function()
  -- { model, mode, sound, voice, reference, duration, expected CNY }
  local rows = {
    { "kling-video-o1", "std", nil, false, false, 5, "3" },     -- 0.6/s x 5
    { "kling-video-o1", "std", nil, false, true, 5, "4.5" },    -- 0.9/s x 5
    { "kling-video-o1", "pro", nil, false, false, 5, "4" },     -- 0.8/s x 5
    { "kling-video-o1", "pro", nil, false, true, 5, "6" },      -- 1.2/s x 5
    { "kling-video-o1", "std", nil, false, false, 7, "4.2" },   -- 0.6/s x 7
    { "kling-video-o1", "std", nil, false, true, 10, "9" },     -- 0.9/s x 10
    { "kling-video-o1", "pro", nil, false, false, 3, "2.4" },   -- 0.8/s x 3
    { "kling-video-o1", "pro", nil, false, true, 10, "12" },    -- 1.2/s x 10
    { "kling-v1", "std", nil, false, false, 5, "1" },
    { "kling-v1", "std", nil, false, false, 10, "2" },
    { "kling-v1", "pro", nil, false, false, 5, "3.5" },
    { "kling-v1", "pro", nil, false, false, 10, "7" },
    { "kling-v1-5", "std", nil, false, false, 5, "2" },
    { "kling-v1-5", "std", nil, false, false, 10, "4" },
    { "kling-v1-5", "pro", nil, false, false, 5, "3.5" },
    { "kling-v1-5", "pro", nil, false, false, 10, "7" },
    { "kling-v1-6", "std", nil, false, false, 5, "2" },
    { "kling-v1-6", "std", nil, false, false, 10, "4" },
    { "kling-v1-6", "pro", nil, false, false, 5, "3.5" },
    { "kling-v1-6", "pro", nil, false, false, 10, "7" },
    { "kling-v2-0", "master", nil, false, false, 5, "10" },
    { "kling-v2-0", "master", nil, false, false, 10, "20" },
    { "kling-v2-master", nil, nil, false, false, 5, "10" },
    { "kling-v2-master", nil, nil, false, false, 10, "20" },
    { "kling-v2-1", "std", nil, false, false, 5, "2" },
    { "kling-v2-1", "std", nil, false, false, 10, "4" },
    { "kling-v2-1", "pro", nil, false, false, 5, "3.5" },
    { "kling-v2-1", "pro", nil, false, false, 10, "7" },
    { "kling-v2-1", "master", nil, false, false, 5, "10" },
    { "kling-v2-1", "master", nil, false, false, 10, "20" },
    { "kling-v2-1-master", nil, nil, false, false, 5, "10" },
    { "kling-v2-1-master", nil, nil, false, false, 10, "20" },
    { "kling-v2-5-turbo", "std", nil, false, false, 5, "1.5" },
    { "kling-v2-5-turbo", "std", nil, false, false, 10, "3" },
    { "kling-v2-5-turbo", "pro", nil, false, false, 5, "2.5" },
    { "kling-v2-5-turbo", "pro", nil, false, false, 10, "5" },
    { "kling-v2-6", "pro", false, false, false, 5, "2.5" },     -- silent
    { "kling-v2-6", "pro", nil, false, false, 10, "5" },        -- sound unspecified: off
    { "kling-v2-6", "pro", true, false, false, 5, "5" },        -- sound, no voice
    { "kling-v2-6", "pro", true, false, false, 10, "10" },
    { "kling-v2-6", "pro", true, true, false, 5, "6" },         -- sound and a voice
    { "kling-v2-6", "pro", true, true, false, 10, "12" },
  }
  local P = require("kling.providers").get("kling")
  for _, endpoint in ipairs(VIDEO) do
    for _, row in ipairs(rows) do
      local model, mode, sound, voice, ref, duration, want = table.unpack(row)
      -- issue 11.6: on text2video and image2video a row the validator refuses (seed 000's
      -- kling-v2-0 / mode master spelling, o1 outside 5 or 10 s) is not priced there.
      local refused = P.price_check({ model = model, mode = mode, sound = sound, duration = duration,
        voice_list = voice and { { voice_id = "v1" } } or nil }, endpoint)
      if refused then
        want = nil
      end
      it(string.format("%s %s %s sound=%s voice=%s ref=%s %d s = %s", endpoint, model, tostring(mode),
        tostring(sound), tostring(voice), tostring(ref), duration, want), function()
        local price = want and amount or function(req)
          req.provider = "kling"
          local q = billing.estimate(req)
          return q and q.amount
        end
        assert.equal(want, price {
          endpoint = endpoint, model = model, mode = mode, sound = sound, duration = duration,
          voice_list = voice and { { voice_id = "v1" } } or nil,
          image_list = ref and { { image_url = "https://example.com/a.png" } } or nil,
        })
      end)
    end
  end

  it("counts image, video_list and element_list as references for o1", function()
    local base = { endpoint = "videos/omni-video", model = "kling-video-o1", mode = "std", duration = 5 }
    local function with(k, v)
      local r = {}
      for a, b in pairs(base) do
        r[a] = b
      end
      r[k] = v
      return r
    end
    assert.equal("4.5", amount(with("image", "https://example.com/a.png")))
    assert.equal("4.5", amount(with("video_list", { { video_url = "https://example.com/a.mp4" } })))
    assert.equal("4.5", amount(with("element_list", { { element_id = 1 } })))
    assert.equal("3", amount(with("image_list", {}))) -- an empty list is no reference
  end)

  it("applies the official defaults: kling-v1, std, 5 s, text2video; omni-video pro", function()
    local q = assert(estimate {})
    assert.equal("1", q.amount)
    assert.equal("video/kling-v1/std", q.rule)
    -- omni-video's own default mode is pro (the simulator follows the docs): 0.8/s x 5 s
    assert.equal("4", amount { endpoint = "videos/omni-video" })
  end)

  it("maps resolution to mode where no mode is given (1080p is pro)", function()
    assert.equal("3.5", amount { model = "kling-v1-6", resolution = "1080p", duration = 5 })
  end)

  it("prices a multi-shot request by the sum of its shots", function()
    -- (on omni-video: text2video's multi-shot is kling-v3's, which seed 000 does not price)
    assert.equal("6", amount {
      endpoint = "videos/omni-video", model = "kling-video-o1", mode = "std", multi_shot = true,
      multi_prompt = {
        { prompt = "a", duration = 3 }, { prompt = "b", duration = "4" }, { prompt = "c", duration = 3 },
      },
    }) -- 0.6 x 10
    assert.equal("4", amount {
      endpoint = "videos/omni-video", model = "kling-v1-6", mode = "std", multi_shot = true, duration = 10,
      multi_prompt = { { prompt = "a", duration = 5 }, { prompt = "b", duration = 5 } },
    })
  end)

  it("refuses durations off the 5 s / 10 s tiers, naming the field", function()
    local err = fails({ model = "kling-v1", mode = "std", duration = 7 }, "validation", "duration")
    assert.matches("5, 10", err.message)
    fails({ model = "kling-v2-5-turbo", mode = "pro", duration = 4 }, "validation", "duration")
    fails({ model = "kling-v2-5-turbo", mode = "pro", duration = 11 }, "validation", "duration")
    fails({ model = "kling-v1", duration = "five" }, "validation", "duration")
    fails({ model = "kling-v1", duration = -5 }, "validation", "duration")
  end)

  it("refuses a multi-shot total that disagrees with duration, or a shot without one", function()
    fails({
      model = "kling-v1-6", mode = "std", multi_shot = true, duration = 10,
      multi_prompt = { { prompt = "a", duration = 5 }, { prompt = "b", duration = 4 } },
    }, "validation", "duration")
    fails({
      model = "kling-v1-6", mode = "std", multi_shot = true,
      multi_prompt = { { prompt = "a", duration = 5 }, { prompt = "b" } },
    }, "validation", "multi_prompt[2].duration")
  end)

  it("refuses a voice without sound on kling-v2-6", function()
    fails({ model = "kling-v2-6", mode = "pro", duration = 5, sound = false, voice_list = { { voice_id = "x" } } },
      "validation", "voice_list")
    fails({ model = "kling-v2-6", mode = "pro", duration = 5, sound = "on" }, "validation", "sound")
  end)

  it("leaves prices the seed does not give unpriced, never 0", function()
    local err = fails({ model = "kling-v2-6", mode = "std", duration = 5 }, "unpriced", nil)
    assert.matches("kling%-v2%-6", err.message)
    fails({ model = "kling-v3", mode = "pro", duration = 5 }, "unpriced", nil)
    -- issue 11.6: a mode the validator refuses is not priced either
    fails({ model = "kling-v1", mode = "master", duration = 5 }, "validation", "mode")
  end)
end)

describe("seed 000 1.5 motion control (per second)", function()
  it("kling-v2-6 std 0.5/s, pro 0.8/s", function()
    local req = { endpoint = "videos/motion-control", model = "kling-v2-6" }
    req.mode, req.duration = "std", 10
    assert.equal("5", amount(req))
    req.mode, req.duration = "pro", 10
    assert.equal("8", amount(req))
    req.mode, req.duration = "std", 7
    assert.equal("3.5", amount(req))
    req.mode, req.duration = "pro", 30
    assert.equal("24", amount(req))
  end)

  it("needs the model and the duration", function()
    fails({ endpoint = "videos/motion-control", mode = "std", duration = 5 }, "validation", "model")
    fails({ endpoint = "/v1/videos/motion-control", model = "kling-v2-6", mode = "std", duration = false },
      "validation", "duration")
  end)
end)

describe("seed 000 1.6 multi-elements", function()
  for _, row in ipairs {
    { "std", 5, "3" }, { "std", 10, "6" }, { "pro", 5, "5" }, { "pro", 10, "10" },
  } do
    it(string.format("kling-v1-6 %s %d s = %s", row[1], row[2], row[3]), function()
      assert.equal(row[3], amount { endpoint = "videos/multi-elements", model = "kling-v1-6", mode = row[1],
        duration = row[2] })
    end)
  end
  it("defaults to kling-v1-6", function()
    assert.equal("5", amount { endpoint = "videos/multi-elements", mode = "pro", duration = 5 })
  end)
end)

describe("seed 000 1.7 video-extend (one price for 4~5 s)", function()
  for _, row in ipairs {
    { "kling-v1", "std", "1" }, { "kling-v1", "pro", "3.5" },
    { "kling-v1-5", "std", "2" }, { "kling-v1-5", "pro", "3.5" },
    { "kling-v1-6", "std", "2" }, { "kling-v1-6", "pro", "3.5" },
  } do
    it(string.format("%s %s = %s", row[1], row[2], row[3]), function()
      local req = { endpoint = "videos/video-extend", model = row[1], mode = row[2] }
      assert.equal(row[3], amount(req))
      req.duration = 4
      assert.equal(row[3], amount(req))
      req.duration = 5
      assert.equal(row[3], amount(req))
    end)
  end
  it("refuses an extension outside 4~5 s and needs the extended video's model", function()
    fails({ endpoint = "videos/video-extend", model = "kling-v1", duration = 6 }, "validation", "duration")
    fails({ endpoint = "videos/video-extend", model = "kling-v1", duration = "3.999" }, "validation", "duration")
    fails({ endpoint = "videos/video-extend", mode = "std" }, "validation", "model")
  end)
  it("settles a delivered 5.3 s extension at the same price", function()
    local q = assert(billing.settle({ provider = "kling", endpoint = "videos/video-extend", model = "kling-v1" },
      { duration = "5.3" }))
    assert.equal("1", q.amount)
  end)
end)

describe("seed 000 1.8 avatar (per second, rounded half up)", function()
  local function avatar(mode, duration, settle)
    local req = { provider = "kling", endpoint = "videos/avatar/image2video", mode = mode }
    local q, err
    if settle then
      q, err = billing.settle(req, { duration = duration })
    else
      req.duration = duration
      q, err = billing.estimate(req)
    end
    assert(q, err and tostring(err))
    return q.amount, q
  end

  it("std 0.4/s, pro 0.8/s", function()
    assert.equal("4", avatar("std", 10))
    assert.equal("8", avatar("pro", 10))
  end)

  it("rounds 2.5 s up to 3 s and 2.4 s down to 2 s", function()
    assert.equal("1.2", avatar("std", "2.5", true))
    assert.equal("0.8", avatar("std", "2.4", true))
    assert.equal("2.4", avatar("pro", "2.5", true))
    assert.equal("1.6", avatar("pro", "2.499", true))
    local _, q = avatar("std", "2.5", true)
    assert.equal("3", q.breakdown.billed_seconds)
    assert.equal("2.5", q.breakdown.seconds)
    assert.equal("half_up", q.breakdown.round)
  end)

  it("needs a duration to estimate (it is the audio's length)", function()
    fails({ endpoint = "videos/avatar/image2video", mode = "std" }, "validation", "duration")
  end)
end)

describe("seed 000 1.9 effects", function()
  for _, scene in ipairs { "hug", "kiss", "heart_gesture", "fight" } do
    it("two-person " .. scene .. ": kling-v1-6 std 2, pro 3.5 per call", function()
      assert.equal("2", amount { endpoint = "videos/effects", effect_scene = scene,
        input = { model_name = "kling-v1-6", mode = "std" } })
      assert.equal("3.5", amount { endpoint = "videos/effects", effect_scene = scene, model = "kling-v1-6",
        mode = "pro" })
    end)
  end
  it("single-image effects are unpriced (priced per template)", function()
    local err = fails({ endpoint = "videos/effects", effect_scene = "bloombloom" }, "unpriced", nil)
    assert.matches("template", err.message)
  end)
  it("a two-person effect without its model is a validation error, not unpriced", function()
    fails({ endpoint = "videos/effects", effect_scene = "hug", mode = "std" }, "validation", "model")
  end)
end)

describe("seed 000 1.10 advanced lip-sync (0.5 per started 5 s)", function()
  for _, row in ipairs {
    { 4, "0.5" }, { 5, "0.5" }, { "5.001", "1" }, { 10, "1" }, { 12, "1.5" }, { "0.5", "0.5" },
  } do
    it(tostring(row[1]) .. " s = " .. row[2], function()
      assert.equal(row[2], amount { endpoint = "videos/advanced-lip-sync", duration = row[1] })
    end)
  end
end)

describe("seed 000 2 audio", function()
  it("video-to-audio 0.25 for 3~20 s", function()
    assert.equal("0.25", amount { endpoint = "audio/video-to-audio" })
    assert.equal("0.25", amount { endpoint = "audio/video-to-audio", duration = 3 })
    assert.equal("0.25", amount { endpoint = "audio/video-to-audio", duration = 20 })
    fails({ endpoint = "audio/video-to-audio", duration = 21 }, "validation", "duration")
    fails({ endpoint = "audio/video-to-audio", duration = 2 }, "validation", "duration")
  end)
  it("text-to-audio 0.25 for 3~10 s", function()
    assert.equal("0.25", amount { endpoint = "audio/text-to-audio", duration = 10 })
    assert.equal("0.25", amount { endpoint = "audio/text-to-audio", duration = 3 })
    fails({ endpoint = "audio/text-to-audio", duration = 11 }, "validation", "duration")
  end)
  it("tts 0.05 per call", function()
    assert.equal("0.05", amount { endpoint = "audio/tts" })
  end)
end)

describe("seed 000 3 images (per image, times n)", function()
  -- { endpoint, model, image-to-image, n, expected }
  local rows = {
    { "images/generations", "kling-image-o1", false, 1, "0.2" },
    { "images/generations", "kling-image-o1", true, 3, "0.6" },
    { "images/generations", "kling-v1-0", false, 1, "0.025" },
    { "images/generations", "kling-v1-0", true, 4, "0.1" },
    { "images/generations", "kling-v1", false, 9, "0.225" },
    { "images/generations", "kling-v1-5", false, 2, "0.2" },
    { "images/generations", "kling-v1-5", true, 2, "0.4" },
    { "images/generations", "kling-v2-0", false, 1, "0.1" },
    { "images/generations", "kling-v2-0", true, 1, "0.2" },
    { "images/generations", "kling-v2", true, 5, "1" },
    { "images/generations", "kling-v2-0-new", true, 1, "0.2" },
    { "images/generations", "kling-v2-1", false, 3, "0.3" },
    { "images/omni-image", "kling-image-o1", false, 2, "0.4" },
    { "images/omni-image", "kling-v2-0", false, 1, "0.1" },
    { "images/multi-image2image", "kling-v2-0", false, 1, "0.4" },
    { "images/multi-image2image", "kling-v2-1", false, 3, "1.2" },
    { "images/editing/expand", nil, true, 1, "0.2" },
    { "images/editing/expand", nil, true, 4, "0.8" },
  }
  for _, row in ipairs(rows) do
    local endpoint, model, i2i, n, want = table.unpack(row)
    it(string.format("%s %s i2i=%s n=%d = %s", endpoint, tostring(model), tostring(i2i), n, want), function()
      assert.equal(want, amount { endpoint = endpoint, model = model, n = n,
        image = i2i and "https://example.com/a.png" or nil })
    end)
  end

  it("defaults: omni-image is o1, multi-image2image is kling-v2, n is 1", function()
    assert.equal("0.2", amount { endpoint = "images/omni-image" })
    assert.equal("0.4", amount { endpoint = "images/multi-image2image" })
  end)

  it("leaves rows the seed lacks unpriced", function()
    fails({ endpoint = "images/generations", model = "kling-v2-0-new" }, "unpriced", nil) -- text-to-image
    fails({ endpoint = "images/generations", model = "kling-v2-1", image = "https://example.com/a.png" },
      "unpriced", nil)
  end)

  it("refuses a bad n, naming it", function()
    fails({ endpoint = "images/generations", n = 0 }, "validation", "n")
    fails({ endpoint = "images/generations", n = 1.5 }, "validation", "n")
    fails({ endpoint = "images/generations", n = "2" }, "validation", "n")
  end)

  it("settles on the images delivered", function()
    local req = { provider = "kling", endpoint = "images/generations", model = "kling-v1-5", n = 4 }
    assert.equal("0.4", billing.estimate(req).amount)
    local q = assert(billing.settle(req, { count = 3 }))
    assert.equal("0.3", q.amount)
    assert.equal("usage", q.breakdown.count_from)
    assert.equal("0", billing.settle(req, { count = 0 }).amount)
    local all = assert(billing.settle(req, {}))
    assert.equal("0.4", all.amount)
    assert.equal("request", all.breakdown.count_from)
  end)
end)

describe("seed 000 4 general endpoints (per call)", function()
  it("identify-face 0.05, image-recognize 0.1, custom-voices 0.05", function()
    assert.equal("0.05", amount { endpoint = "videos/identify-face" })
    assert.equal("0.1", amount { endpoint = "videos/image-recognize" })
    assert.equal("0.05", amount { endpoint = "general/custom-voices" })
  end)
  it("custom-elements is unpriced (待确认)", function()
    local err = fails({ endpoint = "general/custom-elements" }, "unpriced", nil)
    assert.matches("待确认", err.message)
  end)
end)

describe("seed 000 5 queries and management (free)", function()
  it("GET and DELETE cost nothing", function()
    assert.equal("0", amount { endpoint = "general/custom-elements", method = "GET" })
    assert.equal("0", amount { endpoint = "general/presets-elements", method = "GET" })
    assert.equal("0", amount { endpoint = "general/custom-voices/abc", method = "get" })
    assert.equal("0", amount { endpoint = "general/presets-voices", method = "GET" })
    assert.equal("0", amount { endpoint = "general/delete-elements", method = "DELETE" })
    assert.equal("0", amount { endpoint = "general/delete-voices", method = "POST" })
  end)
end)

describe("settling from the ACTUAL duration", function()
  it("per second to the millisecond: o1 std 5.041 s = 3.0246", function()
    local req = { provider = "kling", model = "kling-video-o1", mode = "std", duration = 5 }
    assert.equal("3", billing.estimate(req).amount)
    local q = assert(billing.settle(req, { duration = "5.041" }))
    assert.equal("3.0246", q.amount)
    assert.equal(3024600, q.micros)
    assert.equal("usage", q.breakdown.duration_from)
  end)
  it("a tiered clip of 5.041 s is the 5 s clip; of 10.2 s the 10 s clip", function()
    local req = { provider = "kling", model = "kling-v1", mode = "pro", duration = 5 }
    assert.equal("3.5", billing.settle(req, { duration = "5.041" }).amount)
    assert.equal("7", billing.settle(req, { duration = 10.2 }).amount)
  end)
  it("falls back to the requested duration when the result has none", function()
    local req = { provider = "kling", model = "kling-video-o1", mode = "pro", duration = 10 }
    local q = assert(billing.settle(req, {}))
    assert.equal("8", q.amount)
    assert.equal("request", q.breakdown.duration_from)
  end)
  it("names the usage field it cannot read", function()
    local q, err = billing.settle({ provider = "kling", model = "kling-video-o1" }, { duration = "5s" })
    assert.is_nil(q)
    assert.equal("validation", err.kind)
    assert.equal("usage.duration", err.field)
  end)
end)
