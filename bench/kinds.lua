-- Polls per task and detection lag for tasks of SEVERAL kinds, none given an estimate: each
-- kind (model, mode, duration) takes its own mean time, every task of it within +-spread of
-- that mean (uniform: the hardest spread of that width for a learnt window), means from 40 s
-- to 260 s (tasks of 30-300 s). Run it on an empty cache, then again on the cache the run
-- before left (new durations, same kinds): the issue-15 target (at most 4 polls a task, lag at
-- most 3 % of the task time, once learnt) is measured on the second run.
--   lua5.4 bench/kinds.lua learn OUT.json     the engine, learning (cache: BENCH_LEARN_FILE, else
--                                             $XDG_CACHE_HOME/kling/durations.json)
--   lua5.4 bench/kinds.lua backoff OUT.json   the engine, learning off (today's back-off)
-- BENCH_KINDS_PER (tasks a kind, 16), BENCH_KINDS_SPREAD (0.15), BENCH_KINDS_SEED (1: the
-- durations' draw; give each run its own), BENCH_KINDS_SCALE (1: times all means, for a quick try).
local core = require "kling.core"
local lib = require "bench.lib"

local variant, out = arg[1], assert(arg[2], "output path missing")
assert(variant == "learn" or variant == "backoff", "variant: learn or backoff")
local per = tonumber(os.getenv("BENCH_KINDS_PER") or "16")
local spread = tonumber(os.getenv("BENCH_KINDS_SPREAD") or "0.15")
local seed = tonumber(os.getenv("BENCH_KINDS_SEED") or "1")
local scale = tonumber(os.getenv("BENCH_KINDS_SCALE") or "1")

local KINDS = {
  { model = "kling-v1-6", mode = "std", duration = 5, mean = 40 },
  { model = "kling-v2-1", mode = "std", duration = 5, mean = 80 },
  { model = "kling-v2-1", mode = "pro", duration = 10, mean = 140 },
  { model = "kling-v2-master", duration = 5, mean = 200 },
  { model = "kling-v2-master", duration = 10, mean = 260 },
}

-- Lua 5.4's generator (xoshiro256**), seeded: the same draw for every variant with the same seed.
math.randomseed(seed)
local uniform = math.random

local reqs, rows = {}, {}
for ki, k in ipairs(KINDS) do
  for i = 1, per do
    local seconds = math.floor(k.mean * scale * (1 + spread * (2 * uniform() - 1)) * 1000 + 0.5) / 1000
    reqs[#reqs + 1] = { prompt = string.format("bench kinds %s %d.%d [sim:seconds=%.3f]", variant, ki, i, seconds),
      model = k.model, mode = k.mode, duration = k.duration }
    rows[#rows + 1] = { kind = ki, seconds = seconds }
  end
end

local opts = { learn = variant == "learn" }
if variant == "learn" and os.getenv("BENCH_LEARN_FILE") then
  opts.learn_file = os.getenv("BENCH_LEARN_FILE")
end
local offset = lib.clock_offset()
local client = lib.client()
local tasks = client:submit_many(reqs, { engine = opts })
local e, known = client:engine(), {}
client:wait_all(tasks, { timeout = 300 * scale * 3, on_done = function(t)
  known[t] = core.wall_ms()
end })

local by_kind, all_polls, all_share, lags = {}, {}, {}, {}
for i, t in ipairs(tasks) do
  local r = rows[i]
  local done_at = t.raw and tonumber(t.raw.updated_at)
  r.status, r.polls = t.status, e:polls_of(t)
  r.lag_ms = done_at and known[t] and (known[t] + offset - done_at) or nil
  local k = by_kind[r.kind] or { polls = {}, share = {} }
  by_kind[r.kind] = k
  k.polls[#k.polls + 1], all_polls[#all_polls + 1] = r.polls, r.polls
  if r.lag_ms then
    local share = r.lag_ms / (r.seconds * 1000)
    k.share[#k.share + 1], all_share[#all_share + 1], lags[#lags + 1] = share, share, r.lag_ms
  end
end
local kinds = {}
for ki, k in ipairs(by_kind) do
  kinds[ki] = { mean_s = KINDS[ki].mean * scale, model = KINDS[ki].model, mode = KINDS[ki].mode,
    duration = KINDS[ki].duration, polls = lib.stats(k.polls), lag_share = lib.stats(k.share) }
end
local hwm, cpu = lib.self_usage()
local res = { variant = variant, seed = seed, spread = spread, tasks = #tasks, polls = lib.stats(all_polls),
  lag_ms = lib.stats(lags), lag_share = lib.stats(all_share), kinds = kinds, rows = rows, peak_rss_kib = hwm,
  cpu_s = cpu }
lib.write(out, res)
print(string.format("%s seed %d: %d tasks, %.2f polls a task, lag %.2f %% of the task time (mean), p90 %.2f %%",
  variant, seed, #tasks, res.polls.mean, 100 * res.lag_share.mean, 100 * res.lag_share.p90))
for ki, k in ipairs(kinds) do
  print(string.format("  kind %d (%s %s %ss, ~%g s): %.2f polls, lag %.2f %%", ki, k.model, tostring(k.mode),
    k.duration, k.mean_s, k.polls.mean, 100 * k.lag_share.mean))
end
