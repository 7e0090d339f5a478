-- One rule for an account's name in every gateway store: one account's in any case
-- (kling.money.stores.memory name_fold and name_kept). The one-node store opened Dave beside dave
-- as two balances, and the Redis store renamed <p>names to the later spelling and opened it too:
-- an embedder's (or a config file's case-only rename's) second spelling got a credit of its own.
-- Both refuse it now, naming the field (account) and the name the store keeps. The Redis store
-- runs against a redis-server of the spec's own (spec.support.redis_eval).
local fake_dict = require "spec.support.fake_dict"
local redis_eval = require "spec.support.redis_eval"

describe("an account's name in the gateway's stores, in any case", function()
  local redis = redis_eval.suite(setup, teardown, true)

  local stores = {
    shared = function()
      return require("kling.money.stores.shared").new { dict = fake_dict.new(), currency = "CNY" }
    end,
    redis = function()
      local s = require("kling.money.stores.redis").new { redis = redis.server.client(), currency = "CNY",
        price_provider = "kling", ended_ttl = 60 }
      assert(s:bind())
      return s
    end,
  }

  for _, kind in ipairs { "shared", "redis" } do
    it(kind .. ": refuses dave where Dave is kept, naming the field and the name kept", function()
      local s = stores[kind]()
      local who = "Dave" .. kind -- each store's own name (one redis-server for both)
      assert(s:open_account(who, "10"))
      local a, err = s:open_account(who:lower(), "10")
      assert.is_nil(a)
      assert.equal("validation", err.kind)
      assert.equal("account", err.field)
      assert.equal("name_kept", err.code)
      assert.matches("the store keeps account " .. who .. " (names are one account's in any case", err.message, 1,
        true)
      a, err = s:open_account(who:upper(), "7")
      assert.is_nil(a)
      assert.equal("name_kept", err.code)
      assert.equal("10", assert(s:open_account(who, "10")).limit) -- its own spelling opens as before
    end)
  end
end)
