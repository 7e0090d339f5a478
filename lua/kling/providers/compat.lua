-- The OpenAI-style gateway of seed 004: POST /v1/video/generations, GET /v1/videos/{task_id};
-- model ids kling-v3-{std,pro}-{silent,audio} carry the mode and the sound; first/last frame as
-- image + last_image (public URLs); extra_body {negative_prompt, cfg_scale, multi_prompt,
-- element_list, shot_type customize|intelligent}; a job {id, task_id, object
-- "video.generation.job", model, status, progress, video_url}; a Bearer API key.
-- The seed's "common errors" are refused before the network: prompt together with
-- extra_body.multi_prompt in image mode, durations outside 3-15, silent output asked of an audio
-- model, private media URLs.
-- ASSUMPTION: statuses other than "completed" are not shown; the OpenAI video job's queued,
-- in_progress, failed (and pending, processing, cancelled) are read. Errors are OpenAI's
-- {error = {message, type, code, param}} with the HTTP status.
local validate = require "kling.validate"
local errors = require "kling.errors"
local gw = require "kling.providers.gateway"
local common = require "kling.providers.common"

local P = {
  name = "compat",
  title = "OpenAI-style gateway",
  -- The seed writes {BASE_URL}: pass base_url (or KLING_BASE_URL).
  default_base_url = nil,
  -- what every path of its own starts with: a base_url ending in it is refused (/v1/v1/...)
  route_prefix = "/v1",
  auth = { jwt = false, api_key = true },
  capabilities = {
    text_to_video = true, image_to_video = true, first_last_frame = true, multi_shot = true,
    sound = true, elements = true, voices = false, cancel = false, external_ids = false,
    callbacks = false, list = false,
  },
  default_model = "kling-v3",
  statuses = {
    queued = "queued", pending = "queued", submitted = "queued", in_progress = "running",
    processing = "running", running = "running", completed = "succeeded", succeeded = "succeeded",
    failed = "failed", cancelled = "cancelled", canceled = "cancelled",
  },
  create_path = "/v1/video/generations",
}

-- Wire model id -> {mode, sound}.
P.models = {
  ["kling-v3-std-silent"] = { mode = "std", sound = false },
  ["kling-v3-std-audio"] = { mode = "std", sound = true },
  ["kling-v3-pro-silent"] = { mode = "pro", sound = false },
  ["kling-v3-pro-audio"] = { mode = "pro", sound = true },
}

P.endpoints = {
  ["videos/text2video"] = { kind = "video", async = true },
  ["videos/image2video"] = { kind = "video", async = true },
}

-- Seed 004 documents extra_body (negative_prompt, cfg_scale, multi_prompt, element_list,
-- shot_type: written canonically here); extra_body itself passes its other fields on.
P.own = { ["videos/text2video"] = { extra_body = true }, ["videos/image2video"] = { extra_body = true } }

local MAPS = {
  last_image = true, multi_shot = true, multi_prompt = true, shot_type = true, element_list = true,
  negative_prompt = true, cfg_scale = true,
}
-- Canonical "intelligence" is spelt "intelligent" here (seed 004).
local SHOT_TYPES = { customize = "customize", intelligence = "intelligent", intelligent = "intelligent" }

local CANONICAL = {
  provider = true, endpoint = true, model = true, duration = true, sound = true, image = true,
  last_image = true, multi_shot = true, multi_prompt = true, shot_type = true, element_list = true,
  resolution = true, mode = true, negative_prompt = true, cfg_scale = true,
}

local function fail(field, msg)
  return errors.validation(field, msg, P.name)
end

P.default_endpoint = common.video_endpoint

-- A local file for a media field: refused, the compatible gateway takes URLs only (seed 004).
P.media_inputs = gw.url_media()

-- The model id for a request: the canonical kling-v3 with mode and sound, or an id given
-- directly, which must agree with mode and sound when those are given too.
function P.model_id(req)
  local name = req.model or P.default_model
  local mode = gw.mode_of(req)
  if name == "kling-v3" then
    return string.format("kling-v3-%s-%s", mode or "std", req.sound and "audio" or "silent")
  end
  local m = P.models[name]
  if not m then
    return nil, fail("model", "unknown model '" .. validate.shown(name) .. "' (known: kling-v3, kling-v3-std-silent, "
      .. "kling-v3-std-audio, kling-v3-pro-silent, kling-v3-pro-audio)")
  end
  if req.sound == false and m.sound then
    return nil, fail("sound", "silent output wanted but " .. name .. " is an audio model: use "
      .. name:gsub("%-audio$", "-silent"))
  end
  if req.sound == true and not m.sound then
    return nil, fail("sound", "sound wanted but " .. name .. " is a silent model: use "
      .. name:gsub("%-silent$", "-audio"))
  end
  if mode and mode ~= m.mode then
    return nil, fail("mode", mode .. " wanted but " .. name .. " is a " .. m.mode .. " model")
  end
  return name
end

function P.validate(req, endpoint)
  local err = gw.check_request(P, req, endpoint, MAPS, "videos/text2video, videos/image2video")
  if err then
    return err
  end
  local i2v = endpoint == "videos/image2video"
  local customize = req.multi_shot and (req.shot_type or "customize") == "customize"
  err = gw.check_public_url(P, req, "image") or gw.check_public_url(P, req, "last_image")
    or gw.check_v3(P, req, { prompt_required = not i2v and not req.multi_shot, prompt_why = "for text-to-video" })
  if err then
    return err
  end
  local _, merr = P.model_id(req)
  if merr then
    return merr
  end
  if req.shot_type ~= nil and not SHOT_TYPES[req.shot_type] then
    return fail("shot_type", "must be customize or intelligent (canonical intelligence) (got "
      .. tostring(req.shot_type) .. ")")
  end
  err = validate.array(gw.ctx(P), req, "element_list", i2v and 3 or 7)
  if err then
    return err
  end
  if i2v then
    if req.image == nil then
      return fail("image", "is required for image-to-video (the first frame when last_image is given)")
    end
  elseif req.image ~= nil or req.last_image ~= nil then
    return fail("image", "makes the request image-to-video: use endpoint videos/image2video")
  end
  if req.multi_prompt ~= nil then
    if not i2v then
      return errors.unsupported(P.name, "multi_prompt", "extra_body.multi_prompt belongs to the advanced "
        .. "image-to-video mode: give an image")
    end
    if req.prompt ~= nil then
      return fail("prompt", "must not be sent together with extra_body.multi_prompt in image mode "
        .. "(seed 004's common errors): leave prompt out")
    end
  end
  if customize and req.multi_prompt == nil and req.prompt == nil then
    return fail("multi_prompt", "is required when multi_shot is true and shot_type is customize")
  end
  return nil
end

P.duration_of = gw.duration_with_default(5)

function P.build(req, endpoint)
  local body = common.copy_except(req, CANONICAL)
  body.model = P.model_id(req)
  body.duration = req.duration or (req.multi_shot and P.duration_of(req)) or nil
  if endpoint == "videos/image2video" then
    body.image = req.image
    body.last_image = req.last_image
  end
  local extra = {}
  for k, v in pairs(type(req.extra_body) == "table" and req.extra_body or {}) do
    extra[k] = v -- provider-only extra_body fields pass through
  end
  extra.negative_prompt = req.negative_prompt
  extra.cfg_scale = req.cfg_scale
  if req.shot_type or req.multi_shot then
    extra.shot_type = SHOT_TYPES[req.shot_type or "customize"]
  end
  if req.multi_prompt then
    extra.multi_prompt = {}
    for i, shot in ipairs(req.multi_prompt) do
      extra.multi_prompt[i] = { index = i, prompt = shot.prompt, duration = shot.duration }
    end
  end
  if req.element_list then
    extra.element_list = common.id_list(req.element_list, "element_id")
  end
  body.extra_body = next(extra) ~= nil and extra or nil
  return { method = "POST", path = P.create_path, body = body }
end

function P.query_path(_, id)
  return "/v1/videos/" .. common.escape(id)
end

local function is_job(body)
  return body.id ~= nil or body.task_id ~= nil
end

-- A job object on 2xx; OpenAI's {error = {message, type, code}} otherwise (a code-less
-- error named by its type).
function P.unwrap(body, http_status)
  return gw.unwrap_plain(body, http_status, is_job, true)
end

function P.parse_task(data)
  local t, err = gw.plain_task(P, data, "job object without id")
  if not t then
    return nil, err
  end
  t.model, t.created_at = data.model, tonumber(data.created_at)
  if type(data.video_url) == "string" then
    t.videos = { { url = data.video_url, duration = tonumber(data.seconds or data.duration) } }
  end
  return common.checked_task(t)
end

-- The gateway posts its job object (tolerated inside {data = job} too).
function P.parse_callback(raw)
  return gw.plain_callback(raw, is_job, P.parse_task)
end

-- Business codes: none (its errors carry {error = {code or type, message}} with names, not numbers), so the
-- HTTP status decides (gw.status_only_codes).
P.codes, P.renew_token_codes, P.slot_full_codes = gw.status_only_codes()

-- Its dated price catalog (kling.billing reads it through this link).
P.prices = "kling.prices.compat"

return P
