-- The official Kling API ("/v1" style), as documented: text2video and image2video create,
-- query by task id or external id, list; envelope {code, message, request_id, data}; JWT or
-- API-key bearer auth with codes 1001-1004; errors with the documented HTTP status and code.
-- luacheck: ignore 122 (ngx.ctx, ngx.status and ngx.header are meant to be written)
local json = require "kling.json"
local auth = require "kling.sim.auth"
local clock = require "kling.sim.clock"
local fate = require "kling.sim.fate"
local params = require "kling.sim.params"
local reply = require "kling.sim.reply"
local settings = require "kling.sim.settings"
local store = require "kling.sim.store"
local units = require "kling.sim.units"

local M = { name = "kling" }

-- One account holds the configured access/secret key pair and the API key.
local ACCOUNT = "main"

local AUTH = {
  missing = { 1001, "Authorization is empty" },
  invalid = { 1002, "Authorization is invalid" },
  not_yet_valid = { 1003, "Authorization is not yet valid" },
  expired = { 1004, "Authorization has expired" },
  internal = { 1000, "Authentication failed" },
}

function M.error_response(status, code, message)
  return reply.json(status, { code = code, message = message, request_id = ngx.ctx.request_id })
end

local function ok(data)
  return reply.json(200, { code = 0, message = "SUCCEED", request_id = ngx.ctx.request_id, data = data })
end

function M.sample_body()
  return json.encode { code = 0, message = "SUCCEED", request_id = ngx.ctx.request_id,
    data = { task_id = "000000000000000000", task_status = "submitted", task_info = {} } }
end

function M.not_found(req)
  return M.error_response(404, 1202, "the requested method is invalid: no API at " .. req.uri)
end

function M.method_not_allowed(req)
  return M.error_response(404, 1202, "the requested method is invalid: " .. req.method .. " is not allowed on "
    .. req.uri)
end

function M.authenticate(req)
  local cfg = settings.get()
  local kind, reason = auth.check(req:header("authorization"), cfg, ngx.time())
  if kind then
    ngx.ctx.auth = kind
    return ACCOUNT
  end
  ngx.ctx.auth = "failed"
  local e = AUTH[reason] or AUTH.internal
  return nil, M.error_response(401, e[1], e[2])
end

-- The documented status names; a [sim:status=NAME] task reports NAME when it would finish.
function M.task_status(t, now_ms)
  local phase, updated = store.phase(t, now_ms)
  if phase ~= "done" then
    return phase, nil, updated
  end
  local outcome = t.fate.outcome
  if outcome == "succeed" then
    return "succeed", t.units, updated
  elseif outcome == "failed" then
    return "failed", nil, updated
  end
  return t.fate.status, nil, updated
end

local function view(t, req, now_ms)
  local status, billed, updated = M.task_status(t, now_ms)
  local r = t.request
  local d = {
    task_id = t.id, task_status = status, task_status_msg = "", created_at = t.created_ms, updated_at = updated,
    task_info = { external_task_id = t.external_task_id },
  }
  if r.watermark then
    d.watermark_info = { enabled = true }
  end
  if status == "failed" then
    d.task_status_msg = t.fate.message
  elseif status == "succeed" then
    local url = req.base_url .. "/media/videos/" .. t.video_id
    local video = { id = t.video_id, url = url .. ".mp4", duration = r.duration_str }
    if r.watermark then
      video.watermark_url = url .. "-wm.mp4"
    end
    d.task_result = { videos = json.array { video } }
    d.final_unit_deduction = billed and units.format(billed) or nil
  end
  return d
end

local function create(ep)
  return function(req, _, account)
    local body = req:json()
    if type(body) ~= "table" then
      return M.error_response(400, 1200, "the request body must be a JSON object")
    end
    local r, err = params.validate(ep, body, ngx.decode_base64)
    if not r then
      return M.error_response(err.status, err.code, err.message)
    end
    local f, seconds = fate.parse(r.prompt)
    if not f then
      return M.error_response(400, 1201, seconds)
    end
    local cfg = settings.get()
    local t, why = store.create({
      dialect = M.name, endpoint = ep, account = account, external_task_id = r.external_task_id,
      total_ms = math.floor((seconds or cfg.task_seconds) * 1000), fate = f,
      units = units.thousandths(r),
      request = { model = r.model, mode = r.mode, duration = r.duration, duration_str = r.duration_str,
        sound = r.sound, watermark = r.watermark, callback_url = r.callback_url },
    }, cfg.max_parallel)
    if not t then
      if why == "parallel_limit" then
        return M.error_response(429, 1303, "parallel task over resource pack limit")
      elseif why == "duplicate" then
        return M.error_response(400, 1201, "external_task_id " .. r.external_task_id .. " already exists")
      end
      return M.error_response(500, 5000, "Server internal error: the simulator's task store is " .. why)
    end
    ngx.ctx.task_id = t.id
    return ok {
      task_id = t.id, task_status = "submitted", created_at = t.created_ms, updated_at = t.created_ms,
      task_info = { external_task_id = t.external_task_id },
    }
  end
end

local function find(account, ep, key)
  local t = store.get(key)
  if not (t and t.account == account and t.endpoint == ep and t.dialect == M.name) then
    t = store.by_external(account, key)
  end
  if t and t.endpoint == ep and t.dialect == M.name then
    return t
  end
  return nil
end

local function answer_task(req, account, ep, key)
  local t = find(account, ep, key)
  if not t then
    return M.error_response(404, 1203, "task " .. key .. " does not exist")
  end
  ngx.ctx.task_id = t.id
  return ok(view(t, req, clock.now_ms()))
end

local function page_arg(args, name, default, max)
  local v = args[name]
  if v == nil then
    return default
  end
  local n = type(v) == "string" and v:match("^%d+$") and tonumber(v)
  if not n or n < 1 or n > max then
    return nil, name .. " must be an integer in 1.." .. max
  end
  return n
end

local function list(ep)
  return function(req, _, account)
    local args = req:args()
    local ext = args.external_task_id
    if ext ~= nil then
      if type(ext) ~= "string" or ext == "" then
        return M.error_response(400, 1201, "external_task_id must be a non-empty string")
      end
      return answer_task(req, account, ep, ext)
    end
    local page, err = page_arg(args, "pageNum", 1, 1000)
    local size
    if page then
      size, err = page_arg(args, "pageSize", 30, 500)
    end
    if not size then
      return M.error_response(400, 1201, err)
    end
    local now, out = clock.now_ms(), json.array {}
    for _, t in ipairs(store.list(account, ep, page, size)) do
      out[#out + 1] = view(t, req, now)
    end
    return ok(out)
  end
end

local function query(ep)
  return function(req, caps, account)
    return answer_task(req, account, ep, caps[1])
  end
end

M.routes = {}
for _, ep in ipairs { "text2video", "image2video" } do
  local base = "/v1/videos/" .. ep
  local routes = M.routes
  routes[#routes + 1] = { method = "POST", pattern = "^" .. base .. "$", name = "POST " .. base, handler = create(ep) }
  routes[#routes + 1] = { method = "GET", pattern = "^" .. base .. "$", handler = list(ep),
    name = function(_, req)
      return "GET " .. base .. (req:args().external_task_id and "?external_task_id" or "")
    end }
  routes[#routes + 1] = { method = "GET", pattern = "^" .. base .. "/([^/]+)$", name = "GET " .. base .. "/{id}",
    handler = query(ep) }
end

return M
