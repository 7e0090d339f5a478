-- EvoLink gateway (seed 003, and the EvoLink section of ../shared/kling-api-notes.md): one
-- POST /v1/videos/generations for every model (kling-v3-text-to-video, kling-v3-image-to-video,
-- kling-custom-element, ...), tasks at GET /v1/tasks/{id}: {id, status pending|processing|
-- completed|failed, progress, results, result_data, error, task_info {estimated_time,
-- can_cancel}, usage {credits_reserved}}; resolution as `quality` 720p|1080p; sound "on"|"off";
-- first/last frame as image_start/image_end; multi-shot and elements in model_params;
-- callback_url https only, no internal address, at most 2048 characters; a Bearer API key.
-- Errors: {error = {code, message, type, param}} with the HTTP status.
-- ASSUMPTION: no cancel call is documented (not in the notes, not in EvoLink's public client);
-- cancel() sends POST /v1/tasks/{id}/cancel when the task says task_info.can_cancel. A
-- cancelled task reads as status "failed" with error.code "request_cancelled" (the code
-- EvoLink's public client knows), or as "cancelled".
local validate = require "kling.validate"
local errors = require "kling.errors"
local gw = require "kling.providers.gateway"
local common = require "kling.providers.common"

local P = {
  name = "evolink",
  title = "EvoLink",
  default_base_url = "https://api.evolink.ai",
  -- what every path of its own starts with: a base_url ending in it is refused (/v1/v1/...)
  route_prefix = "/v1",
  auth = { jwt = false, api_key = true },
  capabilities = {
    text_to_video = true, image_to_video = true, first_last_frame = true, multi_shot = true,
    sound = true, elements = true, voices = false, cancel = true, external_ids = false,
    callbacks = true, list = false, custom_elements = true,
    -- no endpoint lists the elements made: an interrupted create cannot be looked up
    element_list = false,
  },
  default_model = "kling-v3",
  statuses = {
    pending = "queued", processing = "running", completed = "succeeded", failed = "failed",
    cancelled = "cancelled", canceled = "cancelled",
  },
  create_path = "/v1/videos/generations",
  ELEMENT_MODEL = "kling-custom-element",
}

-- Model families: the canonical name picks the text or image model by endpoint.
local FAMILIES = {
  ["kling-v3"] = { t2v = "kling-v3-text-to-video", i2v = "kling-v3-image-to-video" },
  ["kling-o3"] = { t2v = "kling-o3-text-to-video", i2v = "kling-o3-image-to-video" },
}
local MODEL_ENDPOINT = {}
for _, f in pairs(FAMILIES) do
  MODEL_ENDPOINT[f.t2v] = "videos/text2video"
  MODEL_ENDPOINT[f.i2v] = "videos/image2video"
end
P.models = MODEL_ENDPOINT

P.endpoints = {
  ["videos/text2video"] = { kind = "video", async = true },
  ["videos/image2video"] = { kind = "video", async = true },
  ["general/custom-elements"] = { kind = "element", async = true, model = P.ELEMENT_MODEL },
}

local MAPS = {
  last_image = true, multi_shot = true, multi_prompt = true, shot_type = true, element_list = true,
  callback_url = true, negative_prompt = true,
}
local SHOT_TYPES = { customize = true, intelligence = true }
local REFERENCE_TYPES = { image_refer = true, video_refer = true }

local CANONICAL = {
  provider = true, endpoint = true, model = true, duration = true, sound = true, image = true,
  last_image = true, multi_shot = true, multi_prompt = true, shot_type = true, element_list = true,
  resolution = true, mode = true,
}
-- What an element's body spells itself (the rest, but its model_params fields, passes through).
local ELEMENT_SPELT = { provider = true, endpoint = true, model = true, callback_url = true }
-- Fields of a custom element, sent inside model_params.
local ELEMENT_FIELDS = {
  "element_name", "element_description", "reference_type", "element_image_list", "element_video_list",
  "element_voice_id",
}

-- Seed 003's own fields: model_params (its container of model options) on the videos, the
-- element's fields on custom elements; its spellings of canonical fields point at them.
P.own = { ["videos/text2video"] = { model_params = true }, ["videos/image2video"] = { model_params = true },
  ["general/custom-elements"] = {} }
for _, f in ipairs(ELEMENT_FIELDS) do
  P.own["general/custom-elements"][f] = true
end
P.spellings = { quality = "resolution", image_start = "image", image_end = "last_image" }

-- A local file for a media field: refused, EvoLink takes URLs only (seed 003).
P.media_inputs = gw.url_media { "image_start", "image_end", "element_image_list.frontal_image",
  "element_image_list.refer_images[].image_url", "element_video_list.video_url" }

local function fail(field, msg)
  return errors.validation(field, msg, P.name)
end

function P.default_endpoint(req)
  if req.model == P.ELEMENT_MODEL or req.element_name ~= nil or req.reference_type ~= nil then
    return "general/custom-elements"
  end
  if req.model and MODEL_ENDPOINT[req.model] then
    return MODEL_ENDPOINT[req.model]
  end
  return common.video_endpoint(req)
end

-- The wire model id for a request on an endpoint, or nil and an error.
function P.model_id(req, endpoint)
  local name = req.model or P.default_model
  local fam = FAMILIES[name]
  if fam then
    return endpoint == "videos/image2video" and fam.i2v or fam.t2v
  end
  if MODEL_ENDPOINT[name] == endpoint then
    return name
  end
  if MODEL_ENDPOINT[name] then
    return nil, fail("model", name .. " is a model of " .. MODEL_ENDPOINT[name] .. ", not of " .. endpoint)
  end
  return nil, fail("model", "unknown model '" .. validate.shown(name) .. "' (known: kling-v3, kling-o3, "
    .. "kling-v3-text-to-video, kling-v3-image-to-video, kling-o3-text-to-video, kling-o3-image-to-video)")
end

-- https only, no internal address, at most 2048 characters (seed 003).
function P.check_callback(req)
  local v = req.callback_url
  if v == nil then
    return nil
  end
  local problem = validate.callback_url_problem(v)
  if problem then
    return fail("callback_url", problem)
  end
  if #v > 2048 then
    return fail("callback_url", "must be at most 2048 characters (got " .. #v .. ")")
  end
  if not v:match("^[Hh][Tt][Tt][Pp][Ss]://") or not validate.is_url(v) then
    return fail("callback_url", "must be an https URL (EvoLink calls back over HTTPS only)")
  end
  if gw.is_private_host(gw.url_host(v)) then
    return fail("callback_url", "must not point to an internal address (" .. tostring(gw.url_host(v)) .. ")")
  end
  return nil
end

local function check_image_list(list)
  if type(list) ~= "table" then
    return fail("element_image_list", "is required when reference_type is image_refer: "
      .. "{frontal_image = URL, refer_images = {{image_url = URL}, ...}}")
  end
  local front = list.frontal_image
  if type(front) ~= "string" or not validate.is_url(front) then
    return fail("element_image_list.frontal_image", "must be one frontal image URL")
  end
  local refs = list.refer_images
  if refs ~= nil then
    if type(refs) ~= "table" or (next(refs) ~= nil and refs[1] == nil) then
      return fail("element_image_list.refer_images", "must be an array of {image_url = URL}")
    end
    local at, why = validate.list_problem(refs, "element_image_list.refer_images")
    if at then
      return fail(at, why)
    end
    if #refs < 1 or #refs > 3 then -- seed 003: optional, 1-3 (an empty one is refused there)
      return fail("element_image_list.refer_images", "must have 1 to 3 images when given, or be left out (got "
        .. #refs .. ")")
    end
    for i, r in ipairs(refs) do
      local url = type(r) == "table" and r.image_url or nil
      if type(url) ~= "string" or not validate.is_url(url) then
        return fail("element_image_list.refer_images[" .. i .. "].image_url", "must be an image URL")
      end
    end
  end
  return nil
end

local function validate_element(req)
  local c = gw.ctx(P)
  if req.model ~= nil and req.model ~= P.ELEMENT_MODEL then
    return fail("model", "must be " .. P.ELEMENT_MODEL .. " on general/custom-elements (got " .. tostring(req.model)
      .. ")")
  end
  for _, f in ipairs { "prompt", "duration", "resolution", "mode", "aspect_ratio", "sound", "image", "last_image" } do
    if req[f] ~= nil then
      return fail(f, "is not a parameter of " .. P.ELEMENT_MODEL .. " (it makes an element, not a video)")
    end
  end
  local err = validate.first(
    validate.text(c, req, "element_name", { required = true, max_chars = 20, line = true }),
    validate.text(c, req, "element_description", { required = true, max_chars = 100, line = true }),
    validate.one_of(c, req, "reference_type", REFERENCE_TYPES),
    validate.text(c, req, "element_voice_id", {}),
    P.check_callback(req))
  if err then
    return err
  end
  if req.reference_type == nil then
    return fail("reference_type", "is required: image_refer or video_refer")
  end
  if req.reference_type == "image_refer" then
    if req.element_voice_id ~= nil then
      return fail("element_voice_id", "is only supported with reference_type video_refer")
    end
    if req.element_video_list ~= nil then
      return fail("element_video_list", "goes with reference_type video_refer")
    end
    return check_image_list(req.element_image_list)
  end
  if req.element_image_list ~= nil then
    return fail("element_image_list", "goes with reference_type image_refer")
  end
  local v = req.element_video_list
  if type(v) ~= "table" or type(v.video_url) ~= "string" or not validate.is_url(v.video_url) then
    return fail("element_video_list", "is required when reference_type is video_refer: {video_url = URL}")
  end
  return nil
end

function P.validate(req, endpoint)
  local err = gw.check_request(P, req, endpoint, MAPS, "videos/text2video, videos/image2video, "
    .. "general/custom-elements")
  if err then
    return err
  end
  if endpoint == "general/custom-elements" then
    return validate_element(req)
  end
  local _, merr = P.model_id(req, endpoint)
  if merr then
    return merr
  end
  local i2v = endpoint == "videos/image2video"
  local customize = req.multi_shot and (req.shot_type or "customize") == "customize"
  err = gw.check_public_url(P, req, "image") or gw.check_public_url(P, req, "last_image")
    or gw.check_v3(P, req, { prompt_required = not customize, prompt_why = "unless multi_shot with shot_type "
    .. "customize" })
    or validate.one_of(gw.ctx(P), req, "shot_type", SHOT_TYPES)
    or validate.array(gw.ctx(P), req, "element_list", i2v and 3 or 7)
    or P.check_callback(req)
  if err then
    return err
  end
  if req.shot_type ~= nil and not req.multi_shot then
    return fail("shot_type", "needs multi_shot = true")
  end
  if i2v then
    if req.image == nil then
      return fail("image", "is required for image-to-video (the first frame; a last_image needs it too)")
    end
  elseif req.image ~= nil or req.last_image ~= nil then
    return fail("image", "makes the request image-to-video: use endpoint videos/image2video")
  end
  if req.element_list ~= nil and not i2v and (req.model or P.default_model):find("^kling%-v3") then
    return fail("element_list", "kling-v3 takes elements on image-to-video only (kling-o3 on both)")
  end
  return nil
end

P.duration_of = gw.duration_with_default(5)

function P.build(req, endpoint)
  if endpoint == "general/custom-elements" then
    local body, params = common.copy_except(req, ELEMENT_SPELT), {}
    for _, f in ipairs(ELEMENT_FIELDS) do
      params[f], body[f] = req[f], nil
    end
    body.model = P.ELEMENT_MODEL
    body.model_params = params
    body.callback_url = req.callback_url
    return { method = "POST", path = P.create_path, body = body }
  end
  local body = common.copy_except(req, CANONICAL)
  body.model = P.model_id(req, endpoint)
  body.duration = req.duration or (req.multi_shot and P.duration_of(req)) or nil
  local mode = gw.mode_of(req)
  body.quality = req.resolution or (mode and gw.MODE_RESOLUTION[mode]) or nil
  if req.sound ~= nil then
    body.sound = req.sound and "on" or "off"
  end
  body.image_start = req.image
  body.image_end = req.last_image
  local params = {}
  for k, v in pairs(type(req.model_params) == "table" and req.model_params or {}) do
    params[k] = v -- provider-only model_params pass through; the caller's table stays as it was
  end
  if req.multi_shot then
    params.multi_shot = true
    params.shot_type = req.shot_type or "customize"
    if req.multi_prompt then
      params.multi_prompt = {}
      for i, shot in ipairs(req.multi_prompt) do
        params.multi_prompt[i] = { index = i, prompt = shot.prompt, duration = shot.duration }
      end
    end
  end
  if req.element_list then
    params.element_list = common.id_list(req.element_list, "element_id")
  end
  if next(params) ~= nil then
    body.model_params = params
  end
  return { method = "POST", path = P.create_path, body = body }
end

function P.query_path(_, id)
  return "/v1/tasks/" .. common.escape(id)
end

function P.cancel_path(id)
  return "/v1/tasks/" .. common.escape(id) .. "/cancel"
end

local function is_task(body)
  return body.id ~= nil
end

-- A task object on 2xx; {error = {code, message}} otherwise.
function P.unwrap(body, http_status)
  return gw.unwrap_plain(body, http_status, is_task)
end

local function outputs(t, data)
  local videos, images, audios = {}, {}, {}
  if type(data.result_data) == "table" then
    for _, r in ipairs(data.result_data) do
      if type(r) == "table" then
        if r.video_url then
          videos[#videos + 1] = { url = r.video_url, duration = tonumber(r.duration), size = r.size }
        end
        if r.image_url then
          images[#images + 1] = { url = r.image_url, size = r.size }
        end
        if r.audio_url then
          audios[#audios + 1] = { url = r.audio_url, duration = tonumber(r.duration) }
        end
        if common.id_text(r.element_id) then -- later requests name it: its digits, exactly
          t.element_id = common.id_text(r.element_id)
          t.elements = t.elements or {}
          t.elements[#t.elements + 1] = { id = t.element_id, name = r.element_name }
        end
      end
    end
  end
  if #videos == 0 and #images == 0 and type(data.results) == "table" and t.element_id == nil then
    local kind = data.type or (type(data.object) == "string" and data.object:match("^(%a+)%.")) or "video"
    for _, url in ipairs(data.results) do
      if kind == "image" then
        images[#images + 1] = { url = url }
      elseif kind == "audio" then
        audios[#audios + 1] = { url = url }
      else
        videos[#videos + 1] = { url = url }
      end
    end
  end
  t.videos = #videos > 0 and videos or nil
  t.images = #images > 0 and images or nil
  t.audios = #audios > 0 and audios or nil
end

function P.parse_task(data)
  if type(data) ~= "table" or data.id == nil then
    return nil, "task object without id"
  end
  local id = common.id_text(data.id)
  if not id then
    return nil, "id is " .. validate.type_of(data.id) .. ", not an id (a string or a whole number)"
  end
  local status = P.statuses[data.status]
  if not status then
    return nil, "unknown status '" .. tostring(data.status) .. "'"
  end
  local err = type(data.error) == "table" and data.error or nil
  if status == "failed" and err and err.code == "request_cancelled" then
    status = "cancelled"
  end
  local info = type(data.task_info) == "table" and data.task_info or {}
  local usage = type(data.usage) == "table" and data.usage or {}
  local t = {
    id = id,
    status = status,
    provider_status = data.status,
    model = data.model,
    progress = tonumber(data.progress),
    eta = tonumber(info.estimated_time),
    can_cancel = info.can_cancel == true,
    message = err and err.message or nil,
    fail_code = err and err.code or nil,
    created_at = tonumber(data.created),
    -- seed 003: "Full refund on failure": a failed or cancelled task's credits_reserved were
    -- given back, and `kling status` said "charge reported: 27 evolink-credits" of a cancelled one
    charge = status ~= "failed" and status ~= "cancelled" and gw.charge(usage.credits_reserved) or nil,
    raw = data,
  }
  outputs(t, data)
  if status == "succeeded" then
    t.progress, t.eta = 100, 0
  end
  return common.checked_task(t)
end

-- EvoLink posts the task object itself (tolerated inside {data = task} too).
function P.parse_callback(raw)
  return gw.plain_callback(raw, is_task, P.parse_task)
end

-- Cancels a task that says it can be cancelled; the task is updated from the answer.
function P.cancel(client, task)
  if task.status == "succeeded" or task.status == "failed" or task.status == "cancelled" then
    return nil, fail("cancel", "task " .. tostring(task.id) .. " has already ended (" .. task.status .. ")")
  end
  if not task.can_cancel then
    return nil, fail("cancel", "task " .. tostring(task.id) .. " cannot be cancelled now (task_info.can_cancel "
      .. "is false)")
  end
  local data, err = require("kling.transport").call(client.ctx, { method = "POST", path = P.cancel_path(task.id) })
  if not data then
    return nil, err
  end
  local fresh, perr = P.parse_task(data)
  if not fresh then
    return nil, errors.new { kind = "protocol", provider = P.name, message = "cancel answer unreadable: " .. perr }
  end
  if task.update then
    task:update(fresh)
  end
  return task
end

-- Business codes: none (its errors carry {error = {code, message}} with names, not numbers), so the HTTP
-- status decides (gw.status_only_codes).
P.codes, P.renew_token_codes, P.slot_full_codes = gw.status_only_codes()

-- Its dated price catalog (kling.billing reads it through this link).
P.prices = "kling.prices.evolink"

return P
