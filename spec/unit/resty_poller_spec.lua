-- kling.resty.poller's bookkeeping of handles and ids, driven outside nginx: a fake ngx whose
-- light threads run at once, a fake clock, the real core.sched and core.idmap. The polls of
-- one tick free their handles (as a task's machine does when it ends or gives up for now),
-- and the scheduler hands freed handles out again: no task may lose its place.
local core = require "kling.core"
local poller = require "kling.resty.poller"

describe("kling.resty.poller", function()
  local saved_ngx, saved_now, now, logged, dict

  before_each(function()
    saved_ngx, saved_now, now, logged = rawget(_G, "ngx"), core.now_ms, 0, {}
    local data = {}
    rawset(_G, "ngx", {
      ERR = 4,
      log = function(_, ...)
        logged[#logged + 1] = table.concat({ ... })
      end,
      now = function() return now / 1000 end,
      worker = { pid = function() return 1 end },
      timer = { every = function() return true end },
      thread = {
        spawn = function(f, ...) return table.pack(pcall(f, ...)) end,
        wait = function(t) return table.unpack(t, 1, t.n) end,
      },
    })
    dict = {
      get = function(_, k) return data[k] end,
      set = function(_, k, v) data[k] = v return true end,
      add = function(_, k, v)
        if data[k] ~= nil then return false, "exists" end
        data[k] = v
        return true
      end,
      delete = function(_, k) data[k] = nil end,
    }
    core.now_ms = function() return now end
  end)

  after_each(function()
    rawset(_G, "ngx", saved_ngx)
    core.now_ms = saved_now
  end)

  -- A poller over ids, whose polls answer outcomes[id] (and free their handle when it says so),
  -- after its first tick: it has taken the ids over (none due yet).
  local function start(ids, outcomes)
    local tasks = { dict = dict, pop = function() return {} end, active_ids = function() return ids end }
    local p = poller.start { tasks = tasks, min_interval_ms = 1000, max_interval_ms = 15000,
      poll = function(id, sched, h)
        local o = outcomes[id]
        if o.freed then
          sched:remove(h)
        end
        return o
      end }
    poller.tick(false, p)
    return p
  end

  it("walks the table again when a worker starts: a create whose worker was killed is polled by the leader",
    function()
      local ids = { "A" }
      local p = start(ids, { A = { delay_ms = 5000 }, B = { delay_ms = 5000 } })
      assert.is_truthy(p.ids:find("A"))
      ids[2] = "B" -- a record only its own create's publish would have queued: its worker died
      now = now + 500
      poller.tick(false, p)
      assert.is_nil(p.ids:find("B"), "nothing told the leader of B")
      local a = p.ids:find("A")
      poller.start { tasks = p.tasks, poll = function() return {} end } -- the killed worker's replacement
      poller.tick(false, p)
      assert.is_truthy(p.ids:find("B"), "the leader walked the table once more")
      assert.are.equal(a, p.ids:find("A"), "a task it had keeps its place")
      assert.is_nil(dict:get(poller.RESCAN))
      assert.are.equal(1, p.stats.takeovers)
    end)

  it("keeps a task that freed its handle when another's freed handle is handed out again", function()
    -- Either order of the two polls in a tick, many times over (the scheduler's jitter orders them).
    for _ = 1, 40 do
      local outcomes = { A = { freed = true, delay_ms = 5000 }, B = { terminal = true, freed = true } }
      local p = start({ "A", "B" }, outcomes)
      for tick = 1, 3 do
        now = now + 20000
        poller.tick(false, p)
        assert.is_truthy(p.ids:find("A"), "A is still polled after tick " .. tick)
        assert.is_nil(p.ids:find("B"))
        assert.equal(1, (p.ids:count()))
        assert.equal(1, (p.sched:count()))
        assert.equal(p.ids:find("A"), (p.ids:find(p.ids:id(p.ids:find("A")))))
      end
      assert.same({}, logged)
    end
  end)

  it("polls a task again whose poll failed after freeing its handle", function()
    for _ = 1, 20 do
      local p = start({ "A", "B" }, { A = { freed = true, delay_ms = 5000 }, B = { terminal = true, freed = true } })
      p.poll = function(id, sched, h)
        sched:remove(h)
        if id == "A" then
          error("the upstream's answer could not be read")
        end
        return { terminal = true, freed = true }
      end
      now = now + 20000
      poller.tick(false, p)
      assert.is_truthy(p.ids:find("A"))
      assert.is_nil(p.ids:find("B"))
      assert.equal(1, (p.sched:count()))
      assert.truthy(logged[1]:find("poll of A failed", 1, true))
      logged = {}
    end
  end)

  it("does not poll an id no gateway makes, and goes on with the others", function()
    local p = start({ "", ("x"):rep(1025), "A" }, { A = { wake_at = 10 ^ 12 } })
    now = now + 20000
    poller.tick(false, p) -- the others still polled
    assert.equal(1, (p.ids:count()))
    assert.truthy(p.ids:find("A"))
    assert.equal(2, #logged)
    assert.truthy(logged[1]:find("a task id must be 1 to 1024 bytes", 1, true))
  end)

  it("lets its tasks go when another worker holds the lock", function()
    local p = start({ "A" }, { A = { wake_at = 10 ^ 12 } })
    assert.equal(1, (p.ids:count()))
    dict:set(poller.LOCK, 2) -- another worker's
    poller.tick(false, p)
    assert.is_nil(p.ids)
    assert.is_nil(p.sched)
    assert.equal(0, poller.count(p))
  end)
end)
