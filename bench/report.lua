-- The results of bench/run.sh as markdown tables, with ratios against ours.
--   lua5.4 bench/report.lua RESULTS_DIR
local lib = require "bench.lib"

local dir = assert(arg[1], "results directory")

-- /usr/bin/time -v: CPU seconds (user + sys), peak RSS (KiB), wall seconds.
local function timing(name)
  local f = io.open(dir .. "/" .. name .. ".time")
  if not f then
    return nil
  end
  local t = { cpu_s = 0 }
  for line in f:lines() do
    local v = line:match("User time %(seconds%): ([%d.]+)") or line:match("System time %(seconds%): ([%d.]+)")
    if v then
      t.cpu_s = t.cpu_s + tonumber(v)
    end
    t.rss_kib = t.rss_kib or tonumber(line:match("Maximum resident set size %(kbytes%): (%d+)"))
    local h, m, s = line:match("Elapsed %(wall clock%) time %(h:mm:ss or m:ss%): (%d+):(%d+):([%d.]+)")
    if not h then
      m, s = line:match("Elapsed %(wall clock%) time %(h:mm:ss or m:ss%): (%d+):([%d.]+)")
      h = 0
    end
    if m then
      t.wall_s = tonumber(h) * 3600 + tonumber(m) * 60 + tonumber(s)
    end
  end
  f:close()
  return t
end

local function fmt(v, places)
  if v == nil then
    return "-"
  end
  return string.format("%." .. (places or 1) .. "f", v)
end

local function ratio(a, b)
  if not a or not b or b == 0 then
    return "-"
  end
  return string.format("%.2f", a / b)
end

local p = print

-- Polls per task and lag
local lag_variants = { "ours", "ours-learn", "fixed1", "fixed3", "fixed10", "kling-api" }
local lag = {}
for _, v in ipairs(lag_variants) do
  lag[v] = lib.read(dir .. "/lag-" .. v .. ".json")
end
if lag.ours then
  p("### Polls per task and completion-detection lag (tasks of 30-300 s, all variants at once)")
  p("")
  p("| client | tasks | polls/task (mean) | lag mean (s) | lag p90 (s) | lag max (s) | lag / task time (mean) |"
    .. " polls vs ours | lag vs ours |")
  p("|---|---|---|---|---|---|---|---|---|")
  local ours = lag.ours
  for _, v in ipairs(lag_variants) do
    local r = lag[v]
    if r then
      p(string.format("| %s | %d | %s | %s | %s | %s | %s %% | %s | %s |", v, r.tasks, fmt(r.polls.mean, 2),
        fmt(r.lag_ms.mean / 1000, 2), fmt(r.lag_ms.p90 / 1000, 2), fmt(r.lag_ms.max / 1000, 2),
        fmt(r.lag_share.mean * 100, 2), ratio(r.polls.mean, ours.polls.mean), ratio(r.lag_ms.mean, ours.lag_ms.mean)))
    end
  end
  p("")
  local long = {}
  for _, row in ipairs(ours.rows) do
    if row.seconds >= 100 and row.seconds <= 140 then
      long[#long + 1] = string.format("%.1f s: %d polls, lag %.2f s (%.1f %%)", row.seconds, row.polls,
        row.lag_ms / 1000, row.lag_ms / row.seconds / 10)
    end
  end
  p("Ours, tasks near 120 s with their estimate: " .. table.concat(long, "; "))
  p("")
end

-- In flight
local inflight = {
  { "ours", lib.read(dir .. "/inflight-ours.json"), timing("inflight-ours") },
  { "ours over HTTPS", lib.read(dir .. "/inflight-ours-https.json"), timing("inflight-ours-https") },
  { "kling-api (Promise.all)", lib.read(dir .. "/inflight-kling-api.json"), timing("inflight-kling-api") },
  { "curl loop (xargs -P 32, 3 s rounds)", lib.read(dir .. "/inflight-curl.json"), timing("inflight-curl") },
}
if inflight[1][2] then
  local ot = inflight[1][3]
  p(string.format("### %d tasks of %g s in flight at once", inflight[1][2].tasks, inflight[1][2].task_seconds))
  p("")
  p("| client | succeeded | polls | wall (s) | CPU (s) | peak RSS (MiB) | CPU vs ours | RSS vs ours |")
  p("|---|---|---|---|---|---|---|---|")
  for _, row in ipairs(inflight) do
    local r, t = row[2], row[3]
    if r and t then
      p(string.format("| %s | %s | %s | %s | %s | %s | %s | %s |", row[1], tostring(r.succeeded), tostring(r.polls),
        fmt(t.wall_s), fmt(t.cpu_s, 2), fmt(t.rss_kib / 1024), ratio(t.cpu_s, ot.cpu_s), ratio(t.rss_kib, ot.rss_kib)))
      if r.errors and next(r.errors) then
        local parts = {}
        for k, v in pairs(r.errors) do
          parts[#parts + 1] = k .. ": " .. v
        end
        p("|  errors: " .. table.concat(parts, "; ") .. " | | | | | | | |")
      end
    end
  end
  p("")
end

local rate, rt = lib.read(dir .. "/rate-ours.json"), timing("rate-ours")
if rate then
  p("### Throughput (ours, every task polled every 0.25 s for 30 s)")
  p("")
  p(string.format("%d tasks in flight: %d polls, %.0f polls per second of wall time, %.0f polls per CPU second "
    .. "of the client (one thread); peak RSS %.1f MiB, Lua heap at the end %.1f MiB, scheduler %.0f KiB.",
    rate.tasks, rate.polls, rate.polls_per_wall_s, rate.polls_per_cpu_s,
    (rt and rt.rss_kib or rate.peak_rss_kib) / 1024, rate.lua_kib / 1024, rate.sched_bytes / 1024))
  p("")
end

local slots = { lib.read(dir .. "/slots-ours.json"), lib.read(dir .. "/slots-ours-learn.json") }
if slots[1] then
  p("### Slot utilisation: (ceil(N / C) x task time) / batch wall time")
  p("")
  p("| client | N | C | task (s) | ideal (s) | wall (s) | utilisation | 1303 refusals | polls/task |")
  p("|---|---|---|---|---|---|---|---|---|")
  for _, r in ipairs(slots) do
    p(string.format("| %s | %d | %d | %g | %g | %.2f | %.3f | %d | %.2f |", r.variant, r.tasks, r.slots, r.task_seconds,
      r.ideal_s, r.wall_s, r.utilisation, r.sim_refused_1303, r.polls / r.tasks))
  end
  p("")
end
