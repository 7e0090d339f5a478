-- Issue 10: the engine (submit_many, wait_all, cancel) INSIDE real nginx over the resty driver's
-- asynchronous seam (kling.resty.multi), against a simulator of its own, in one worker: in a
-- request handler and in a timer, every task ended and its settle exactly what the simulator
-- charged; cancel kills a request's light thread and leaves no socket open; the worker answers
-- other requests while the engine waits. The in-nginx side is spec/nginx/engine_checks.lua.
-- Also prints the engine's tasks/s inside nginx beside the same engine over libcurl here.
package.path = "spec/nginx/?.lua;spec/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"
local kling = require "kling"

local base, sim_dir, prefix = h.dirs("engine")
local srv
local function cleanup()
  h.tidy(base, sim_dir, srv)
end

local url
local function get(path, timeout_ms)
  return h.request("GET", url .. path, { timeout_ms = timeout_ms or 120000 })
end

-- Counts the "ok - " / "not ok - " lines of an answer as checks.
local function count_lines(res, what)
  h.check(what .. " answered", res.ok and res.status == 200, res.message or res.status)
  for l in (res.body or ""):gmatch("[^\n]+") do
    local good, bad = l:match("^ok %- (.*)$"), l:match("^not ok %- (.*)$")
    if good or bad then
      h.check(good or bad, good ~= nil, nil)
    end
  end
end

-- Pings the worker until done() says the engine's run has ended: how many answers came while
-- it ran, and the slowest.
local function ping_while(done)
  local n, slowest, limit = 0, 0, h.now() + 120
  while not done() and h.now() < limit do
    local t0 = h.now()
    local res = get("/engine/ping", 5000)
    local took = h.now() - t0
    if res.ok and res.status == 200 and not done() then
      n = n + 1
      slowest = math.max(slowest, took)
    end
    h.sleep(0.05)
  end
  return n, slowest
end

local function check_run(tag, out, n)
  if not h.check(tag .. ": the run answered", type(out) == "table" and out.n == n, json.encode(out)) then
    return
  end
  h.check(tag .. ": all " .. n .. " tasks succeeded", out.succeeded == n and out.unfinished == 0,
    json.encode { out.succeeded, out.failed, out.unfinished })
  h.check(tag .. ": the ledger has one reserve and one settle per task, no release",
    out.ops.reserve == n and out.ops.settle == n and out.ops.release == 0, json.encode(out.ops))
  h.check(tag .. ": each settle is exactly what the simulator charged, nothing stays reserved",
    out.exact == n and out.reserved == 0 and out.spent > 0, json.encode { out.exact, out.reserved, out.spent })
  h.check(tag .. ": no request left in the seam", out.pending == 0 and out.stats.requests_in_flight == 0,
    json.encode { out.pending, out.stats.requests_in_flight })
end

h.main(function()
  local sim = h.sim_start(sim_dir, { task_seconds = 1 })
  local port = h.free_port()
  url = "http://127.0.0.1:" .. port
  h.write(prefix .. "/env.json", json.encode { http = sim.http, access_key = sim.access_key,
    secret_key = sim.secret_key })
  local conf = h.conf_head(prefix) .. "http {\n  access_log off;\n"
    .. h.lua_paths(h.src .. "/spec/nginx/?.lua;" .. h.src .. "/spec/?.lua;") .. h.temp_paths(prefix) .. ([[
  lua_socket_log_errors off;
  lua_shared_dict results 1m;
  server {
    listen 127.0.0.1:%d;
    location = /engine/run { content_by_lua_block { require("engine_checks").run() } }
    location = /engine/timer { content_by_lua_block { require("engine_checks").timer() } }
    location = /engine/result { content_by_lua_block { require("engine_checks").result() } }
    location = /engine/cancel { content_by_lua_block { require("engine_checks").cancel() } }
    location = /engine/ping { content_by_lua_block { require("engine_checks").ping() } }
  }
}
]]):format(port)
  srv = h.nginx_start(prefix, conf, port)

  count_lines(get("/engine/cancel"), "the cancel checks")

  -- The engine in a request handler; the worker is pinged meanwhile (from curl in the background).
  local n = 60
  local out_file = base .. "/content.json"
  h.sh(("(curl -s -m 120 -o %s '%s/engine/run?n=%d'; touch %s.done) >/dev/null 2>&1 &"):format(h.q(out_file), url, n,
    h.q(out_file)))
  local pings, slowest = ping_while(function()
    return h.read(out_file .. ".done") ~= nil
  end)
  check_run("issue 10.1: the engine in a request handler (submit_many, wait_all)",
    json.decode(h.read(out_file) or "null"), n)
  h.check(("issue 10.1: the worker answered %d other requests while the engine in a handler waited (slowest %.0f ms)")
    :format(pings, slowest * 1000), pings >= 3 and slowest < 0.5, json.encode { pings, slowest })

  -- The engine in a timer (ngx.timer.at).
  local started = get("/engine/timer?n=" .. n)
  h.check("issue 10.1: the engine's timer started", started.status == 200 and started.body:find("^started"),
    started.body)
  local result
  pings, slowest = ping_while(function()
    local r = get("/engine/result", 5000)
    if r.status == 200 then
      result = json.decode(r.body)
    end
    return result ~= nil
  end)
  check_run("issue 10.1: the engine in a timer (ngx.timer.at)", result, n)
  h.check(("issue 10.1: the worker answered %d other requests while the engine in a timer waited (slowest %.0f ms)")
    :format(pings, slowest * 1000), pings >= 3 and slowest < 0.5, json.encode { pings, slowest })

  -- Two handlers and a timer at once, each with its own engine on the worker's one driver: the
  -- seam keeps each one's threads and completions apart (per request, ngx.ctx).
  local files = {}
  for k = 1, 2 do
    files[k] = base .. "/together" .. k .. ".json"
    h.sh(("(curl -s -m 120 -o %s '%s/engine/run?n=%d'; touch %s.done) >/dev/null 2>&1 &"):format(h.q(files[k]), url,
      40, h.q(files[k])))
  end
  h.check("issue 10.1: a timer started beside them", get("/engine/timer?n=40").status == 200)
  result = nil
  ping_while(function()
    local r = get("/engine/result", 5000)
    if r.status == 200 then
      result = json.decode(r.body)
    end
    return result ~= nil and h.read(files[1] .. ".done") ~= nil and h.read(files[2] .. ".done") ~= nil
  end)
  check_run("issue 10.1: three engines at once on one driver (handler 1)", json.decode(h.read(files[1]) or "null"), 40)
  check_run("issue 10.1: three engines at once on one driver (handler 2)", json.decode(h.read(files[2]) or "null"), 40)
  check_run("issue 10.1: three engines at once on one driver (the timer)", result, 40)

  -- Figures: tasks that end at once, so the run is the engine's and the transport's work.
  h.sim_admin(sim, "POST", "/_sim/config", { task_seconds = 0 })
  local big = tonumber(os.getenv("KLING_ENGINE_BENCH_N")) or 300
  local inside = json.decode(get("/engine/run?n=" .. big).body or "null")
  local c = assert(kling.new { provider = "kling", access_key = sim.access_key, secret_key = sim.secret_key,
    base_url = sim.http, poll_min = 0.2, poll_max = 0.5, budget = { limit = "100000", currency = "CNY" } })
  local t0 = h.now()
  local reqs = {}
  for i = 1, big do
    reqs[i] = { prompt = "engine over libcurl #" .. i, model = "kling-v1", mode = "std", duration = 5 }
  end
  local tasks = c:submit_many(reqs, { engine = { learn_file = false, min_interval = 0.2, max_interval = 0.5 } })
  local res = c:wait_all(tasks, { timeout = 60 })
  local curl_s = h.now() - t0
  h.check("issue 10.1: " .. big .. " tasks through the engine inside nginx all succeed", inside
    and inside.succeeded == big, json.encode(inside))
  h.check("issue 10.1: ... and through the same engine over libcurl", res.succeeded == big, res.succeeded)
  if inside and inside.elapsed_s then
    print(("# figures: %d tasks (create + poll each): engine inside nginx %.2f s (%.0f tasks/s), "
      .. "over libcurl %.2f s (%.0f tasks/s)"):format(big, inside.elapsed_s, inside.tasks_per_s, curl_s, big / curl_s))
  end
  h.sim_admin(sim, "POST", "/_sim/config", { task_seconds = 1 })

  h.check_no_lua_error(srv)
end, function()
  return srv
end, cleanup)
