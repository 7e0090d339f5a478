-- apimodels gateway prices in USD, transcribed from seed 002 (its price tables, "价格 (8.5折)":
-- the discounted prices it charges; the page carries no date, so `date` is the day it was
-- transcribed). Prices are data, evaluated by kling.core.price_eval; see kling.lua here for
-- the shape. The seed documents no defaults for mode, duration or sound: a request that leaves
-- out a field its price depends on is refused naming that field (sound absent means silent).

local rules = require "kling.prices.rules"

local VIDEO = { "videos/generations", "videos/text2video", "videos/image2video" }
local MOTION = "videos/motion-control"

-- The 5 s / 10 s tiers (delivered clips rounded half up) and a rule from its id, match and price.
local tiers, rule = rules.tiers, rules.rule

-- kling-v3 is asked for in whole seconds (3-15): a delivered clip is rounded half up to
-- whole seconds. Motion control follows its source video: priced to the millisecond.
local function v3(id, mode, sound, price)
  return rule(id, { endpoint = VIDEO, model = "kling-v3", mode = mode, sound = sound },
    { kind = "per_second", price = price, range = { 3, 15 }, round = "half_up" })
end

local function motion(id, model, resolution, price)
  return rule(id, { endpoint = MOTION, model = model, resolution = resolution },
    { kind = "per_second", price = price, range = { 0, 30 } })
end

return {
  provider = "apimodels",
  date = "2026-11-21",
  currency = "USD",
  source = "seeds/002_9c8fb5c099ec140b.txt",
  usd_rate = "1",
  endpoint_default = "videos/generations",
  -- The provider sends kling-v2-6 when no model is given (providers/apimodels.lua default_model);
  -- motion control always sends kling-motion-control.
  defaults = { ["*"] = { model = "kling-v2-6" }, ["videos/motion-control"] = { model = "kling-motion-control" } },
  -- Motion control is priced by resolution; Kling's modes are std = 720p, pro = 1080p.
  resolution_by_mode = { std = "720p", pro = "1080p" },
  rules = {
    -- kling-v2-6: 5 s / 10 s by mode, sound and voice
    {
      id = "kling-v2-6/voice-without-sound",
      match = { endpoint = VIDEO, model = "kling-v2-6", sound = false, voice = true },
      invalid = { field = "voice_list", message = "a voice needs sound on (kling-v2-6)" },
    },
    rule("kling-v2-6/std/silent", { endpoint = VIDEO, model = "kling-v2-6", mode = "std", sound = false },
      tiers("0.0159", "0.0320")),
    rule("kling-v2-6/pro/silent", { endpoint = VIDEO, model = "kling-v2-6", mode = "pro", sound = false },
      tiers("0.0267", "0.0531")),
    rule("kling-v2-6/pro/sound",
      { endpoint = VIDEO, model = "kling-v2-6", mode = "pro", sound = true, voice = false },
      tiers("0.0531", "0.1064")),
    rule("kling-v2-6/pro/sound+voice",
      { endpoint = VIDEO, model = "kling-v2-6", mode = "pro", sound = true, voice = true },
      tiers("0.0639", "0.1275")),

    -- kling-v3: per second, 3-15 s
    v3("kling-v3/std/silent", "std", false, "0.0633"),
    v3("kling-v3/std/sound", "std", true, "0.0956"),
    v3("kling-v3/pro/silent", "pro", false, "0.0853"),
    v3("kling-v3/pro/sound", "pro", true, "0.1280"),

    -- kling-motion-control: per second by resolution, up to 30 s (seed 002: "Kling 2.6 · 720p |
    -- Up to 30s | $0.06/s", "Kling 2.6 · 1080p | $0.10/s"). The create call names only
    -- kling-motion-control, the model the seed's model table prices "from $0.06/s": the Kling
    -- 2.6 rows. The Kling 3.0 rows ($0.12/s, $0.15/s) price a request that names kling-v3's
    -- motion control explicitly (billing.estimate{model = "kling-v3", ...}); no create field
    -- chooses 3.0, so the provider never sends one.
    motion("motion-control/kling-motion-control/720p", { "kling-motion-control", "kling-v2-6" }, "720p", "0.06"),
    motion("motion-control/kling-motion-control/1080p", { "kling-motion-control", "kling-v2-6" }, "1080p", "0.10"),
    motion("motion-control/kling-v3/720p", "kling-v3", "720p", "0.12"),
    motion("motion-control/kling-v3/1080p", "kling-v3", "1080p", "0.15"),
  },
}
