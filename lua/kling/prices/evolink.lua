-- EvoLink gateway prices in credits, transcribed from seed 003 (the page carries no date, so
-- `date` is the day it was transcribed). Prices are data, evaluated by kling.core.price_eval;
-- see kling.lua here for the shape.
--   Kling 3.0: "基础价格为每秒 5.4 积分", times 1.0 (720p silent), 1.5 (720p sound),
--   1.333 (1080p silent), 2.0 (1080p sound); 3-15 s; "短于 3 秒的视频按 3 秒最低标准计费".
--   Custom element: "Fixed price: 1 Credit per element creation", "$0.014 (1 Credits)".
-- The seed prices Kling O3 and the other models with "slightly different factors" it does not
-- give: they are unpriced.

-- Durations are whole seconds (3-15): a delivered clip is rounded half up to whole seconds,
-- then the 3 s minimum applies, then the factor (rounded half up to the micro-credit).
local VIDEO = { "videos/generations", "videos/text2video", "videos/image2video" }
local MODEL = { "kling-v3", "kling-v3-text-to-video", "kling-v3-image-to-video" }

local function v3(id, resolution, sound, multiplier)
  return {
    id = id,
    match = { endpoint = VIDEO, model = MODEL, resolution = resolution, sound = sound },
    kind = "per_second", price = "5.4", minimum = 3, multiplier = multiplier, range = { 3, 15 },
    round = "half_up",
  }
end

return {
  provider = "evolink",
  date = "2026-11-21",
  currency = "credits",
  source = "seeds/003_46e2b306b5871800.txt",
  usd_rate = "0.014", -- "$0.014 (~ 1 credits)"
  endpoint_default = "videos/generations",
  -- The provider sends kling-v3 when no model is given (providers/evolink.lua default_model).
  defaults = { ["*"] = { model = "kling-v3" } },
  -- Resolution is the `quality` parameter; Kling's modes are std = 720p, pro = 1080p.
  resolution_by_mode = { std = "720p", pro = "1080p" },
  rules = {
    { id = "kling-custom-element", match = { model = "kling-custom-element" }, kind = "per_call", price = "1" },
    { id = "custom-elements", match = { endpoint = "general/custom-elements" }, kind = "per_call", price = "1" },
    v3("kling-v3/720p/silent", "720p", false, "1.0"),
    v3("kling-v3/720p/sound", "720p", true, "1.5"),
    v3("kling-v3/1080p/silent", "1080p", false, "1.333"),
    v3("kling-v3/1080p/sound", "1080p", true, "2.0"),
  },
}
