-- A one-node top-up with an id whose worker died writing its journal line (killed, a disk that
-- hung) left the id marked pending: every retry of it was answered 503 "being recorded" until
-- nginx restarted, whether its line had been written or not. The mark names its worker (pid and
-- start time) and where the journal ended when it began; once its lease is over and that worker
-- is gone, a retry resolves it from the journal's bytes appended since (never the whole
-- journal): its line there, the credit counts once; none, the top-up is done afresh.
local fake_dict = require "spec.support.fake_dict"
local rjournal = require "kling.resty.journal"
local shared = require "kling.money.stores.shared"

local CNY = 1000000

local fake_ngx = require "spec.support.fake_ngx"

describe("a top-up left pending by a worker that died", function()
  local saved, dir, owner_pid, now

  setup(function()
    -- the worker: a process of its own, so that it can die (a sleep, reaped by init)
    local p = io.popen("sleep 60 >/dev/null 2>&1 & echo $!")
    owner_pid = tonumber(p:read("*l"))
    p:close()
    saved = fake_ngx.install { worker = { pid = function() return owner_pid end } }
  end)

  teardown(function()
    os.execute("kill " .. owner_pid .. " 2>/dev/null")
    fake_ngx.restore(saved)
  end)

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. dir))
    now = 1000000
  end)

  after_each(function()
    os.execute("rm -rf " .. dir)
  end)

  -- A store over a journal whose next top-up dies (its coroutine never resumed) before its line
  -- is written (written = false) or right after (true), with another account's top-up after it.
  local function left_pending(written)
    local j = rjournal.open(dir .. "/journal")
    assert(j:append(rjournal.FIRST))
    local store = shared.new { dict = fake_dict.new(), currency = "CNY", journal = j,
      clock = function() return now end }
    assert(store:open_account("alice", "100"))
    assert(store:open_account("bob", "100"))
    local append = j.append
    j.append = function(self, e)
      if written then
        assert(append(self, e))
      end
      coroutine.yield() -- the worker dies here
    end
    local co = coroutine.create(function() return store:topup("alice", 5 * CNY, nil, "inv-1") end)
    assert(coroutine.resume(co))
    assert.equal("suspended", coroutine.status(co))
    j.append = append
    -- the top-up's lock expired (LOCK_SECONDS) as a dead worker's does
    store.dict:delete("a:alice:topup_lock")
    assert(store:topup("bob", 1 * CNY, nil, "inv-b")) -- another line after it
    return store, j
  end

  local function kill_owner()
    os.execute("kill " .. owner_pid .. "; while kill -0 " .. owner_pid .. " 2>/dev/null; do sleep 0.01; done")
  end

  local function topups_in_journal(id)
    local n = 0
    for _, e in ipairs(assert(rjournal.read(dir .. "/journal"))) do
      n = n + ((e.op == "topup" and e.topup_id == id) and 1 or 0)
    end
    return n
  end

  it("is resolved by a retry once its worker is gone: no line, the top-up done afresh, once", function()
    local store = left_pending(false)
    local s, err = store:topup("alice", 5 * CNY, nil, "inv-1")
    assert.is_nil(s)
    assert.equal("server", err.kind)
    assert.matches("being recorded", err.message, 1, true) -- within its lease
    now = now + 10000
    s, err = store:topup("alice", 5 * CNY, nil, "inv-1")
    assert.is_nil(s) -- its worker still runs (a slow write): never resolved under it
    assert.matches("by worker " .. owner_pid, err.message, 1, true)
    kill_owner()
    s, err = store:topup("alice", 5 * CNY, nil, "inv-1")
    assert.is_truthy(s, err and err.message)
    assert.is_nil(err) -- applied by this retry
    assert.equal("105", store:account("alice").balance)
    s, err = store:topup("alice", 5 * CNY, nil, "inv-1")
    assert.equal(true, err) -- applied before: nothing added
    assert.equal("105", s.balance)
    assert.equal(1, topups_in_journal("inv-1"))
    assert.equal("101", store:account("bob").balance)
  end)

  it("is resolved by a retry once its worker is gone: its line written, the credit counted once", function()
    local p = io.popen("sleep 60 >/dev/null 2>&1 & echo $!")
    owner_pid = tonumber(p:read("*l")) -- a live worker again (the first spec's died)
    p:close()
    local store = left_pending(true)
    now = now + 10000
    kill_owner()
    local s, err = store:topup("alice", 5 * CNY, nil, "inv-1")
    assert.is_truthy(s, type(err) == "table" and err.message or nil)
    assert.equal(true, err) -- the dead worker's line is the top-up: not added again
    assert.equal("105", store:account("alice").balance)
    assert.equal("105", store:account("alice").limit)
    s, err = store:topup("alice", 5 * CNY, nil, "inv-1")
    assert.equal(true, err)
    assert.equal("105", s.balance)
    assert.equal(1, topups_in_journal("inv-1"))
    -- another amount under the same id is still refused (409)
    s, err = store:topup("alice", 6 * CNY, nil, "inv-1")
    assert.is_nil(s)
    assert.equal("id_used", err.code)
  end)
end)
