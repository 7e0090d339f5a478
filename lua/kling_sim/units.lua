-- What the official API deducts for a finished task (final_unit_deduction), from the price
-- table of seed 000 (one unit per yuan of that table). Amounts are integer thousandths of a
-- unit: no float ever touches them. Pure (no ngx). Read the same way as the client's catalog
-- (lua/kling/prices/kling.lua): synchronous calls are charged at once, asynchronous tasks on
-- success from what was delivered (duration, count), failures and queries are free, and a
-- price the seed leaves open (custom elements, single-image and _pro effects) is no charge
-- here rather than an invented one.
local M = {}

-- model -> mode -> duration (s) -> thousandths; "master" models ignore the mode.
local FIXED = {
  ["kling-v1"] = { std = { [5] = 1000, [10] = 2000 }, pro = { [5] = 3500, [10] = 7000 } },
  ["kling-v1-5"] = { std = { [5] = 2000, [10] = 4000 }, pro = { [5] = 3500, [10] = 7000 } },
  ["kling-v1-6"] = { std = { [5] = 2000, [10] = 4000 }, pro = { [5] = 3500, [10] = 7000 } },
  ["kling-v2-master"] = { master = { [5] = 10000, [10] = 20000 } },
  ["kling-v2-1"] = { std = { [5] = 2000, [10] = 4000 }, pro = { [5] = 3500, [10] = 7000 } },
  ["kling-v2-1-master"] = { master = { [5] = 10000, [10] = 20000 } },
  ["kling-v2-5-turbo"] = { std = { [5] = 1500, [10] = 3000 }, pro = { [5] = 2500, [10] = 5000 } },
}

-- kling-v2-6 (seed 000 lists pro only): silent, with sound, with sound and chosen voices.
local V26 = { silent = 500, sound = 1000, voice = 1200 } -- per second (5 s = 2.5 / 5 / 6)

-- kling-video-o1 per second: std/pro, without/with a reference image.
local O1 = { std = { plain = 600, ref = 900 }, pro = { plain = 800, ref = 1200 } }

-- Seed 000 has no price for kling-v3 and none for kling-v2-6 std: those tasks deduct nothing
-- known (no final_unit_deduction, no ledger charge), as the client's catalog has them unpriced
-- (issue 11.6). Change here when the official table has them.
local function per_second_v26(t)
  local rate = V26.silent
  if t.sound == "on" then
    rate = t.voices and t.voices > 0 and V26.voice or V26.sound
  end
  return rate * t.duration
end

-- t = { model, mode, duration (integer seconds), sound = "on"|"off", voices = n, reference = bool }
-- -> thousandths of a unit, or nil when the model has no price.
function M.thousandths(t)
  local fixed = FIXED[t.model]
  if fixed then
    local by_mode = fixed.master or fixed[t.mode]
    return by_mode and by_mode[t.duration]
  end
  if t.model == "kling-v2-6" and t.mode == "pro" then
    return per_second_v26(t)
  end
  if t.model == "kling-video-o1" then
    local rates = O1[t.mode]
    return rates and (t.reference and rates.ref or rates.plain) * t.duration
  end
  return nil
end

-- Seed 000 1.5-1.10 and 2-4: per endpoint key (see kling_sim.params), what a task costs.
local PER_SECOND = { ["motion-control"] = { std = 500, pro = 800 }, ["avatar/image2video"] = { std = 400, pro = 800 } }
local MULTI_ELEMENTS = { std = { [5] = 3000, [10] = 6000 }, pro = { [5] = 5000, [10] = 10000 } }
local EXTEND = { ["kling-v1"] = { std = 1000, pro = 3500 }, ["kling-v1-5"] = { std = 2000, pro = 3500 },
  ["kling-v1-6"] = { std = 2000, pro = 3500 } }
local TWO_PERSON = { hug = true, kiss = true, heart_gesture = true, fight = true }
local EFFECTS = { std = 2000, pro = 3500 } -- two-person effects on kling-v1-6, per call
local PER_CALL = { ["identify-face"] = 50, ["image-recognize"] = 100, ["audio/tts"] = 50,
  ["audio/text-to-audio"] = 250, ["audio/video-to-audio"] = 250, ["general/custom-voices"] = 50 }
-- Per image: model -> {text, image} for generations; one price elsewhere.
local GENERATIONS = { ["kling-image-o1"] = { 200, 200 }, ["kling-v1"] = { 25, 25 }, ["kling-v1-5"] = { 100, 200 },
  ["kling-v2"] = { 100, 200 }, ["kling-v2-new"] = { nil, 200 }, ["kling-v2-1"] = { 100, nil } }
local PER_IMAGE = { ["images/omni-image"] = 200, ["images/multi-image2image"] = 400, ["images/editing/expand"] = 200 }
local SAME_AS_TEXT2VIDEO = { text2video = true, image2video = true, ["omni-video"] = true,
  ["multi-image2video"] = true }

-- Whole seconds, half up, from seconds with at most 3 decimals (no float in the result).
local function round_half_up(seconds)
  local ms = math.floor(seconds * 1000 + 0.5)
  return math.floor((ms + 500) / 1000)
end
M.round_half_up = round_half_up

-- charge(key, r, out) -> thousandths | nil. r: the cleaned request (model, mode, duration,
-- sound, voices, reference, effect, n); out: what was delivered {duration = seconds (the
-- video's or audio's), n = images, parent = {model, mode} of an extended video}.
function M.charge(key, r, out)
  out = out or {}
  if SAME_AS_TEXT2VIDEO[key] then
    return M.thousandths { model = r.model, mode = r.mode, duration = out.duration or r.duration, sound = r.sound,
      voices = r.voices, reference = r.reference }
  end
  if PER_CALL[key] then
    return PER_CALL[key]
  end
  if PER_SECOND[key] then
    local rate = PER_SECOND[key][r.mode]
    if not rate then
      return nil
    end
    if key == "avatar/image2video" then
      return rate * round_half_up(out.duration)
    end
    return rate * out.duration
  end
  if key == "multi-elements" then
    return MULTI_ELEMENTS[r.mode] and MULTI_ELEMENTS[r.mode][out.duration or r.duration]
  elseif key == "video-extend" then
    local p = out.parent or {}
    return EXTEND[p.model] and EXTEND[p.model][p.mode]
  elseif key == "effects" then
    return TWO_PERSON[r.effect] and r.model == "kling-v1-6" and EFFECTS[r.mode] or nil
  elseif key == "advanced-lip-sync" then
    return 500 * math.ceil(out.duration / 5) -- 0.5 per started 5 s
  elseif key == "images/generations" then
    local p = GENERATIONS[r.model]
    local each = p and p[r.reference and 2 or 1]
    return each and each * (out.n or r.n)
  elseif PER_IMAGE[key] then
    return PER_IMAGE[key] * (out.n or r.n)
  end
  return nil
end

-- The charge in micro-units of CNY (what the client's ledger counts). Every seed 000 price is
-- a whole number of thousandths (the smallest is 0.025) and every quantity is whole (seconds,
-- started 5 s units, images, calls), so the thousandths above are exact and this is too.
function M.micros(thousandths)
  if thousandths == nil then
    return nil
  end
  if thousandths ~= math.floor(thousandths) then
    error("units.micros: a charge of " .. thousandths .. " thousandths is not whole")
  end
  return thousandths * 1000
end

-- 3500 -> "3.5", 2000 -> "2", 125 -> "0.125"
function M.format(thousandths)
  local whole = math.floor(thousandths / 1000)
  local frac = thousandths - whole * 1000
  if frac == 0 then
    return string.format("%d", whole)
  end
  return (string.format("%d.%03d", whole, frac):gsub("0+$", ""))
end

return M
