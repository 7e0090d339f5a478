-- A journal an embedder gives the one-node store (or the task table) whose append raises
-- instead of returning nil, err: the raise went past the store's undo, so a reservation made
-- before its line stayed held (the account's credit taken for good, holds_open counting it)
-- and the caller got an error thrown through it. A raise is a failed write now: the movement
-- is undone and refused as one (the gateway answers a create refused for its journal 503,
-- code 5001, nothing forwarded).
local fake_dict = require "spec.support.fake_dict"
local ledger = require "kling.money.ledger"
local shared = require "kling.money.stores.shared"
local tasks = require "kling.resty.tasks"

local CNY = 1000000

local fake_ngx = require "spec.support.fake_ngx"

describe("a journal whose append raises", function()
  fake_ngx.suite(setup, teardown)

  local raising = { append = function() error("the embedder's disk is gone") end }

  local function store()
    local s = shared.new { dict = fake_dict.new(), currency = "CNY", journal = raising }
    assert(s:open_account("alice", "10"))
    return s
  end

  it("refuses a reservation as a failed write, its hold undone", function()
    local s = store()
    local ok, code, detail = s:reserve("alice", "gw1", 4 * CNY, { open_max = 1 })
    assert.is_nil(ok)
    assert.equal("journal", code)
    assert.matches("raised: .*the embedder's disk is gone", tostring(detail))
    assert.equal("10", s:account("alice").balance)
    assert.equal(0, s:open_holds())
    assert.is_nil(s.dict:get("h:gw1"))
    -- the account's one open hold (open_max 1) was given back: a hold can be made again
    s.journal = nil
    assert(s:reserve("alice", "gw2", 4 * CNY, { open_max = 1 }))
  end)

  it("is a server error of the ledger's reserve, field journal (the gateway's 503, 5001)", function()
    local l = assert(ledger.new { store = store() })
    local ok, err = l:reserve("gw1", 4 * CNY, { account = "alice" })
    assert.is_nil(ok)
    assert.equal("server", err.kind)
    assert.equal("journal", err.field)
    assert.equal("10", l:account("alice").balance)
  end)

  it("refuses a top-up as a failed write, its id given back", function()
    local s = store()
    local ok, err = s:topup("alice", 5 * CNY, nil, "inv-1")
    assert.is_nil(ok)
    assert.equal("server", err.kind)
    assert.equal("journal", err.field)
    assert.equal("10", s:account("alice").balance)
    assert.is_nil(s.dict:get("tu:alice:inv-1"))
    assert.is_nil(s.dict:get("a:alice:topup_lock"))
  end)

  it("refuses a task table's journaled write as a failed write", function()
    local t = tasks.new { dict = fake_dict.new(), journal = raising }
    local rec = { id = "gw1", account = "alice", endpoint = "text2video", state = "created" }
    assert(t:create(rec))
    local ok, err = t:save(rec, true)
    assert.is_nil(ok)
    assert.matches("raised", tostring(err))
  end)
end)
