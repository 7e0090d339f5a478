-- What the gateway dialects (apiinone, apimodels, evolink, compat) share: Bearer API-key
-- auth, tasks in the shared store on the accelerated clock (one account per gateway, so
-- their parallel slots and lists stay apart from the official API's), cancellation, progress,
-- result URLs served by the simulator, and body checks that answer in each dialect's words.
-- A cancellation is the one thing recorded after creation ("cancel:<id>" in the task dict);
-- everything else is derived from timestamps on each read, like the official dialect.
-- luacheck: ignore 122 (ngx.ctx is meant to be written)
local json = require "kling.json"
local auth = require "kling_sim.auth"
local clock = require "kling_sim.clock"
local fate = require "kling_sim.fate"
local settings = require "kling_sim.settings"
local store = require "kling_sim.store"
local check = require "kling_sim.official.check"
local hosts = require "kling_sim.hosts"

local M = {}

-- The aspect ratios and modes every gateway's document lists for Kling's video models.
M.RATIOS = { ["16:9"] = true, ["9:16"] = true, ["1:1"] = true }
M.MODES = { std = true, pro = true }

local function tasks()
  return ngx.shared.kling_sim_tasks
end

-- -> true | nil, "missing" | "invalid" (the configured API key is the only credential).
function M.authenticate(req)
  local token, why = auth.bearer(req:header("authorization"))
  local key = settings.get().api_key
  if token and key and key ~= "" and auth.ct_equal(token, key) then
    ngx.ctx.auth = "api_key"
    return true
  end
  ngx.ctx.auth = "failed"
  return nil, why == "missing" and "missing" or "invalid"
end

-- create(d, endpoint, o) -> task | nil, why, message. o = {prompt (markers), request, units,
-- micros (the charge in micro-units of d.currency), limit (honour max_parallel), total_ms}.
-- why: "marker" (bad prompt marker), or store's "parallel_limit", "duplicate", "full", "busy".
function M.create(d, endpoint, o)
  local f, seconds = fate.parse(o.prompt)
  if not f then
    return nil, "marker", seconds
  end
  local cfg = settings.get()
  local t, why = store.create({
    dialect = d.name, endpoint = endpoint, account = d.name, external_task_id = nil,
    total_ms = o.total_ms or math.floor((seconds or cfg.task_seconds) * 1000), fate = f,
    units = o.units, micros = o.micros, request = o.request,
  }, o.limit and cfg.max_parallel or 0)
  if not t then
    return nil, why
  end
  ngx.ctx.task_id = t.id
  return t
end

-- The task with store id `id` if it belongs to dialect d.
function M.find(d, id)
  if type(id) ~= "string" or not id:match("^%d+$") then
    return nil
  end
  local t = store.get(id)
  if t and t.dialect == d.name and t.account == d.name then
    ngx.ctx.task_id = t.id
    return t
  end
  return nil
end

function M.cancelled_ms(t)
  return tasks():get("cancel:" .. t.id)
end

-- Records a cancellation (first one wins) and frees the task's parallel slot.
function M.cancel(t, now_ms)
  local ok = tasks():safe_add("cancel:" .. t.id, now_ms)
  ngx.shared.kling_sim_slots:delete(t.account .. "\0" .. t.id)
  return ok
end

-- state(t, now_ms) -> {phase = "submitted" | "processing" | "done", outcome = "succeed" |
-- "failed" | "status" | "cancelled" (when done), status = fate's NAME, message, updated_ms,
-- progress 0..100, remaining_s (whole seconds, rounded up; 0 when done)}.
function M.state(t, now_ms)
  local c = M.cancelled_ms(t)
  local ends = t.created_ms + t.total_ms
  if c and c < ends then
    return { phase = "done", outcome = "cancelled", updated_ms = c, progress = M.progress(t, c), remaining_s = 0 }
  end
  local phase, updated = store.phase(t, now_ms)
  local s = { phase = phase, updated_ms = updated, remaining_s = 0 }
  if phase == "done" then
    s.outcome, s.status, s.message, s.progress = t.fate.outcome, t.fate.status, t.fate.message, 100
  else
    s.progress = M.progress(t, now_ms)
    s.remaining_s = math.ceil((ends - now_ms) / 1000)
  end
  return s
end

-- The statuses apiinone, apimodels and EvoLink share -> status, billed units, updated_ms:
-- pending, processing, completed (billed t.units), failed (a cancellation too: EvoLink's
-- error.code tells it apart); a [sim:status=NAME] task reports NAME.
function M.task_status(t, now_ms)
  local s = M.state(t, now_ms)
  if s.phase ~= "done" then
    return s.phase == "submitted" and "pending" or "processing", nil, s.updated_ms
  elseif s.outcome == "succeed" then
    return "completed", t.units, s.updated_ms
  elseif s.outcome == "failed" or s.outcome == "cancelled" then
    return "failed", nil, s.updated_ms
  end
  return s.status, nil, s.updated_ms
end

-- Share of the task's time gone, 0..99 while it runs ("submitted" reads as 0).
function M.progress(t, now_ms)
  if t.total_ms <= 0 then
    return 100
  end
  local phase = store.phase(t, now_ms)
  if phase == "submitted" then
    return 0
  end
  return math.min(99, math.floor((now_ms - t.created_ms) * 100 / t.total_ms))
end

function M.video_url(req, t)
  return req.base_url .. "/media/videos/" .. t.video_id .. ".mp4"
end

function M.now_ms()
  return clock.now_ms()
end

-- The body as a JSON object (nulls at the top level dropped), or nil.
function M.body(req)
  local v = req:json()
  if type(v) ~= "table" or (next(v) ~= nil and v[1] ~= nil) then
    return nil
  end
  return v
end

-- A create's body checked by dialect d (d.check(b) -> r | nil, message, param) -> b, r, or
-- nil, nil and the dialect's 400 answer bad(message, param).
function M.checked_body(d, req, bad)
  local b = M.body(req)
  if not b then
    return nil, nil, bad("the request body must be a JSON object")
  end
  local r, err, param = d.check(b)
  if not r then
    return nil, nil, bad(err, param)
  end
  return b, r
end

-- ---- body checks: each returns nil when the rule holds, else a message naming the field ----

local function chars(s)
  return select(2, s:gsub("[^\128-\191]", ""))
end

function M.text(body, field, limit, required)
  local v = body[field]
  if v == nil or v == json.null then
    return required and (field .. " is required") or nil
  end
  if type(v) ~= "string" then
    return field .. " must be a string"
  end
  if required and v:match("^%s*$") then
    return field .. " must not be empty"
  end
  if limit and chars(v) > limit then
    return field .. " must be at most " .. limit .. " characters (got " .. chars(v) .. ")"
  end
  return nil
end

-- The official dialect's rule, its message alone.
function M.enum(body, field, set)
  local _, err = check.enum(body, field, set)
  return err and err.message or nil
end

function M.is_int(v)
  return type(v) == "number" and v == math.floor(v)
end

function M.int_in(body, field, lo, hi)
  local v = body[field]
  if v == nil then
    return nil
  end
  if not M.is_int(v) or v < lo or v > hi then
    return field .. " must be an integer from " .. lo .. " to " .. hi .. " (got " .. tostring(v) .. ")"
  end
  return nil
end

function M.boolean(body, field)
  local v = body[field]
  if v ~= nil and type(v) ~= "boolean" then
    return field .. " must be a boolean"
  end
  return nil
end

function M.is_array(v)
  return type(v) == "table" and (next(v) == nil or v[1] ~= nil)
end

function M.array(body, field, max)
  local v = body[field]
  if v == nil then
    return nil
  end
  if not M.is_array(v) then
    return field .. " must be an array"
  end
  if max and #v > max then
    return field .. " must have at most " .. max .. " items (got " .. #v .. ")"
  end
  return nil
end

function M.url(body, field, required)
  local v = body[field]
  if v == nil then
    return required and (field .. " is required") or nil
  end
  if type(v) ~= "string" or not v:match("^[Hh][Tt][Tt][Pp][Ss]?://[^/%s]+") then
    return field .. " must be an http(s) URL"
  end
  return nil
end

-- Kling v3 shots: 1-6 of {prompt <= 512, duration >= 1 (a whole number, or a string as the
-- official API writes seconds: check.seconds, so "05", " 5" or "0x5" is none)},
-- summing to `total` when given. -> nil | message, sum
function M.shots(list, field, total)
  if not M.is_array(list) or #list == 0 or #list > 6 then
    return field .. " must have 1 to 6 shots"
  end
  local sum = 0
  for i, shot in ipairs(list) do
    local where = field .. "[" .. i .. "]"
    if type(shot) ~= "table" then
      return where .. " must be an object {prompt, duration}"
    end
    local err = M.text(shot, "prompt", 512, true)
    if err then
      return where .. "." .. err
    end
    local d = shot.duration
    if type(d) == "string" then
      d = check.seconds(d)
    end
    if not M.is_int(d) or d < 1 then
      return where .. ".duration must be a whole number of seconds >= 1"
    end
    sum = sum + d
  end
  if total and sum ~= total then
    return field .. " shot durations must add up to the duration " .. total .. " (got " .. sum .. ")"
  end
  return nil, sum
end

-- The prompt text whose [sim:...] markers steer the task: the prompt and every shot's.
function M.marker_text(body, shots)
  local parts = { type(body.prompt) == "string" and body.prompt or "" }
  if M.is_array(shots) then
    for _, s in ipairs(shots) do
      if type(s) == "table" and type(s.prompt) == "string" then
        parts[#parts + 1] = s.prompt
      end
    end
  end
  return table.concat(parts, " ")
end

-- Public hosts only (the seeds refuse private media and internal callback addresses).
function M.private_url(url)
  return hosts.internal(url)
end

-- Integer micro-units as decimal text: 21594600 -> "21.5946", 378000000 -> "378". Built
-- from the integer, so the text is exact; a JSON answer carries tonumber() of it.
function M.decimal(micros)
  local whole = math.floor(micros / 1000000)
  local frac = micros - whole * 1000000
  if frac == 0 then
    return string.format("%d", whole)
  end
  return (string.format("%d.%06d", whole, frac):gsub("0+$", ""))
end

-- thousandths of a unit from a whole count of `per` sub-units, rounded half up.
function M.round_div(n, per)
  return math.floor((n * 2 + per) / (2 * per))
end

return M
