-- apimodels (seed 002), served under /apimodels/: POST /api/v1/video/generations (image ->
-- image-to-video; kling-motion-control with image + motion_video), GET
-- /api/v1/video/generations?task_id=; envelope {code = 200, msg, data}; states pending,
-- processing, completed, failed; errors 400/401/402/404/500 with {code, msg, data = null};
-- Bearer API key. With a callback_url, the documented callback is POSTed when the task
-- completes or fails (data.param and data.resultJson as JSON strings), retried after 1, 2
-- and 4 s with a 10 s timeout, through the simulator's callback sender.
-- The ledger books USD in micro-dollars (`micros`, what the client's ledger counts); its older
-- `units` stay in US cents (thousandths of a cent = ten micro-dollars), exact for the seed's
-- four-decimal prices.
local gw = require "kling_sim.gateway"
local reply = require "kling_sim.reply"
local json = require "kling.json"
local check = require "kling_sim.official.check"

local callbacks = require "kling_sim.callbacks"

local M = { name = "apimodels", ledger_unit = "US cents", currency = "USD" }

local SOUND = { on = true, off = false }
local RESOLUTIONS = { ["720p"] = true, ["1080p"] = true }

-- Seed 002 prices ("价格 (8.5折)") in micro-dollars: "| std | 5s | - | - | $0.0159 |" is 15900.
local V26 = { -- mode/sound/voice -> {5 s, 10 s}
  ["std/off"] = { 15900, 32000 }, ["pro/off"] = { 26700, 53100 },
  ["pro/on"] = { 53100, 106400 }, ["pro/on/voice"] = { 63900, 127500 },
}
-- Per second, times the whole seconds asked ("| std | 3-15s | - | $0.0633 |"): the seed names no
-- rounding, and a delivered clip lasts the asked seconds (the client's catalog rounds half up).
local V3 = { ["std/off"] = 63300, ["std/on"] = 95600, ["pro/off"] = 85300, ["pro/on"] = 128000 }
local MICROS_PER_UNIT = 10 -- `units` are thousandths of a US cent

M.ERRORS = {
  [400] = "请求错误 - 参数缺失或无效: ", [401] = "未授权 - API 密钥无效", [402] = "余额不足 - 积分不够",
  [404] = "未找到 - 任务 ID 不存在", [500] = "服务器内部错误",
}

function M.error_response(status, _, message)
  return reply.json(status, { code = status, msg = message or M.ERRORS[status] or "error", data = json.null })
end

local function bad(message)
  return M.error_response(400, nil, M.ERRORS[400] .. message)
end

local function ok(data)
  return reply.json(200, { code = 200, msg = "success", data = data })
end

function M.sample_body()
  return json.encode { code = 200, msg = "success", data = { taskId = "cl0", state = "pending",
    model = "kling-video/kling-v2-6" } }
end

function M.not_found(req)
  return M.error_response(404, nil, "未找到 - no API at " .. req.uri)
end

function M.method_not_allowed(req)
  return M.error_response(400, nil, M.ERRORS[400] .. req.method .. " is not allowed on " .. req.uri)
end

function M.authenticate(req)
  if gw.authenticate(req) then
    return M.name
  end
  return nil, M.error_response(401)
end

-- The seed writes it as a string ("5"): the official API's spelling (check.seconds: "05" is none).
local function duration_of(v)
  if type(v) == "string" then
    return check.seconds(v)
  elseif gw.is_int(v) then
    return v
  end
  return nil
end

local function check_motion(b)
  local err = gw.url(b, "image", true) or gw.url(b, "motion_video", true) or gw.text(b, "prompt", 2500)
    or gw.enum(b, "resolution", RESOLUTIONS) or gw.url(b, "callback_url")
  if err then
    return nil, err
  end
  local d = 5
  if b.duration ~= nil then
    d = duration_of(b.duration)
    if not d then
      return nil, "duration must be whole seconds such as \"5\" (got " .. json.encode(b.duration) .. ")"
    elseif d < 1 or d > 30 then
      return nil, "duration must be at most 30 seconds for kling-motion-control"
    end
  end
  return { model = "kling-motion-control", resolution = b.resolution or "720p", duration = d, sound = "off" }
end

-- The documented parameters -> cleaned request | nil, message
function M.check(b)
  if b.model == "kling-motion-control" then
    return check_motion(b)
  end
  if b.model ~= "kling-v2-6" and b.model ~= "kling-v3" then
    return nil, "model must be kling-v2-6, kling-v3 or kling-motion-control (got " .. tostring(b.model) .. ")"
  end
  local i2v = b.image ~= nil
  local err = gw.text(b, "prompt", 2500, not i2v) or gw.enum(b, "mode", gw.MODES)
    or gw.enum(b, "aspect_ratio", gw.RATIOS) or gw.url(b, "image") or gw.url(b, "callback_url")
    or gw.array(b, "voice_list", 2)
  if err then
    return nil, err
  end
  if b.sound ~= nil and SOUND[b.sound] == nil then
    return nil, "sound must be on or off (got " .. tostring(b.sound) .. ")"
  end
  local d = 5
  if b.duration ~= nil then
    d = duration_of(b.duration)
    if not d then
      return nil, "duration must be a string of whole seconds such as \"5\""
    end
  end
  if b.model == "kling-v2-6" and d ~= 5 and d ~= 10 then
    return nil, "duration must be 5 or 10 for kling-v2-6 (got " .. d .. ")"
  elseif b.model == "kling-v3" and (d < 3 or d > 15) then
    return nil, "duration must be 3-15 for kling-v3 (got " .. d .. ")"
  end
  local mode, sound = b.mode or "std", b.sound or "off"
  local voice = b.voice_list ~= nil and #b.voice_list > 0
  if voice and (b.model ~= "kling-v2-6" or sound ~= "on") then
    return nil, "voice_list needs model kling-v2-6 with sound on"
  end
  local micros
  if b.model == "kling-v2-6" then
    local row = V26[mode .. "/" .. sound .. (voice and "/voice" or "")]
    if not row then
      return nil, "sound on kling-v2-6 needs mode pro"
    end
    micros = row[d == 5 and 1 or 2]
  else
    micros = V3[mode .. "/" .. sound] * d
  end
  return { model = b.model, mode = mode, duration = d, sound = sound, voice = voice or nil, micros = micros,
    units = math.floor(micros / MICROS_PER_UNIT), image = i2v }
end

M.task_status = gw.task_status

local function public_id(t)
  return "cl" .. t.id
end

local function result_of(t, base_url)
  local r = t.request
  return { resultUrls = json.array { base_url .. "/media/videos/" .. t.video_id .. ".mp4" },
    videoDuration = r.duration, videoSize = (r.mode == "pro" or r.resolution == "1080p") and "1920x1080" or "1280x720",
    videoModel = r.model }
end

local function view(t, base_url, now_ms)
  local state, _, updated = M.task_status(t, now_ms)
  local d = { taskId = public_id(t), state = state, model = "kling-video/" .. t.request.model,
    createTime = t.created_ms }
  if state == "completed" then
    d.resultUrls = result_of(t, base_url).resultUrls
    d.completeTime = updated
  elseif state == "failed" then
    d.failMsg = t.fate.message or "generation failed"
    d.completeTime = updated
  end
  return d
end

-- The callback body of seed 002: param and resultJson are JSON strings.
function M.callback_body(t, base_url, now_ms)
  local state, _, updated = M.task_status(t, now_ms)
  local failed = state ~= "completed"
  return {
    code = 200, msg = "success",
    data = {
      taskId = public_id(t), model = "kling-video/" .. t.request.model, state = failed and "failed" or "completed",
      param = t.request.param,
      resultJson = failed and json.null or json.encode(result_of(t, base_url)),
      failCode = failed and "GENERATION_FAILED" or json.null,
      failMsg = failed and (t.fate.message or "generation failed") or json.null,
      costTime = updated - t.created_ms, completeTime = updated, createTime = t.created_ms,
    },
  }
end

-- At the task's end (it is decided at creation), the callback goes out with its retries. A
-- timer may fire a little before the task's last millisecond: then it waits for the rest.
local function on_end(premature, id, base_url)
  if premature then
    return
  end
  local t = require("kling_sim.store").get(id)
  if not t then
    return -- reset meanwhile
  end
  local now = gw.now_ms()
  local state = M.task_status(t, now)
  if state == "pending" or state == "processing" then
    local ok_, err = ngx.timer.at(math.max(0.005, (t.created_ms + t.total_ms - now) / 1000), on_end, id, base_url)
    if not ok_ then
      ngx.log(ngx.ERR, "kling sim: apimodels callback timer: ", err)
    end
    return
  elseif state ~= "completed" and state ~= "failed" then
    return -- a [sim:status=NAME] task never reaches a documented end state
  end
  -- Seed 002: only Content-Type, no signature; 3 retries 1 s / 2 s / 4 s apart, 10 s each.
  local cid, serr = callbacks.schedule { url = t.request.callback_url,
    body = json.encode(M.callback_body(t, base_url, now)),
    headers = { ["Content-Type"] = "application/json" }, schedule_s = { 1, 2, 4 }, timeout_s = 10,
    meta = { dialect = M.name, task_id = public_id(t), status = state } }
  if not cid then
    ngx.log(ngx.ERR, "kling sim: apimodels callback for ", public_id(t), ": ", serr)
  end
end

local function schedule_callback(t, base_url)
  local ok_, err = ngx.timer.at(math.max(0, (t.created_ms + t.total_ms - gw.now_ms()) / 1000), on_end, t.id,
    base_url)
  if not ok_ then
    ngx.log(ngx.ERR, "kling sim: apimodels callback timer: ", err)
  end
end

local function create(req)
  local b, r, res = gw.checked_body(M, req, bad)
  if not b then
    return res
  end
  local t, why, msg = gw.create(M, "video/generations", {
    prompt = gw.marker_text(b), units = r.units, micros = r.micros,
    request = { model = r.model, mode = r.mode, duration = r.duration, sound = r.sound, voice = r.voice,
      resolution = r.resolution, image = r.image, callback_url = b.callback_url, param = json.encode(b) },
  })
  if not t then
    if why == "marker" then
      return bad(msg)
    end
    return M.error_response(500, nil, M.ERRORS[500] .. ": task store " .. tostring(why))
  end
  if b.callback_url then
    schedule_callback(t, req.base_url)
  end
  return ok { taskId = public_id(t), state = "pending", model = "kling-video/" .. r.model }
end

local function query(req)
  local id = req:args().task_id
  if type(id) ~= "string" or id == "" then
    return bad("task_id is required")
  end
  local t = gw.find(M, id:match("^cl(%d+)$"))
  if not t then
    return M.error_response(404, nil, M.ERRORS[404] .. ": " .. id)
  end
  return ok(view(t, req.base_url, gw.now_ms()))
end

M.routes = {
  { method = "POST", pattern = "^/api/v1/video/generations$", name = "POST apimodels /api/v1/video/generations",
    handler = create },
  { method = "GET", pattern = "^/api/v1/video/generations$", name = "GET apimodels /api/v1/video/generations",
    handler = query },
}

return M
