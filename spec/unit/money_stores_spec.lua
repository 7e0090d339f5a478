-- Issue 10: one Ledger over pluggable stores (lua/kling/money/). The memory and file stores
-- here; the shared-memory and Redis stores run under the same Ledger in the gateway's nginx
-- specs (spec/sh/nginx_gateway*.sh).
local json = require "kling.json"
local journal = require "kling.journal"
local ledgers = require "kling.money.ledger"
local hold = require "kling.money.hold"
local file_store = require "kling.money.stores.file"
local memory = require "kling.money.stores.memory"

local function tmpdir()
  local p = assert(io.popen("mktemp -d"))
  local d = p:read("*l")
  p:close()
  return d
end

local function cny(micros)
  return { provider = "kling", currency = "CNY", micros = micros }
end

describe("issue 10: the Ledger over its stores", function()
  it("issue 10: the file store writes each movement to the journal before it returns, and the journal replays it",
    function()
      local path = tmpdir() .. "/journal.jsonl"
      local j = assert(journal.open(path))
      local l = assert(ledgers.new { budgets = { { limit = "10", currency = "CNY" } },
        store = file_store.new { journal = j, tag = { t = "ledger" } } })
      assert(l:reserve("a", cny(3500000)))
      assert(l:reserve("b", cny(2500000)))
      assert(l:settle("a", cny(2500000), { task_id = "t-a" }))
      assert(l:release("b"))
      local records = assert(journal.read(path))
      assert.equal(4, #records)
      assert.same({ "reserve", "reserve", "settle", "release" },
        { records[1].op, records[2].op, records[3].op, records[4].op })
      assert.equal("ledger", records[3].t)
      assert.equal("2.5", records[3].amount)
      assert.equal("3.5", records[3].reserved_amount)
      assert.equal("t-a", records[3].task_id)
      -- Opened again over the same file: the balances come back and nothing is written twice.
      local again = assert(ledgers.new { budgets = { { limit = "10", currency = "CNY" } }, lines = records,
        store = file_store.new { journal = assert(journal.open(path)), tag = { t = "ledger" } } })
      assert.equal(2500000, again:spent("CNY"))
      assert.equal(0, again:reserved("CNY"))
      assert.equal(7500000, again:balance("CNY"))
      assert.equal(4, #assert(journal.read(path)))
      assert(again:reserve("c", cny(1000000)))
      assert.equal(5, #assert(journal.read(path)))
    end)

  it("a movement someone decided by hand says so on its line (info.by); a bad by is misuse", function()
    local path = tmpdir() .. "/journal.jsonl"
    local l = assert(ledgers.new { budgets = { { limit = "10", currency = "CNY" } },
      store = file_store.new { journal = assert(journal.open(path)) } })
    assert(l:reserve("a", cny(3000000)))
    assert(l:reserve("b", cny(3000000)))
    assert(l:reserve("c", cny(3000000)))
    assert(l:settle("a", cny(1000000), { task_id = "t-a", by = "operator" }))
    assert(l:release("b", { by = "operator" }))
    assert(l:release("c"))
    local records = assert(journal.read(path))
    assert.same({ "operator", "operator" }, { records[4].by, records[5].by })
    assert.is_nil(records[6].by)
    for _, bad in ipairs { "", "two words", 7, ("x"):rep(33) } do
      assert.has_error(function()
        l:release("c", { by = bad })
      end)
    end
  end)

  it("issue 10: a movement the file store cannot write does not pass silently", function()
    local j = assert(journal.open(tmpdir() .. "/gone/journal.jsonl"))
    local l = assert(ledgers.new { limit = "10", currency = "CNY", store = file_store.new { journal = j } })
    assert.has_error(function()
      l:reserve("a", cny(1000000))
    end)
  end)

  it("issue 10: every currency is its own account; integer micro-units; a quote in a unit without a budget "
    .. "is refused with code no_budget", function()
    local l = assert(ledgers.new { budgets = { { limit = "10", currency = "CNY" },
      { limit = "100", currency = "evolink-credits" } } })
    assert(l:reserve("a", cny(4000000)))
    assert(l:reserve("b", { provider = "evolink", currency = "credits", micros = 60000000 }))
    assert.equal(4000000, l:reserved("CNY"))
    assert.equal(60000000, l:reserved("evolink-credits"))
    assert.equal(math.type(l:balance("CNY")), "integer")
    local none, err = l:reserve("c", { provider = "apiinone", currency = "credits", micros = 1 })
    assert.is_nil(none)
    assert.equal("budget", err.kind)
    assert.equal("no_budget", err.code)
    local m, cur = l:reservation("b")
    assert.equal(60000000, m)
    assert.equal("evolink-credits", cur)
  end)

  it("issue 10: an accounts ledger (the gateway's) names the account; its refusals are the same codes", function()
    local l = assert(ledgers.new { store = memory.new { currency = "CNY" } })
    assert(l:open_account("alice", "5"))
    assert(l:reserve("t1", 3500000, { account = "alice" }))
    local none, err = l:reserve("t2", 3500000, { account = "alice" })
    assert.is_nil(none)
    assert.equal("budget", err.kind)
    assert.equal("balance", err.field)
    assert.matches("the balance of alice %(1.5 CNY available%) cannot hold 3.5 CNY", err.message)
    none, err = l:reserve("t3", 1, { account = "nobody" })
    assert.is_nil(none)
    assert.equal("account", err.field)
    assert(l:settle("t1", 2500000))
    assert.equal(2500000, l:account("alice").spent_micros)
    local line = json.decode(l:line(l:entries()[2]))
    assert.equal("alice", line.account)
  end)

  it("issue 12: open_max bounds an account's holds open at once (rate_limited, 1303 at the gateway); ends free a"
    .. " slot; other accounts are not touched", function()
    local l = assert(ledgers.new { store = memory.new { currency = "CNY" } })
    assert(l:open_account("alice", "100"))
    assert(l:open_account("bob", "100"))
    local two = { account = "alice", open_max = 2 }
    assert(l:reserve("a1", 1000000, two))
    assert(l:reserve("a2", 1000000, two))
    local none, err = l:reserve("a3", 1000000, two)
    assert.is_nil(none)
    assert.equal("rate_limited", err.kind)
    assert.equal("open_max", err.field)
    assert.is_true(err.retryable)
    assert.matches("alice has 2 tasks open", err.message)
    assert.equal(2, l:account("alice").open)
    assert.equal(2000000, l:account("alice").reserved_micros) -- nothing of the refused one held
    assert(l:reserve("b1", 1000000, { account = "bob", open_max = 1 }))
    assert(l:settle("a1", 500000))
    assert(l:reserve("a3", 1000000, two))
    assert(l:release("a2"))
    assert(l:release("a3"))
    assert.equal(0, l:account("alice").open)
    assert.equal(1, l:account("bob").open)
    -- counted without a most too, so that one set later (a reload) starts from the truth
    assert(l:reserve("a4", 1000000, { account = "alice" }))
    assert.equal(1, l:account("alice").open)
    for _, bad in ipairs { 0, 1.5, -1, "2" } do
      none, err = l:reserve("a5", 1, { account = "alice", open_max = bad })
      assert.is_nil(none)
      assert.equal("open_max", err.field)
    end
  end)

  it("issue 12.3: a top-up taking an account's credit past 2^53 micro-units is refused (field amount)", function()
    local l = assert(ledgers.new { store = memory.new { currency = "CNY" } })
    assert(l:open_account("carol", "20"))
    local none, err = l:topup("carol", 9007199254000000)
    assert.is_nil(none)
    assert.equal("validation", err.kind)
    assert.equal("amount", err.field)
    assert.matches("9007199254.740992", err.message, 1, true)
    assert.equal(20000000, l:account("carol").limit_micros)
    assert.equal(9007199254740992, assert(l:topup("carol", 9007199234740992)).limit_micros) -- exactly 2^53
  end)

  it("issue 12.3: a top-up of 2^53 micro-units or more is refused for the cap it passes, not as no amount", function()
    local l = assert(ledgers.new { store = memory.new { currency = "CNY" } })
    assert(l:open_account("erin", "1"))
    for _, m in ipairs { 9007199254740992, 2 ^ 60 } do
      local none, err = l:topup("erin", m)
      assert.is_nil(none)
      assert.equal("amount", err.field)
      assert.matches("would pass 9007199254.740992", err.message, 1, true)
    end
    assert.equal(1000000, l:account("erin").limit_micros)
  end)

  -- An operator's script retrying a top-up whose answer it lost credited it twice.
  it("a top-up with an id is added once: again with its amount adds nothing, with another is refused", function()
    local l = assert(ledgers.new { store = memory.new { currency = "CNY" } })
    assert(l:open_account("fay", "10"))
    local s, again = l:topup("fay", 5000000, "inv-2026-001")
    assert.equal(15000000, s.limit_micros)
    assert.is_nil(again)
    s, again = l:topup("fay", 5000000, "inv-2026-001")
    assert.equal(15000000, s.limit_micros)
    assert.is_true(again)
    local none, err = l:topup("fay", 6000000, "inv-2026-001")
    assert.is_nil(none)
    assert.equal("id", err.field)
    assert.equal("id_used", err.code)
    assert.matches("was applied with amount 5", err.message, 1, true)
    assert.equal(20000000, assert(l:topup("fay", 5000000, "inv-2026-002")).limit_micros)
    assert.equal(25000000, assert(l:topup("fay", 5000000)).limit_micros) -- without an id: each adds
    for _, bad in ipairs { "inv\u{200B}3", "facture-e\u{301}te", "inv 3", "", ("x"):rep(129), 3 } do
      none, err = l:topup("fay", 1000000, bad) -- printable ASCII: two spellings of one letter are two ids
      assert.is_nil(none)
      assert.equal("id", err.field)
      assert.matches("^id: must be 1 to 128 printable ASCII", err.message)
    end
    -- what it got, byte for byte: an invisible character quoted as itself showed nothing wrong
    none, err = l:topup("fay", 1000000, "inv\u{200B}3")
    assert.is_nil(none)
    assert.matches('(got "inv\\xE2\\x80\\x8B3")', err.message, 1, true)
    assert.equal(25000000, l:account("fay").limit_micros)
  end)

  it("issue 12.3: the store checks the cap in the step that adds the credit (no check-then-add race)", function()
    local store = memory.new { currency = "CNY" }
    assert(store:open_account("dave", "9007199254"))
    assert.is_false(store:topup("dave", 740993, 9007199254740992))
    assert.equal(9007199254000000, store:account("dave").limit_micros)
    assert.equal(9007199254740992, assert(store:topup("dave", 740992, 9007199254740992)).limit_micros)
  end)

  -- A client over the ledger (what a batch row's machine reserves and accounts through).
  local function client_of(l)
    return assert(require("kling").new { provider = "kling", api_key = "k", base_url = "http://127.0.0.1:9",
      budget = l })
  end
  local T2V = { prompt = "p", model = "kling-v1", mode = "std", duration = 5 }

  it("issue 10.2: through kling.money.hold a key of the caller's own is reserved and ended at most once", function()
    local l = assert(ledgers.new { limit = "10", currency = "CNY" })
    local c = client_of(l)
    local q = assert(hold.reserve(c, "row#1", T2V, true))
    -- A second run (the batch restarted before the create was answered): the hold is the task's.
    local again = assert(hold.reserve(c, "row#1", T2V, true))
    assert.is_true(again.held)
    assert.equal(q.micros, again.micros)
    assert.equal(q.micros, l:reserved("CNY"))
    -- Without once, a key that holds is refused (a second task under one key).
    local none, err = hold.reserve(c, "row#1", T2V)
    assert.is_nil(none)
    assert.is_table(err)
    local t = { ledger_key = "row#1", status = "succeeded", request = T2V, videos = { { url = "u", duration = "5" } } }
    assert(hold.account(c, t))
    -- The same end seen by a machine after a restart, and a release: nothing moves again.
    assert.is_nil(hold.account(c, { ledger_key = "row#1", status = "succeeded", request = T2V }))
    assert.is_nil(hold.account(c, { ledger_key = "row#1", status = "failed" }))
    assert.equal(q.micros, l:spent("CNY"))
    assert.equal(0, l:reserved("CNY"))
    local ops = {}
    for _, e in ipairs(l:entries()) do
      ops[#ops + 1] = e.op
    end
    assert.same({ "reserve", "settle" }, ops)
  end)

  it("issue 10.2: a delivery whose price is unknown is charged its reservation, never nothing", function()
    local l = assert(ledgers.new { limit = "10", currency = "CNY" })
    local c = client_of(l)
    local q = assert(hold.reserve(c, "k", T2V, true))
    local t = { ledger_key = "k", status = "succeeded", request = { prompt = "p", model = "kling-v3", duration = 7 } }
    local e = assert(hold.account(c, t))
    assert.equal("settle", e.op)
    assert.is_not_nil(t.billing_error)
    assert.equal(q.micros, l:spent("CNY"))
  end)

  it("issue 10: a settle in another currency counts at the user's rates against the reservation's budget",
    function()
      local l = assert(ledgers.new { limit = "100", currency = "CNY",
        rates = { currency = "CNY", rates = { USD = "7.1" } } })
      assert(l:reserve("k", cny(7100000)))
      local e = assert(l:settle("k", { provider = "x", currency = "USD", micros = 500000 }))
      assert.equal("CNY", e.currency)
      assert.equal(3550000, l:spent("CNY"))
      assert.equal("USD", e.from_currency)
      local none, err = l:settle("k2", { provider = "apiinone", currency = "credits", micros = 1 })
      assert.is_nil(none)
      assert.equal("no_budget", err.code)
    end)
end)
