-- Polls per task and completion-detection lag for tasks of 30-300 s, one variant per process
-- (bench/run.sh starts them side by side against one simulator):
--   lua5.4 bench/lag.lua ours OUT.json        the engine, each request with its estimate
--   lua5.4 bench/lag.lua ours-learn OUT.json  the engine, no estimate (back-off, then learnt)
--   lua5.4 bench/lag.lua fixed N OUT.json     a plain loop polling every N s over our driver
-- Lag = when the client knew (our wall clock, moved onto the simulator's) minus the
-- simulator's completion time (the finished task's updated_at).
local core = require "kling.core"
local transport = require "kling.transport"
local lib = require "bench.lib"

local variant = arg[1]
local interval = variant == "fixed" and assert(tonumber(arg[2]), "fixed needs an interval in seconds")
local out = assert(arg[variant == "fixed" and 3 or 2], "output path missing")
local count = tonumber(os.getenv("BENCH_LAG_TASKS") or "20")
local lo, hi = tonumber(os.getenv("BENCH_LAG_MIN") or "30"), tonumber(os.getenv("BENCH_LAG_MAX") or "300")

-- Evenly spread over lo..hi, each with a fractional part of its own (golden-ratio steps) so
-- that no duration is a multiple of a fixed poller's interval by construction. Every
-- variant (and bench/kling_api.mjs) uses the same list.
local durations = {}
for i = 1, count do
  local base = lo + (hi - lo - 1) * (i - 1) / math.max(1, count - 1)
  durations[i] = math.floor((base + (i * 0.6180339887) % 1) * 1000 + 0.5) / 1000
end

local offset = lib.clock_offset()
local tag = variant .. (interval and interval or "")
local rows = {}

local function row(i, t, polls, known_wall)
  local done_at = t.raw and tonumber(t.raw.updated_at)
  rows[#rows + 1] = { seconds = durations[i], polls = polls, status = t.status,
    lag_ms = done_at and (known_wall + offset - done_at) or nil }
end

local function request(i)
  return { prompt = string.format("bench lag %s %d [sim:seconds=%.3f]", tag, i, durations[i]) }
end

local function run_engine(with_estimate)
  local client = lib.client()
  local reqs = {}
  for i = 1, count do
    reqs[i] = request(i)
    reqs[i].estimate = with_estimate and durations[i] or nil
  end
  local tasks = client:submit_many(reqs)
  local e, known = client:engine(), {}
  client:wait_all(tasks, { timeout = hi * 3, on_done = function(t)
    known[t] = core.wall_ms()
  end })
  for i, t in ipairs(tasks) do
    row(i, t, e:polls_of(t), known[t])
  end
end

-- The peer: every task polled every `interval` seconds from its create, all concurrently
-- over the same libcurl multi driver (the loop a careful script would write).
local function run_fixed()
  local client = lib.client()
  local http, provider, ctx = client.driver.http, client.provider, client.ctx
  local tasks, next_at, polls, inflight = {}, {}, {}, {}
  local left = count
  for i = 1, count do
    tasks[i] = assert(client:submit(request(i)))
    next_at[i] = core.now_ms() + interval * 1000
    polls[i] = 0
  end
  while left > 0 do
    local now = core.now_ms()
    local wake = now + 60000
    for i = 1, count do
      if next_at[i] and not inflight[i] then
        if next_at[i] <= now then
          local id = assert(http:start { method = "GET", url = client.base_url .. provider.query_path(tasks[i].endpoint,
            tasks[i].id), headers = { accept = "application/json", authorization = ctx.auth:bearer(core.wall_s()) } })
          inflight[i], inflight[id] = id, i
          polls[i] = polls[i] + 1
        elseif next_at[i] < wake then
          wake = next_at[i]
        end
      end
    end
    for _, res in ipairs(http:wait(math.max(0, wake - core.now_ms()))) do
      local i = inflight[res.id]
      inflight[res.id], inflight[i] = nil, nil
      local data = transport.read_result(provider, res)
      local fields = data and provider.parse_task(data)
      if fields and (fields.status == "succeeded" or fields.status == "failed") then
        tasks[i]:update(fields)
        row(i, tasks[i], polls[i], core.wall_ms())
        next_at[i] = nil
        left = left - 1
      else
        next_at[i] = core.now_ms() + interval * 1000
      end
    end
  end
end

if variant == "ours" then
  run_engine(true)
elseif variant == "ours-learn" then
  run_engine(false)
elseif variant == "fixed" then
  run_fixed()
else
  error("variant: ours, ours-learn or fixed N")
end

local polls, lags, rel = {}, {}, {}
for _, r in ipairs(rows) do
  polls[#polls + 1] = r.polls
  if r.lag_ms then
    lags[#lags + 1] = r.lag_ms
    rel[#rel + 1] = r.lag_ms / (r.seconds * 1000)
  end
end
local hwm, cpu = lib.self_usage()
lib.write(out, { variant = tag, tasks = count, polls = lib.stats(polls), lag_ms = lib.stats(lags),
  lag_share = lib.stats(rel), rows = rows, peak_rss_kib = hwm, cpu_s = cpu })
