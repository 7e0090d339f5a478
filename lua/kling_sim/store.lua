-- The task store, shared by every dialect: task records, external ids (unique per account),
-- per-endpoint lists and the parallel slots a running task holds, all in lua_shared_dict so
-- every worker sees them and they outlive a reload. A task's state is derived from its
-- timestamps on each read (kling_sim.fate), never updated in place.
local json = require "kling.json"
local clock = require "kling_sim.clock"
local fate = require "kling_sim.fate"
local stats = require "kling_sim.stats"

local M = {}

local function tasks()
  return ngx.shared.kling_sim_tasks
end

local function slots()
  return ngx.shared.kling_sim_slots
end

local function state()
  return ngx.shared.kling_sim_state
end

-- A short lock across workers (shared-dict add is atomic); nil on timeout.
local function lock(name)
  local key = "lock:" .. name
  for _ = 1, 5000 do
    if state():add(key, true, 5) then
      return key
    end
    ngx.sleep(0.001)
  end
  return nil
end

local function unlock(key)
  state():delete(key)
end

-- 18 digits like the official ids; the sequence is never reset, so ids never repeat.
function M.new_id(prefix)
  local seq = state():incr("id:seq", 1, 0)
  return string.format("%s%010d%06d", prefix or "86", ngx.time() % 10000000000, seq % 1000000)
end

-- Parallel tasks of an account still running at now_ms; ended ones are pruned.
function M.live(account, now_ms)
  local dict, n = slots(), 0
  local prefix = account .. "\0"
  for _, key in ipairs(dict:get_keys(0)) do
    if key:sub(1, #prefix) == prefix then
      local ends = dict:get(key)
      if ends and ends > now_ms then
        n = n + 1
      else
        dict:delete(key)
      end
    end
  end
  return n
end

local function save(t)
  return tasks():safe_set("t:" .. t.id, json.encode(t))
end

-- create(t, max_parallel) -> t | nil, "parallel_limit" | "duplicate" | "full" | "busy"
-- t = {dialect, endpoint, account, external_task_id, total_ms, fate, request, units, slots};
-- fills id, created_ms and video_id. max_parallel 0 or nil means no limit. A task holds
-- t.slots parallel slots (default 1; an official image task holds n) until it ends.
function M.create(t, max_parallel)
  local dict = tasks()
  local key
  if max_parallel and max_parallel > 0 then
    key = lock("slots:" .. t.account)
    if not key then
      return nil, "busy"
    end
    if M.live(t.account, clock.now_ms()) + (t.slots or 1) > max_parallel then
      unlock(key)
      return nil, "parallel_limit"
    end
  end
  t.id = M.new_id()
  t.video_id = M.new_id("85")
  t.created_ms = clock.now_ms()
  local ext_key = t.external_task_id and ("x:" .. t.account .. "\0" .. t.external_task_id)
  if ext_key then
    local ok, err = dict:safe_add(ext_key, t.id)
    if not ok then
      if key then unlock(key) end
      return nil, err == "exists" and "duplicate" or "full"
    end
  end
  if not save(t) then
    if ext_key then dict:delete(ext_key) end
    if key then unlock(key) end
    return nil, "full"
  end
  local ends = t.created_ms + t.total_ms
  slots():set(t.account .. "\0" .. t.id, ends, t.total_ms / 1000 + 60)
  for k = 2, t.slots or 1 do
    slots():set(t.account .. "\0" .. t.id .. "#" .. k, ends, t.total_ms / 1000 + 60)
  end
  if key then unlock(key) end
  local n = dict:incr("n:" .. t.account .. "\0" .. t.endpoint, 1, 0)
  dict:set("i:" .. t.account .. "\0" .. t.endpoint .. "\0" .. n, t.id)
  local all = dict:incr("n", 1, 0)
  dict:set("a:" .. all, t.id)
  dict:set("v:" .. t.video_id, t.id)
  stats.incr("creates")
  return t
end

function M.get(id)
  local s = tasks():get("t:" .. id)
  return s and json.decode(s)
end

function M.by_external(account, ext)
  local id = tasks():get("x:" .. account .. "\0" .. ext)
  return id and M.get(id)
end

function M.by_video(video_id)
  local id = tasks():get("v:" .. video_id)
  return id and M.get(id)
end

-- One page of an account's tasks on an endpoint, newest first.
function M.list(account, endpoint, page, size)
  local dict = tasks()
  local base = account .. "\0" .. endpoint
  local total = dict:get("n:" .. base) or 0
  local out = json.array {}
  local first = total - (page - 1) * size
  for n = first, math.max(first - size + 1, 1), -1 do
    local id = dict:get("i:" .. base .. "\0" .. n)
    local t = id and M.get(id)
    if t then
      out[#out + 1] = t
    end
  end
  return out
end

-- Calls fn(task) for every task, oldest first.
function M.each(fn)
  local dict = tasks()
  for n = 1, dict:get("n") or 0 do
    local id = dict:get("a:" .. n)
    local t = id and M.get(id)
    if t then
      fn(t)
    end
  end
end

-- phase(t, now_ms) -> "submitted" | "processing" | "done", updated_ms
function M.phase(t, now_ms)
  return fate.phase(t.created_ms, t.total_ms, now_ms or clock.now_ms())
end

function M.reset()
  for _, dict in ipairs { tasks(), slots() } do
    dict:flush_all()
    dict:flush_expired(0)
  end
end

return M
