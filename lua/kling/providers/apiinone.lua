-- "API in One" gateway (seed 001): model "kling-3" on POST /api/v1/videos/generations, one
-- route for text- and image-to-video (an `image` makes it image-to-video), duration a number
-- (3-15 s, default 5), sound a boolean (default true), multi_shots + multi_prompt, and
-- kling_elements; tasks at GET /api/v1/tasks/{task_id}; a Bearer API key.
-- ASSUMPTION: the seed shows neither the response envelope nor the task object. This file
-- reads {code = 0, message, data = task} (and a bare task object), a task {task_id, status
-- pending|processing|completed|failed, progress, credits, output = {videos = [{url,
-- duration}]}, error = {code, message}}, and errors as {code, message} with the HTTP status.
local validate = require "kling.validate"
local errors = require "kling.errors"
local gw = require "kling.providers.gateway"
local common = require "kling.providers.common"

local P = {
  name = "apiinone",
  title = "API in One",
  -- The seed names no host: pass base_url (or KLING_BASE_URL).
  default_base_url = nil,
  -- what every path of its own starts with: a base_url ending in it is refused (/v1/v1/...)
  route_prefix = "/api/v1",
  auth = { jwt = false, api_key = true },
  capabilities = {
    text_to_video = true, image_to_video = true, first_last_frame = false, multi_shot = true,
    sound = true, elements = true, voices = false, cancel = false, external_ids = false,
    callbacks = false, list = false,
  },
  default_model = "kling-v3",
  -- canonical model name -> the gateway's
  models = { ["kling-v3"] = "kling-3", ["kling-3"] = "kling-3" },
  statuses = {
    pending = "queued", queued = "queued", submitted = "queued", processing = "running", running = "running",
    completed = "succeeded", succeeded = "succeeded", success = "succeeded", failed = "failed",
    cancelled = "cancelled", canceled = "cancelled",
  },
  create_path = "/api/v1/videos/generations",
}

P.endpoints = {
  ["videos/text2video"] = { kind = "video", async = true },
  ["videos/image2video"] = { kind = "video", async = true },
}

-- Seed 001's own spellings of canonical fields; it documents no other field.
P.spellings = { multi_shots = "multi_shot", kling_elements = "element_list" }

-- Canonical fields this gateway maps (others of the canonical set are refused by name).
local MAPS = { multi_shot = true, multi_prompt = true, shot_type = "customize", element_list = true }

-- Canonical fields this file spells itself; anything else passes through unchanged.
local CANONICAL = {
  provider = true, endpoint = true, model = true, duration = true, sound = true, image = true,
  multi_shot = true, multi_prompt = true, shot_type = true, element_list = true, resolution = true,
  mode = true,
}

local function fail(field, msg)
  return errors.validation(field, msg, P.name)
end

P.default_endpoint = common.video_endpoint

-- A local file for a media field: refused, API in One takes URLs only (seed 001).
P.media_inputs = gw.url_media()

function P.validate(req, endpoint)
  local err = gw.check_request(P, req, endpoint, MAPS, "videos/text2video, videos/image2video")
  if err then
    return err
  end
  if req.model ~= nil and not P.models[req.model] then
    return fail("model", "unknown model '" .. tostring(req.model) .. "' (API in One serves kling-v3, "
      .. "spelt kling-3)")
  end
  local i2v = endpoint == "videos/image2video"
  err = gw.check_v3(P, req, { prompt_required = not req.multi_shot, prompt_why = "unless multi_shot is true" })
    or validate.array(gw.ctx(P), req, "element_list", i2v and 3 or 7)
    or validate.url(gw.ctx(P), req, "image", "must be an http(s) image URL (API in One takes no inline data)")
  if err then
    return err
  end
  if i2v and req.image == nil then
    return fail("image", "is required for image-to-video")
  elseif not i2v and req.image ~= nil then
    return fail("image", "makes the request image-to-video: use endpoint videos/image2video")
  end
  return nil
end

P.duration_of = gw.duration_with_default(5)

function P.build(req, endpoint)
  local body = common.copy_except(req, CANONICAL)
  body.model = P.models[req.model or P.default_model]
  body.mode = gw.mode_of(req)
  body.duration = req.duration or (req.multi_shot and P.duration_of(req)) or nil
  body.sound = req.sound
  if endpoint == "videos/image2video" then
    body.image = req.image
  end
  if req.multi_shot then
    body.multi_shots = true
    body.multi_prompt = {}
    for i, shot in ipairs(req.multi_prompt) do
      body.multi_prompt[i] = { prompt = shot.prompt, duration = shot.duration }
    end
  end
  if req.element_list then
    body.kling_elements = req.element_list
  end
  return { method = "POST", path = P.create_path, body = body }
end

function P.query_path(_, id)
  return "/api/v1/tasks/" .. common.escape(id)
end

-- {code = 0, message, data}: data; {code ~= 0}: nil, code, message; a bare task object on a
-- 2xx answer is taken as it is.
function P.unwrap(body, http_status)
  if type(body) ~= "table" then
    return false
  end
  local ok_status = http_status == nil or (http_status >= 200 and http_status < 300)
  if body.code ~= nil then
    if (body.code == 0 or body.code == 200) and ok_status then
      return body.data
    end
    if body.code == 0 or body.code == 200 then
      return nil, http_status, body.message or body.msg, body.request_id
    end
    return nil, body.code, body.message or body.msg, body.request_id
  end
  if type(body.error) == "table" then
    return nil, body.error.code, body.error.message
  end
  if ok_status and body.task_id ~= nil then
    return body
  end
  return false
end

local function videos_of(out)
  if type(out) ~= "table" then
    return nil
  end
  local list = {}
  if type(out.videos) == "table" then
    for i, v in ipairs(out.videos) do
      if type(v) == "table" then
        list[i] = { url = v.url, duration = tonumber(v.duration), size = v.size }
      else
        list[i] = { url = v }
      end
    end
  elseif out.video_url then
    list[1] = { url = out.video_url, duration = tonumber(out.duration) }
  end
  return #list > 0 and list or nil
end

function P.parse_task(data)
  local t, err = gw.plain_task(P, data, "task object without task_id")
  if not t then
    return nil, err
  end
  t.created_at, t.updated_at = common.ms_to_s(data.created_at), common.ms_to_s(data.updated_at)
  t.charge = gw.charge(data.credits)
  t.videos = videos_of(data.output)
  return common.checked_task(t)
end

-- The seed documents no callbacks; a POSTed task (bare or in the envelope) reads like a query.
function P.parse_callback(raw)
  return common.callback_task(raw, P.unwrap, P.parse_task)
end

-- Business codes: none (its errors carry {code = the HTTP status, message}), so the HTTP status decides
-- (gw.status_only_codes).
P.codes, P.renew_token_codes, P.slot_full_codes = gw.status_only_codes()

-- Its dated price catalog (kling.billing reads it through this link).
P.prices = "kling.prices.apiinone"

return P
