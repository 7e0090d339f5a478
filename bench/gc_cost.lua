-- What the Lua collector's policy costs a large run, on a fake transport (no network, a fake
-- clock, one seed, so the schedule is the same on every run): N tasks through submit_many and
-- wait_all with the collector RUNNING under the engine's policy (kling.engine.collector), for
-- valgrind's instruction counts (callgrind) and the Lua heap's peak. Two runs:
--
--   lua5.4 bench/gc_cost.lua N FOR            flat out: every task due every 0.25 s, its answer
--                                             "processing" for ever; wait_all gives up after FOR s
--                                             of fake time (no task ends: every CPU second goes to
--                                             polls and their garbage)
--   lua5.4 bench/gc_cost.lua N FOR ENDS       the same, each task "succeed" (with a video) ENDS s
--                                             after its create: the 10,000 x 20 s run's shape
--   lua5.4 bench/gc_cost.lua N FOR old        flat out, generational mode, no pacing (the collector
--                                             left alone): four waits of FOR s, each after a full
--                                             collection, and the old garbage a poll left in each
--                                             (the heap after three minor steps less the heap
--                                             after a full collection, per poll)
--
-- Prints polls, ends, the Lua heap's peak (sampled at every wait of the fake transport, KiB),
-- VmHWM (KiB) and CPU (os.clock) after the submits and in all. Instructions: run it under
-- `valgrind --tool=callgrind --callgrind-out-file=/dev/null` and read "Collected" (the total),
-- at two FOR values to divide the difference by that of the polls (the submits cancel out).
-- LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' from a tree's root; to run
-- another tree with this script, cd there and pass this script's absolute path. BENCH_COLLECTOR=
-- FILE loads FILE as kling.engine.collector (a candidate policy) before the engine.
local args = {}
for i = 1, 3 do
  args[i] = tonumber(arg[i])
end
local n, run_for, ends = args[1] or 10000, args[2] or 2, args[3]
local old_mode = arg[3] == "old"

local candidate = os.getenv("BENCH_COLLECTOR")
if old_mode then -- the collector left alone (a tree without kling.engine.collector ignores it)
  package.loaded["kling.engine.collector"] = { run = function(_, fn, ...)
    return fn(...)
  end, wait = function(e, _, fn, ...)
    return fn(e, ...)
  end, check = function() end }
  collectgarbage("generational")
elseif candidate and candidate ~= "" then
  package.loaded["kling.engine.collector"] = dofile(candidate)
end

-- The fake provider (Kling's official API), a libcurl-style multi handle, 5 ms from request to
-- answer.
local ANSWER_MS = 5
-- peak: the Lua heap's largest sample in each phase (1 submits, 2 polls before the first end, 3 after)
local f = { t = 1000000, seq = 0, pending = {}, polls = 0, ends = 0, bodies = {}, created = {}, peak = { 0, 0, 0 },
  phase = 1 }
local BODY = '{"code":0,"message":"SUCCEED","request_id":"rq","data":{"task_id":"%s","task_status":"%s",'
  .. '"task_status_msg":"","created_at":%d,"updated_at":%d,"task_info":{"external_task_id":"%s"}}}'
local DONE = '{"code":0,"message":"SUCCEED","request_id":"rq","data":{"task_id":"%s","task_status":"succeed",'
  .. '"task_status_msg":"","created_at":%d,"updated_at":%d,"task_info":{"external_task_id":"%s"},'
  .. '"task_result":{"videos":[{"id":"v%s","url":"https://cdn.example.invalid/videos/%s/output.mp4",'
  .. '"duration":"5.1"}]}}}'

local function answer(status, body)
  return { ok = true, status = status, headers = { ["content-type"] = "application/json" }, body = body,
    sent = true, received = true }
end

local function serve(req)
  if req.method == "POST" then
    f.seq = f.seq + 1
    local id = tostring(800000 + f.seq)
    local ext = req.body:match('"external_task_id":"([^"]+)"') or ""
    f.bodies[id] = string.format(BODY, id, "processing", f.t, f.t, ext)
    f.created[id] = { f.t, ext }
    return answer(200, string.format(BODY, id, "submitted", f.t, f.t, ext))
  end
  f.polls = f.polls + 1
  local id = req.url:match("/([^/?]+)$")
  local c = assert(f.created[id], "no such task")
  if ends and f.t >= c[1] + ends * 1000 then
    f.ends = f.ends + 1
    f.phase = 3
    return answer(200, string.format(DONE, id, c[1], f.t, c[2], id, id))
  end
  return answer(200, f.bodies[id])
end

local http = {}
function http.start(_, req)
  f.next_id = (f.next_id or 0) + 1
  local res = serve(req)
  res.id = f.next_id
  f.pending[#f.pending + 1] = { at = f.t + ANSWER_MS, res = res }
  return res.id
end

function http.wait(_, timeout)
  local kib = collectgarbage("count")
  if kib > f.peak[f.phase] then
    f.peak[f.phase] = kib
  end
  local first
  for _, p in ipairs(f.pending) do
    if not first or p.at < first then
      first = p.at
    end
  end
  local out = {}
  if not first or first > f.t + timeout then
    f.t = f.t + timeout
  else
    f.t = math.max(f.t, first)
    local keep = {}
    for _, p in ipairs(f.pending) do
      if p.at <= f.t then
        out[#out + 1] = p.res
      else
        keep[#keep + 1] = p
      end
    end
    f.pending = keep
  end
  return out
end

function http.cancel(_, id)
  for i, p in ipairs(f.pending) do
    if p.res.id == id then
      table.remove(f.pending, i)
      return true
    end
  end
  return false
end

local driver = {
  http = http,
  now_ms = function()
    return f.t
  end,
  wall_s = function()
    return 1700000000 + f.t // 1000
  end,
  sleep_ms = function(_, ms)
    f.t = f.t + ms
  end,
}
local has_seam, multi = pcall(require, "kling.driver.multi") -- the asynchronous seam, where the tree has one
if has_seam then
  multi.install(driver)
end

local function hwm_kib()
  local fh = io.open("/proc/self/status")
  local s = fh and fh:read("a") or ""
  if fh then
    fh:close()
  end
  return tonumber(s:match("VmHWM:%s*(%d+)")) or 0
end

local kling = require "kling"
local client = assert(kling.new { provider = "kling", access_key = "ak-fake", secret_key = "sk-fake",
  base_url = "http://fake", driver = driver })
-- flat out: a fixed 0.25 s cadence; with ENDS: the engine's own back-off (no estimates), as inflight.lua N S
local eopts = { learn = false, seed = 1, max_requests = 64 }
if not ends then
  eopts.min_interval, eopts.max_interval, eopts.backoff = 0.25, 0.25, 1
end
client:engine(eopts)
local reqs = {}
for i = 1, n do
  reqs[i] = { prompt = string.format("gc cost %d", i) }
end
local c0 = os.clock()
local tasks = client:submit_many(reqs)
if old_mode then
  for round = 1, 4 do
    collectgarbage("collect")
    local p0 = f.polls
    client:wait_all(tasks, { timeout = run_for })
    local polls = f.polls - p0
    for _ = 1, 3 do
      collectgarbage("step") -- a minor collection each (the heap has not doubled since the full one)
    end
    local minor = collectgarbage("count")
    collectgarbage("collect")
    local live = collectgarbage("count")
    io.write(string.format("round %d polls %d old_garbage_bytes_per_poll %.1f live_kib %.0f\n", round, polls,
      (minor - live) * 1024 / polls, live))
  end
  return
end
local c1 = os.clock()
local polls0 = f.polls
f.phase = 2
local res = client:wait_all(tasks, { timeout = ends and (ends * 4 + 120) or run_for })
local c2 = os.clock()
assert(res.succeeded == f.ends, "every task that ended succeeded")
collectgarbage("collect")
io.write(string.format("polls %d ends %d lua_peak_kib %d/%d/%d live_kib %d hwm_kib %d cpu_submit %.3f "
  .. "cpu_wait %.3f us_per_poll %.2f\n", f.polls - polls0, f.ends, math.floor(f.peak[1]), math.floor(f.peak[2]),
  math.floor(f.peak[3]), math.floor(collectgarbage("count")), hwm_kib(), c1 - c0, c2 - c1,
  (c2 - c1) * 1e6 / math.max(1, f.polls - polls0)))
