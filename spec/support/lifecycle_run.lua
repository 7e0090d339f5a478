-- One lifecycle scenario (spec/support/lifecycle_scenarios.lua) through a runner against the
-- real simulator, whatever the driver under it: libcurl in plain Lua
-- (spec/integration/lifecycle_{engine,blocking}_spec.lua) or cosockets inside nginx
-- (spec/nginx/engine_scenarios.lua). `engine` runs it through kling.engine (submit, wait_all,
-- deliver, cancel), `blocking` through kling.runner.blocking (what client:submit and
-- task:wait drive); each observes the end, and `mismatches` compares that with the end and the
-- ledger lines the machine alone reaches (the scenario's expect, which
-- spec/unit/lifecycle_spec.lua holds the machine to). Plain Lua 5.1-5.4: LuaJIT runs it in nginx.
local blocking = require "kling.runner.blocking"
local core = require "kling.core"
local json = require "kling.json"
local scenarios = require "support.lifecycle_scenarios"
local staged = require "support.lifecycle_sim"

local M = {}

-- What each runner can stage (lifecycle_sim.staging). The engine runs the engine profile
-- (uncertain creates looked up, refused ones queued again), has a callback intake (deliver) and
-- takes a cancel. The blocking runner runs both profiles (the machine's options are the
-- scenario's), requests sent to a dead port and a task made beforehand under the request's
-- external id (adopt), with no callback intake and no cancel while it waits.
M.ENGINE_CAPS = { profiles = { engine = true }, callbacks = true, cancel = true, connect = true, precreate = true }
M.BLOCKING_CAPS = { profiles = { engine = true, blocking = true }, connect = true, precreate = true }

-- A callback's body as the official API posts it: the task object in the scenario's status.
local STATUS = { processing = "processing", succeed = "succeed", failed = "failed", submitted = "submitted" }
local function callback_body(t, status)
  local d = { task_id = t.id, task_status = STATUS[status], task_status_msg = "", created_at = 1700000000000,
    updated_at = 1700000000000, task_info = { external_task_id = t.external_task_id } }
  if status == "succeed" then
    d.task_result = { videos = { { id = "v-1", url = "https://cdn.example.com/v.mp4", duration = "5.1" } } }
  end
  return assert(json.encode(d))
end

--- Runs scenario sc through the engine, staged as st (lifecycle_sim.staging(sc, M.ENGINE_CAPS)). env = {client(copts)
-- -> a client of the simulator on the runner's driver, faults(rules) -> sets the simulator's
-- faults}. Returns what was seen: {unfinished, status, err = {kind, uncertain, ledger_key} |
-- nil, external_task_id, cancel_refused, stats = {polls, lookups, creates}, ops = {the
-- ledger lines' ops}, reserved_micros, estimate_micros}.
function M.engine(sc, st, env)
  local c = staged.client(sc, nil, env.client)
  local req = staged.request(sc, st)
  if st.precreate then -- a task already under the external id the engine adopts
    staged.precreate(req, env.client)
  end
  local t, e
  local cancel_refused
  staged.stage(c, st, { on_answer = function(n, _, feed)
    for _, cb in ipairs(sc.callbacks or {}) do
      if cb.send == n and cb.at == "before_answer" then
        e:deliver("kling", callback_body(t, cb.status), {})
      end
    end
    feed()
    for _, cb in ipairs(sc.callbacks or {}) do
      if cb.send == n and cb.at == "after_answer" then
        e:deliver("kling", callback_body(t, cb.status), {})
      end
    end
    if sc.cancel_at_wake == n then -- the caller gives the task up once the k-th answer is in
      local ok, cerr = e:cancel(t)
      if not ok and cerr.kind == "validation" then
        cancel_refused = true
      end
    end
  end })
  -- the engine runs on the staged driver
  -- (the callbacks are the harness's own, unsigned: taken as the caller says so)
  e = c:engine { callback_silence = 0.5, learn_file = false, min_interval = 0.2, max_interval = 1,
    insecure_callbacks = true }
  if #st.faults > 0 then
    env.faults(st.faults)
  end
  t = e:submit(req, { timeout = st.timeout_s, adopt = sc.adopt })
  local res = c:wait_all({ t }, { timeout = 60 })
  local err = res[1].error
  local stats = e:stats()
  local entries = c.ledger and c.ledger:entries() or {}
  local q = c:estimate(req)
  return { unfinished = res.unfinished, status = t.status, external_task_id = t.external_task_id,
    err = err and { kind = err.kind, uncertain = err.uncertain, ledger_key = err.ledger_key,
      external_task_id = err.external_task_id } or nil,
    cancel_refused = cancel_refused, stats = { polls = stats.polls, lookups = stats.lookups, creates = stats.creates },
    ops = staged.ops(c.ledger), reserved_micros = entries[1] and entries[1].micros, estimate_micros = q and q.micros }
end

--- Runs scenario sc through the blocking runner, staged as st (lifecycle_sim.staging(sc,
-- M.BLOCKING_CAPS)); env as for engine. Returns what was seen, as engine does (no stats: the
-- blocking runner's sends are not counted).
function M.blocking(sc, st, env)
  local c = staged.client(sc, nil, env.client)
  staged.stage(c, st)
  local req = staged.request(sc, st)
  if st.precreate then -- a task already under the external id the machine adopts
    staged.precreate(req, env.client)
  end
  if #st.faults > 0 then
    env.faults(st.faults)
  end
  local m = c:lifecycle(req, scenarios.machine_options(sc))
  local now = c.driver:now_ms()
  local sched = core.sched { min_interval_ms = 200, max_interval_ms = 1000, seed = 7 }
  local acts = m:watch(now, sched, now + st.timeout_s * 1000)
  for _, a in ipairs(m:start(now)) do
    acts[#acts + 1] = a
  end
  local how, t, err = blocking.drive(c, m, acts)
  local entries = c.ledger and c.ledger:entries() or {}
  local q = c:estimate(req)
  return { unfinished = how == "done" and 0 or 1, status = t.status, external_task_id = t.external_task_id,
    err = err and { kind = err.kind, uncertain = err.uncertain, ledger_key = err.ledger_key,
      external_task_id = err.external_task_id } or nil,
    ops = staged.ops(c.ledger), reserved_micros = entries[1] and entries[1].micros, estimate_micros = q and q.micros }
end

--- The whole table through one runner as a busted spec (busted's functions are the spec
-- file's, handed in as b = {describe, it, pending, setup, after_each, assert}): each row staged
-- for caps, run by runner(sc, st, env) against the libcurl simulator, compared with the
-- machine alone's end; a row the runner cannot stage is pending, saying why.
function M.spec(b, what, caps, runner)
  local sim = require "support.sim"
  b.describe("issue 10: the lifecycle scenarios through the " .. what .. " against the simulator", function()
    b.setup(function()
      sim.reset()
      sim.config { task_seconds = 1, max_parallel = 0 }
    end)

    b.after_each(function()
      sim.clear_faults()
    end)

    for _, sc in ipairs(scenarios.scenarios) do
      local st, why = staged.staging(sc, caps)
      if not st then
        b.pending(sc.name .. " (" .. sc.profile .. "): " .. why)
      else
        b.it(sc.name .. " (" .. sc.profile .. ")", function()
          local seen = runner(sc, st, { client = sim.client, faults = sim.faults })
          b.assert.are.same({}, M.mismatches(sc, seen))
        end)
      end
    end
  end)
end

--- What differs between the observation o (from engine or blocking) and the machine alone's end for sc:
-- a list of messages, empty when the runner kept every promise.
function M.mismatches(sc, o)
  local out = {}
  local function want(cond, what)
    if not cond then
      out[#out + 1] = what
    end
  end
  local expect = sc.expect
  want(o.unfinished == 0, "the task did not end within the wait")
  if expect.err then
    want(o.err ~= nil and o.err.kind == expect.err, "error kind " .. tostring(o.err and o.err.kind) .. ", expected "
      .. expect.err)
  else
    want(o.err == nil, "an error (" .. tostring(o.err and o.err.kind) .. "), expected none")
  end
  if staged.TERMINAL[expect.status] or expect.status == "pending" then
    want(o.status == expect.status, "status " .. tostring(o.status) .. ", expected " .. expect.status)
  else
    want(not staged.TERMINAL[o.status], "status " .. tostring(o.status) .. ", expected still running at the provider")
  end
  if expect.uncertain then
    want(o.err ~= nil and o.err.uncertain == true, "the error is not marked uncertain")
    want(o.err ~= nil and o.err.ledger_key == o.external_task_id, "the error's ledger_key is not the external id")
    want(o.err ~= nil and o.err.external_task_id == o.external_task_id, "the error does not name the external id")
  end
  want((expect.cancel_refused or nil) == o.cancel_refused, "cancel refused: " .. tostring(o.cancel_refused)
    .. ", expected " .. tostring(expect.cancel_refused or nil))
  if expect.sends and o.stats then
    -- the kinds of request the machine alone sent (how many polls, and whether a task found
    -- by a lookup had already ended, is the simulator's timing)
    local kinds = {}
    for _, p in ipairs(expect.sends) do
      kinds[p] = true
    end
    if not kinds.poll then
      want(o.stats.polls == 0, o.stats.polls .. " polls, expected none")
    end
    want((kinds.lookup or false) == (o.stats.lookups > 0), o.stats.lookups .. " lookups, expected "
      .. (kinds.lookup and "some" or "none"))
    want((kinds.create or false) == (o.stats.creates > 0), o.stats.creates .. " creates, expected "
      .. (kinds.create and "some" or "none"))
  end
  want(json.encode(o.ops) == json.encode(expect.money), "ledger lines " .. json.encode(o.ops) .. ", expected "
    .. json.encode(expect.money))
  if expect.money[1] == "reserve" then
    -- the reservation is the estimate; a settle is the price of what was delivered
    want(o.reserved_micros ~= nil and o.reserved_micros == o.estimate_micros, "reserved "
      .. tostring(o.reserved_micros) .. ", the estimate is " .. tostring(o.estimate_micros))
  end
  return out
end

return M
