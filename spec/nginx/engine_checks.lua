-- luacheck: read globals ngx
-- luacheck: ignore 122 (ngx.status is meant to be written)
-- The engine (kling.engine: submit_many, wait_all, cancel) INSIDE nginx over the resty driver's
-- asynchronous seam (kling.resty.multi: light threads, a semaphore), driven by
-- spec/nginx/engine.lua and spec/nginx/engine_scenarios.lua. One resty driver per worker,
-- shared by the clients each request or timer makes (the seam keeps its state per request).
-- Each location answers JSON, or lines "ok - name" / "not ok - name: why".
local json = require "kling.json"
local resty = require "kling.resty"

local M = {}

local support = require "checks_support"
local E, sim, line = support.env, support.sim, support.line

local driver
local function D()
  driver = driver or resty.driver { timeout_ms = 10000 }
  return driver
end

-- A client of the simulator on the worker's resty driver; opts as kling.new's.
local function client(opts)
  local e = E()
  local o = { provider = "kling", access_key = e.access_key, secret_key = e.secret_key, base_url = e.http,
    poll_min = 0.2, poll_max = 0.5, retry_base_ms = 20, retry_cap_ms = 200 }
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  o.driver = D()
  return assert(require("kling").new(o))
end

-- The sockets this worker holds open (a killed thread must leave none behind).
local function sockets()
  local p = assert(io.popen("ls -l /proc/" .. ngx.worker.pid() .. "/fd 2>/dev/null"))
  local n = 0
  for l in p:read("*a"):gmatch("[^\n]+") do
    if l:find("socket:", 1, true) then
      n = n + 1
    end
  end
  p:close()
  return n
end

local function now_s()
  ngx.update_time()
  return ngx.now()
end

-- n tasks through submit_many and wait_all; what came of them and of the money.
local function run_many(n, tag)
  local c = client { budget = { limit = "100000", currency = "CNY" }, timeout = 5 }
  local reqs = {}
  for i = 1, n do
    reqs[i] = { prompt = "engine in nginx " .. tag .. " #" .. i, model = "kling-v1", mode = "std", duration = 5 }
  end
  local t0 = now_s()
  local tasks = c:submit_many(reqs, { engine = { learn_file = false, min_interval = 0.2, max_interval = 0.5 } })
  local res = c:wait_all(tasks, { timeout = 60 })
  local elapsed = now_s() - t0
  -- Settled exactly: each task's settle is what the simulator charged for it, nothing held.
  local charged = {}
  for _, row in ipairs(sim("GET", "/_sim/ledger").tasks) do
    charged[row.task_id] = row.micros
  end
  local ops, exact = { reserve = 0, settle = 0, release = 0 }, 0
  local by_key = {}
  for _, t in ipairs(tasks) do
    by_key[t.ledger_key or t.external_task_id] = t
  end
  for _, e in ipairs(c.ledger:entries()) do
    ops[e.op] = (ops[e.op] or 0) + 1
    local t = by_key[e.task_key]
    if e.op == "settle" and t and t.id and charged[t.id] == e.micros then
      exact = exact + 1
    end
  end
  local e = c:engine()
  return { n = n, succeeded = res.succeeded, failed = res.failed, unfinished = res.unfinished, elapsed_s = elapsed,
    tasks_per_s = n / elapsed, ops = ops, exact = exact, reserved = c.ledger:reserved(), spent = c.ledger:spent(),
    pending = D():pending(), stats = e:stats() }
end

-- /engine/run?n=N: the engine in a request handler.
function M.run()
  local n = tonumber(ngx.var.arg_n) or 20
  ngx.say(json.encode(run_many(n, "content " .. ngx.now())))
end

-- /engine/timer?n=N: the engine in a timer (ngx.timer.at); /engine/result answers it once done.
function M.timer()
  local n = tonumber(ngx.var.arg_n) or 20
  local dict = ngx.shared.results
  dict:delete("timer")
  local ok, err = ngx.timer.at(0, function(premature)
    if premature then
      return
    end
    local pok, out = pcall(run_many, n, "timer " .. ngx.now())
    dict:set("timer", json.encode(pok and out or { error = tostring(out) }))
  end)
  ngx.say(ok and "started" or ("not started: " .. tostring(err)))
end

function M.result()
  local v = ngx.shared.results:get("timer")
  if not v then
    ngx.status = 404
    ngx.say("running")
    return
  end
  ngx.say(v)
end

-- /engine/cancel: cancel through the seam kills the request's thread, leaving no socket open
-- and no completion to run; a deadline that drops polls in flight does the same.
function M.cancel()
  local d = D()
  local before = sockets()
  sim("POST", "/_sim/faults", { rules = { { kind = "stall", method = "GET", path = "^/stalled/", count = 100,
    seconds = 3 } } })
  local called = 0
  local function done()
    called = called + 1
  end
  local ids = {}
  for i = 1, 5 do
    ids[i] = assert(d:start({ method = "GET", url = E().http .. "/stalled/" .. i, headers = {} }, done, i))
  end
  local n = d:wait(300)
  local during = sockets()
  line(n == 0 and d:pending() == 5 and during >= before + 5,
    "issue 10.1: five requests in flight on light threads, nothing finished yet (a stalled upstream)",
    json.encode { n = n, pending = d:pending(), sockets = { before, during } })
  for _, id in ipairs(ids) do
    d:cancel(id)
  end
  line(d:pending() == 0, "issue 10.1: cancel drops each request (pending 0)", d:pending())
  local after = sockets()
  line(after <= before, "issue 10.1: the killed threads left no socket open", json.encode { before, during, after })
  ngx.sleep(3.5) -- the upstream answers meanwhile: nothing may come of it
  local n2 = d:wait(10)
  line(called == 0 and n2 == 0, "issue 10.1: no completion of a cancelled request ever runs", called)
  sim("DELETE", "/_sim/faults")

  -- A request that raises in its thread (a bug below the seam) comes back in the result's shape,
  -- counted as sent (its fate unknown); one that ends before start returns is delivered by wait.
  local broken = setmetatable({ request = function()
    error("boom")
  end }, { __index = d })
  local got
  local bid = broken:start({ method = "GET", url = E().http .. "/x", headers = {} }, function(_, res)
    got = res
  end)
  local before_wait = got
  local bn = broken:wait(1000)
  line(bid ~= nil and before_wait == nil and bn == 1 and got and got.ok == false and got.error == "other"
    and got.sent == true and got.id == bid and tostring(got.message):find("boom", 1, true) ~= nil
    and broken:pending() == 0,
    "issue 10.1: a request that raises in its thread is an 'other' error, counted as sent, delivered by wait",
    json.encode(got))

  -- The run's deadline ends tasks whose polls are stalled: the engine drops them (driver:cancel).
  local c = client { budget = { limit = "1000", currency = "CNY" } }
  sim("POST", "/_sim/faults", { rules = { { kind = "stall", method = "GET", path = "^/v1/videos/text2video/",
    count = 1000, seconds = 5 } } })
  local base = sockets()
  local tasks = c:submit_many({ { prompt = "cancelled by its deadline a", duration = 5 },
    { prompt = "cancelled by its deadline b", duration = 5 } },
    { engine = { deadline = 2, learn_file = false, min_interval = 0.2, max_interval = 0.5 } })
  local res = c:wait_all(tasks, { timeout = 10 })
  local kinds = {}
  for i, r in ipairs(res) do
    kinds[i] = r.error and r.error.kind
  end
  local e = c:engine()
  line(res.failed == 2 and kinds[1] == "timeout" and kinds[2] == "timeout" and e.n_inflight == 0
    and d:pending() == 0,
    "issue 10.1: the run's deadline ends tasks whose polls are in flight; their threads are killed",
    json.encode { kinds, e.n_inflight, d:pending(), e:stats().polls })
  line(sockets() <= base, "issue 10.1: ... and leave no socket open", json.encode { base, sockets() })
  local ops = {}
  for _, en in ipairs(c.ledger:entries()) do
    ops[#ops + 1] = en.op
  end
  line(#ops == 2 and ops[1] == "reserve" and ops[2] == "reserve" and c.ledger:reserved() > 0,
    "issue 10.1: ... their reservations held (the tasks run on at the provider)", json.encode(ops))
  sim("DELETE", "/_sim/faults")

  -- engine:cancel of a task still waiting for a provider slot: it ends at once, released.
  local c2 = client { budget = { limit = "1000", currency = "CNY" } }
  local e2 = c2:engine { learn_file = false, max_parallel = 1, min_interval = 0.2, max_interval = 0.5 }
  local first = e2:submit { prompt = "holds the one slot", duration = 5 }
  local second = e2:submit { prompt = "waits for the slot, then is cancelled", duration = 5 }
  local cok, cerr = e2:cancel(second)
  local r2 = c2:wait_all({ first, second }, { timeout = 20 })
  local ops2 = {}
  for _, en in ipairs(c2.ledger:entries()) do
    ops2[#ops2 + 1] = en.op .. ":" .. (en.task_key == first.external_task_id and "1" or "2")
  end
  line(cok and r2[1].ok and second.status == "cancelled" and c2.ledger:reserved() == 0,
    "issue 10.1: engine:cancel inside nginx: the waiting task ends cancelled, the other succeeds, nothing held",
    json.encode { cok, cerr and tostring(cerr), second.status, r2[1].ok, ops2 })
  -- Learnt durations stay in memory inside nginx: a file path is refused by name.
  local pok, perr = pcall(require("kling.engine").new, client(), { learn_file = "/tmp/durations.json" })
  line(not pok and tostring(perr):find("learn_file", 1, true) ~= nil,
    "issue 10.1: inside nginx the engine refuses a learn_file (its reads and writes would block the worker)", perr)
  line(require("kling.engine").new(client(), {}).learn_file == nil,
    "issue 10.1: ... and keeps none by default there")
end

-- /engine/ping: answered while an engine waits in the same worker.
function M.ping()
  ngx.say("pong ", ngx.worker.pid())
end

-- /scenario/<runner>/<i>: lifecycle scenario i through the engine ("engine") or the blocking
-- runner ("blocking") on the resty driver; JSON {seen, mismatches}
-- (spec/support/lifecycle_run.lua, as the runners over libcurl run it).
function M.scenario(runner, i)
  local scenarios = require "support.lifecycle_scenarios"
  local staged = require "support.lifecycle_sim"
  local run = require "support.lifecycle_run"
  local sc = assert(scenarios.scenarios[tonumber(i)], "no scenario " .. tostring(i))
  local st = assert(staged.staging(sc, runner == "engine" and run.ENGINE_CAPS or run.BLOCKING_CAPS))
  local ok, seen = pcall(run[runner], sc, st, {
    client = function(copts)
      return client(copts)
    end,
    faults = function(rules)
      sim("POST", "/_sim/faults", { seed = 1, rules = rules })
    end,
  })
  pcall(sim, "DELETE", "/_sim/faults")
  if not ok then
    ngx.say(json.encode { error = tostring(seen) })
    return
  end
  ngx.say(json.encode { seen = { status = seen.status, ops = seen.ops, err = seen.err and seen.err.kind },
    mismatches = run.mismatches(sc, seen) })
end

return M
