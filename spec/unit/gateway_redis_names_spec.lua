-- Several nodes (a Redis store): a node checks its config file's accounts against the accounts
-- the admin API created, then opens the file's accounts; a create checked the names the store
-- keeps, then wrote the account (the WRITE script). Each was two steps: a create landing
-- between a node's check and its open (or a node's open between a create's check and its
-- write) left a file account and a created account of one name with one balance, each client
-- spending the other's credit. Now a new account's WRITE refuses a name the store keeps (any
-- case, <p>names) and names it there in the same step, and a file account's OPEN refuses a name
-- the admin API created. Runs a redis-server of its own (spec.support.redis_eval: every reply
-- waited for 10 s at most).
local accounts = require "kling.gateway.accounts"
local config = require "kling.gateway.config"
local fake_dict = require "spec.support.fake_dict"
local redis_eval = require "spec.support.redis_eval"

local ALICE = { name = "alice", api_key = "gw-alice-key-1", credit = "10" }

local function cfg(file_accounts)
  return config.check { upstream = { base_url = "http://127.0.0.1:1", api_key = "upstream-key-1" },
    journal = "/tmp/j", accounts = file_accounts }
end

local function made(name)
  return { name = name, api_key = "gw-" .. name:lower() .. "-made-" .. math.random(1e6), credit = "5" }
end

describe("Redis store: an admin create racing a node's open of its file account", function()
  local redis = redis_eval.suite(setup, teardown, true)

  -- An empty store, opened; the node whose admin API creates (its file: alice), its store and
  -- the Redis client (run: hooks may be set on it).
  local function node()
    local r = redis.server.client()
    local store = require("kling.money.stores.redis").new { redis = r, currency = "CNY", price_provider = "kling",
      ended_ttl = 60 }
    assert(store:bind())
    local acc = accounts.new { cfg = cfg { ALICE }, dict = fake_dict.new(), redis = r, seen_id = function()
      return ""
    end }
    return acc, store, r
  end

  -- The admin API's create: the account written, then opened.
  local function create(acc, store, name)
    local ok, err = acc:add(made(name))
    if ok then
      assert(store:open_account(name, "5"))
    end
    return ok, err
  end

  for _, names in ipairs { { "erin", "erin" }, { "Erin", "erin" } } do
    local file, new = names[1], names[2]
    it("a node's open of its file account " .. file .. " after a create of " .. new .. " checked the store: the"
      .. " create's write is refused", function()
      local acc, store, r = node()
      local run = r.run
      r.run = function(self, script, ...)
        if script:find("name_field", 1, true) then -- WRITE: the create's checks are done
          r.run = run
          assert(store:open_account(file, "50", { file = true })) -- another node, its file checked
        end
        return run(self, script, ...)
      end
      local ok, err = create(acc, store, new)
      assert.is_nil(ok)
      assert.equal(409, err.status)
      assert.equal("name", err.field)
      assert.equal("50", store:account(file).limit) -- the file's account alone has the name
      assert.is_false(r:with(function(red)
        return red:hexists("kgw:accounts", "cn:" .. new)
      end) == 1)
    end)

    it("a create of " .. new .. " after a node checked its file, before it opened " .. file .. ": the open is"
      .. " refused", function()
      local acc, store = node()
      assert.same({}, acc:check_file {}) -- the node's check: nothing created yet
      assert(create(acc, store, new))
      local a, err = store:open_account(file, "50", { file = true })
      assert.is_nil(a)
      assert.equal("name_created", err and err.code)
      assert.equal(new, err.created)
      assert.equal("5", store:account(new).limit) -- the created one's credit stands
    end)
  end

  it("a file account's open is refused after the create's write, before the create opens it", function()
    local acc, store = node()
    assert(acc:add(made("erin"))) -- written; its own open not yet made
    local a, err = store:open_account("Erin", "50", { file = true })
    assert.is_nil(a)
    assert.equal("name_created", err and err.code)
    assert(store:open_account("erin", "5")) -- the create's own open is not a file's
    assert.equal("5", store:account("erin").limit)
  end)

  it("a new account named as one the store keeps (another node's file account), in any case, is refused in the"
    .. " write", function()
    local acc, store = node()
    assert(store:open_account("zed", "10", { file = true }))
    local ok, err = acc:add(made("zed"))
    assert.is_nil(ok)
    assert.equal(409, err.status)
    assert.matches("kept by name", err.message, 1, true)
    ok, err = acc:add(made("ZED"))
    assert.is_nil(ok)
    assert.equal(409, err.status)
    assert.matches("differ in case only", err.message, 1, true)
    assert(acc:add(made("amy"))) -- a free name is taken
  end)
end)
