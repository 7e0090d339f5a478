-- The official API's text2video and image2video: per-model rules (durations, modes, sound,
-- voices, elements, multi-shot, camera control, motion brush) and the mapping of the
-- canonical request to Kling's spelling. Sources: ../shared/kling-api-notes.md ([R], [V]).
local validate = require "kling.validate"
local common = require "kling.providers.common"
local R = require "kling.providers.kling.rules"

local M = {}

-- Per model: modes, allowed durations (set) or a range, and which features it has.
local V1 = { modes = { std = true, pro = true }, durations = { [5] = true, [10] = true }, cfg = true }
local function model(base, extra)
  local m = {}
  for k, v in pairs(base) do
    m[k] = v
  end
  for k, v in pairs(extra or {}) do
    m[k] = v
  end
  return m
end
M.models = {
  ["kling-v1"] = model(V1, { camera = true }),
  ["kling-v1-5"] = model(V1),
  ["kling-v1-6"] = model(V1),
  ["kling-v2-master"] = model(V1, { cfg = false }),
  ["kling-v2-1"] = model(V1, { cfg = false }),
  ["kling-v2-1-master"] = model(V1, { cfg = false }),
  ["kling-v2-5-turbo"] = model(V1, { cfg = false }),
  ["kling-v2-6"] = model(V1, { cfg = false, sound = "pro", voices = true }),
  -- Seed 000 prices kling-video-o1 on text2video and image2video; there it takes 5 or 10 s.
  ["kling-video-o1"] = model(V1, { cfg = false }),
  ["kling-v3"] = model(V1, {
    durations = false, min_duration = 3, max_duration = 15,
    sound = true, voices = true, multi_shot = true, elements = true,
  }),
}
M.default_model = "kling-v1"

local SHOT_TYPES = { customize = true, intelligence = true }
local CAMERA_TYPES = {
  simple = true, down_back = true, forward_up = true, right_turn_forward = true, left_turn_forward = true,
}
local CAMERA_AXES = { "horizontal", "vertical", "pan", "tilt", "roll", "zoom" }
local ASPECT, RESOLUTION_MODE = R.ASPECT, R.RESOLUTION_MODE
local ctx, fail = R.ctx, R.fail

local function validate_camera(req)
  local cc = req.camera_control
  if cc == nil then
    return nil
  end
  local err = validate.object_keys(ctx(), cc, "camera_control", { "type", "config" })
  if err then
    return err
  end
  if not CAMERA_TYPES[cc.type] then
    return fail("camera_control.type", "must be one of simple, down_back, forward_up, "
      .. "right_turn_forward, left_turn_forward")
  end
  if cc.type ~= "simple" then
    if cc.config ~= nil then
      return fail("camera_control.config", "must be omitted unless type is simple")
    end
    return nil
  end
  if cc.config == nil then
    return fail("camera_control.config", "is required when type is simple")
  end
  err = validate.object_keys(ctx(), cc.config, "camera_control.config", CAMERA_AXES)
  if err then
    return err
  end
  local nonzero = 0
  for _, axis in ipairs(CAMERA_AXES) do
    local v = cc.config[axis]
    if v ~= nil then
      if type(v) ~= "number" or v < -10 or v > 10 then
        return fail("camera_control.config." .. axis, "must be a number between -10 and 10")
      end
      if v ~= 0 then
        nonzero = nonzero + 1
      end
    end
  end
  if nonzero ~= 1 then
    return fail("camera_control.config", "type simple needs exactly one non-zero axis (got " .. nonzero .. ")")
  end
  return nil
end

-- watermark_info {enabled}: the official API's own (kling-api-notes.md), sent as given.
local function validate_watermark(req)
  local wm = req.watermark_info
  if wm == nil then
    return nil
  end
  local err = validate.object_keys(ctx(), wm, "watermark_info", { "enabled" })
  if err then
    return err
  end
  if wm.enabled == nil then
    return fail("watermark_info.enabled", "is required: true or false")
  elseif type(wm.enabled) ~= "boolean" then
    return fail("watermark_info.enabled", "must be true or false (got " .. validate.got(wm.enabled) .. ")")
  end
  return nil
end

local function validate_multi_shot(req, m, duration)
  if not req.multi_shot then
    if req.multi_prompt ~= nil then
      return fail("multi_prompt", "needs multi_shot = true")
    end
    return nil
  end
  if not m.multi_shot then
    return fail("multi_shot", "is not supported by model " .. (req.model or M.default_model) .. " (kling-v3 has it)")
  end
  local err = validate.one_of(ctx(), req, "shot_type", SHOT_TYPES)
  if err then
    return err
  end
  if req.shot_type == "intelligence" then
    return nil
  end
  -- duration (duration_of) is never nil here: the shots must always sum to it.
  return common.check_shots(R.NAME, req, duration, "when multi_shot is true and shot_type is customize")
end

-- The request's duration in seconds as it will be sent (the sum of shots for multi-shot).
function M.duration_of(req)
  if req.duration ~= nil then
    return req.duration
  end
  if req.multi_shot and type(req.multi_prompt) == "table" then
    local sum = 0
    for _, shot in ipairs(req.multi_prompt) do
      -- Only well-formed shots count here; validation names a malformed one.
      sum = sum + (type(shot) == "table" and tonumber(shot.duration) or 0)
    end
    return sum
  end
  return 5
end

-- The motion brush: static_mask an image (a URL or base64 JPG/PNG, as image), dynamic_masks
-- at most 6 of {mask (such an image), trajectories (2 to 77 points {x, y}, whole pixels)}.
-- Passed through unchecked, a mask took any text (a URL behind U+00A0, past the gateway's
-- media check) and any shape, refused only upstream after the create was sent.
local function validate_masks(req)
  local c = ctx()
  local err = validate.image(c, req, "static_mask") or validate.array(c, req, "dynamic_masks", 6)
  if err or req.dynamic_masks == nil then
    return err
  end
  for i, m in ipairs(req.dynamic_masks) do
    local where = "dynamic_masks[" .. i .. "]"
    if type(m) ~= "table" or m[1] ~= nil then
      return fail(where, "must be an object {mask, trajectories}, got " .. validate.type_of(m))
    elseif m.mask == nil then
      return fail(where .. ".mask", "is required: the brushed area (an image URL or base64 JPG/PNG)")
    end
    err = validate.image(c, m, "mask")
    local tr = m.trajectories
    -- a hole ({p1, nil, p3}) left p3 unchecked, the points sent as a JSON object
    err = err or (type(tr) == "table" and validate.array(c, m, "trajectories")) or nil
    if not err and (type(tr) ~= "table" or #tr < 2 or #tr > 77) then
      err = fail("trajectories", "is required: 2 to 77 points {x, y}")
    end
    for j, p in ipairs(not err and tr or {}) do
      local point = "trajectories[" .. j .. "]"
      if type(p) ~= "table" then
        err = fail(point, "must be a point {x, y} of whole pixels, got " .. validate.got(p))
      else
        local axis = not validate.is_whole(p.x) and "x" or not validate.is_whole(p.y) and "y"
        err = axis and fail(point .. "." .. axis, "is required: whole pixels, got " .. validate.got(p[axis]))
      end
      if err then
        break
      end
    end
    if err then
      err.field = where .. "." .. err.field
      return err
    end
  end
  return nil
end

function M.validate(req, endpoint)
  local c = ctx()
  local model_name = req.model or M.default_model
  local merr = R.model(req, endpoint, M.models, M.default_model)
  if merr then
    return merr
  end
  local m = M.models[model_name]
  local i2v = endpoint == "videos/image2video"
  local err = validate.first(
    validate.text(c, req, "prompt", { required = not i2v and not req.multi_shot, max_chars = 2500,
      why = "for text2video" }),
    validate.text(c, req, "negative_prompt", { max_chars = 2500 }),
    validate.one_of(c, req, "mode", m.modes),
    validate.one_of(c, req, "resolution", { ["720p"] = true, ["1080p"] = true }),
    validate.one_of(c, req, "aspect_ratio", ASPECT),
    validate.number_in(c, req, "cfg_scale", 0, 1),
    validate.boolean(c, req, "sound"),
    validate.boolean(c, req, "multi_shot"),
    validate.callback_url(c, req),
    validate.external_id(c, req),
    validate.image(c, req, "image"),
    validate.image(c, req, "last_image"),
    validate.array(c, req, "voice_list", 2),
    R.element_ids(req, i2v and 3 or 7))
  if err then
    return err
  end
  err = common.check_duration(R.NAME, req, m, model_name) or R.check_mode_resolution(req)
  if err then
    return err
  end
  if req.cfg_scale ~= nil and not m.cfg then
    return fail("cfg_scale", "is not supported by model " .. model_name)
  end
  local mode = R.mode_of(req) or "std"
  if req.sound then
    if not m.sound then
      return fail("sound", "is not supported by model " .. model_name .. " (kling-v2-6 pro and kling-v3 have it)")
    end
    if m.sound == "pro" and mode ~= "pro" then
      return fail("sound", "needs mode pro on " .. model_name)
    end
  end
  if req.voice_list ~= nil then
    if not m.voices then
      return fail("voice_list", "is not supported by model " .. model_name)
    end
    if not req.sound then
      return fail("voice_list", "needs sound = true")
    end
    if req.element_list ~= nil then
      return fail("voice_list", "cannot be combined with element_list")
    end
  end
  if req.element_list ~= nil and not m.elements then
    return fail("element_list", "is not supported by model " .. model_name .. " (kling-v3 has it)")
  end
  if req.camera_control ~= nil and not m.camera then
    return fail("camera_control", "is not supported by model " .. model_name)
  end
  err = validate_camera(req) or validate_watermark(req)
  if err then
    return err
  end
  if i2v then
    -- The API's image2video requires image; an end frame alone is not a request it takes.
    if req.image == nil then
      if req.last_image ~= nil then
        return fail("last_image", "needs image (the first frame): an end frame alone is refused by image2video")
      end
      return fail("image", "is required for image2video")
    end
    local masks = req.static_mask ~= nil or req.dynamic_masks ~= nil
    local exclusive = 0
    for _, on in ipairs { req.last_image ~= nil, masks, req.camera_control ~= nil } do
      if on then
        exclusive = exclusive + 1
      end
    end
    if exclusive > 1 then
      return fail("last_image", "first/last frame, motion brush (static_mask, dynamic_masks) and "
        .. "camera_control are mutually exclusive")
    end
    err = validate_masks(req)
    if err then
      return err
    end
  elseif req.last_image ~= nil or req.static_mask ~= nil or req.dynamic_masks ~= nil then
    return fail("last_image", "needs an image-to-video endpoint")
  end
  if req.multi_shot and i2v and req.prompt ~= nil and req.multi_prompt ~= nil then
    return fail("prompt", "cannot be combined with multi_prompt on image2video")
  end
  return validate_multi_shot(req, m, M.duration_of(req))
end

-- Canonical fields this file maps itself; any other field passes through unchanged.
local CANONICAL = {
  provider = true, endpoint = true, model = true, duration = true, sound = true, image = true,
  last_image = true, multi_prompt = true, element_list = true, voice_list = true, resolution = true,
  n = true, estimate = true,
}

-- The body of the create for a validated request.
function M.build(req, endpoint)
  local body = common.copy_except(req, CANONICAL)
  body.model_name = req.model or M.default_model
  if req.resolution and not req.mode then
    body.mode = RESOLUTION_MODE[req.resolution]
  end
  body.duration = tostring(math.floor(M.duration_of(req)))
  if req.sound ~= nil then
    body.sound = req.sound and "on" or "off"
  end
  if endpoint == "videos/image2video" then
    body.aspect_ratio = nil
    body.image = R.strip_data_uri(req.image)
    body.image_tail = R.strip_data_uri(req.last_image)
  end
  if req.multi_prompt then
    body.shot_type = req.shot_type or "customize"
    body.multi_prompt = {}
    for i, shot in ipairs(req.multi_prompt) do
      body.multi_prompt[i] = { index = i, prompt = shot.prompt, duration = tostring(shot.duration) }
    end
  end
  if req.element_list then
    body.element_list = common.id_list(req.element_list, "element_id")
  end
  if req.voice_list then
    body.voice_list = common.id_list(req.voice_list, "voice_id")
  end
  return body
end

return M

