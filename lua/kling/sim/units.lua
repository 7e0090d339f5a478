-- What the official API deducts for a finished video task (final_unit_deduction), from the
-- price table of seed 000 (one unit per yuan of that table). Amounts are integer
-- thousandths of a unit: no float ever touches them. Pure (no ngx).
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

-- Seed 000 has no price for kling-v3 and none for kling-v2-6 std: ASSUMPTION, both are
-- deducted like kling-v2-6 pro, per second. Change here when the official table has them.
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
  if t.model == "kling-v2-6" or t.model == "kling-v3" then
    return per_second_v26(t)
  end
  if t.model == "kling-video-o1" then
    local rates = O1[t.mode]
    return rates and (t.reference and rates.ref or rates.plain) * t.duration
  end
  return nil
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
