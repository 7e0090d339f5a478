-- A gateway task's charge is never more than its hold: an upstream answer that says more was
-- delivered than was asked (a 10 s video for a 5 s request, 9 images for n = 1) was settled at
-- its price, past the hold, and took the account past its balance (credit 2.5, held 2.5,
-- charged 5: balance -2.5). The cap is each store's, decided in the step that reads and ends
-- the hold (kling.money.stores.memory charge_of states the rule once; the Redis store's END
-- script runs its text): no read of the hold before a settle (a Redis round trip each).
local billing = require "kling.billing"
local effects = require "kling.lifecycle.effects"
local ledgers = require "kling.money.ledger"
local memory = require "kling.money.stores.memory"

local V5 = { provider = "kling", endpoint = "videos/text2video", method = "POST", model = "kling-v2-6", mode = "pro",
  duration = 5 }
local SETTLE = { type = "settle", key = "gw1" }

-- A gateway's ledger of accounts over store, with bob's credit 10 and a hold of `held` on gw1.
local function meter(store, held)
  local l = assert(ledgers.new { store = store })
  assert(l:open_account("bob", "10"))
  assert(l:reserve("gw1", held, { account = "bob", task_id = "gw1" }))
  return l
end

-- Settles gw1 as the gateway does (effects.meter_account: at the price, never past the hold)
-- and checks the charge, what bob has spent and the entry's note of the price not charged.
local function settles(l, held, price, charged)
  local e = assert(effects.meter_account(l, SETTLE, price, { task_id = "up1" }))
  assert.equal(charged, e.micros)
  assert.equal(price ~= nil and price > held and price or nil, e.priced)
  local a = l:account("bob")
  assert.equal(charged, a.spent_micros)
  assert.equal(0, a.reserved_micros)
  assert.equal(10000000 - charged, a.balance_micros)
end

-- Every store, each settle shape: within the hold, past it, unpriced (the hold), twice ended.
local function store_cases(new_store)
  local held = 2500000
  it("charges the price when it is within the hold", function()
    settles(meter(new_store(), held), held, 2000000, 2000000)
  end)
  it("charges at most the hold when the price passes it, and says so in the entry", function()
    settles(meter(new_store(), held), held, 5000000, held)
  end)
  it("charges the hold when the delivery could not be priced (never nothing)", function()
    settles(meter(new_store(), held), held, nil, held)
  end)
  it("ends a hold once: a second settle is refused, nothing more charged", function()
    local l = meter(new_store(), held)
    settles(l, held, 9000000, held)
    assert.is_nil(effects.meter_account(l, SETTLE, 1, { task_id = "up1" }))
    assert.equal(held, l:account("bob").spent_micros)
  end)
  it("a budget's settle (no at_most_held) still records a charge past its reservation: it was incurred",
    function()
      local l = meter(new_store(), held)
      assert.equal(5000000, assert(l:settle("gw1", 5000000)).micros)
    end)
end

describe("gateway charge at a task's end", function()
  local held = billing.estimate(V5).micros

  it("the price asked is what was delivered; a release asks 0; an unpriceable delivery asks nothing and says why",
    function()
      assert.equal(billing.settle(V5, { count = 1, duration = "10" }).micros,
        (effects.meter_price(SETTLE, V5, { count = 1, duration = "10" })))
      assert.equal(0, effects.meter_price({ type = "release", key = "gw1" }, V5, { count = 1 }))
      local m, why = effects.meter_price(SETTLE, { provider = "kling", endpoint = "nowhere", method = "POST" })
      assert.is_nil(m)
      assert.is_string(why)
    end)

  it("the record's account of it follows the stores' one rule, and billing_error says when it was capped",
    function()
      assert.same({ held - 1 }, { effects.meter_charge(held - 1, held) })
      local m, why = effects.meter_charge(2 * held, held)
      assert.equal(held, m)
      assert.matches("more than the 2.5 held", why, 1, true)
      assert.same({ held, "no price" }, { effects.meter_charge(nil, held, "no price") })
      assert.same({ 7 }, { effects.meter_charge(7, nil) }) -- no hold: nothing to cap against
      assert.equal(memory.charge_of, require("kling.money.hold").charge_of)
    end)

  describe("in the memory store (the file store's too)", function()
    store_cases(function()
      return memory.new { currency = "CNY" }
    end)
  end)

  describe("in the one-node shared store", function()
    require("spec.support.fake_ngx").suite(setup, teardown)
    store_cases(function()
      local shared = require "kling.money.stores.shared"
      return shared.new { dict = require("spec.support.fake_dict").new(), currency = "CNY" }
    end)
  end)

  describe("in the Redis store's END script", function()
    local redis = require("spec.support.redis_eval").suite(setup, teardown)
    store_cases(function()
      local store = require("kling.money.stores.redis").new { redis = redis.server.client(), currency = "CNY",
        price_provider = "kling", ended_ttl = 60 }
      assert(store:bind())
      return store
    end)
  end)
end)
