-- The OpenAI-style gateway of seed 004, served under /compat/: POST /v1/video/generations with
-- model kling-v3-{std,pro}-{silent,audio}, image / last_image (public URLs only), duration
-- 3-15, extra_body {negative_prompt, cfg_scale, multi_prompt, element_list, shot_type
-- customize|intelligent}; GET /v1/videos/{task_id} -> a job {id, task_id, object
-- "video.generation.job", model, status, progress, video_url}; Bearer API key; OpenAI errors
-- {error = {message, type, param, code}}; the parallel limit answers 429.
-- ASSUMPTION (as in the provider file): the job goes queued -> in_progress -> completed or
-- failed (OpenAI's video job statuses; the seed shows "completed" only). The seed publishes
-- no prices: the ledger bills nothing for this gateway.
local gw = require "kling_sim.gateway"
local reply = require "kling_sim.reply"
local json = require "kling.json"

local M = { name = "compat" }

local MODELS = {
  ["kling-v3-std-silent"] = true, ["kling-v3-std-audio"] = true,
  ["kling-v3-pro-silent"] = true, ["kling-v3-pro-audio"] = true,
}
local SHOT_TYPES = { customize = true, intelligent = true }

local TYPES = {
  [400] = "invalid_request_error", [401] = "authentication_error", [403] = "permission_error",
  [404] = "not_found_error", [429] = "rate_limit_error", [500] = "server_error", [502] = "server_error",
  [503] = "server_error", [504] = "server_error",
}

function M.error_response(status, code, message, param)
  return reply.json(status, { error = { message = message or "error", type = TYPES[status] or "server_error",
    param = param, code = type(code) == "string" and code or json.null } })
end

local function bad(message, param, code)
  return M.error_response(400, code or "invalid_value", message, param)
end

function M.sample_body()
  return json.encode { id = "task_0", task_id = "task_0", object = "video.generation.job",
    model = "kling-v3-std-silent", status = "queued", progress = 0 }
end

function M.not_found(req)
  return M.error_response(404, "not_found", "Invalid URL (" .. req.method .. " " .. req.uri .. ")")
end

function M.method_not_allowed(req)
  return M.error_response(405, "method_not_allowed", req.method .. " is not allowed on " .. req.uri)
end

function M.authenticate(req)
  local ok_, why = gw.authenticate(req)
  if ok_ then
    return M.name
  end
  return nil, M.error_response(401, "invalid_api_key", why == "missing"
    and "You didn't provide an API key: send Authorization: Bearer sk-***" or "Incorrect API key provided")
end

-- The documented parameters and the seed's common errors -> cleaned request | nil, message, param
function M.check(b)
  if not MODELS[b.model] then
    return nil, "model must be one of kling-v3-std-silent, kling-v3-std-audio, kling-v3-pro-silent, "
      .. "kling-v3-pro-audio (got " .. tostring(b.model) .. ")", "model"
  end
  local x = b.extra_body
  if x ~= nil and type(x) ~= "table" then
    return nil, "extra_body must be an object", "extra_body"
  end
  x = x or {}
  local image_mode = b.image ~= nil
  local err = gw.text(b, "prompt", 2500, not image_mode and x.multi_prompt == nil) or gw.url(b, "image")
    or gw.url(b, "last_image") or gw.enum(b, "aspect_ratio", gw.RATIOS)
    or gw.text(x, "negative_prompt", 2500) or gw.enum(x, "shot_type", SHOT_TYPES)
    or gw.array(x, "element_list", image_mode and 3 or 7) or gw.int_in(b, "duration", 3, 15)
  if err then
    return nil, err, err:match("^(%S+)")
  end
  local d = b.duration
  if x.cfg_scale ~= nil and (type(x.cfg_scale) ~= "number" or x.cfg_scale < 0 or x.cfg_scale > 1) then
    return nil, "extra_body.cfg_scale must be a number from 0 to 1", "extra_body.cfg_scale"
  end
  for _, f in ipairs { "image", "last_image" } do
    if b[f] and gw.private_url(b[f]) then
      return nil, f .. " points to a private address: media URLs must be public", f
    end
  end
  if b.last_image ~= nil and not image_mode then
    return nil, "last_image needs image (the first frame)", "last_image"
  end
  if x.multi_prompt ~= nil then
    if not image_mode then
      return nil, "extra_body.multi_prompt is for the advanced image-to-video mode: give an image",
        "extra_body.multi_prompt"
    end
    if b.prompt ~= nil then
      return nil, "prompt and extra_body.multi_prompt must not be sent together in image mode", "prompt"
    end
    local serr = gw.shots(x.multi_prompt, "extra_body.multi_prompt", d)
    if serr then
      return nil, serr, "extra_body.multi_prompt"
    end
  end
  local mode, sound = b.model:match("^kling%-v3%-(%a+)%-(%a+)$")
  return { model = b.model, mode = mode, sound = sound == "audio" and "on" or "off", duration = d or 5,
    image = image_mode }
end

function M.task_status(t, now_ms)
  local s = gw.state(t, now_ms)
  if s.phase ~= "done" then
    return s.phase == "submitted" and "queued" or "in_progress", nil, s.updated_ms
  elseif s.outcome == "succeed" then
    return "completed", nil, s.updated_ms
  elseif s.outcome == "failed" then
    return "failed", nil, s.updated_ms
  elseif s.outcome == "cancelled" then
    return "cancelled", nil, s.updated_ms
  end
  return s.status, nil, s.updated_ms
end

local function view(t, req, now_ms)
  local status, _, updated = M.task_status(t, now_ms)
  local s = gw.state(t, now_ms)
  local id = "task_" .. t.id
  local d = { id = id, task_id = id, object = "video.generation.job", model = t.request.model, status = status,
    progress = s.progress, created_at = math.floor(t.created_ms / 1000) }
  if status == "completed" then
    d.video_url = gw.video_url(req, t)
    d.seconds = tostring(t.request.duration)
    d.completed_at = math.floor(updated / 1000)
  elseif status == "failed" then
    d.error = { code = "generation_failed", message = t.fate.message or "generation failed" }
  end
  return d
end

local function create(req)
  local b, r, res = gw.checked_body(M, req, bad)
  if not b then
    return res
  end
  local x = type(b.extra_body) == "table" and b.extra_body or {}
  local t, why, msg = gw.create(M, "video/generations", {
    prompt = gw.marker_text(b, x.multi_prompt), limit = true,
    request = { model = r.model, mode = r.mode, sound = r.sound, duration = r.duration, image = r.image },
  })
  if not t then
    if why == "marker" then
      return bad(msg, "prompt")
    elseif why == "parallel_limit" then
      return M.error_response(429, "concurrency_limit", "Too many concurrent video jobs; retry later")
    end
    return M.error_response(500, "server_error", "task store " .. tostring(why))
  end
  return reply.json(200, view(t, req, t.created_ms))
end

local function query(req, caps)
  local t = gw.find(M, caps[1]:match("^task_(%d+)$"))
  if not t then
    return M.error_response(404, "not_found", "No video job found with id '" .. caps[1] .. "'", "task_id")
  end
  return reply.json(200, view(t, req, gw.now_ms()))
end

M.routes = {
  { method = "POST", pattern = "^/v1/video/generations$", name = "POST compat /v1/video/generations",
    handler = create },
  { method = "GET", pattern = "^/v1/videos/([^/]+)$", name = "GET compat /v1/videos/{id}", handler = query },
}

return M
