-- EvoLink (seed 003 and the notes' EvoLink section), served under /evolink/: POST
-- /v1/videos/generations for kling-v3-text-to-video, kling-v3-image-to-video (and the O3 pair)
-- and kling-custom-element; GET /v1/tasks/{id} (task-unified-..., an element's task-video-...):
-- {created, id, model, object, progress, status
-- pending|processing|completed|failed, task_info {can_cancel, estimated_time, video_duration},
-- type, usage {billing_rule, credits_reserved, user_group}, results, result_data, error};
-- errors {error = {code, message, type, param}}; Bearer API key; the parallel limit answers 429.
-- ASSUMPTION (as in the provider file): POST /v1/tasks/{id}/cancel cancels a task whose
-- task_info.can_cancel is true; it then reads "failed" with error.code "request_cancelled".
-- Credits: 5.4 per second times 1.0 / 1.5 / 1.333 / 2.0 (720p/1080p, sound off/on), 3 s
-- minimum; 1 credit per element. The ledger books the exact credits in micro-credits
-- (`micros`); its older `units` keep credits rounded half up to the thousandth.
local gw = require "kling_sim.gateway"
local reply = require "kling_sim.reply"
local json = require "kling.json"

-- Its credits are its own money, not another gateway's: `unit` names them apart (kling_sim.admin.unit).
local M = { name = "evolink", ledger_unit = "credits", currency = "credits", unit = "evolink-credits" }

local VIDEO_MODELS = {
  ["kling-v3-text-to-video"] = { i2v = false, elements = 0, priced = true },
  ["kling-v3-image-to-video"] = { i2v = true, elements = 3, priced = true },
  ["kling-o3-text-to-video"] = { i2v = false, elements = 7 },
  ["kling-o3-image-to-video"] = { i2v = true, elements = 7 },
}
local ELEMENT_MODEL = "kling-custom-element"
local QUALITY = { ["720p"] = true, ["1080p"] = true }
local SOUND = { on = true, off = true }
local SHOT_TYPES = { customize = true, intelligence = true }
local REFERENCE_TYPES = { image_refer = true, video_refer = true }
-- "基础价格为每秒 5.4 积分 ... 720p+关闭音效 = 1.0x,720p+开启音效 = 1.5x,1080p+关闭音效 = 1.333x,
-- 1080p+开启音效 = 2.0x", in micro-credits per second: 5.4 x 1.333 = 7.1982 exactly, so the seed
-- needs no rounding of the rate; times the whole seconds asked (3-15), at least 3 ("短于 3 秒的
-- 视频按 3 秒最低标准计费"). The client's catalog rounds a delivered clip half up to whole seconds.
local PER_SECOND = { ["720p/off"] = 5400000, ["720p/on"] = 8100000, ["1080p/off"] = 7198200,
  ["1080p/on"] = 10800000 }
local ELEMENT_MICROS = 1000000 -- "Fixed price: 1 Credit per element creation"

local TYPES = {
  [400] = { "invalid_request_error", "invalid_parameters" }, [401] = { "authentication_error", "invalid_api_key" },
  [402] = { "insufficient_quota", "insufficient_quota" }, [403] = { "permission_error", "access_denied" },
  [404] = { "not_found_error", "resource_not_found" }, [429] = { "rate_limit_error", "quota_exceeded" },
  [500] = { "internal_server_error", "service_error" }, [502] = { "upstream_error", "service_unavailable" },
  [503] = { "service_unavailable", "service_unavailable" }, [504] = { "service_unavailable", "generation_timeout" },
}

function M.error_response(status, code, message, param)
  local t = TYPES[status] or TYPES[500]
  return reply.json(status, { error = { code = type(code) == "string" and code or t[2],
    message = message or t[1], type = t[1], param = param } })
end

local function bad(message, param, code)
  return M.error_response(400, code or "invalid_parameters", message, param)
end

function M.sample_body()
  return json.encode { created = 0, id = "task-unified-0-0", model = "kling-v3-text-to-video",
    object = "video.generation.task", progress = 0, status = "pending", task_info = { can_cancel = true } }
end

function M.not_found(req)
  return M.error_response(404, "not_found", "no API at " .. req.uri)
end

function M.method_not_allowed(req)
  return M.error_response(405, "method_not_allowed", req.method .. " is not allowed on " .. req.uri)
end

function M.authenticate(req)
  local ok_, why = gw.authenticate(req)
  if ok_ then
    return M.name
  end
  return nil, M.error_response(401, why == "missing" and "missing_api_key" or "invalid_api_key",
    why == "missing" and "Authorization: Bearer <API key> is required" or "Invalid or expired API key")
end

-- https only, no internal address, at most 2048 characters.
local function check_callback(b)
  local v = b.callback_url
  if v == nil then
    return nil
  end
  if type(v) ~= "string" or #v > 2048 then
    return "callback_url must be a string of at most 2048 characters"
  end
  if not v:match("^[Hh][Tt][Tt][Pp][Ss]://[^/%s]+") then
    return "callback_url must be an HTTPS URL"
  end
  if gw.private_url(v) then
    return "callback_url must not point to an internal address"
  end
  return nil
end

local function check_element(b)
  local p = b.model_params
  if type(p) ~= "table" then
    return nil, "model_params is required for kling-custom-element", "model_params"
  end
  local err = gw.text(p, "element_name", 20, true) or gw.text(p, "element_description", 100, true)
    or gw.enum(p, "reference_type", REFERENCE_TYPES) or gw.text(p, "element_voice_id")
  if err then
    return nil, "model_params." .. err, "model_params"
  end
  if p.reference_type == nil then
    return nil, "model_params.reference_type is required", "model_params.reference_type"
  end
  if p.reference_type == "image_refer" then
    if p.element_voice_id ~= nil then
      return nil, "model_params.element_voice_id is only supported when reference_type = video_refer",
        "model_params.element_voice_id"
    end
    local l = p.element_image_list
    if type(l) ~= "table" or gw.url(l, "frontal_image", true) then
      return nil, "model_params.element_image_list.frontal_image is required when reference_type = image_refer",
        "model_params.element_image_list"
    end
    if l.refer_images ~= nil then
      -- "Other angle reference images (optional, 1-3)": absent, or 1 to 3 ([] is neither)
      if not gw.is_array(l.refer_images) or #l.refer_images < 1 or #l.refer_images > 3 then
        return nil, "model_params.element_image_list.refer_images must be an array of 1-3 images",
          "model_params.element_image_list.refer_images"
      end
      for i, r in ipairs(l.refer_images) do
        if type(r) ~= "table" or gw.url(r, "image_url", true) then
          return nil, "model_params.element_image_list.refer_images[" .. i .. "].image_url must be an image URL",
            "model_params.element_image_list.refer_images"
        end
      end
    end
  else
    local v = p.element_video_list
    if type(v) ~= "table" or gw.url(v, "video_url", true) then
      return nil, "model_params.element_video_list.video_url is required when reference_type = video_refer",
        "model_params.element_video_list"
    end
  end
  local cerr = check_callback(b)
  if cerr then
    return nil, cerr, "callback_url"
  end
  return { model = ELEMENT_MODEL, units = 1000, micros = ELEMENT_MICROS, element_name = p.element_name,
    estimated_s = 600 }
end

-- The documented parameters -> cleaned request | nil, message, param
function M.check(b)
  if b.model == ELEMENT_MODEL then
    return check_element(b)
  end
  local m = VIDEO_MODELS[b.model]
  if not m then
    return nil, "model " .. tostring(b.model) .. " is not supported here", "model"
  end
  local p = b.model_params
  if p ~= nil and type(p) ~= "table" then
    return nil, "model_params must be an object", "model_params"
  end
  p = p or {}
  local customize = p.multi_shot == true and (p.shot_type or "customize") == "customize"
  local err = gw.text(b, "prompt", 2500, not customize) or gw.text(b, "negative_prompt", 2500)
    or gw.int_in(b, "duration", 3, 15) or gw.enum(b, "aspect_ratio", gw.RATIOS) or gw.enum(b, "quality", QUALITY)
    or gw.enum(b, "sound", SOUND) or gw.url(b, "image_start") or gw.url(b, "image_end")
    or gw.boolean(p, "multi_shot") or gw.enum(p, "shot_type", SHOT_TYPES)
  if err then
    return nil, err, err:match("^(%S+)")
  end
  for _, f in ipairs { "image_start", "image_end" } do
    if b[f] and gw.private_url(b[f]) then
      return nil, f .. " must be a URL the server can reach (no private or internal address)", f
    end
  end
  if m.i2v and b.image_start == nil then
    return nil, "image_start is required (the last frame image_end needs a first frame)", "image_start"
  elseif not m.i2v and (b.image_start or b.image_end) then
    return nil, b.model .. " takes no image: use the image-to-video model", "image_start"
  end
  local d = b.duration or 5
  if p.multi_shot then
    if customize then
      local serr = gw.shots(p.multi_prompt, "model_params.multi_prompt", d)
      if serr then
        return nil, serr, "model_params.multi_prompt"
      end
    elseif p.multi_prompt ~= nil then
      return nil, "model_params.multi_prompt is not used with shot_type intelligence", "model_params.multi_prompt"
    end
  elseif p.multi_prompt ~= nil then
    return nil, "model_params.multi_prompt needs model_params.multi_shot = true", "model_params.multi_prompt"
  end
  if p.element_list ~= nil then
    if not gw.is_array(p.element_list) or #p.element_list > m.elements then
      return nil, "model_params.element_list must have at most " .. m.elements .. " elements on " .. b.model,
        "model_params.element_list"
    end
  end
  local cerr = check_callback(b)
  if cerr then
    return nil, cerr, "callback_url"
  end
  local quality, sound = b.quality or "720p", b.sound or "off"
  local micros
  if m.priced then
    micros = PER_SECOND[quality .. "/" .. sound] * math.max(d, 3)
  end
  -- `units`: thousandths rounded half up from the micro-credits, as the ledger always had them
  return { model = b.model, duration = d, quality = quality, sound = sound, i2v = m.i2v, micros = micros,
    units = micros and gw.round_div(micros, 1000) or nil, estimated_s = 60 + 20 * d }
end

-- "failed" for failures and cancellations (error.code says which); a [sim:status=NAME] task NAME.
M.task_status = gw.task_status

-- task-unified-<created s>-<store id>; a custom element's task-video-<created s>-<store id>
-- (seed 003's element answer: "id": "task-video-xxxxxxxx").
local ELEMENT_PREFIX, VIDEO_PREFIX = "task-video-", "task-unified-"
local function prefix_of(t)
  return t.request.model == ELEMENT_MODEL and ELEMENT_PREFIX or VIDEO_PREFIX
end

local function public_id(t)
  return string.format("%s%d-%s", prefix_of(t), math.floor(t.created_ms / 1000), t.id)
end

-- The exact credits as a JSON number (from the decimal text of the integer micro-credits).
local function credits(micros)
  return micros and tonumber(gw.decimal(micros)) or nil
end

local function view(t, req, now_ms)
  local r = t.request
  local status = M.task_status(t, now_ms)
  local s = gw.state(t, now_ms)
  local element = r.model == ELEMENT_MODEL
  local d = {
    created = math.floor(t.created_ms / 1000), id = public_id(t), model = r.model,
    object = element and "video.generation.task" or "video.generation.task", progress = s.progress,
    status = status, type = "video",
    task_info = { can_cancel = s.phase ~= "done", video_duration = r.duration },
    usage = { billing_rule = element and "per_call" or "per_second", credits_reserved = credits(t.micros),
      user_group = "default" },
  }
  if s.phase ~= "done" then
    d.task_info.estimated_time = s.remaining_s
  end
  if status == "completed" then
    if element then
      d.results = json.array {}
      d.result_data = json.array { { element_id = tostring(t.video_id), element_name = r.element_name } }
    else
      local url = gw.video_url(req, t)
      d.results = json.array { url }
      d.result_data = json.array { { video_url = url, duration = r.duration } }
    end
  elseif s.outcome == "cancelled" then
    d.error = { code = "request_cancelled", message = "The task was cancelled", type = "request_cancelled" }
  elseif status == "failed" then
    local msg = t.fate.message or "generation failed"
    local code = msg:lower():find("risk", 1, true) and "content_policy_violation" or "service_error"
    d.error = { code = code, message = msg, type = code }
  end
  return d
end

local function create(req)
  local b, r, res = gw.checked_body(M, req, bad)
  if not b then
    return res
  end
  local shots = type(b.model_params) == "table" and b.model_params.multi_prompt or nil
  local t, why, msg = gw.create(M, "videos/generations", {
    prompt = gw.marker_text(b, shots), units = r.units, micros = r.micros, limit = true,
    request = { model = r.model, duration = r.duration, resolution = r.quality, sound = r.sound,
      element_name = r.element_name, image = r.i2v },
  })
  if not t then
    if why == "marker" then
      return bad(msg, "prompt")
    elseif why == "parallel_limit" then
      return M.error_response(429, "concurrency_limit_exceeded", "Too many tasks running at once; retry later")
    end
    return M.error_response(500, "service_error", "task store " .. tostring(why))
  end
  return reply.json(200, view(t, req, t.created_ms))
end

local function lookup(caps)
  local id = caps[1]
  local prefix = id:match("^task%-unified%-") or id:match("^task%-video%-")
  if not prefix then
    return nil, bad("Invalid task ID format, must start with 'task-unified-' or 'task-video-'", "task_id",
      "invalid_task_id")
  end
  local t = gw.find(M, id:match("^task%-%a+%-%d+%-(%d+)$"))
  if t and prefix_of(t) ~= prefix then
    t = nil -- the id as it was handed out finds the task, no other spelling
  end
  if not t then
    return nil, M.error_response(404, "task_not_found", "Task " .. id .. " not found")
  end
  return t
end

local function query(req, caps)
  local t, res = lookup(caps)
  if not t then
    return res
  end
  return reply.json(200, view(t, req, gw.now_ms()))
end

local function cancel(req, caps)
  local t, res = lookup(caps)
  if not t then
    return res
  end
  local now = gw.now_ms()
  if gw.state(t, now).phase == "done" then
    return bad("Task " .. caps[1] .. " has already finished and cannot be cancelled", "task_id",
      "task_not_cancellable")
  end
  gw.cancel(t, now)
  return reply.json(200, view(t, req, now))
end

M.routes = {
  { method = "POST", pattern = "^/v1/videos/generations$", name = "POST evolink /v1/videos/generations",
    handler = create },
  { method = "GET", pattern = "^/v1/tasks/([^/]+)$", name = "GET evolink /v1/tasks/{id}", handler = query },
  { method = "POST", pattern = "^/v1/tasks/([^/]+)/cancel$", name = "POST evolink /v1/tasks/{id}/cancel",
    handler = cancel },
}

return M
