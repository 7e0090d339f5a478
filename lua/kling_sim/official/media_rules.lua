-- The official API's documented body rules for the image and audio endpoints and for
-- image-recognize. Pure: each returns the cleaned request r or nil and {status, code, message}.
local c = require "kling_sim.official.check"
local video_rules = require "kling_sim.official.video_rules"

local bad = c.bad
local M = {}

local MAX_PROMPT = 2500
local IMAGE_RATIOS = { ["16:9"] = true, ["9:16"] = true, ["1:1"] = true, ["4:3"] = true, ["3:4"] = true,
  ["3:2"] = true, ["2:3"] = true, ["21:9"] = true }
local RESOLUTIONS = { ["1k"] = true, ["2k"] = true }

local model = c.model

-- n, resolution, aspect_ratio and the task options every image create shares.
local function image_common(body, r, ratios, default_ratio, resolution)
  local err
  r.n, err = c.int(body, "n", 1, 9, 1)
  if not r.n then return nil, err end
  if resolution then
    r.resolution, err = c.enum(body, "resolution", RESOLUTIONS, "1k")
    if err then return nil, err end
  end
  r.aspect_ratio, err = c.enum(body, "aspect_ratio", ratios, default_ratio)
  if err then return nil, err end
  return c.task_options(body, r)
end

-- /v1/images/generations. Seed 000 prices kling-image-o1 here too; kling-v2-new only edits an
-- image and kling-v2-1 only draws from text (the seed's price table has no other row).
local GEN_MODELS = { ["kling-v1"] = true, ["kling-v1-5"] = true, ["kling-v2"] = true, ["kling-v2-new"] = true,
  ["kling-v2-1"] = true, ["kling-image-o1"] = true }
M["images/generations"] = function(body, b64)
  local r = {}
  local err
  r.model, err = model(body, "kling-v1", GEN_MODELS, "images/generations")
  if not r.model then return nil, err end
  r.prompt, err = c.text(body, "prompt", MAX_PROMPT, true)
  if not r.prompt then return nil, err end
  local neg
  neg, err = c.text(body, "negative_prompt", MAX_PROMPT, false)
  if err then return nil, err end
  local ok
  ok, err = c.image(body, "image", b64, false)
  if err then return nil, err end
  r.reference = ok == true
  if r.reference and neg then
    return nil, bad("negative_prompt is not supported with an image (image-to-image)")
  end
  if r.model == "kling-v2-new" and not r.reference then
    return nil, bad("image is required for kling-v2-new (image-to-image only)")
  end
  if r.model == "kling-v2-1" and r.reference then
    return nil, bad("image is not supported by kling-v2-1 (text-to-image only)")
  end
  local ref
  ref, err = c.enum(body, "image_reference", { subject = true, face = true }, nil)
  if err then return nil, err end
  if ref and (r.model ~= "kling-v1-5" or not r.reference) then
    return nil, bad("image_reference needs model_name kling-v1-5 and an image")
  end
  for _, k in ipairs { "image_fidelity", "human_fidelity" } do
    ok, err = c.number(body, k, 0, 1, 0.5)
    if not ok then return nil, err end
  end
  return image_common(body, r, IMAGE_RATIOS, "16:9", true)
end

-- /v1/images/omni-image (kling-image-o1): images and elements as references, at most 10.
M["images/omni-image"] = function(body, b64)
  local r = {}
  local err
  r.model, err = model(body, "kling-image-o1", { ["kling-image-o1"] = true }, "images/omni-image")
  if not r.model then return nil, err end
  r.prompt, err = c.text(body, "prompt", MAX_PROMPT, true)
  if not r.prompt then return nil, err end
  local images, elements
  images, err = c.image_list(body, "image_list", 10, "image", b64)
  if not images then return nil, err end
  elements, err = c.object_list(body, "element_list", 10, "element_id")
  if not elements then return nil, err end
  if images + elements > 10 then
    return nil, bad("image_list and element_list together must have at most 10 items (got " .. (images + elements)
      .. ")")
  end
  r.reference = images + elements > 0
  local ratios = { auto = true }
  for k in pairs(IMAGE_RATIOS) do
    ratios[k] = true
  end
  return image_common(body, r, ratios, "auto", true)
end

-- /v1/images/multi-image2image: 1 to 4 subject images, a scene and a style.
M["images/multi-image2image"] = function(body, b64)
  local r = { reference = true }
  local err
  r.model, err = model(body, "kling-v2", { ["kling-v2"] = true, ["kling-v2-1"] = true }, "images/multi-image2image")
  if not r.model then return nil, err end
  r.prompt, err = c.text(body, "prompt", MAX_PROMPT, false)
  if err then return nil, err end
  local n
  n, err = c.image_list(body, "subject_image_list", 4, "subject_image", b64, 1)
  if not n then return nil, err end
  for _, k in ipairs { "scene_image", "style_image" } do
    local _, ierr = c.image(body, k, b64, false)
    if ierr then return nil, ierr end
  end
  return image_common(body, r, IMAGE_RATIOS, "16:9", false)
end

-- /v1/images/editing/expand: ratios of the original's height (up, down) and width (left,
-- right) in 0..2, the new picture at most 3 times the original's area.
M["images/editing/expand"] = function(body, b64)
  local r = { model = "expand", reference = true }
  local ok, err = c.image(body, "image", b64, true)
  if not ok then return nil, err end
  local ratio = {}
  for _, side in ipairs { "up", "down", "left", "right" } do
    local k = side .. "_expansion_ratio"
    ratio[side], err = c.number(body, k, 0, 2, 0)
    if not ratio[side] then return nil, err end
  end
  local area = (1 + ratio.up + ratio.down) * (1 + ratio.left + ratio.right)
  if area > 3 + 1e-9 then
    return nil, bad(string.format("the expanded image must be at most 3 times the original's area "
      .. "((1 + up + down) x (1 + left + right) = %.3g)", area))
  end
  r.prompt, err = c.text(body, "prompt", MAX_PROMPT, false)
  if err then return nil, err end
  return image_common(body, r, IMAGE_RATIOS, nil, false)
end

-- /v1/audio/tts (synchronous): text read by a voice.
M["audio/tts"] = function(body)
  local r = {}
  local err
  r.text, err = c.text(body, "text", 1000, true)
  if not r.text then return nil, err end
  r.voice_id, err = c.id(body, "voice_id", true)
  if not r.voice_id then return nil, err end
  r.voice_language, err = c.enum(body, "voice_language", { zh = true, en = true }, "zh")
  if err then return nil, err end
  r.voice_speed, err = c.number(body, "voice_speed", 0.8, 2.0, 1.0, 0.1)
  if not r.voice_speed then return nil, err end
  return r
end

-- /v1/audio/text-to-audio: a sound effect of 3.0 to 10.0 s (one decimal).
M["audio/text-to-audio"] = function(body)
  local r = {}
  local err
  r.prompt, err = c.text(body, "prompt", 200, true)
  if not r.prompt then return nil, err end
  if body.duration == nil then
    return nil, bad("duration is required: seconds in 3.0..10.0")
  end
  r.duration, err = c.number(body, "duration", 3, 10, nil, 0.1)
  if not r.duration then return nil, err end
  return c.task_options(body, r)
end

-- /v1/audio/video-to-audio: sound effects and music for a video of 3 to 20 s.
M["audio/video-to-audio"] = function(body)
  local r = {}
  local ok, err = video_rules.source_video(body, r)
  if not ok then return nil, err end
  for _, k in ipairs { "sound_effect_prompt", "bgm_prompt" } do
    r[k], err = c.text(body, k, 200, false)
    if err then return nil, err end
  end
  r.asmr_mode, err = c.boolean(body, "asmr_mode", false)
  if r.asmr_mode == nil then return nil, err end
  return c.task_options(body, r)
end

-- /v1/videos/image-recognize (synchronous): what an image contains.
M["image-recognize"] = function(body, b64)
  local ok, err = c.image(body, "image", b64, true)
  if not ok then return nil, err end
  return {}
end

return M
