-- kling.core sched, slots and idmap from Lua, driven by a fake clock: the interval policy
-- through the binding, handles, deadlines, the slot limiter's queue and AIMD, the poller's
-- ids by handle, misuse that raises, and the LuaJIT build inside an nginx worker.
local core = require "kling.core"

-- Runs one task finishing at `finish` ms through s; returns polls and detection lag.
local function run_task(s, finish, estimate)
  local h = s:add(0, estimate)
  local now, polls = 0, 0
  while true do
    now = now + assert(s:next_wakeup(now))
    local due, expired = s:due(now)
    assert.same({}, expired)
    if #due == 1 then
      assert.equal(h, due[1])
      polls = polls + 1
      if now >= finish then
        assert.is_nil(s:report(h, now, 100, nil, true))
        return polls, now - finish
      end
      s:report(h, now)
    end
  end
end

describe("kling.core sched", function()
  it("is a kling.sched userdata", function()
    local s = core.sched()
    assert.equal("userdata", type(s))
    assert.equal("kling.sched", getmetatable(s).__name)
    assert.matches("^kling%.sched%(0 tasks%)$", tostring(s))
    assert.is_function(getmetatable(s).__gc)
  end)

  it("polls a 120 s task with a known estimate at most 6 times, lag <= 6 s", function()
    for seed = 1, 50 do
      local polls, lag = run_task(core.sched { seed = seed }, 120000, 120000)
      assert.is_true(polls <= 6, "polls " .. polls)
      assert.is_true(lag <= 6000, "lag " .. lag)
    end
  end)

  it("lands the first poll 1 % before the expected finish, jittered", function()
    local s = core.sched { seed = 7 }
    local h = s:add(1000, 120000)
    local at = s:next_at(h)
    assert.equal("integer", math.type(at))
    assert.is_true(at >= 1000 + 118800 - 120 and at <= 1000 + 118800 + 120, "at " .. at)
    assert.equal(at - 1000, s:next_wakeup(1000))
  end)

  it("backs off geometrically from min to max when nothing is known", function()
    local s = core.sched { min_interval_ms = 1000, max_interval_ms = 5000, jitter = 0, backoff = 2, seed = 1 }
    local h = s:add(0)
    local now, gaps = 0, {}
    for _ = 1, 5 do
      local at = s:next_at(h)
      gaps[#gaps + 1] = at - now
      now = at
      local due = s:due(now)
      assert.same({ h }, due)
      assert.is_nil(s:next_at(h)) -- in flight until reported
      s:report(h, now)
    end
    assert.same({ 1000, 2000, 4000, 5000, 5000 }, gaps)
    assert.equal(5, s:polls(h))
  end)

  it("extrapolates the finish from progress", function()
    local s = core.sched { jitter = 0, seed = 1 }
    local h = s:add(0)
    -- 47 % at 50 s: earliest finish 104.166 s, hedged half way.
    assert.equal(77083, s:report(h, 50000, 47))
    -- 73 % at 77.083 s: E = 103.162 s, polled 1 % early.
    assert.equal(102131, s:report(h, 77083, 73))
    -- A fraction counts as the percent below it.
    assert.equal(s:report(h, 80000, 74), s:report(h, 80000, 74.9))
    -- The provider's remaining time, with no progress.
    assert.equal(80000 + 30000 - 1100, s:report(h, 80000, nil, 30000))
  end)

  it("returns due handles in time order, expired ones apart", function()
    local s = core.sched { jitter = 0, seed = 1 }
    local a = s:add(0, 10000)       -- polled at 9.9 s
    local b = s:add(0)              -- polled at 1 s
    local c = s:add(0, nil, 500)    -- deadline 0.5 s
    local d = s:add(0, 5000)        -- polled at 4.95 s
    assert.same({ 1, 2, 3, 4 }, { a, b, c, d })
    assert.equal(500, s:next_wakeup(0))
    local due, expired = s:due(20000)
    assert.same({ b, d, a }, due)
    assert.same({ c }, expired)
    local live, queued, inflight, bytes = s:count()
    assert.same({ 4, 0, 4 }, { live, queued, inflight })
    assert.is_true(bytes > 0)
    s:remove(c)
    assert.is_nil(s:next_wakeup(20000))
  end)

  it("limits how many due() returns", function()
    local s = core.sched { seed = 3 }
    for i = 1, 200 do
      assert.equal(i, s:add(0))
    end
    local first = s:due(10000, 150)
    local rest = s:due(10000)
    assert.equal(150, #first)
    assert.equal(50, #rest)
  end)

  it("expires tasks at their deadline and at the run deadline", function()
    local s = core.sched { seed = 5, run_deadline_ms = 60000 }
    local h = s:add(0, nil, 10000)
    local now = 0
    repeat
      now = now + s:next_wakeup(now)
      local due, expired = s:due(now)
      if #due == 1 then
        s:report(h, now)
      end
    until #expired == 1
    assert.equal(10000, now)
    s:remove(h)
    local k = s:add(20000, 600000)
    assert.equal(40000, s:next_wakeup(20000)) -- the run deadline comes first
    local due, expired = s:due(60000)
    assert.same({}, due)
    assert.same({ k }, expired)
    s:remove(k)
    s:set_run_deadline(nil)
    s:add(70000, 600000)
    assert.is_true(s:next_wakeup(70000) > 500000)
    s:set_run_deadline(80000)
    assert.equal(10000, s:next_wakeup(70000))
  end)

  it("defers a task explicitly (Retry-After, callback silence)", function()
    local s = core.sched { seed = 1 }
    local h = s:add(0, 300000)
    assert.equal(7000, s:defer(h, 2000, 5000))
    assert.equal(7000, s:next_at(h))
    local h2 = s:add(0, nil, 3000)
    assert.equal(3000, s:defer(h2, 0, 60000)) -- never past the deadline
  end)

  it("reuses the handle of an ended task", function()
    local s = core.sched { seed = 1 }
    local a = s:add(0)
    local b = s:add(0)
    assert.is_nil(s:report(a, 10, nil, nil, true))
    assert.equal(a, s:add(20))
    assert.equal(2, select(1, s:count()))
    assert.equal(2, b)
  end)

  it("gives the same schedule for the same seed", function()
    local function times(seed)
      local s = core.sched { seed = seed }
      local t = {}
      for i = 1, 20 do
        t[i] = s:next_at(s:add(i, 60000))
      end
      return t
    end
    assert.same(times(42), times(42))
    assert.are_not.same(times(42), times(43))
  end)

  it("keeps 10,000 tasks in little memory", function()
    local s = core.sched { seed = 1 }
    for i = 1, 10000 do
      s:add(i, 120000)
    end
    local live, _, _, bytes = s:count()
    assert.equal(10000, live)
    assert.is_true(bytes / 10000 <= 72, "bytes per task " .. bytes / 10000) -- 64 at capacity, grown by half
  end)

  describe("misuse raises", function()
    local s = core.sched { seed = 1 }
    local h = s:add(0)
    local cases = {
      { "now as a float", function() s:add(1.5) end, "now must be an integer" },
      { "now as a string", function() s:add("10") end, "now must be an integer" },
      { "now missing", function() s:add() end, "now must be an integer" },
      { "negative estimate", function() s:add(0, -1) end, "estimate_ms must be a non%-negative integer" },
      { "deadline as a float", function() s:add(0, nil, 2.5) end, "deadline_ms must be an integer" },
      { "progress 101", function() s:report(h, 0, 101) end, "progress must be a number from 0 to 100" },
      { "progress as a string", function() s:report(h, 0, "50") end, "progress must be a number" },
      { "terminal not boolean", function() s:report(h, 0, nil, nil, 1) end, "terminal must be a boolean" },
      { "unknown handle", function() s:report(99, 0) end, "handle 99 is not a live task" },
      { "handle 0", function() s:remove(0) end, "handle 0 is not a live task" },
      { "negative delay", function() s:defer(h, 0, -5) end, "delay_ms must be a non%-negative integer" },
      { "missing delay", function() s:defer(h, 0) end, "delay_ms must be a non%-negative integer" },
      { "max 0", function() s:due(0, 0) end, "max must be a positive integer" },
      { "now out of range", function() s:add(math.maxinteger) end, "now must be within" },
      { "wrong self", function() s.add(core.slots { limit = 1 }, 0) end, "kling.sched expected" },
      { "unknown option", function() core.sched { min_interval = 5 } end,
        "unknown field 'min_interval'; did you mean min_interval_ms%?$" },
      { "bad jitter", function() core.sched { jitter = 0.9 } end, "jitter must be a fraction between 0 and 0.5" },
      { "min above max", function() core.sched { min_interval_ms = 5000, max_interval_ms = 1000 } end,
        "max_interval_ms must be between min_interval_ms" },
      { "min as a string", function() core.sched { min_interval_ms = "1000" } end,
        "field 'min_interval_ms' must be an integer" },
      { "options not a table", function() core.sched(5) end, "table expected" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        assert.has_error(c[2])
        local ok, err = pcall(c[2])
        assert.is_false(ok)
        assert.matches(c[3], tostring(err))
      end)
    end

    it("a removed handle", function()
      local t = core.sched { seed = 1 }
      local x = t:add(0)
      t:remove(x)
      assert.has_error(function() t:remove(x) end)
      assert.has_error(function() t:next_at(x) end)
      assert.has_error(function() t:polls(x) end)
    end)
  end)
end)

describe("kling.core slots", function()
  it("is a kling.slots userdata", function()
    local sl = core.slots { limit = 3 }
    assert.equal("kling.slots", getmetatable(sl).__name)
    assert.equal("kling.slots(0/3 in use, 0 waiting)", tostring(sl))
    assert.same({ 3, 3 }, { sl:limit() })
  end)

  it("grants up to the limit, queues the rest in order, hands freed slots on", function()
    local sl = core.slots { limit = 2 }
    assert.is_true(sl:acquire(10))
    assert.is_true(sl:acquire(11))
    assert.is_false(sl:acquire(12))
    assert.is_false(sl:acquire(13))
    assert.is_false(sl:acquire(14, true)) -- bounced off a rate limit: keeps its turn
    assert.equal(2, sl:in_use())
    assert.equal(3, sl:queued())
    assert.same({ 14 }, sl:release(0))
    assert.is_true(sl:cancel(12))
    assert.is_false(sl:cancel(12))
    assert.same({ 13 }, sl:release(0))
    assert.same({}, sl:release(0))
    assert.same({}, sl:grant(0))
    assert.equal(1, sl:in_use())
  end)

  it("halves the limit on a rate limit, once per burst, never below 1", function()
    local sl = core.slots { limit = 20, cooldown_ms = 1000, recover_after = 0, recover_ms = 0 }
    assert.equal(10, sl:on_rate_limited(0))
    assert.equal(10, sl:on_rate_limited(500))
    assert.equal(5, sl:on_rate_limited(1500))
    for i = 1, 10 do
      sl:on_rate_limited(1500 + 1000 * i)
    end
    assert.same({ 1, 20 }, { sl:limit() })
  end)

  it("recovers by successes and by time, up to the configured limit", function()
    local sl = core.slots { limit = 8, recover_after = 2, recover_ms = 10000, cooldown_ms = 0 }
    sl:on_rate_limited(0) -- 4
    assert.equal(4, sl:on_success(100))
    assert.equal(5, sl:on_success(200))
    assert.equal(7, sl:on_success(25000)) -- +2 windows of 10 s since the last step
    assert.equal(8, sl:on_success(1000000))
  end)

  it("does not grant over a lowered limit, then lets the waiting in", function()
    local sl = core.slots { limit = 4, recover_after = 1, cooldown_ms = 0 }
    for id = 1, 4 do
      assert.is_true(sl:acquire(id))
    end
    sl:on_rate_limited(0) -- 2, with 4 in use
    assert.is_false(sl:acquire(5))
    assert.same({}, sl:release(1)) -- 3 in use
    assert.same({}, sl:release(2)) -- 2 in use
    sl:on_success(3)               -- 3
    assert.same({ 5 }, sl:release(3))
  end)

  describe("misuse raises", function()
    local cases = {
      { "no limit", function() core.slots {} end, "limit is required" },
      { "limit 0", function() core.slots { limit = 0 } end, "limit must be an integer between 1 and" },
      { "limit as a float", function() core.slots { limit = 2.5 } end, "field 'limit' must be an integer" },
      { "decrease 1.5", function() core.slots { limit = 2, decrease = 1.5 } end,
        "decrease must be a factor strictly between 0 and 1" },
      { "unknown option", function() core.slots { limit = 2, window = 5 } end, "unknown field 'window'$" },
      { "unknown option near a known one", function() core.slots { limit = 2, recover_aftr = 5 } end,
        "unknown field 'recover_aftr'; did you mean recover_after%?$" },
      { "release with nothing held", function() core.slots { limit = 2 }:release(0) end,
        "release without a slot held" },
      { "id as a string", function() core.slots { limit = 2 }:acquire("a") end, "id must be an integer" },
      { "front not boolean", function() core.slots { limit = 2 }:acquire(1, 1) end, "front must be a boolean" },
      { "now missing", function() core.slots { limit = 2 }:on_success() end, "now must be an integer" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local ok, err = pcall(c[2])
        assert.is_false(ok)
        assert.matches(c[3], tostring(err))
      end)
    end
  end)
end)

describe("kling.core idmap", function()
  it("maps ids to the scheduler's handles and back, one to one", function()
    local m = core.idmap()
    m:put("gw-a", 1)
    m:put("gw\0b", 3) -- any bytes
    assert.equal(1, m:find("gw-a"))
    assert.equal(3, m:find("gw\0b"))
    assert.is_nil(m:find("gw"))
    assert.equal("gw\0b", m:id(3))
    assert.is_nil(m:id(2))
    assert.is_true(m:remove(1))
    assert.is_false(m:remove(1))
    assert.is_nil(m:find("gw-a"))
    m:put("gw-a", 2) -- an id and a handle are free again once removed
    local n, bytes = m:count()
    assert.equal(2, n)
    assert.is_true(bytes > 0)
    assert.equal("kling.idmap(2 ids)", tostring(m))
  end)

  it("refuses a taken id or handle, and bad arguments, by raising", function()
    local m = core.idmap()
    m:put("a", 1)
    for _, c in ipairs {
      { function() m:put("a", 2) end, "already mapped" },
      { function() m:put("b", 1) end, "already mapped" },
      { function() m:put("", 2) end, "1 to 1024 bytes" },
      { function() m:put(("x"):rep(1025), 2) end, "1 to 1024 bytes" },
      { function() m:put("b", 0) end, "a handle is an integer from 1" },
      { function() m:put("b", 1.5) end, "a handle is an integer from 1" },
      { function() m:id("1") end, "got string" },
      { function() m.find({}, "a") end, "kling.idmap expected" },
    } do
      local ok, err = pcall(c[1])
      assert.is_false(ok)
      assert.matches(c[2], tostring(err), 1, true)
    end
    assert.equal(1, (m:count())) -- nothing changed
  end)
end)

describe("kling.core sched under LuaJIT (nginx's Lua)", function()
  it("schedules and limits inside a worker with the LuaJIT build", function()
    local nginx = require "support.nginx"
    local jit_cpath, none = nginx.jit_cpath()
    if not jit_cpath then
      pending(none)
      return
    end
    local http = require "socket.http"
    local srv = nginx.start([[
      location = /sched {
        content_by_lua_block {
          local core = require "kling.core"
          local s = core.sched { jitter = 0, seed = 1 }
          local a = s:add(0, 120000)
          local b = s:add(0)
          local due = s:due(1000)
          local sl = core.slots { limit = 1 }
          local q = sl:acquire(7) and not sl:acquire(8)
          local granted = sl:release(5)
          local ok, err = pcall(s.add, s, 1.5)
          local ids = core.idmap()
          ids:put("gw-a", a)
          ngx.say(core.lua, " ", a, " ", b, " ", s:next_at(a), " ", #due, " ", due[1], " ",
            tostring(q), " ", granted[1], " ", tostring(ok), " ", err:match("now must be an integer") or err,
            " ", ids:find("gw-a"), " ", ids:id(a))
        }
      }
    ]], { cpath = jit_cpath })
    local body, code = http.request(srv.url .. "/sched")
    local log = srv.error_log()
    srv.stop()
    assert.equal(200, code, log)
    assert.equal("jit 1 2 118800 1 2 true 8 false now must be an integer 1 gw-a\n", body)
  end)
end)
