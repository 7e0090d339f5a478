-- The lifecycle machine's `track` (issue 10): a task created elsewhere (the gateway's: a request
-- handler sent the create) followed by machines made afresh from its record at every event, as
-- the OpenResty runner does (kling.gateway.track). The record keeps only what the gateway's
-- record keeps (upstream id, status, lookups, misses): these checks hold that to be enough.
local core = require "kling.core"
local json = require "kling.json"
local machine = require "kling.lifecycle.machine"
local providers = require "kling.providers"
local scenarios = require "support.lifecycle_scenarios"

local kling = assert(providers.get("kling"))
local A = scenarios.ANSWERS

-- Follows rec with a new machine per event on a fake clock, answering from lists by purpose
-- (the last repeating). Returns {status, err, sends, money, done, record, sched}.
local function follow(rec, o)
  o = o or {}
  local now = 1000000
  local sched = core.sched { min_interval_ms = 1000, max_interval_ms = 15000, seed = 7 }
  local h = sched:add(now)
  local used = { lookup = 0, poll = 0 }
  local out = { sends = {}, money = {}, done = 0, ids = {} }
  local deadline = now + (o.timeout_ms or 600000)
  local function answer(purpose)
    used[purpose] = used[purpose] + 1
    local list = o[purpose] or { "succeed" }
    local a = list[math.min(used[purpose], #list)]
    return type(a) == "function" and a() or A[a]()
  end
  local function carry(m, acts)
    local i = 1
    while acts[i] do
      local a = acts[i]
      i = i + 1
      if a.type == "send" then
        out.sends[#out.sends + 1] = a.purpose
        now = now + 50
        for _, b in ipairs(m:answer(now, answer(a.purpose), 1700000000)) do
          acts[#acts + 1] = b
        end
      elseif a.type == "settle" or a.type == "release" then
        out.money[#out.money + 1] = a.type
        rec.status = a.task.status -- the end carries the task as it ended
        out.gone = a.task.gone
      elseif a.type == "created" or a.type == "news" then
        rec.upstream_id, rec.status = a.task.id, a.task.status
        out.ids[#out.ids + 1] = a.task.id
      elseif a.type == "done" then
        out.done, out.err = out.done + 1, a.err
      end
    end
    rec.lookups, rec.misses = m.lookups, m.misses
    rec.last_look = rec.last_look or m.final_poll -- as kling.gateway.track keeps it
  end
  for _ = 1, 1000 do
    if out.done > 0 then
      break
    end
    local at = sched:next_at(h)
    now = math.max(now, at)
    local due = sched:due(now)
    assert.are.equal(1, #due)
    local m = machine.track { provider = kling, key = "gw-1", lookups = 3, lookups_done = rec.lookups,
      misses = rec.misses, looked_last = rec.last_look, sched = sched, h = h, deadline_ms = deadline,
      task = { id = rec.upstream_id, external_task_id = scenarios.EXT, endpoint = "videos/text2video",
        status = rec.status, request = scenarios.REQUEST } }
    carry(m, m:timer(now))
    if out.done == 0 and m.wake_at and (sched:next_at(h) or math.huge) > m.wake_at then
      sched:defer(h, now, math.max(0, m.wake_at - now)) -- the poller keeps the machine's wake-up
    end
  end
  out.status, out.record, out.sched = rec.status, rec, sched
  return out
end

local function live(sched)
  return (sched:count())
end

describe("issue 10: the machine tracks a task created elsewhere, rebuilt from its record at each event", function()
  -- The poll phase of every scenario that has one and nothing else (no callback, cancel, adopt or
  -- create fault): the same end and money as the machine alone gives it.
  for _, sc in ipairs(scenarios.scenarios) do
    if sc.profile == "engine" and sc.budget ~= false and not sc.create and not sc.callbacks and not sc.callback
      and not sc.cancel_at_wake and not sc.adopt and not sc.reserve and not sc.request then
      it("as the machine alone: " .. sc.name, function()
        local out = follow({ upstream_id = "t-1", status = "queued" }, { poll = sc.poll, timeout_ms = sc.timeout_ms })
        local e = sc.expect
        assert.are.equal(e.status, out.status)
        assert.are.equal(e.err, out.err and out.err.kind)
        local money = { "reserve" } -- the create handler's
        for _, op in ipairs(out.money) do
          money[#money + 1] = op
        end
        assert.are.same(e.money, money)
        assert.are.equal(1, out.done)
        assert.are.equal(0, live(out.sched)) -- the machine freed the runner's handle at the end
      end)
    end
  end

  it("a create whose answer was lost is looked up by external id and never created again: not found "
    .. "`lookups` times, it is gone, released", function()
    local out = follow({ status = "queued" }, { lookup = { "not_found" } })
    assert.are.same({ "lookup", "lookup", "lookup" }, out.sends)
    assert.are.same({ "release" }, out.money)
    assert.are.equal("failed", out.status)
    assert.are.equal(3, out.record.lookups)
    assert.is_true(out.gone)
  end)

  it("a lost create found by its external id is polled to its end and settled", function()
    local out = follow({ status = "queued" }, { lookup = { "5xx", "found" }, poll = { "processing", "succeed" } })
    assert.are.same({ "lookup", "lookup", "poll", "poll" }, out.sends)
    assert.are.same({ "settle" }, out.money)
    assert.are.equal("t-1", out.record.upstream_id)
    assert.are.equal("succeeded", out.status)
  end)

  -- An answer made of the scenarios' task objects, with their external ids and task ids changed.
  local function listed(items)
    return function()
      local res = A.found()
      local doc = json.decode(res.body)
      local one = doc.data[1]
      doc.data = {}
      for i, it in ipairs(items) do
        local o = json.decode(json.encode(one))
        o.task_id, o.task_info.external_task_id = it[1], it[2]
        doc.data[i] = o
      end
      res.body = json.encode(doc)
      return res
    end
  end

  it("a lookup answered with other tasks (an upstream that ignored the filter) adopts none of them: not found,"
    .. " `lookups` times, released", function()
    local out = follow({ status = "queued" }, { lookup = { listed { { "t-bob", "gw-bob" }, { "t-eve", "gw-eve" } } } })
    assert.are.same({ "lookup", "lookup", "lookup" }, out.sends)
    assert.are.same({ "release" }, out.money)
    assert.is_nil(out.record.upstream_id)
    out = follow({ status = "queued" }, { lookup = { listed { { "t-bob", "gw-bob" } } } })
    assert.are.same({ "lookup", "lookup", "lookup" }, out.sends)
    assert.is_nil(out.record.upstream_id)
  end)

  it("a lookup answered with one task that names no external id adopts it not: not found, `lookups` times,"
    .. " released", function()
    local out = follow({ status = "queued" }, { lookup = { listed { { "t-bob" } } } })
    assert.are.same({ "lookup", "lookup", "lookup" }, out.sends)
    assert.are.same({ "release" }, out.money)
    assert.is_nil(out.record.upstream_id)
  end)

  it("a lookup's list is read for the item that carries the external id looked up", function()
    local out = follow({ status = "queued" }, { lookup = { listed { { "t-bob", "gw-bob" }, { "t-1", scenarios.EXT } } },
      poll = { "succeed" } })
    assert.are.same({ "lookup", "poll" }, out.sends)
    assert.are.equal("t-1", out.ids[1])
    assert.is_nil(table.concat(out.ids, ","):find("t-bob", 1, true))
    assert.are.same({ "settle" }, out.money)
  end)

  it("a poll answered about another task is not taken for this one's news", function()
    local out = follow({ upstream_id = "t-1", status = "queued" }, { poll = { listed { { "t-bob", scenarios.EXT } },
      "succeed" } })
    assert.are.same({ "poll", "poll" }, out.sends)
    assert.is_nil(table.concat(out.ids, ","):find("t-bob", 1, true)) -- nothing taken from the other's answer
    assert.are.same({ "settle" }, out.money)
  end)

  it("a task the provider answers not found at every poll is polled to its deadline and ended held, never"
    .. " released (it made the task: it may bill it)", function()
    local out = follow({ upstream_id = "t-1", status = "queued" }, { poll = { "not_found" }, timeout_ms = 60000 })
    assert.is_true(#out.sends > 3, #out.sends) -- not ended after `lookups` misses
    assert.are.same({}, out.money)
    assert.are.equal("timeout", out.err.kind)
    assert.matches("answered not found to its last " .. #out.sends .. " polls", out.err.message, 1, true)
    assert.is_nil(out.gone)
    assert.are.equal(#out.sends, out.record.misses) -- kept in the record for the next machine
  end)

  it("a callback ends a task whose create is being looked up (no scheduler: another worker's)", function()
    local m = machine.track { provider = kling, key = "gw-1", lookups = 3, deadline_ms = 10 ^ 9,
      task = { external_task_id = scenarios.EXT, endpoint = "videos/text2video", status = "queued",
        request = scenarios.REQUEST } }
    assert.are.equal("lookup_wait", m.state)
    local fields = assert(kling.parse_task(json.decode(A.succeed().body).data, "videos/text2video"))
    local types = {}
    for _, a in ipairs(m:callback(1000, fields)) do
      types[#types + 1] = a.type
    end
    assert.are.same({ "abandon", "journal", "created", "settle", "done" }, types)
  end)

  it("a task whose lost create cannot be looked up waits for a callback or its deadline, held (the provider "
    .. "has no lookup, or the endpoint took no external id: a lookup would find nothing and release it)", function()
    for _, blind in ipairs {
      setmetatable({ external_query_path = false }, { __index = kling }),
      setmetatable({ takes = function(_, field) return field ~= "external_task_id" end }, { __index = kling }),
    } do
      local m = machine.track { provider = blind, key = "gw-1", lookups = 3, deadline_ms = 5000,
        task = { external_task_id = "gw-1", endpoint = "videos/text2video", status = "queued",
          request = scenarios.REQUEST } }
      assert.are.same({}, m:timer(1000))
      local acts = m:timer(5000)
      assert.are.equal(1, #acts)
      assert.are.equal("done", acts[1].type)
      assert.are.equal("timeout", acts[1].err.kind)
    end
  end)

  -- A gateway whose poll leader died kept its lock past a task's deadline: the next leader's
  -- machine ended the task unpolled (failed, its hold kept) though the upstream had finished it.
  it("a tracked task first woken past its deadline is polled once more: ended upstream, it is settled", function()
    local sched = core.sched { min_interval_ms = 1000, max_interval_ms = 15000, seed = 7 }
    local h = sched:add(1000)
    local m = machine.track { provider = kling, key = "gw-1", lookups = 3, deadline_ms = 5000, sched = sched,
      h = h, task = { id = "t-1", external_task_id = "gw-1", endpoint = "videos/text2video", status = "running",
        request = scenarios.REQUEST } }
    local acts = m:timer(9000)
    assert.are.equal("send", acts[1].type)
    assert.are.equal("poll", acts[1].purpose)
    assert.is_true(m.final_poll) -- what the runner keeps in the record (rec.last_look)
    local types = {}
    for _, a in ipairs(m:answer(9050, A.succeed(), 1700000000)) do
      types[#types + 1] = a.type
    end
    assert.are.same({ "news", "settle", "done" }, types)
    -- made again from a record that says the look was taken: it ends, held, polling no more
    m = machine.track { provider = kling, key = "gw-1", lookups = 3, deadline_ms = 5000, looked_last = true,
      sched = sched, h = sched:add(9000), task = { id = "t-1", external_task_id = "gw-1",
        endpoint = "videos/text2video", status = "running", request = scenarios.REQUEST } }
    acts = m:timer(9100)
    assert.are.equal("done", acts[#acts].type)
    assert.are.equal("timeout", acts[#acts].err.kind)
  end)

  it("a record still creating is looked up only once its handler can no longer be waiting for the answer",
    function()
      local m = machine.track { provider = kling, key = "gw-1", lookups = 3, deadline_ms = 10 ^ 9,
        in_flight_until = 40000, task = { external_task_id = "gw-1", endpoint = "videos/text2video",
          status = "queued", request = scenarios.REQUEST } }
      local acts = m:timer(1000)
      assert.are.same({ { type = "wake", at = 40000 } }, acts)
      acts = m:timer(40000)
      assert.are.equal("send", acts[1].type)
      assert.are.equal("lookup", acts[1].purpose)
    end)
end)
