-- Images and audio on the official API: images/generations, omni-image, multi-image2image,
-- editing/expand (n images each, 1 to 9), audio/tts (synchronous), text-to-audio,
-- video-to-audio, and videos/image-recognize (synchronous). Sources: kling-api-notes.md [R]
-- and seed 000.
local validate = require "kling.validate"
local R = require "kling.providers.kling.rules"

local fail, set, text = R.fail, R.set, R.text
local M = {}

-- n, aspect_ratio, resolution and the task options every image create shares.
local function image_common(req, ratios, resolution)
  return validate.whole_in(R.ctx(), req, "n", 1, 9) or validate.one_of(R.ctx(), req, "aspect_ratio", ratios)
    or (resolution and validate.one_of(R.ctx(), req, "resolution", R.IMAGE_RESOLUTIONS, "for images"))
    or (not resolution and req.resolution ~= nil and fail("resolution", "is not taken by this endpoint"))
    or R.task_options(req)
end

local function image_body(req)
  local body = R.task_body(req)
  body.prompt, body.n, body.aspect_ratio = req.prompt, req.n, req.aspect_ratio
  return body
end

local IMAGE_TAKES = { "model", "prompt", "n", "aspect_ratio", "callback_url", "external_task_id" }
local function takes(extra)
  return set(IMAGE_TAKES, extra)
end

-- Seed 000 writes kling-v1-0, kling-v2-0, kling-v2-0-new; the API's model_name is kling-v1,
-- kling-v2, kling-v2-new. Both are accepted, the API's spelling is sent.
local ALIASES = { ["kling-v1-0"] = "kling-v1", ["kling-v2-0"] = "kling-v2", ["kling-v2-0-new"] = "kling-v2-new" }
local GENERATIONS = set { "kling-v1", "kling-v1-5", "kling-v2", "kling-v2-new", "kling-v2-1", "kling-image-o1" }

local function gen_model(req)
  local m = req.model or "kling-v1"
  return ALIASES[m] or m
end

M["images/generations"] = {
  kind = "image", async = true, default_model = "kling-v1", models = GENERATIONS,
  takes = takes { "negative_prompt", "image", "resolution" },
  validate = function(req, ep)
    local m = gen_model(req)
    local err = R.model({ model = m }, ep, GENERATIONS) or text(req, "prompt", 2500, true, "for images/generations")
      or text(req, "negative_prompt", 2500) or validate.image(R.ctx(), req, "image")
      or validate.one_of(R.ctx(), req, "image_reference", { subject = true, face = true })
      or validate.number_in(R.ctx(), req, "image_fidelity", 0, 1)
      or validate.number_in(R.ctx(), req, "human_fidelity", 0, 1) or image_common(req, R.IMAGE_ASPECT, true)
    if err then
      return err
    end
    if req.image ~= nil and req.negative_prompt ~= nil then
      return fail("negative_prompt", "is not taken with an image (image-to-image)")
    end
    if m == "kling-v2-new" and req.image == nil then
      return fail("image", "is required by kling-v2-new (image-to-image only)")
    end
    if m == "kling-v2-1" and req.image ~= nil then
      return fail("image", "is not taken by kling-v2-1 (text-to-image only)")
    end
    if req.image_reference ~= nil and (m ~= "kling-v1-5" or req.image == nil) then
      return fail("image_reference", "needs model kling-v1-5 and an image")
    end
    return nil
  end,
  build = function(req)
    local body = image_body(req)
    body.model_name = gen_model(req)
    body.negative_prompt, body.resolution = req.negative_prompt, req.resolution
    body.image = R.strip_data_uri(req.image)
    return body
  end,
}

-- omni-image (kling-image-o1): image_list and element_list as references, at most 10 together.
local function omni_images(req)
  local list = {}
  if req.image ~= nil then
    list[1] = req.image
  end
  for _, v in ipairs(type(req.image_list) == "table" and req.image_list or {}) do
    list[#list + 1] = v
  end
  return list
end

M["images/omni-image"] = {
  kind = "image", async = true, default_model = "kling-image-o1", models = set { "kling-image-o1" },
  takes = takes { "image", "element_list", "resolution" },
  validate = function(req, ep)
    local ratios = { auto = true }
    for k in pairs(R.IMAGE_ASPECT) do
      ratios[k] = true
    end
    local err = R.model(req, ep, set { "kling-image-o1" }, "kling-image-o1")
      or text(req, "prompt", 2500, true, "for omni-image") or validate.image(R.ctx(), req, "image")
      -- an image_list that is no array was read as none and dropped: the create went without it
      or validate.array(R.ctx(), req, "image_list", 10)
      or R.element_ids(req, 10) or image_common(req, ratios, true)
    if err then
      return err
    end
    local n
    n, err = R.image_list({ image_list = omni_images(req) }, "image_list", "image", 0, 10)
    if not n then
      return err
    end
    local total = n + (type(req.element_list) == "table" and #req.element_list or 0)
    if total > 10 then
      return fail("image_list", "images and elements together must be at most 10 (got " .. total .. ")")
    end
    return nil
  end,
  build = function(req)
    local body = image_body(req)
    body.model_name = req.model or "kling-image-o1"
    body.resolution = req.resolution
    local images = omni_images(req)
    body.image_list = #images > 0 and R.map_images(images, "image") or nil
    if req.element_list then
      body.element_list = R.id_list(req.element_list, "element_id")
    end
    return body
  end,
}

-- multi-image2image: 1 to 4 subject images, optional scene and style images.
local MULTI = set { "kling-v2", "kling-v2-1" }

M["images/multi-image2image"] = {
  kind = "image", async = true, default_model = "kling-v2", models = MULTI,
  takes = takes {},
  validate = function(req, ep)
    local m = { model = req.model and (ALIASES[req.model] or req.model) }
    local _, lerr = R.image_list(req, "subject_image_list", "subject_image", 1, 4)
    return R.model(m, ep, MULTI, "kling-v2") or text(req, "prompt", 2500) or lerr
      or validate.image(R.ctx(), req, "scene_image") or validate.image(R.ctx(), req, "style_image")
      or image_common(req, R.IMAGE_ASPECT, false)
  end,
  build = function(req)
    local body = image_body(req)
    body.model_name = req.model and (ALIASES[req.model] or req.model) or "kling-v2"
    body.subject_image_list = R.map_images(req.subject_image_list, "subject_image")
    body.scene_image, body.style_image = R.strip_data_uri(req.scene_image), R.strip_data_uri(req.style_image)
    return body
  end,
}

-- editing/expand: up/down ratios of the height, left/right of the width, each 0..2, and the
-- new picture at most 3 times the original's area.
local SIDES = { "up", "down", "left", "right" }

M["images/editing/expand"] = {
  kind = "image", async = true,
  takes = set { "image", "prompt", "n", "callback_url", "external_task_id" },
  validate = function(req)
    local err = validate.image(R.ctx(), req, "image") or text(req, "prompt", 2500)
      or image_common(req, R.IMAGE_ASPECT, false)
    if err then
      return err
    end
    if req.image == nil then
      return fail("image", "is required: the picture to expand")
    end
    local r = {}
    for _, side in ipairs(SIDES) do
      local field = side .. "_expansion_ratio"
      err = validate.number_in(R.ctx(), req, field, 0, 2)
      if err then
        return err
      end
      r[side] = req[field] or 0
    end
    local area = (1 + r.up + r.down) * (1 + r.left + r.right)
    if area > 3 + 1e-9 then
      return fail("up_expansion_ratio", string.format("the expanded picture would be %.3g times the original's "
        .. "area; at most 3 ((1 + up + down) x (1 + left + right))", area))
    end
    return nil
  end,
  build = function(req)
    local body = image_body(req)
    body.image = R.strip_data_uri(req.image)
    for _, side in ipairs(SIDES) do
      body[side .. "_expansion_ratio"] = req[side .. "_expansion_ratio"] or 0
    end
    return body
  end,
}

-- ---- audio ----

-- Synchronous: the speech comes back at once (audios[{id, url, duration}]).
M["audio/tts"] = {
  kind = "audio", sync = true, takes = {},
  validate = function(req)
    local err = text(req, "text", 1000, true, "for tts") or R.id(req, "voice_id", true)
      or validate.one_of(R.ctx(), req, "voice_language", { zh = true, en = true })
      or validate.number_in(R.ctx(), req, "voice_speed", 0.8, 2.0) or R.one_decimal(req, "voice_speed")
    return err
  end,
  build = function(req)
    local body = R.passthrough(req)
    body.voice_language = req.voice_language or "zh"
    return body
  end,
}

-- A sound effect of 3.0 to 10.0 s (one decimal), sent as a number.
M["audio/text-to-audio"] = {
  kind = "audio", async = true,
  formats = { "mp3", "wav" }, -- each audio comes as two files (url_mp3, url_wav: kling.task's files)
  takes = set { "prompt", "duration", "callback_url", "external_task_id" },
  validate = function(req)
    local err = text(req, "prompt", 200, true, "for text-to-audio") or R.task_options(req)
    if err then
      return err
    end
    if req.duration == nil then
      return fail("duration", "is required: seconds between 3 and 10 (one decimal)")
    end
    return validate.number_in(R.ctx(), req, "duration", 3, 10) or R.one_decimal(req, "duration")
  end,
  build = function(req)
    local body = R.task_body(req)
    body.prompt, body.duration = req.prompt, req.duration
    return body
  end,
}

-- Sound for a video of 3 to 20 s; duration (the video's length) prices it and is not sent.
M["audio/video-to-audio"] = {
  kind = "audio", async = true,
  formats = { "mp3", "wav" },
  media_seconds_max = 20, -- billed from the video's real length, whatever duration said
  takes = set { "duration", "callback_url", "external_task_id" },
  validate = function(req)
    return R.one_of(req, "video_id", "video_url") or R.id(req, "video_id")
      or text(req, "sound_effect_prompt", 200) or text(req, "bgm_prompt", 200)
      or validate.boolean(R.ctx(), req, "asmr_mode") or R.task_options(req)
      or R.seconds_in(req, 3, 20, "(the video's length)")
      or validate.url(R.ctx(), req, "video_url", "must be an http(s) URL (MP4/MOV, 3-20 s, at most 100 MB)")
  end,
  build = R.task_body,
}

-- Synchronous: what an image contains (subject, head, face, clothes), charged at once.
M["videos/image-recognize"] = {
  kind = "recognition", sync = true, takes = set { "image" },
  validate = function(req)
    local err = validate.image(R.ctx(), req, "image")
    if not err and req.image == nil then
      err = fail("image", "is required: the picture to recognize")
    end
    return err
  end,
  build = function(req)
    local body = R.passthrough(req)
    body.image = R.strip_data_uri(req.image)
    return body
  end,
}

return M
