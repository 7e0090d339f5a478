-- Official callbacks: a task created with callback_url is watched, and a timer (one per
-- worker, started lazily, each tick run by one worker at a time) looks at every watched task;
-- when its status differs from the last one sent, the task object (top level, NOT wrapped in
-- code/data) is POSTed through kling_sim.callbacks, signed when a webhook secret is set.
-- Task states are still derived from timestamps, so callbacks fire without anyone polling.
local json = require "kling.json"
local callbacks = require "kling_sim.callbacks"
local clock = require "kling_sim.clock"
local settings = require "kling_sim.settings"
local store = require "kling_sim.store"

local M = {}

M.INTERVAL_S = 0.1
-- Kling documents no retry schedule for its callbacks: three retries, 1 s, 2 s and 4 s apart,
-- each attempt bounded by 10 s, like the gateways that do document one.
M.SCHEDULE_S = { 1, 2, 4 }
M.TIMEOUT_S = 10

local dialect -- the official dialect: task_status(t, now) and view(t, base, now)
local started = false

local function dict()
  return ngx.shared.kling_sim_tasks
end

local function state()
  return ngx.shared.kling_sim_state
end

local function send(t, status, now)
  local secret = settings.get().webhook_secret
  local id, err = callbacks.schedule {
    url = t.request.callback_url, body = json.encode(dialect.view(t, t.base_url, now)),
    schedule_s = M.SCHEDULE_S, timeout_s = M.TIMEOUT_S,
    sign_secret = (secret and secret ~= "") and secret or nil,
    meta = { dialect = "kling", task_id = t.id, task_status = status, external_task_id = t.external_task_id },
  }
  if not id then
    ngx.log(ngx.WARN, "kling sim: callback for task ", t.id, " not sent: ", err)
  end
end

-- One pass over the watched tasks [head, n]; ended ones leave the window.
local function pass()
  local d = dict()
  local head, n = d:get("cbq:head") or 1, d:get("cbq:n") or 0
  local now = clock.now_ms()
  local front = true
  for i = head, n do
    local id = d:get("cbq:" .. i)
    local t = id and store.get(id)
    local ended = true
    if t then
      local status = dialect.task_status(t, now)
      if d:get("cbs:" .. id) ~= status then
        d:set("cbs:" .. id, status)
        local only = t.fate and t.fate.callbacks
        if not only or only[status] then -- [sim:callbacks=...]: the others are lost on the way
          send(t, status, now)
        end
      end
      ended = store.phase(t, now) == "done"
    end
    if ended then
      d:delete("cbq:" .. i)
    end
    if front and ended then
      d:set("cbq:head", i + 1)
    else
      front = false
    end
  end
end

local function tick(premature)
  if premature then
    return
  end
  -- One worker per tick; the lock expires by itself if a pass ever dies.
  if not state():add("cbq:lock", true, 5) then
    return
  end
  local ok, err = pcall(pass)
  state():delete("cbq:lock")
  if not ok then
    ngx.log(ngx.ERR, "kling sim: callback pass failed: ", err)
  end
end

-- Starts this worker's timer (once); called on the dialect's requests, so a reloaded worker
-- resumes sending as soon as it serves anything.
function M.ensure()
  if started then
    return
  end
  local ok, err = ngx.timer.every(M.INTERVAL_S, tick)
  if ok then
    started = true
  else
    ngx.log(ngx.ERR, "kling sim: cannot start the callback timer: ", err)
  end
end

function M.watch(t)
  local d = dict()
  local n = d:incr("cbq:n", 1, 0)
  d:set("cbq:" .. n, t.id)
  M.ensure()
end

function M.init(d)
  dialect = d
end

return M
