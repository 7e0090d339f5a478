-- N tasks in flight at once through the engine (submit_many + wait_all), for CPU seconds,
-- peak RSS and polls per CPU second. bench/run.sh wraps it in /usr/bin/time -v.
--   lua5.4 bench/inflight.lua N SECONDS OUT.json                 engine defaults, no estimate
--   lua5.4 bench/inflight.lua N SECONDS OUT.json INTERVAL FOR    poll every INTERVAL s for FOR s
-- The second form measures throughput: every task is polled at a fixed cadence (more often
-- than the simulator can answer, so the client runs flat out) until the run's deadline.
local core = require "kling.core"
local lib = require "bench.lib"

-- BENCH_GC: generational, or incremental:PAUSE:STEPMUL (Lua 5.4's defaults are 200 and 100).
local gc = os.getenv("BENCH_GC")
if gc == "generational" then
  collectgarbage("generational")
elseif gc and gc:match("^incremental:") then
  local pause, stepmul = gc:match("^incremental:(%d+):(%d+)$")
  collectgarbage("incremental", (assert(tonumber(pause), "BENCH_GC pause")), (assert(tonumber(stepmul), "stepmul")))
end
local n = assert(tonumber(arg[1]), "N")
local seconds = assert(tonumber(arg[2]), "SECONDS")
local out = assert(arg[3], "OUT")
local interval, run_for = tonumber(arg[4]), tonumber(arg[5])

local eopts = { max_requests = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "64") }
if interval then
  eopts.min_interval, eopts.max_interval, eopts.backoff, eopts.learn = interval, interval, 1, false
end
local client = lib.client { engine = eopts }
local e = client:engine(eopts)

local reqs = {}
for i = 1, n do
  reqs[i] = { prompt = string.format("bench inflight %d [sim:seconds=%g]", i, seconds) }
end
local t0 = core.now_ms()
local tasks = client:submit_many(reqs)
local submitted_s = (core.now_ms() - t0) / 1000
local _, cpu_submit = lib.self_usage()
local polls0 = e:stats().polls
local t1 = core.now_ms()
local peak_active = 0
-- The Lua heap as the collector sees it (live data and garbage not yet swept), its largest at
-- the 1 s progress events.
local lua_peak = collectgarbage("count")
local res = client:wait_all(tasks, { timeout = run_for or (seconds * 4 + 120), progress_interval = 1,
  on_progress = function(ev)
    peak_active = math.max(peak_active, ev.queued + ev.running)
    lua_peak = math.max(lua_peak, collectgarbage("count"))
  end })
local hwm, cpu = lib.self_usage()
local lua_end = collectgarbage("count")
collectgarbage("collect") -- what the finished tasks and the results hold (all still referenced)
local lua_live = collectgarbage("count")
local st = e:stats()
local polling_s = (core.now_ms() - t1) / 1000
lib.write(out, {
  variant = "ours", tasks = n, task_seconds = seconds, interval = interval, succeeded = res.succeeded,
  failed = res.failed, unfinished = res.unfinished, polls = st.polls, creates = st.creates,
  poll_errors = st.poll_errors, submit_s = submitted_s, wall_s = (core.now_ms() - t0) / 1000,
  peak_active = peak_active, peak_rss_kib = hwm, cpu_s = cpu, cpu_submit_s = cpu_submit,
  polls_per_cpu_s = (st.polls - polls0) / math.max(0.01, cpu - cpu_submit),
  polls_per_wall_s = (st.polls - polls0) / polling_s, sched_bytes = st.scheduler.bytes,
  lua_kib = math.floor(lua_end), lua_peak_kib = math.floor(lua_peak), lua_live_kib = math.floor(lua_live),
})
