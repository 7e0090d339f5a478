-- "API in One" gateway prices in credits, transcribed from seed 001 (the kling-3 page; the page
-- carries no date, so `date` is the day it was transcribed). Prices are data, evaluated by
-- kling.core.price_eval; see kling.lua in this directory for the shape.
--   "std no-audio 40/s, std with-audio 60/s, pro no-audio 54/s, pro with-audio 80/s",
--   duration 3-15 s, defaults mode std, duration 5, sound true ("default std 5s with audio is
--   300 credits (~$3.00)"), billed per successful request.

-- The price is per video, set by its whole-second duration (3-15): a delivered clip is
-- rounded half up to whole seconds (5.041 s is the 5 s video).
-- The gateway's one route serves text-to-video and image-to-video alike.
local VIDEO = { "videos/generations", "videos/text2video", "videos/image2video" }
local MODEL = { "kling-v3", "kling-3" } -- canonical name, and the gateway's spelling

local function per_second(id, mode, sound, price)
  return {
    id = id,
    match = { endpoint = VIDEO, model = MODEL, mode = mode, sound = sound },
    kind = "per_second", price = price, range = { 3, 15 }, round = "half_up",
  }
end

return {
  provider = "apiinone",
  date = "2026-11-21",
  currency = "credits",
  source = "seeds/001_e9746fd23a47ea9a.txt",
  -- 300 credits ~ $3.00 (and 120-1200 credits ~ $1.20-$12.00): 100 credits = $1.00
  usd_rate = "0.01",
  endpoint_default = "videos/generations",
  defaults = {
    ["*"] = { model = "kling-v3", mode = "std", duration = 5, sound = true },
  },
  rules = {
    per_second("kling-3/std/silent", "std", false, "40"),
    per_second("kling-3/std/sound", "std", true, "60"),
    per_second("kling-3/pro/silent", "pro", false, "54"),
    per_second("kling-3/pro/sound", "pro", true, "80"),
  },
}
