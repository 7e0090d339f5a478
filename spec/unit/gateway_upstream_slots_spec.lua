-- kling.gateway.upstream_pace's slots: a create the upstream refused with 1303 (its parallel
-- tasks full) was forwarded, journaled and released, free for its client, so one client could
-- keep sending the upstream creates that could not run. The gateway now learns the slot count
-- (its tasks open then) and refuses creates itself while as many are open; a task's end frees
-- one (no pause), and the count is forgotten after SLOTS_FORGET_S or when the upstream takes a
-- create with more open. It shares the ledger-dict key the 1302 pause lives in, which every
-- create reads already: nothing more is read when nothing was learned.
local pace = require "kling.gateway.upstream_pace"
local core = require "kling.core"
local fake_dict = require "support.fake_dict"

describe("kling.gateway.upstream_pace slots", function()
  local saved_ngx
  local G, open, reads

  before_each(function()
    saved_ngx = rawget(_G, "ngx")
    _G.ngx = { log = function() end, NOTICE = 6 } -- luacheck: ignore 122
    local dict = fake_dict.new()
    local get = dict.get
    reads = 0
    dict.get = function(self, k) -- counted: a create must read no more than it did
      reads = reads + 1
      return get(self, k)
    end
    open = 0
    G = { ledger_dict = dict, meter = { store = { open_holds = function() return open end } } }
  end)
  after_each(function()
    _G.ngx = saved_ngx -- luacheck: ignore 122
  end)

  local SLOTS_FULL = { kind = "rate_limited", code = 1303, message = "parallel task over resource pack limit" }

  it("learns the slots from a 1303 (its tasks open then) and refuses creates while as many are open", function()
    assert.is_nil(pace.refusal(G))
    open = 4 -- three tasks and the refused create's own hold
    pace.slots(G, { refused = SLOTS_FULL }, "refused")
    open = 3 -- the refused create's hold given back
    local reason, e = pace.refusal(G)
    assert.equal("upstream_slots", reason)
    assert.same({ 429, 1303, 1 }, { e.status, e.code, e.retry_after })
    assert.matches("had 3 tasks open, and 3 are open now (nothing was forwarded)", e.message, 1, true)
    open = 7
    assert.equal("upstream_slots", (pace.refusal(G)))
    open = 2 -- a task ended: a slot is free, no pause
    assert.is_nil(pace.refusal(G))
  end)

  it("keeps the 1302 pause beside it, in the one key", function()
    open = 3
    pace.slots(G, { refused = SLOTS_FULL }, "refused")
    assert.equal(30, pace.pause(G, 30))
    open = 0
    local reason, e = pace.refusal(G)
    assert.equal("upstream_paused", reason)
    assert.same({ 429, 1302 }, { e.status, e.code })
    assert.is_string(G.ledger_dict.t[pace.KEY]) -- one key holds both
  end)

  it("forgets them when the upstream takes a create with more open than learned", function()
    open = 4
    pace.slots(G, { refused = SLOTS_FULL }, "refused") -- 3 learned
    open = 3
    pace.slots(G, {}, "created") -- taken with 3 open, its own included: nothing more known
    open = 3
    assert.equal("upstream_slots", (pace.refusal(G)))
    open = 4
    pace.slots(G, {}, "created") -- taken with 4 open: the upstream has more than 3 slots
    assert.is_nil(G.ledger_dict.t[pace.KEY])
    assert.is_nil(pace.refusal(G))
  end)

  it("forgets them after SLOTS_FORGET_S, and keeps the pause when it does", function()
    local now = core.wall_ms()
    G.ledger_dict:set(pace.KEY, string.format("0:3:%d", now - 1)) -- learned SLOTS_FORGET_S ago
    open = 10
    assert.is_nil(pace.refusal(G))
    G.ledger_dict:set(pace.KEY, string.format("%d:3:%d", now + 5000, now - 1))
    assert.equal("upstream_paused", (pace.refusal(G)))
    assert.is_true(pace.SLOTS_FORGET_S > 0 and pace.SLOTS_FORGET_S <= 60)
  end)

  -- A 1303 when none of the gateway's tasks are open: the slots are other users' of the key,
  -- and a count of 0 refused every create for SLOTS_FORGET_S, a pause no end of ours would lift.
  it("learns nothing from a 1303 when none of the gateway's tasks are open", function()
    open = 1 -- the refused create's own hold alone
    pace.slots(G, { refused = SLOTS_FULL }, "refused")
    assert.is_nil(G.ledger_dict.t[pace.KEY])
    assert.is_nil(pace.refusal(G))
  end)

  it("reads nothing more for a create when nothing was learned", function()
    assert.is_nil(pace.refusal(G)) -- the one read admit makes today
    reads = 0
    open = 50
    pace.slots(G, {}, "created")
    pace.slots(G, { refused = { kind = "validation", code = 1201 } }, "refused")
    assert.equal(0, reads)
  end)
end)
