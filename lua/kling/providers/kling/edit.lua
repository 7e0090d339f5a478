-- The official video endpoints that start from references or existing videos: omni-video,
-- multi-image2video, motion-control, multi-elements, video-extend and effects. Each entry:
-- kind, async, takes (the canonical fields it maps; others are refused by name), validate
-- and build. Sources: kling-api-notes.md [R] (the official pages) and seed 000.
local validate = require "kling.validate"
local R = require "kling.providers.kling.rules"

local fail, set, text = R.fail, R.set, R.text
local M = {}

local TASK = { "callback_url", "external_task_id" }

local function takes(list)
  return set(list, TASK)
end

-- Video durations are whole seconds, sent as strings.
local function whole(req, lo, hi, allowed, why)
  return validate.whole_in(R.ctx(), req, "duration", lo, hi, allowed, why)
end

-- ---- omni-video (kling-video-o1) ----
-- References: images (image = first frame, last_image = end frame, image_list = more),
-- elements and at most one video; with a video at most 4 images + elements, else 7.
local OMNI = { ["kling-video-o1"] = true }

local function omni_images(req)
  local list = {}
  if req.image ~= nil then
    list[#list + 1] = { image_url = req.image, type = "first_frame" }
  end
  for _, item in ipairs(type(req.image_list) == "table" and req.image_list or {}) do
    list[#list + 1] = type(item) == "table" and item or { image_url = item }
  end
  if req.last_image ~= nil then
    list[#list + 1] = { image_url = req.last_image, type = "end_frame" }
  end
  return list
end

local function omni_videos(req)
  local out = {}
  for i, v in ipairs(type(req.video_list) == "table" and req.video_list or {}) do
    out[i] = type(v) == "table" and v or { video_url = v }
  end
  return out
end

M["videos/omni-video"] = {
  kind = "video", async = true, default_model = "kling-video-o1", models = OMNI,
  -- Editing a video (refer_type base) makes one as long as it (3-10 s): billed from that.
  media_seconds_max = function(req)
    for _, v in ipairs(omni_videos(req)) do
      if (v.refer_type or "base") == "base" then
        return 10
      end
    end
    return nil
  end,
  takes = takes { "model", "prompt", "mode", "resolution", "duration", "aspect_ratio", "image", "last_image",
    "element_list" },
  validate = function(req, ep)
    local err = R.model(req, ep, OMNI, "kling-video-o1") or text(req, "prompt", 2500, true, "for omni-video")
      or R.video_mode(req) or validate.one_of(R.ctx(), req, "aspect_ratio", R.ASPECT)
      or validate.array(R.ctx(), req, "image_list", 7) or validate.array(R.ctx(), req, "video_list", 1)
      or R.element_ids(req, 7)
      or validate.image(R.ctx(), req, "image") or validate.image(R.ctx(), req, "last_image")
    if err then
      return err
    end
    local videos, base = omni_videos(req), false
    for i, v in ipairs(videos) do
      local where = "video_list[" .. i .. "]"
      if not validate.is_url(v.video_url) then
        return fail(where .. ".video_url", "must be an http(s) URL of an MP4/MOV video")
      end
      err = validate.one_of(R.ctx(), v, "refer_type", { feature = true, base = true }) or R.check_yes_no(v,
        "keep_original_sound")
      if err then
        err.field = where .. "." .. err.field
        return err
      end
      base = (v.refer_type or "base") == "base"
    end
    local images = omni_images(req)
    local first, last = false, false
    for i, item in ipairs(images) do
      local holder = { image = item.image_url }
      err = validate.image(R.ctx(), holder, "image")
      if err or item.image_url == nil then
        return err and R.fail("image_list[" .. i .. "].image_url", err.message)
          or fail("image_list[" .. i .. "].image_url", "is required")
      end
      if item.type ~= nil and item.type ~= "first_frame" and item.type ~= "end_frame" then
        return fail("image_list[" .. i .. "].type", "must be first_frame or end_frame")
      end
      first = first or item.type == "first_frame"
      last = last or item.type == "end_frame"
    end
    local max = #videos > 0 and 4 or 7
    local n_el = type(req.element_list) == "table" and #req.element_list or 0
    if #images + n_el > max then
      return fail("image_list", string.format("images and elements together must be at most %d%s (got %d)", max,
        #videos > 0 and " with a video" or "", #images + n_el))
    end
    if last and not first then
      return fail("last_image", "an end frame needs a first frame (image)")
    end
    if last and #images > 2 then
      return fail("last_image", "an end frame cannot be combined with more than 2 images")
    end
    if first or base then
      if req.aspect_ratio ~= nil then
        return fail("aspect_ratio", "is not taken with a first frame or when editing a video (refer_type base)")
      end
    elseif req.aspect_ratio == nil then
      return fail("aspect_ratio", "is required on omni-video unless a first frame or a video to edit is given")
    end
    if base then
      if req.duration ~= nil then
        return fail("duration", "follows the edited video (refer_type base); leave it out")
      end
      return nil
    end
    local five_ten = (#images == 0 and n_el == 0 and #videos == 0) or (first and #images <= 2 and n_el == 0
      and #videos == 0)
    if five_ten then
      return whole(req, 0, 0, { [5] = true, [10] = true }, "for kling-video-o1 text-to-video and first-frame video")
    end
    return whole(req, 3, 10, nil, "for kling-video-o1")
  end,
  build = function(req)
    local body = R.task_body(req)
    body.model_name = req.model or "kling-video-o1"
    body.prompt, body.mode, body.aspect_ratio = req.prompt, R.mode_of(req), req.aspect_ratio
    if req.duration ~= nil then
      body.duration = tostring(req.duration)
    end
    local images = omni_images(req)
    if #images > 0 then
      body.image_list = R.map_images(images, "image_url")
    end
    if req.element_list then
      body.element_list = R.id_list(req.element_list, "element_id")
    end
    if req.video_list then
      body.video_list = {}
      for i, v in ipairs(omni_videos(req)) do
        local copy = {}
        for k, x in pairs(v) do
          copy[k] = x
        end
        copy.keep_original_sound = R.yes_no(v.keep_original_sound)
        body.video_list[i] = copy
      end
    end
    return body
  end,
}

-- ---- multi-image2video (kling-v1-6): 1 to 4 reference images ----
local V16 = { ["kling-v1-6"] = true }

-- The body both kling-v1-6 endpoints (multi-image2video, multi-elements) send.
local function v16_body(req)
  local body = R.task_body(req)
  body.model_name = req.model or "kling-v1-6"
  body.prompt, body.negative_prompt, body.mode = req.prompt, req.negative_prompt, R.mode_of(req)
  body.duration = tostring(req.duration or 5)
  body.image_list = R.map_images(req.image_list, "image")
  return body
end

M["videos/multi-image2video"] = {
  kind = "video", async = true, default_model = "kling-v1-6", models = V16,
  takes = takes { "model", "prompt", "negative_prompt", "mode", "resolution", "duration", "aspect_ratio" },
  validate = function(req, ep)
    local _, err = R.image_list(req, "image_list", "image", 1, 4)
    return R.model(req, ep, V16, "kling-v1-6") or text(req, "prompt", 2500, true, "for multi-image2video")
      or text(req, "negative_prompt", 2500) or R.video_mode(req)
      or validate.one_of(R.ctx(), req, "aspect_ratio", R.ASPECT) or whole(req, 0, 0, { [5] = true, [10] = true })
      or err
  end,
  build = function(req)
    local body = v16_body(req)
    body.aspect_ratio = req.aspect_ratio
    return body
  end,
}

-- ---- motion-control: image (the character) moved like the person in video_url ----
-- model (kling-v2-6, the one seed 000 prices) and duration (the reference video's length,
-- 3-30 s, at most 10 s when the character faces as in the image) price the task; the API
-- takes neither, so neither is sent.
M["videos/motion-control"] = {
  kind = "video", async = true, models = { ["kling-v2-6"] = true },
  -- Billed from the reference video's real length, whatever duration said.
  media_seconds_max = function(req)
    return req.character_orientation == "image" and 10 or 30
  end,
  takes = takes { "model", "prompt", "mode", "resolution", "image", "duration" },
  validate = function(req, ep)
    local err = R.model(req, ep, { ["kling-v2-6"] = true }) or text(req, "prompt", 2500) or R.video_mode(req)
      or validate.image(R.ctx(), req, "image")
      or validate.one_of(R.ctx(), req, "character_orientation", { image = true, video = true })
      or R.check_yes_no(req, "keep_original_sound")
    if err then
      return err
    end
    if req.image == nil then
      return fail("image", "is required: the character to animate (sent as image_url)")
    end
    if not validate.is_url(req.video_url) then
      return fail("video_url", "is required: an http(s) URL of the reference video (MP4/MOV, 3-30 s)")
    end
    if req.character_orientation == nil then
      return fail("character_orientation", "is required: image or video (the way the character faces)")
    end
    if R.mode_of(req) == nil then
      return fail("mode", "is required on motion-control: std or pro (or resolution 720p / 1080p)")
    end
    local max = req.character_orientation == "image" and 10 or 30
    return R.seconds_in(req, 3, max, "(the reference video's length with character_orientation "
      .. req.character_orientation .. ")")
  end,
  build = function(req)
    local body = R.task_body(req)
    body.prompt, body.mode = req.prompt, R.mode_of(req)
    body.image_url = R.strip_data_uri(req.image)
    body.keep_original_sound = R.yes_no(req.keep_original_sound)
    return body
  end,
}

-- ---- multi-elements (kling-v1-6): edit a video set up with the selection calls ----
local EDIT_IMAGES = { addition = { 1, 2 }, swap = { 1, 1 }, removal = { 0, 0 } }

M["videos/multi-elements"] = {
  kind = "video", async = true, default_model = "kling-v1-6", models = V16,
  takes = takes { "model", "prompt", "negative_prompt", "mode", "resolution", "duration" },
  validate = function(req, ep)
    local err = R.model(req, ep, V16, "kling-v1-6") or text(req, "prompt", 2500, true, "for multi-elements")
      or text(req, "negative_prompt", 2500) or R.video_mode(req) or whole(req, 0, 0, { [5] = true, [10] = true })
      or R.id(req, "session_id", true) or validate.one_of(R.ctx(), req, "edit_mode", EDIT_IMAGES)
    if err then
      return err
    end
    if req.edit_mode == nil then
      return fail("edit_mode", "is required: addition, swap or removal")
    end
    local lo, hi = EDIT_IMAGES[req.edit_mode][1], EDIT_IMAGES[req.edit_mode][2]
    local n = type(req.image_list) == "table" and #req.image_list or 0
    if n < lo or n > hi then
      return fail("image_list", string.format("must hold %s image%s for edit_mode %s (got %d)",
        lo == hi and tostring(lo) or (lo .. " to " .. hi), hi == 1 and "" or "s", req.edit_mode, n))
    end
    local _
    _, err = R.image_list(req, "image_list", "image", lo, math.max(hi, 1))
    return err
  end,
  build = v16_body,
}

-- ---- video-extend: 4~5 s more of a video_id; model and mode follow the source video ----
-- model, mode and duration (4-5 s, the extension) price the task; the API takes none of them.
local EXTEND = { ["kling-v1"] = true, ["kling-v1-5"] = true, ["kling-v1-6"] = true }

M["videos/video-extend"] = {
  kind = "video", async = true, models = EXTEND,
  media_seconds_max = 5, -- billed from the seconds actually added, whatever duration said
  -- The provider bills by the source video's model and mode, whatever the request says: a
  -- reader that knows the source (the metering gateway) takes them from there.
  -- (from: the endpoints whose videos it extends; the source's model must be one of models)
  follows = { field = "video_id", fields = { "model", "mode" },
    from = { ["videos/text2video"] = true, ["videos/image2video"] = true, ["videos/video-extend"] = true } },
  takes = takes { "model", "mode", "prompt", "negative_prompt", "cfg_scale", "duration" },
  validate = function(req, ep)
    return R.model(req, ep, EXTEND) or validate.one_of(R.ctx(), req, "mode", R.MODES)
      or R.id(req, "video_id", true) or text(req, "prompt", 2500) or text(req, "negative_prompt", 2500)
      or validate.number_in(R.ctx(), req, "cfg_scale", 0, 1)
      or R.seconds_in(req, 4, 5, "(video-extend adds 4 to 5 s per call)")
  end,
  build = function(req)
    local body = R.task_body(req)
    body.prompt, body.negative_prompt, body.cfg_scale = req.prompt, req.negative_prompt, req.cfg_scale
    return body
  end,
}

-- ---- effects: effect_scene with its input ----
-- Two-person effects take 2 images (first on the left); the classic ones a model and a mode.
local TWO_PERSON = {
  hug = { "kling-v1", "kling-v1-5", "kling-v1-6" }, kiss = { "kling-v1", "kling-v1-5", "kling-v1-6" },
  heart_gesture = { "kling-v1", "kling-v1-5", "kling-v1-6" }, fight = { "kling-v1-6" },
  hug_pro = false, kiss_pro = false, fight_pro = false, heart_gesture_pro = false, cheers_2026 = false,
}
M.TWO_PERSON = TWO_PERSON

local function effect_input(req)
  local input = {}
  for k, v in pairs(type(req.input) == "table" and req.input or {}) do
    input[k] = v
  end
  input.image = req.image or input.image
  input.images = req.images or input.images
  input.model_name = req.model or input.model_name
  input.mode = R.mode_of(req) or input.mode
  if req.duration ~= nil then
    input.duration = tostring(req.duration)
  end
  return input
end

M["videos/effects"] = {
  kind = "video", async = true,
  takes = takes { "model", "mode", "resolution", "duration", "image" },
  validate = function(req)
    local scene = req.effect_scene
    if type(scene) ~= "string" or not scene:match("^[%w_']+$") then
      return fail("effect_scene", "is required: the effect's name (hug, kiss_pro, pet_lion, ...)")
    end
    local err = R.video_mode(req) or validate.image(R.ctx(), req, "image")
    if err then
      return err
    end
    if req.input ~= nil and type(req.input) ~= "table" then
      return fail("input", "must be a table (the effect's own input fields)")
    end
    -- The API's spelling, a string of digits: tonumber read "0x5", " 5" and "5.0" as 5, and the
    -- text went upstream as it was (refused there, after the create was sent).
    local given = req.input and req.input.duration
    if given ~= nil and not (type(given) == "string" and given:find("^[1-9]%d*$") or validate.is_whole(given)) then
      return fail("input.duration", "must be whole seconds written in digits, such as \"5\", without a leading"
        .. " zero (got " .. validate.got(given) .. ")")
    end
    local input = effect_input(req)
    local dur = tonumber(input.duration) or 5
    local models = TWO_PERSON[scene]
    if models == nil then
      if input.image == nil then
        return fail("image", "is required for the single-image effect " .. scene)
      end
      err = validate.image(R.ctx(), input, "image")
      if err then
        return err
      end
      if dur ~= 5 and dur ~= 10 then
        return fail("duration", "must be 5 or 10 for " .. scene)
      end
      return nil
    end
    local images = input.images
    if type(images) ~= "table" or #images ~= 2 then
      return fail("images", "must hold exactly 2 images for the two-person effect " .. scene)
    end
    err = validate.array(R.ctx(), input, "images")
    if err then
      return err
    end
    for i, img in ipairs(images) do
      err = validate.image(R.ctx(), { image = img }, "image")
      if err then
        return fail("images[" .. i .. "]", err.message)
      end
    end
    if not models then
      if dur ~= 5 then
        return fail("duration", "must be 5 for " .. scene)
      end
      return nil
    end
    if dur ~= 5 and dur ~= 10 then
      return fail("duration", "must be 5 or 10 for " .. scene)
    end
    if input.model_name == nil or input.mode == nil then
      return fail(input.model_name == nil and "model" or "mode", scene .. " needs a model ("
        .. table.concat(models, ", ") .. ") and a mode (std or pro)")
    end
    return R.model({ model = input.model_name }, "effect " .. scene, set(models))
  end,
  build = function(req)
    local body = R.task_body(req)
    local input = effect_input(req)
    input.image = R.strip_data_uri(input.image)
    if type(input.images) == "table" then
      local imgs = {}
      for i, v in ipairs(input.images) do
        imgs[i] = R.strip_data_uri(v)
      end
      input.images = imgs
    end
    input.duration = input.duration or "5"
    body.input, body.images = input, nil
    return body
  end,
}

return M
