-- A one-node gateway's reload (kling.money.stores.shared open_account, in nginx's master)
-- while a worker tops the same account up (topup: three incrs, topup, limit and avail): the
-- reload recomputed the limit as credit + topup and set it, so one that read topup between the
-- worker's incrs counted the top-up twice (credit 100, a top-up of 5: limit 110, balance 110).
-- A changed credit now moves limit and balance by its difference, as a top-up does: the two
-- interleave in any order.
local fake_dict = require "spec.support.fake_dict"

-- The ngx the one-node store's top-up calls outside nginx (its lock's sleep, its log).
local fake_ngx = require "spec.support.fake_ngx"

describe("a one-node reload racing a top-up", function()
  fake_ngx.suite(setup, teardown)

  -- A store over a dict whose incr of key runs between(store) once, right after that incr:
  -- the master's reload between two of the worker's steps.
  local function racing(key, between)
    local shared = require "kling.money.stores.shared"
    local d = fake_dict.new()
    local store = shared.new { dict = d, currency = "CNY" }
    local incr = d.incr
    local fired = false
    d.incr = function(self, k, n, init)
      local v, err = incr(self, k, n, init)
      if k == key and not fired then
        fired = true
        between(store)
      end
      return v, err
    end
    return store
  end

  for _, step in ipairs { "a:alice:topup", "a:alice:limit", "a:alice:avail" } do
    it("counts a top-up once whichever of its steps the reload comes after (" .. step .. ")", function()
      local store = racing(step, function(s)
        assert(s:open_account("alice", "100")) -- a reload of the same credit
      end)
      assert(store:open_account("alice", "100"))
      assert(store:topup("alice", 5000000))
      local a = store:account("alice")
      assert.equal("105", a.limit)
      assert.equal("105", a.balance)
    end)
  end

  it("moves the balance by a changed credit, the top-ups kept", function()
    local store = racing("a:alice:topup", function(s)
      assert(s:open_account("alice", "90")) -- a reload that lowers the credit by 10
    end)
    assert(store:open_account("alice", "100"))
    assert(store:topup("alice", 5000000))
    local a = store:account("alice")
    assert.equal("95", a.limit)
    assert.equal("95", a.balance)
    assert(store:open_account("alice", "90"))
    assert.equal("95", store:account("alice").limit)
  end)
end)

-- The first reload after an upgrade opens accounts the dict kept from before their base credit
-- was (a:<name>:base): their credit was read as limit less topup, two reads a worker's top-up
-- (topup, then limit) could fall between: counted twice (limit 110 for a credit of 100 and a
-- top-up of 5). The two are read under the account's top-up lock now.
describe("a one-node first reload after an upgrade racing a top-up", function()
  fake_ngx.suite(setup, teardown)

  -- alice opened with 100 by the version before (no base kept); hooks: {incr = key or get =
  -- key, run = fn(store)}, run once right after that incr, or right before that get.
  local function legacy(hook)
    local shared = require "kling.money.stores.shared"
    local d = fake_dict.new()
    local store = shared.new { dict = d, currency = "CNY" }
    assert(store:open_account("alice", "100"))
    d:delete("a:alice:base")
    local incr, get, fired = d.incr, d.get, false
    d.incr = function(self, k, n, init)
      local v, err = incr(self, k, n, init)
      if k == hook.incr and not fired then
        fired = true
        hook.run(store)
      end
      return v, err
    end
    d.get = function(self, k)
      if k == hook.get and hook.armed and not fired then
        fired = true
        hook.run(store)
      end
      return get(self, k)
    end
    return store
  end

  for _, step in ipairs { "a:alice:topup", "a:alice:limit", "a:alice:avail" } do
    it("counts a top-up once when the reload comes after its step " .. step, function()
      local reload = {}
      local store = legacy { incr = step, run = function(s)
        reload.res, reload.err = s:open_account("alice", "100")
      end }
      assert(store:topup("alice", 5000000))
      -- the reload could not read alice's credit while her top-up held its lock: refused
      -- (nginx's master waits for the lock; here the top-up is held in the middle for good)
      assert.is_nil(reload.res)
      assert.equal("server", reload.err and reload.err.kind)
      assert.equal("105", store:account("alice").limit)
      assert.equal("105", store:account("alice").balance)
      assert(store:open_account("alice", "100")) -- the reload again
      assert.equal("105", store:account("alice").limit)
      assert.equal("105", store:account("alice").balance)
    end)
  end

  it("counts a top-up once when it comes between the reload's reads of limit and topup", function()
    local hook = { get = "a:alice:topup" }
    local inner = {}
    hook.run = function(s)
      inner.res, inner.err = s:topup("alice", 5000000)
    end
    local store = legacy(hook)
    hook.armed = true
    assert(store:open_account("alice", "100"))
    -- the top-up found the reload holding alice's top-up lock: refused, try again
    assert.is_nil(inner.res)
    assert.matches("being recorded", inner.err and inner.err.message or "", 1, true)
    assert.equal("100", store:account("alice").limit)
    assert.equal("100", store:account("alice").balance)
    assert(store:topup("alice", 5000000)) -- tried again
    assert(store:open_account("alice", "100")) -- the next reload changes nothing
    assert.equal("105", store:account("alice").limit)
    assert.equal("105", store:account("alice").balance)
  end)
end)

-- A retry of a top-up with an id that comes while its first try writes its journal line (the
-- try's lock outlived: a journal write past the lock's seconds): it was told "applied" (the id
-- was taken before the line), and when the line then failed the id was given back and nothing
-- added: the operator's script, told it was applied, never sent it again.
describe("a one-node top-up retried while its journal line is written", function()
  fake_ngx.suite(setup, teardown)

  -- A store whose journal runs retry(store) inside the first top-up's append (its lock gone),
  -- then answers ok (or fails).
  local function store_with(ok)
    local shared = require "kling.money.stores.shared"
    local d = fake_dict.new()
    local inner = {}
    local journal = {}
    local store = shared.new { dict = d, currency = "CNY", journal = journal }
    function journal.append(_, line)
      if type(line) == "table" and line.op == "topup" and not inner.ran then
        inner.ran = true
        d:delete("a:alice:topup_lock") -- expired while the line is written
        inner.res, inner.err = store:topup("alice", 5000000, nil, "inv-1")
      end
      return ok, not ok and "disk full" or nil
    end
    assert(store:open_account("alice", "100"))
    return store, inner
  end

  it("is told the top-up is being recorded (never applied), and the first one then counts once", function()
    local store, inner = store_with(true)
    local a, applied = store:topup("alice", 5000000, nil, "inv-1")
    assert.is_nil(applied)
    assert.equal("105", a.limit)
    assert.is_nil(inner.res)
    assert.equal("server", inner.err.kind)
    assert.matches("being recorded", inner.err.message, 1, true)
    local again, before = store:topup("alice", 5000000, nil, "inv-1")
    assert.is_true(before) -- now applied: nothing added
    assert.equal("105", again.limit)
  end)

  it("is not told applied when the first one's line then fails: the id is free again", function()
    local store, inner = store_with(false)
    assert.is_nil((store:topup("alice", 5000000, nil, "inv-1")))
    assert.is_nil(inner.res)
    assert.equal("100", store:account("alice").limit)
  end)
end)

-- The pending mark itself must outlive a slow line: it was set with the id's own life
-- (topup_id_ttl, retention_days: 9 s at 0.0001), so a journal write longer than that (a stalled
-- disk under journal_sync) let it expire with the lock, a retry found the id free, wrote its own
-- line and added again: one invoice counted twice. Pending, it expires with nothing; its life
-- starts once the top-up counts.
describe("a one-node top-up whose journal line takes longer than the id's life", function()
  fake_ngx.suite(setup, teardown)

  it("is counted once: a retry while it is written is told it is being recorded", function()
    local shared = require "kling.money.stores.shared"
    local d = fake_dict.new()
    local lives = {} -- key -> the life (s) it was last written with
    for _, f in ipairs { "set", "safe_set", "add", "safe_add" } do
      local orig = d[f]
      d[f] = function(self, k, v, ttl)
        local ok, err = orig(self, k, v, ttl)
        if ok then
          lives[k] = ttl or 0
        end
        return ok, err
      end
    end
    local inner, journal = {}, {}
    local store = shared.new { dict = d, currency = "CNY", journal = journal, topup_id_ttl = 9 }
    function journal.append(_, line)
      if type(line) == "table" and line.op == "topup" and not inner.ran then
        inner.ran = true
        for k, life in pairs(lives) do -- 20 s pass while the line is written
          if life > 0 and life < 20 then
            d:delete(k)
          end
        end
        inner.res, inner.err = store:topup("alice", 5000000, nil, "inv-1")
      end
      return true
    end
    assert(store:open_account("alice", "100"))
    local a, applied = store:topup("alice", 5000000, nil, "inv-1")
    assert.is_nil(applied)
    assert.is_nil(inner.res)
    assert.equal("server", inner.err and inner.err.kind)
    assert.equal("105", store:account("alice").limit)
    assert.equal("105", a.limit)
    assert.equal(9, lives["tu:alice:inv-1"]) -- counted: its life from now
  end)
end)
