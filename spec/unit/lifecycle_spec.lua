-- The lifecycle machine alone (issue 10): every scenario of spec/support/lifecycle_scenarios.lua
-- driven on a fake clock, with no I/O, each reaching its expected end state and money lines.
local core = require "kling.core"
local machine = require "kling.lifecycle.machine"
local providers = require "kling.providers"
local scenarios = require "support.lifecycle_scenarios"

local effects = require "kling.lifecycle.effects"
local json = require "kling.json"

local kling = assert(providers.get("kling"))

describe("issue 10: the lifecycle machine alone, on a fake clock", function()
  for _, sc in ipairs(scenarios.scenarios) do
    it(sc.name .. " (" .. sc.profile .. ")", function()
      local out = scenarios.drive(sc, machine, kling, core)
      local e = sc.expect
      assert.are.equal(e.status, out.status)
      if e.err then
        assert.is_table(out.err)
        assert.are.equal(e.err, out.err.kind)
      else
        assert.is_nil(out.err)
      end
      if e.sends then
        assert.are.same(e.sends, out.sends)
      end
      assert.are.same(e.money, out.money)
      assert.are.equal(1, out.done) -- one end, announced once
      if e.uncertain then
        assert.is_true(out.err.uncertain)
        assert.are.equal(scenarios.EXT, out.err.external_task_id)
        assert.are.equal(scenarios.EXT, out.err.ledger_key)
      end
      assert.are.equal(e.renewals or 0, out.renewals)
      if e.refused then
        assert.are.same(e.refused, out.refused)
      end
      assert.are.equal(e.cancel_refused or nil, out.cancel_refused)
    end)
  end

  it("issue 15: take() keeps a running task's raw only where asked (keep_raw), an ended task's always", function()
    local came = { task_id = "1", task_status = "submitted" }
    local t = { id = "1", status = "queued", raw = came }
    local answer = { task_id = "1", task_status = "processing" }
    machine.take(t, { status = "running", progress = 5, client = "not taken", raw = answer }, true)
    assert.are.same({ id = "1", status = "running", progress = 5, raw = answer }, t)
    assert.are.equal(answer, t.raw)
    machine.take(t, { status = "running", progress = 6, raw = { task_id = "1" } }) -- a runner of many: none
    assert.are.same({ id = "1", status = "running", progress = 6 }, t)
    local final = { task_id = "1", task_status = "succeed" }
    machine.take(t, { status = "succeeded", raw = final })
    assert.are.equal(final, t.raw)
    local failed = { id = "2", status = "running" }
    machine.take(failed, { status = "failed", raw = came })
    assert.are.equal(came, failed.raw)
    -- the profile says which: a machine of a runner of many tasks, and one of the blocking client
    local many = machine.new({ provider = kling, request = { prompt = "x" } }, machine.profile {
      provider = kling, raw_while_running = false })
    many:update({ status = "running", raw = answer })
    assert.is_nil(many.task.raw)
    many:news(0, { status = "running", raw = answer }) -- a query the caller made: kept
    assert.are.equal(answer, many.task.raw)
    local one = machine.new { provider = kling, request = { prompt = "x" } }
    one:update({ status = "running", raw = answer })
    assert.are.equal(answer, one.task.raw)
  end)

  it("says whether it saw the task's whole life: not one found by its external id (its time is not learnt)",
    function()
    local by_name = {}
    for _, sc in ipairs(scenarios.scenarios) do
      by_name[sc.name] = sc
    end
    local made = scenarios.drive(by_name["success"], machine, kling, core)
    assert.is_true(made.machine:saw_whole_life())
    local adopted = scenarios.drive(by_name["adopt: found by external id, never created again"], machine, kling, core)
    assert.are.equal("succeeded", adopted.status)
    assert.is_false(adopted.machine:saw_whole_life())
    local created = scenarios.drive(by_name["adopt: nothing under the external id, so it is created"], machine, kling,
      core)
    assert.is_true(created.machine:saw_whole_life())
    -- a task made elsewhere and watched from now on
    local m = machine.existing { provider = kling, task = { id = "t-9", status = "running",
      endpoint = "videos/text2video" } }
    m:watch(5000, core.sched { min_interval_ms = 1000, max_interval_ms = 15000 }, 60000)
    assert.is_false(m:saw_whole_life())
  end)

  it("reads no clock: the same scenario gives the same times twice", function()
    local sc = scenarios.scenarios[1]
    local a = scenarios.drive(sc, machine, kling, core)
    local b = scenarios.drive(sc, machine, kling, core)
    assert.are.equal(a.now, b.now)
  end)

  it("a success is settled once however many times its end is heard", function()
    local out = scenarios.drive({ name = "dup", profile = "engine", callback = true,
      callbacks = { { at = "after_answer", send = 1, status = "succeed" } } }, machine, kling, core)
    local acts = out.machine:callback(out.now, { id = "t-1", status = "succeeded" })
    assert.are.same({}, acts)
    assert.are.same({}, out.machine:news(out.now, { id = "t-1", status = "succeeded" }))
  end)

  it("issue 10: the external id is given only where the endpoint takes one (the engine did not ask)", function()
    local function create_body(P)
      local n = 0
      local m = machine.new { provider = P, request = scenarios.REQUEST, random = function(nb)
        n = n + 1
        return string.rep("0", nb * 2 - 1) .. n
      end }
      for _, a in ipairs(m:start(0)) do
        if a.type == "send" then
          return json.decode(a.body), m
        end
      end
    end
    local body, m = create_body(kling)
    assert.are.equal(scenarios.EXT, body.external_task_id)
    assert.are.equal(scenarios.EXT, m.task.external_task_id)
    -- the same dialect with an endpoint that takes none
    local refusing = setmetatable({ takes = function() return false end }, { __index = kling })
    body, m = create_body(refusing)
    assert.is_nil(body.external_task_id)
    assert.is_nil(m.task.external_task_id)
  end)

  it("issue 10: token renewal is one rule for every runner: each request resends once, the token is "
    .. "signed afresh at most once a second per client", function()
    local ctx = { auth = core.auth { access_key = "ak", secret_key = "sk" } }
    local t1 = ctx.auth:bearer(1000)
    assert.are.equal(t1, ctx.auth:bearer(1001)) -- cached
    effects.renew_token(ctx, 50000)
    local t2 = ctx.auth:bearer(1002)
    assert.are_not.equal(t1, t2)
    effects.renew_token(ctx, 50500) -- another request saw the same expiry within the second
    assert.are.equal(t2, ctx.auth:bearer(1003))
    effects.renew_token(ctx, 51600)
    assert.are_not.equal(t2, ctx.auth:bearer(1004))
  end)

  it("issue 10: a journal line announces the create before it is sent, and the id once known", function()
    local out = {}
    local m = machine.new { provider = kling, request = scenarios.REQUEST, random = function(nb)
      return string.rep("0", nb * 2 - 1) .. "1"
    end }
    for _, a in ipairs(m:start(0)) do
      out[#out + 1] = a.type .. (a.what and (":" .. a.what) or "")
    end
    for _, a in ipairs(m:answer(50, scenarios.ANSWERS.submitted(), 0)) do
      out[#out + 1] = a.type .. (a.what and (":" .. a.what) or "")
    end
    assert.are.same({ "journal:create", "send", "journal:created", "created" }, out)
    assert.are.equal("t-1", m.task.id)
  end)

  it("issue 15.2: once the task exists its machine keeps no create payload, and the task no create request id",
    function()
      local m = machine.new { provider = kling, request = scenarios.REQUEST, random = function(nb)
        return string.rep("0", nb * 2 - 1) .. "1"
      end }
      local sched = core.sched { min_interval_ms = 1000, max_interval_ms = 15000, seed = 1 }
      m:watch(0, sched, 600000)
      local first = m:start(0)
      local create = first[#first]
      assert.are.equal("create", create.purpose)
      assert.is_string(create.body)
      -- a renewed token sends the very same create again: one table, not a copy per send
      local again = m:answer(10, scenarios.ANSWERS["1004"](), 0)
      assert.are.equal(create, again[#again])
      m:answer(50, scenarios.ANSWERS.submitted(), 0)
      assert.are.equal("t-1", m.task.id)
      assert.is_nil(rawget(m, "call")) -- the body went with the create phase
      assert.is_nil(m.task.request_id) -- the task's own id names it; the request id was one answer's
      assert.is_nil(rawget(m, "fails")) -- a task that never failed carries no counter of failures
      assert.are.equal(0, m.fails)
      m:timer(m.wake_at)
      m:answer(m.wake_at + 10, scenarios.ANSWERS.processing(), 0)
      assert.is_nil(rawget(m, "misses"))
      assert.is_nil(rawget(m, "wall"))
    end)

  it("issue 15.2: a local file's content is held once (in the create's body) and not after the create", function()
    local local_file = require "kling.local_file"
    local files_support = require "support.files"
    local path = files_support.tempdir() .. "/frame.png"
    files_support.write(path, require("support.images").png(400, 400))
    local req = { prompt = "a lighthouse at dusk", image = path }
    local files = assert(local_file.inline(kling, req))
    assert.is_string(files.image)
    local m = machine.new { provider = kling, request = req, files = files, random = function(nb)
      return string.rep("0", nb * 2 - 1) .. "1"
    end }
    local acts = m:start(0)
    local create = acts[#acts]
    assert.are.equal("create", create.purpose)
    assert.is_truthy(create.body:find(files.image, 1, true)) -- sent inline
    assert.is_nil(rawget(m, "files")) -- not kept beside the body
    assert.are.equal(path, m.task.request.image) -- the task's request keeps the path
    m:answer(50, scenarios.ANSWERS.submitted(), 0)
    assert.is_nil(rawget(m, "call"))
  end)

  it("issue 10: a poll of a runner that follows fields and its scheduler itself makes one action, its send",
    function()
      local function poll_actions(opts)
        local o = { provider = kling, random = function(nb)
          return string.rep("0", nb * 2 - 1) .. "1"
        end }
        for k, v in pairs(opts) do
          o[k] = v
        end
        local m = machine.new({ request = scenarios.REQUEST }, machine.profile(o))
        local sched = core.sched { min_interval_ms = 1000, max_interval_ms = 15000, seed = 1 }
        m:watch(0, sched, 600000)
        m:start(0)
        m:answer(50, scenarios.ANSWERS.submitted(), 0)
        local types = {}
        for _, a in ipairs(m:timer(m.wake_at)) do
          types[#types + 1] = a.type
        end
        for _, a in ipairs(m:answer(m.wake_at + 10, scenarios.ANSWERS.processing(), 0)) do
          types[#types + 1] = a.type
        end
        assert.are.equal("running", m.task.status)
        assert.is_number(m.wake_at) -- the next poll is still known
        return types
      end
      assert.are.same({ "send" }, poll_actions { news_actions = false, wake_scheduled = false })
      assert.are.same({ "send", "news", "wake" }, poll_actions {}) -- the blocking runner's default
    end)

  it("issue 10: a due poll's fast path (poll_due) gives the request and the next timer timer() gives", function()
    local function one()
      local p = machine.profile { provider = kling, news_actions = false, wake_scheduled = false,
        random = function(nb)
          return string.rep("0", nb * 2 - 1) .. "1"
        end }
      local m = machine.new({ request = scenarios.REQUEST }, p)
      m:watch(0, core.sched { min_interval_ms = 1000, max_interval_ms = 15000, seed = 5 }, 60000)
      m:start(0)
      m:answer(50, scenarios.ANSWERS.submitted(), 0)
      return m
    end
    local general, fast = one(), one()
    assert.are.equal(general.wake_at, fast.wake_at)
    local polls = 0
    while general.wake_at and general.wake_at < 60000 do
      local at = general.wake_at
      local acts = general:timer(at)
      local path = fast:poll_due(at)
      assert.are.equal(1, #acts)
      assert.are.same({ type = "send", purpose = "poll", method = "GET", path = path }, acts[1])
      assert.are.equal("polling", fast.state)
      assert.are.equal(general.polls, fast.polls)
      assert.is_nil(fast:poll_due(at)) -- a poll in flight: nothing more is due
      assert.are.same(general:answer(at + 10, scenarios.ANSWERS.processing(), 0),
        fast:answer(at + 10, scenarios.ANSWERS.processing(), 0))
      assert.are.equal(general.wake_at, fast.wake_at) -- the same next timer
      polls = polls + 1
    end
    assert.is_true(polls > 5, "polled " .. polls .. " times")
    -- past the deadline a poll is not all there is to do: timer() sends one last poll (the
    -- task may have ended since the last one), then ends the task
    assert.is_nil(fast:poll_due(60000))
    assert.are.same({ "send" }, { fast:timer(60000)[1].type })
    fast:answer(60010, scenarios.ANSWERS.processing(), 0)
    assert.are.same({ "done" }, { fast:timer(60010)[1].type })
    assert.are.equal("timeout", fast.err.kind)
  end)

  it("issue 15.2: a synchronous answer keeps its request id (it names the result)", function()
    local m = machine.new { provider = kling, request = { prompt = "hello" }, random = function(nb)
      return string.rep("0", nb * 2 - 1) .. "1"
    end }
    local fields = { id = "r-9", status = "succeeded", sync = true }
    local P = setmetatable({ parse_task = function()
      return fields
    end }, { __index = kling })
    m.provider = P
    m:start(0)
    m:answer(50, scenarios.ANSWERS.submitted(), 0)
    assert.are.equal("req-1", m.task.request_id)
    assert.are.equal("succeeded", m.task.status)
  end)

  it("issue 10: a callback older than what a poll told (submitted after processing) moves nothing back", function()
    local m = machine.new { provider = kling, request = scenarios.REQUEST, random = function(nb)
      return string.rep("0", nb * 2 - 1) .. "1"
    end, callback = true }
    local sched = core.sched { min_interval_ms = 1000, max_interval_ms = 15000, seed = 1 }
    m:watch(0, sched, 600000)
    m:start(0)
    m:answer(50, scenarios.ANSWERS.processing(), 0)
    assert.are.equal("running", m.task.status)
    local acts = m:callback(100, assert(kling.parse_task(json.decode(scenarios.ANSWERS.submitted().body).data)))
    assert.are.equal("running", m.task.status)
    for _, a in ipairs(acts) do
      assert.are_not.equal("news", a.type)
    end
  end)
  describe("issue 10: what the engine decided alone is the machine's (profile engine)", function()
    local function random_source()
      local n = 0
      return function(nb)
        n = n + 1
        return string.format("%0" .. (nb * 2) .. "x", n):sub(-nb * 2)
      end
    end
    local function profile(extra)
      local o = { provider = kling, random = random_source(), budget = true, lookups = 3, requeue_refused = true,
        slots = true, sched = core.sched { min_interval_ms = 1000, max_interval_ms = 15000, seed = 3 },
        create_budget_ms = 2 ^ 53 }
      for k, v in pairs(extra or {}) do
        o[k] = v
      end
      return machine.profile(o)
    end
    local function types(acts)
      local out = {}
      for _, a in ipairs(acts) do
        out[#out + 1] = a.type .. (a.purpose and (":" .. a.purpose) or "") .. (a.front and ":front" or "")
      end
      return out
    end
    local function started(p, rec)
      local m = machine.new({ request = scenarios.REQUEST, record = rec }, p)
      m:watch(0, p.sched, 600000)
      local acts = m:start(0)
      assert.are.same({ "reserve" }, types(acts))
      return m, m:reserved(0, { micros = 1000000, currency = "CNY" })
    end

    it("a task of a profile keeps only its own state, in the runner's record", function()
      local p = profile()
      local rec = { n = 7 }
      local m = started(p, rec)
      assert.are.equal(rec, m) -- no second table beside the runner's
      assert.are.equal(7, m.n)
      for _, k in ipairs { "provider", "random", "sched", "lookups_max", "max_attempts", "budget" } do
        assert.is_nil(rawget(m, k), k)
      end
    end)

    it("a slot is asked for before the create, the create goes when it is granted", function()
      local m, acts = started(profile())
      assert.are.same({ "acquire" }, types(acts))
      assert.are.equal("slot_wait", m.state)
      assert.are.same({ "journal", "send:create" }, types(m:granted(10)))
    end)

    it("a create refused for want of a slot waits, then asks for a slot again at the head of the line", function()
      local m = started(profile())
      m:granted(0)
      local acts = m:answer(50, scenarios.ANSWERS["1303"](), 0)
      assert.are.same({ "refused", "retry", "wake" }, types(acts))
      assert.is_true(acts[1].slot_full)
      assert.are.same({ 1, 1000, "rate_limited" }, { acts[2].attempt, acts[2].delay_ms, acts[2].kind })
      assert.are.same({ "acquire:front" }, types(m:timer(m.wake_at)))
      assert.are.same({ "journal", "send:create" }, types(m:granted(m.wake_at)))
    end)

    it("a deadline or a cancel while waiting for a slot ends the task, its reservation released", function()
      for _, ev in ipairs { "deadline", "cancel" } do
        local m = started(profile())
        assert.are.same({ "release", "done" }, types(m[ev](m, 5000)))
        assert.are.equal(ev == "cancel" and "cancelled" or "timeout", m.err.kind)
      end
    end)

    it("a cancel before the create names the task by its external id, or says 'a task' when it has none", function()
      local m = started(profile())
      m:cancel(5000)
      assert.matches("^task kl%-[%x]+ cancelled before it was created$", m.err.message)
      -- EvoLink takes no external id: the message read "task  cancelled before it was created"
      local evolink = assert(providers.get("evolink"))
      local p = profile { provider = evolink, auto_external_id = false }
      local e = machine.new({ request = { model = "kling-v3", prompt = "x" } }, p)
      e:watch(0, p.sched, 600000)
      e:start(0)
      e:cancel(10)
      assert.are.equal("cancelled", e.err.kind)
      assert.are.equal("a task cancelled before it was created", e.err.message)
    end)

    it("a deadline while the create is in flight waits for its answer: its fate decides", function()
      local m = started(profile())
      m:granted(0)
      local acts = m:deadline(600000)
      assert.are.same({ "wake" }, types(acts))
      assert.are.equal(601000, acts[1].at)
      assert.are.equal("creating", m.state)
      -- it was created: the end keeps the reservation (the task runs on at the provider)
      m:answer(600500, scenarios.ANSWERS.submitted(), 0)
      assert.are.equal("t-1", m.task.id)
      assert.are.same({ "send:poll" }, types(m:timer(601000))) -- one last look at the deadline
      m:answer(601010, scenarios.ANSWERS.processing(), 0)
      local ended = m:timer(601010)
      assert.are.same({ "done" }, types(ended))
      assert.are.equal("timeout", ended[1].err.kind)
      assert.are.equal(scenarios.EXT, ended[1].err.ledger_key)
    end)

    it("issue 15.1: a task without an estimate is polled through the window its kind took (learnt_ms), "
      .. "and moved by an earlier window only before its start, or when tasks wait for slots", function()
      local asked = 0
      local function learnt_ms(m)
        asked = asked + 1
        return m.kind == "k" and { 28000, 30000 } or nil
      end
      local p = profile { learnt_ms = learnt_ms }
      local m = started(p, { kind = "k" })
      m:granted(0)
      local acts = m:answer(100, scenarios.ANSWERS.submitted(), 0)
      assert.are.equal(1, asked)
      local at = acts[#acts].at
      assert.is_true(at >= 27900 and at <= 30100, "first poll within the window: " .. at)
      acts = m:learnt(5000, { 9000, 10000 })
      assert.is_true(acts[1].at <= 10100 and acts[1].at >= 5000, "moved earlier: " .. acts[1].at)
      -- past a window's start, a task keeps its course unless the runner's tasks wait for slots
      -- a profile of its own: its random source's first external id, the one the answers echo
      local late = started(profile { learnt_ms = learnt_ms }, { kind = "k" })
      late:granted(0)
      late:answer(100, scenarios.ANSWERS.submitted(), 0)
      assert.are.same({}, late:learnt(20000, { 9000, 10000 }))
      acts = late:learnt(20000, { 9000, 10000 }, true)
      assert.is_true(acts[1].at >= 20000 and acts[1].at <= 21000, "moved to now: " .. acts[1].at)
    end)

    it("a learnt window that starts after the task's deadline leaves the back-off (no poll before it)", function()
      local p = profile { learnt_ms = function()
        return { 610000, 620000 } -- the deadline is at 600000
      end }
      local m = started(p, { kind = "k" })
      m:granted(0)
      local acts = m:answer(100, scenarios.ANSWERS.submitted(), 0)
      local at = acts[#acts].at
      assert.is_true(at < 60000, "first poll by the back-off: " .. at)
    end)

    -- A late create answer: the task was given up (cancelled) or its wait ran out while its
    -- create was in flight, and the upstream's answer, with the task's id, comes after. No task
    -- lost (its id journaled, it is followed to its end), none paid twice (one settle or
    -- release, from its actual end).
    describe("a create's answer after the task was given up locally", function()
      local function count(acts, ty, what)
        local n = 0
        for _, a in ipairs(acts) do
          n = n + ((a.type == ty and (not what or a.what == what)) and 1 or 0)
        end
        return n
      end
      local function drive(log, acts)
        for _, a in ipairs(acts) do
          log[#log + 1] = a
        end
      end

      it("cancelled in flight on a provider that cannot cancel: recorded, polled to its end, settled once",
        function()
        local m = started(profile())
        m:granted(0)
        local log = {}
        drive(log, m:cancel(100))
        assert.are.equal("creating", m.state) -- nothing to cancel yet: its answer decides
        drive(log, m:answer(200, scenarios.ANSWERS.submitted(), 0))
        assert.are.equal("t-1", m.task.id)
        assert.are.equal(1, count(log, "journal", "created"))
        assert.are.equal(1, count(log, "refused_cancel")) -- the official API has no cancel
        -- the task runs on upstream and is charged there: it must be followed to its end
        assert.are.equal("scheduled", m.state)
        assert.is_number(m.wake_at)
        local at = m.wake_at
        drive(log, m:timer(at))
        drive(log, m:answer(at + 10, scenarios.ANSWERS.succeed(), 0))
        assert.are.equal("succeeded", m.task.status)
        assert.are.equal(1, count(log, "settle"))
        assert.are.equal(0, count(log, "release"))
        assert.are.equal(1, count(log, "done"))
      end)

      it("cancelled in flight where the provider cancels: the cancel goes once the id is known", function()
        local evolink = assert(providers.get("evolink"))
        local p = profile { provider = evolink, auto_external_id = false }
        local m = machine.new({ request = { model = "kling-v3", prompt = "x" } }, p)
        m:watch(0, p.sched, 600000)
        m:start(0)
        m:reserved(0, { micros = 1000000, currency = "credits" })
        m:granted(0)
        local log = {}
        drive(log, m:cancel(100))
        local body = json.encode { id = "e-1", status = "pending", model = "kling-v3" }
        drive(log, m:answer(200, { ok = true, status = 200, headers = { ["content-type"] = "application/json" },
          body = body, sent = true, received = true }, 0))
        assert.are.equal("e-1", m.task.id)
        assert.are.equal("cancelling", m.state)
        assert.are.equal(1, count(log, "journal", "created"))
        assert.are.equal(0, count(log, "settle") + count(log, "release") + count(log, "done"))
      end)

      it("its wait ran out in flight: the late answer's id is recorded and its hold kept, not released", function()
        local m = started(profile())
        m:granted(0)
        local log = {}
        drive(log, m:deadline(600000))
        drive(log, m:answer(600400, scenarios.ANSWERS.submitted(), 0))
        assert.are.equal("t-1", m.task.id)
        assert.are.equal(1, count(log, "journal", "created"))
        drive(log, m:timer(601000)) -- one last look
        drive(log, m:answer(601010, scenarios.ANSWERS.processing(), 0))
        drive(log, m:timer(601010))
        assert.are.equal(0, count(log, "release")) -- it runs on upstream: its hold stays
        assert.are.equal(0, count(log, "settle"))
        assert.are.equal(scenarios.EXT, m.err.ledger_key)
        -- watched again later, its end settles the hold once
        local p = profile()
        drive(log, m:watch(700000, p.sched, 900000))
        local again = m.wake_at
        drive(log, m:timer(again))
        drive(log, m:answer(again + 1, scenarios.ANSWERS.succeed(), 0))
        assert.are.equal(1, count(log, "settle"))
        assert.are.equal(0, count(log, "release"))
      end)

      it("a callback told the end first: the create's own answer after it changes nothing", function()
        local m = started(profile())
        m:granted(0)
        local log = {}
        drive(log, m:callback(100, { id = "t-1", status = "succeeded", external_task_id = scenarios.EXT }))
        assert.are.equal(1, count(log, "abandon"))
        drive(log, m:answer(200, scenarios.ANSWERS.submitted(), 0))
        assert.are.equal("succeeded", m.task.status)
        assert.are.equal(1, count(log, "settle"))
        assert.are.equal(1, count(log, "done"))
        assert.are.equal(1, count(log, "journal", "created"))
      end)
    end)

    it("the request a token renewal sends again is made again, nothing of it kept per task", function()
      local m = started(profile { slots = false })
      m:answer(50, scenarios.ANSWERS.submitted(), 0)
      local poll = m:timer(m.wake_at)
      assert.are.same({ "send:poll" }, types(poll))
      local acts = m:answer(m.wake_at + 50, scenarios.ANSWERS["1004"](), 0)
      assert.are.same({ "renew_token", "send:poll" }, types(acts))
      assert.are.equal(poll[1].path, acts[2].path)
      assert.is_nil(rawget(m, "last_send"))
    end)

    it("issue 10.3: a ledger key the runner gives is reserved under, once (a hold it has is the task's)", function()
      local m = machine.new({ request = scenarios.REQUEST, key = "row-7#2" }, profile())
      m:watch(0, m.sched, 600000)
      local acts = m:start(0)
      assert.are.same({ "reserve" }, types(acts))
      assert.are.equal("row-7#2", acts[1].key)
      assert.is_true(acts[1].once)
      m:reserved(0, { micros = 1000000, currency = "CNY" })
      m:granted(0)
      local ended = m:answer(50, scenarios.ANSWERS.failed(), 0)
      assert.are.same({ "journal", "created", "release", "done" }, types(ended))
      assert.are.equal("row-7#2", ended[3].key)
      -- Without a key of the runner's, the external id is the key, and nothing says once.
      local own = machine.new({ request = scenarios.REQUEST }, profile())
      own:watch(0, own.sched, 600000)
      local r = own:start(0)[1]
      assert.are.equal(own.task.external_task_id, r.key)
      assert.is_nil(r.once)
    end)

    it("issue 10.3: a machine taken up on a task that ended with its hold open settles or releases it at once "
      .. "(a batch row that ended while the batch was down)", function()
      for status, money in pairs { succeeded = "settle", failed = "release" } do
        local m = machine.existing { provider = kling, key = "row-1#1",
          task = { id = "t-1", endpoint = "videos/text2video", status = status } }
        local acts = m:watch(0)
        assert.are.same({ money, "done" }, types(acts))
        assert.are.equal("row-1#1", acts[1].key)
        assert.are.same({ "done" }, types(m:watch(0))) -- once
      end
      -- Without a key nothing is held: it is done as it is.
      local m = machine.existing { provider = kling, task = { id = "t-1", endpoint = "videos/text2video",
        status = "succeeded" } }
      assert.are.equal("done", m.state)
      assert.are.same({ "done" }, types(m:watch(0)))
    end)

    it("a runner's own refusal before start ends the task with nothing sent or held", function()
      local m = machine.new({ request = scenarios.REQUEST }, profile())
      local err = { kind = "validation", field = "estimate" }
      assert.are.same({ "done" }, types(m:refuse(0, err)))
      assert.are.equal(err, m.err)
    end)
  end)
end)

describe("task:failure()", function()
  local task = require "kling.task"
  local client = assert(require("kling").new { provider = "kling", api_key = "spec-key-0123456789",
    base_url = "http://127.0.0.1:9" })

  it("is the error a failed or cancelled task ended with, and nil for one that has not failed", function()
    assert.are.equal("content_policy", task.new(client, { id = "1", status = "failed",
      message = "content policy violation" }):failure().kind)
    assert.are.equal("server", task.new(client, { id = "2", status = "failed" }):failure().kind)
    assert.are.equal("cancelled", task.new(client, { id = "3", status = "cancelled" }):failure().kind)
    -- a task still running, or one that succeeded, has no failure: "task 4 failed" would be false
    for _, status in ipairs { "queued", "running", "succeeded" } do
      assert.is_nil(task.new(client, { id = "4", status = status }):failure(), status)
    end
  end)
end)

-- A create whose answers, and its lookups', are unreadable: client:submit starts no lookup
-- past its call_budget. The lookups' backoff woke past the budget's end (a 3 s budget took 9.5 s inside
-- nginx, against an upstream that answered every request with "[]").
describe("client:submit with every answer unreadable", function()
  it("returns within call_budget, uncertain, with the external id", function()
    for round = 1, 20 do
      local now = 1000000
      local driver = {
        now_ms = function()
          return now
        end,
        wall_s = function()
          return 1700000000 + now // 1000
        end,
        sleep_ms = function(_, ms)
          now = now + ms
        end,
        request = function()
          now = now + 5
          return { ok = true, status = 200, headers = { ["content-type"] = "application/json" }, body = "[]",
            sent = true, received = true }
        end,
      }
      local c = assert(require("kling").new { provider = "kling", api_key = "k", base_url = "http://127.0.0.1:9",
        driver = driver, call_budget = 3, retry_base_ms = 2000, retry_cap_ms = 20000 })
      local started = now
      local t, err = c:submit { prompt = "a cat", model = "kling-v1", duration = 5 }
      assert.is_nil(t)
      assert.is_true(err.uncertain, tostring(err))
      assert.is_string(err.external_task_id)
      -- no lookup starts past the budget; the one then in flight takes the fake's 5 ms
      assert.is_true(now - started <= 3000 + 5, "round " .. round .. ": " .. (now - started) .. " ms")
    end
  end)
end)
