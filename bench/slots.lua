-- Slot utilisation: N tasks of T seconds through C slots (the simulator's max_parallel = C
-- and the engine's max_parallel = C). Utilisation = (ceil(N / C) * T) / batch wall time;
-- 1.0 is the physical limit.
--   lua5.4 bench/slots.lua N C T OUT.json [learn]
-- Default: each request carries its estimate (T). "learn": no estimate, the engine learns it
-- from the first tasks to finish. Short tasks want short late polls: min_interval 0.02 s.
local core = require "kling.core"
local lib = require "bench.lib"

local n, c, t = assert(tonumber(arg[1])), assert(tonumber(arg[2])), assert(tonumber(arg[3]))
local out = assert(arg[4], "OUT")
local learn = arg[5] == "learn"

lib.admin("POST", "/_sim/config", { max_parallel = c })
local client = lib.client()
client:engine { min_interval = 0.02, max_parallel = not learn and c or nil }
local reqs = {}
for i = 1, n do
  reqs[i] = { prompt = string.format("bench slots %d [sim:seconds=%g]", i, t), estimate = not learn and t or nil }
end
local t0 = core.now_ms()
local tasks = client:submit_many(reqs)
local res = client:wait_all(tasks, { timeout = math.ceil(n / c) * t * 3 + 60 })
local wall = (core.now_ms() - t0) / 1000
lib.admin("POST", "/_sim/config", { max_parallel = 0 })
local st = client:engine():stats()
local sim = lib.admin("GET", "/_sim/stats")
lib.write(out, {
  variant = learn and "ours-learn" or "ours", tasks = n, slots = c, task_seconds = t, succeeded = res.succeeded,
  wall_s = wall, ideal_s = math.ceil(n / c) * t, utilisation = math.ceil(n / c) * t / wall,
  polls = st.polls, creates = st.creates, rate_limited = st.rate_limited, sim_creates = sim.creates,
  sim_refused_1303 = sim.by_status["429"] or 0,
})
