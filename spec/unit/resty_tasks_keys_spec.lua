-- kling.resty.tasks joins an account's name to the rest of its index keys by ':'
-- (x:<account>:<external id>, l:<account>:<endpoint>:<n>). The gateway checks its accounts'
-- names, but an embedder calling the task table directly passes any: account "a:b" with external
-- id "c" was account "a"'s "b:c" (its create refused as a duplicate of a's, its lookup answered
-- with a's task). A name (or endpoint) holding ':' is refused where the keys are made, naming the
-- field and the rule.
local fake_dict = require "spec.support.fake_dict"
local tasks = require "kling.resty.tasks"

local fake_ngx = require "spec.support.fake_ngx"

describe("kling.resty.tasks: an account name holding ':'", function()
  fake_ngx.suite(setup, teardown)

  local function rec(id, account, ext, endpoint)
    return { id = id, account = account, external_task_id = ext, endpoint = endpoint or "text2video",
      state = "created" }
  end

  it("is refused by create, naming the field and the rule, and takes no key of another account's", function()
    local t = tasks.new { dict = fake_dict.new() }
    assert(t:create(rec("gw1", "a", "b:c")))
    local ok, err = t:create(rec("gw2", "a:b", "c"))
    assert.is_nil(ok)
    assert.matches("^account: must be a non%-empty string without ':'", err)
    assert.matches('got "a:b"', err, 1, true)
    assert.is_nil(t:get("gw2"))
    assert.equal("gw1", t:by_external("a", "b:c")) -- a's own
  end)

  it("is refused by the lookups: another account's task is never found through it", function()
    local t = tasks.new { dict = fake_dict.new() }
    local a = rec("gw1", "a", "b:c", "text2video")
    assert(t:create(a))
    local id, err = t:by_external("a:b", "c")
    assert.is_nil(id)
    assert.matches("^account: must be a non%-empty string without ':'", err)
    local list, lerr = t:list("a:b", "c", 1, 10)
    assert.is_nil(list)
    assert.matches("^account:", lerr)
    assert.equal("gw1", t:by_external("a", "b:c"))
  end)

  it("refuses an endpoint holding ':' too (an account's list key and its entries')", function()
    local t = tasks.new { dict = fake_dict.new() }
    local ok, err = t:create(rec("gw1", "a", nil, "text2video:1"))
    assert.is_nil(ok)
    assert.matches("^endpoint: must be a non%-empty string without ':'", err)
  end)
end)

-- The ledger's stores join an account's name to a top-up's id by ':' too (tu:<account>:<id>):
-- the Redis store opened any name, and account "a:b"'s top-up "c" was account "a"'s "b:c"
-- (answered as applied before, nothing added). Both stores refuse to open such a name (one rule,
-- kling.money.stores.memory name_problem); an account never opened is refused by every movement.
describe("the ledger's stores: an account name holding ':'", function()
  local redis_eval = require "spec.support.redis_eval"
  local redis = redis_eval.suite(setup, teardown, true)

  local function redis_store()
    local s = require("kling.money.stores.redis").new { redis = redis.server.client(), currency = "CNY",
      price_provider = "kling", ended_ttl = 60 }
    assert(s:bind())
    return s
  end

  it("is refused by the Redis store's open_account, naming the field and the rule", function()
    local s = redis_store()
    assert(s:open_account("a", "10"))
    assert(s:topup("a", 1000000, nil, "b:c"))
    local a, err = s:open_account("a:b", "10")
    assert.is_nil(a)
    assert.equal("account", err.field)
    assert.matches("letters, digits, '.', '_' and '-' is required (the stores' keys join it", err.message, 1, true)
    local t, terr = s:topup("a:b", 1000000, nil, "c") -- never opened: no account, not "applied before"
    assert.is_nil(t)
    assert.equal("validation", terr.kind)
    assert.equal("11", s:account("a").balance)
  end)

  it("is refused by the one-node store's open_account by the same rule", function()
    local s = require("kling.money.stores.shared").new { dict = fake_dict.new(), currency = "CNY" }
    local a, err = s:open_account("a:b", "10")
    assert.is_nil(a)
    assert.equal("account", err.field)
    assert.matches("letters, digits, '.', '_' and '-' is required (the stores' keys join it", err.message, 1, true)
  end)
end)
