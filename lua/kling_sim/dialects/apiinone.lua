-- "API in One" (seed 001), served under /apiinone/: POST /api/v1/videos/generations with
-- model "kling-3" (text- or image-to-video by the presence of `image`), GET
-- /api/v1/tasks/{task_id}; Bearer API key; credits per second by mode and sound, billed per
-- successful request. The seed shows no response: the envelope is {code = 0, message, data}
-- and errors {code = HTTP status, message} (the same ASSUMPTION as the provider file).
local gw = require "kling_sim.gateway"
local reply = require "kling_sim.reply"
local json = require "kling.json"

-- The ledger books credits: `units` in thousandths (older readers), `micros` exactly.
-- Its credits are its own money, not another gateway's: `unit` names them apart (kling_sim.admin.unit).
local M = { name = "apiinone", ledger_unit = "credits", currency = "credits", unit = "apiinone-credits" }

-- credits per second (seed 001): "std no-audio 40/s, std with-audio 60/s, pro no-audio 54/s,
-- pro with-audio 80/s". Whole credits times whole seconds: the seed needs no rounding (a
-- delivered clip lasts the asked seconds; the client's catalog rounds half up to them).
local RATE = { std = { [false] = 40, [true] = 60 }, pro = { [false] = 54, [true] = 80 } }

function M.error_response(status, _, message)
  return reply.json(status, { code = status, message = message })
end

local function bad(message)
  return M.error_response(400, nil, message)
end

local function ok(data)
  return reply.json(200, { code = 0, message = "success", data = data })
end

function M.sample_body()
  return json.encode { code = 0, message = "success", data = { task_id = "0", status = "pending" } }
end

function M.not_found(req)
  return M.error_response(404, nil, "no API at " .. req.uri)
end

function M.method_not_allowed(req)
  return M.error_response(405, nil, req.method .. " is not allowed on " .. req.uri)
end

function M.authenticate(req)
  local ok_, why = gw.authenticate(req)
  if ok_ then
    return M.name
  end
  return nil, M.error_response(401, nil, why == "missing" and "missing API key: send Authorization: Bearer <API_KEY>"
    or "invalid API key")
end

-- The documented parameters (seed 001) -> cleaned request | nil, message
function M.check(b)
  if b.model ~= "kling-3" then
    return nil, "model must be kling-3 (got " .. tostring(b.model) .. ")"
  end
  local multi = b.multi_shots == true
  local err = gw.text(b, "prompt", 2500, not multi) or gw.enum(b, "mode", gw.MODES)
    or gw.enum(b, "aspect_ratio", gw.RATIOS) or gw.boolean(b, "sound") or gw.boolean(b, "multi_shots")
    or gw.url(b, "image") or gw.array(b, "kling_elements") or gw.int_in(b, "duration", 3, 15)
  if err then
    return nil, err
  end
  local d = b.duration
  if multi then
    local serr, sum = gw.shots(b.multi_prompt, "multi_prompt", d)
    if serr then
      return nil, serr
    end
    if sum < 3 or sum > 15 then
      return nil, "multi_prompt shot durations must add up to 3-15 s (got " .. sum .. ")"
    end
    d = d or sum
  elseif b.multi_prompt ~= nil then
    return nil, "multi_prompt needs multi_shots: true"
  end
  local sound = b.sound ~= false
  local mode = b.mode or "std"
  local credits = RATE[mode][sound] * (d or 5)
  return { model = "kling-3", mode = mode, duration = d or 5, sound = sound, image = b.image ~= nil,
    units = credits * 1000, micros = credits * 1000000 }
end

M.task_status = gw.task_status

local function view(t, req, now_ms)
  local status, billed, updated = M.task_status(t, now_ms)
  local s = gw.state(t, now_ms)
  local d = {
    task_id = t.id, model = "kling-3", status = status, progress = s.progress,
    created_at = t.created_ms, updated_at = updated,
  }
  if status == "completed" then
    d.output = { videos = json.array { { url = gw.video_url(req, t), duration = t.request.duration } } }
    d.credits = billed and tonumber(gw.decimal(t.micros)) or nil
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
  local t, why, msg = gw.create(M, "videos/generations", {
    prompt = gw.marker_text(b, b.multi_prompt), units = r.units, micros = r.micros,
    request = { model = r.model, mode = r.mode, duration = r.duration, sound = r.sound, image = r.image },
  })
  if not t then
    if why == "marker" then
      return bad(msg)
    end
    return M.error_response(500, nil, "task store " .. tostring(why))
  end
  return ok(view(t, req, t.created_ms))
end

local function query(req, caps)
  local t = gw.find(M, caps[1])
  if not t then
    return M.error_response(404, nil, "task " .. caps[1] .. " not found")
  end
  return ok(view(t, req, gw.now_ms()))
end

M.routes = {
  { method = "POST", pattern = "^/api/v1/videos/generations$", name = "POST apiinone /api/v1/videos/generations",
    handler = create },
  { method = "GET", pattern = "^/api/v1/tasks/([^/]+)$", name = "GET apiinone /api/v1/tasks/{id}", handler = query },
}

return M
