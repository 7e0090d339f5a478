-- apimodels gateway (seed 002): POST /api/v1/video/generations (an `image` makes it
-- image-to-video), GET /api/v1/video/generations?task_id=; envelope {code = 200, msg, data};
-- tasks {taskId, state pending|processing|completed|failed, resultUrls, failMsg}; models
-- kling-v2-6 (5/10 s), kling-v3 (3-15 s) and kling-motion-control (image + motion_video);
-- duration as a string; callbacks whose data.param and data.resultJson are JSON strings;
-- errors 400/401/402/404/500; a Bearer API key.
-- ASSUMPTION: the seed prices sound and voices but shows no parameter for them; they are
-- spelt as on the official API (sound "on"|"off", voice_list [{voice_id}]).
local validate = require "kling.validate"
local errors = require "kling.errors"
local json = require "kling.json"
local gw = require "kling.providers.gateway"
local common = require "kling.providers.common"

local P = {
  name = "apimodels",
  title = "apimodels",
  default_base_url = "https://apimodels.app",
  -- what every path of its own starts with: a base_url ending in it is refused (/v1/v1/...)
  route_prefix = "/api/v1",
  auth = { jwt = false, api_key = true },
  capabilities = {
    text_to_video = true, image_to_video = true, first_last_frame = false, multi_shot = false,
    sound = true, elements = false, voices = true, cancel = false, external_ids = false,
    callbacks = true, list = false, motion_control = true,
  },
  default_model = "kling-v2-6",
  statuses = { pending = "queued", processing = "running", completed = "succeeded", failed = "failed" },
  create_path = "/api/v1/video/generations",
}

-- Per model: durations (a set) or a range, sound (true, or "pro" when only pro has it), voices.
P.models = {
  ["kling-v2-6"] = { durations = { [5] = true, [10] = true }, sound = "pro", voices = true },
  ["kling-v3"] = { min_duration = 3, max_duration = 15, sound = true },
}

P.endpoints = {
  ["videos/text2video"] = { kind = "video", async = true },
  ["videos/image2video"] = { kind = "video", async = true },
  ["videos/motion-control"] = { kind = "video", async = true, model = "kling-motion-control" },
}

-- Seed 002's fields beyond the canonical ones: the motion source video of motion control.
P.own = { ["videos/motion-control"] = { motion_video = true } }

-- A local file for a media field: refused, apimodels takes URLs only (seed 002).
P.media_inputs = gw.url_media { "motion_video" }

local MAPS = { voice_list = true, callback_url = true }

local CANONICAL = {
  provider = true, endpoint = true, model = true, duration = true, sound = true, image = true,
  voice_list = true, resolution = true, mode = true,
}

local function fail(field, msg)
  return errors.validation(field, msg, P.name)
end

function P.default_endpoint(req)
  if req.motion_video ~= nil or req.model == "kling-motion-control" then
    return "videos/motion-control"
  end
  return common.video_endpoint(req)
end

local function check_url(req, field, required, what)
  local v = req[field]
  if v == nil then
    return required and fail(field, "is required (" .. what .. ")") or nil
  end
  if not validate.is_url(v) then
    return fail(field, "must be an http(s) URL of the " .. what)
  end
  return nil
end

local function validate_motion(req)
  local c = gw.ctx(P)
  if req.model ~= nil and req.model ~= "kling-motion-control" then
    return fail("model", "must be kling-motion-control on videos/motion-control (got " .. tostring(req.model) .. ")")
  end
  return validate.first(
    check_url(req, "image", true, "character reference image"),
    check_url(req, "motion_video", true, "motion source video"),
    validate.text(c, req, "prompt", { max_chars = 2500 }),
    validate.one_of(c, req, "mode", gw.MODES),
    validate.one_of(c, req, "resolution", gw.RESOLUTIONS),
    validate.whole_in(c, req, "duration", 1, 30),
    req.sound and fail("sound", "is not supported by kling-motion-control") or nil)
end

function P.validate(req, endpoint)
  local err = gw.check_request(P, req, endpoint, MAPS, "videos/text2video, videos/image2video, "
    .. "videos/motion-control") or validate.callback_url(gw.ctx(P), req)
  if err then
    return err
  end
  if endpoint == "videos/motion-control" then
    return validate_motion(req)
  end
  local name = req.model or P.default_model
  local m = P.models[name]
  if not m then
    return fail("model", "unknown model '" .. validate.shown(name) .. "' for " .. endpoint
      .. " (known: kling-v2-6, kling-v3; kling-motion-control on videos/motion-control)")
  end
  local i2v = endpoint == "videos/image2video"
  local c = gw.ctx(P)
  err = validate.first(
    validate.text(c, req, "prompt", { required = not i2v, max_chars = 2500, why = "for text-to-video" }),
    validate.one_of(c, req, "mode", gw.MODES),
    validate.one_of(c, req, "resolution", gw.RESOLUTIONS),
    validate.one_of(c, req, "aspect_ratio", gw.ASPECT),
    validate.boolean(c, req, "sound"),
    validate.array(c, req, "voice_list", 2),
    check_url(req, "image", i2v, "image"))
  if err then
    return err
  end
  err = common.check_duration(P.name, req, m, name) or common.check_mode_resolution(P.name, req)
  if err then
    return err
  end
  local mode = gw.mode_of(req) or "std"
  if req.sound and m.sound == "pro" and mode ~= "pro" then
    return fail("sound", "needs mode pro on " .. name .. " (the gateway sells sound on pro only)")
  end
  if req.voice_list ~= nil then
    if not m.voices then
      return fail("voice_list", "is not supported by model " .. name .. " (kling-v2-6 has voices)")
    end
    if not req.sound then
      return fail("voice_list", "needs sound = true")
    end
  end
  if not i2v and req.image ~= nil then
    return fail("image", "makes the request image-to-video: use endpoint videos/image2video")
  end
  return nil
end

function P.duration_of(req)
  return req.duration or 5
end

function P.build(req, endpoint)
  local body = common.copy_except(req, CANONICAL)
  body.image = req.image
  if endpoint == "videos/motion-control" then
    body.model = "kling-motion-control"
    body.resolution = req.resolution or (req.mode and gw.MODE_RESOLUTION[req.mode]) or nil
    body.duration = req.duration and tostring(math.floor(req.duration)) or nil
    return { method = "POST", path = P.create_path, body = body }
  end
  body.model = req.model or P.default_model
  body.mode = gw.mode_of(req)
  body.duration = req.duration and tostring(math.floor(req.duration)) or nil
  if req.sound ~= nil then
    body.sound = req.sound and "on" or "off"
  end
  if req.voice_list then
    body.voice_list = common.id_list(req.voice_list, "voice_id")
  end
  return { method = "POST", path = P.create_path, body = body }
end

function P.query_path(_, id)
  return P.create_path .. "?task_id=" .. common.escape(id)
end

-- {code = 200, msg, data}: data; any other code: nil, code, msg.
function P.unwrap(body, http_status)
  if type(body) ~= "table" or body.code == nil then
    return false
  end
  if body.code ~= 200 then
    return nil, body.code, body.msg or body.message
  end
  if http_status and (http_status < 200 or http_status >= 300) then
    return nil, http_status, body.msg or body.message
  end
  if type(body.data) ~= "table" then
    return false
  end
  return body.data
end

local function videos_of(urls, result)
  if type(urls) ~= "table" or #urls == 0 then
    return nil
  end
  local list = {}
  for i, url in ipairs(urls) do
    list[i] = { url = url }
    if i == 1 and type(result) == "table" then
      list[i].duration = tonumber(result.videoDuration)
      list[i].size = result.videoSize
      list[i].thumbnail_url = result.thumbnailUrl
    end
  end
  return list
end

-- A task from a query's data or a callback's data (whose resultJson is already decoded).
local function task_of(data, result)
  if type(data) ~= "table" or data.taskId == nil then
    return nil, "task object without taskId"
  end
  local status = P.statuses[data.state]
  if not status then
    return nil, "unknown state '" .. tostring(data.state) .. "'"
  end
  local urls = data.resultUrls
  if urls == nil and type(result) == "table" then
    urls = result.resultUrls
  end
  local t = {
    id = tostring(data.taskId),
    status = status,
    provider_status = data.state,
    message = data.failMsg ~= json.null and data.failMsg or nil,
    fail_code = data.failCode ~= json.null and data.failCode or nil,
    created_at = common.ms_to_s(data.createTime),
    updated_at = common.ms_to_s(data.completeTime),
    model = data.model,
    videos = videos_of(urls, result),
    raw = data,
  }
  if status == "succeeded" then
    t.progress = 100
  end
  return t
end

function P.parse_task(data)
  return common.checked_task(task_of(data, nil))
end

-- The callback: {code, msg, data = {taskId, state, param = "<JSON>", resultJson = "<JSON>" |
-- null, failCode, failMsg, costTime, completeTime, createTime}}.
function P.parse_callback(raw)
  local doc, derr = common.decode_object(raw)
  if not doc then
    return nil, derr
  end
  local data = doc.data
  if type(data) ~= "table" then
    return nil, "callback without a data object"
  end
  local param, perr = gw.maybe_json(data.param)
  if perr then
    return nil, "data.param is not a JSON string: " .. tostring(perr)
  end
  local result, rerr = gw.maybe_json(data.resultJson)
  if rerr then
    return nil, "data.resultJson is not a JSON string: " .. tostring(rerr)
  end
  local t, terr = task_of(data, result)
  if not t then
    return nil, terr
  end
  t.request_param = param
  t.result = result
  t.cost_ms = tonumber(data.costTime)
  return common.checked_task(t)
end

-- Business codes: none (its errors carry {code = the HTTP status (400, 401, 402, 404, 500), msg}), so the
-- HTTP status decides (gw.status_only_codes).
P.codes, P.renew_token_codes, P.slot_full_codes = gw.status_only_codes()

-- Its dated price catalog (kling.billing reads it through this link).
P.prices = "kling.prices.apimodels"

return P
