-- A gateway's account names are one account's in any case (the config refuses Alice beside
-- alice, a sign-in and the file's checks take them so, the Redis store names each account in
-- <p>names). The one-node store's kept asked the exact name: a created ZED beside a dropped
-- file account zed was allowed, and putting zed back in the file was then refused at start.
local fake_dict = require "spec.support.fake_dict"
local fake_ngx = require "spec.support.fake_ngx"

local function store_over(d)
  return require("kling.money.stores.shared").new { dict = d or fake_dict.new(), currency = "CNY" }
end

describe("the one-node store keeps an account's name in any case", function()
  fake_ngx.suite(setup, teardown) -- the ngx the one-node store calls outside nginx

  it("an opened account is kept by its name in any case, and says the name it has", function()
    local s = store_over()
    assert(s:open_account("zed", "10"))
    assert.same({ true, "zed" }, { s:kept("zed") })
    assert.same({ true, "zed" }, { s:kept("ZED") })
    assert.same({ true, "zed" }, { s:kept("Zed") })
    assert.is_false((s:kept("amy")))
  end)

  it("after a restart's replay: an account only the journal names (dropped from the file) is kept in any case",
    function()
      local s = store_over()
      assert(s:restore {
        { seq = 1, time_ms = 1, op = "topup", topup_account = "zed", amount = "2", currency = "CNY" },
        { seq = 2, time_ms = 2, op = "reserve", account = "Yan", task_key = "t1", amount = "1", currency = "CNY" },
      })
      assert.same({ true, "zed" }, { s:kept("ZED") })
      assert.same({ true, "Yan" }, { s:kept("yan") })
    end)

  it("after a reload of a dict kept before names were (an upgrade by a reload): named from the journal", function()
    local d = fake_dict.new()
    d:set("seq", 2)
    d:set("a:zed:spent", 0)
    d:set("a:zed:topup", 2000000)
    local s = store_over(d)
    assert.same({ false, nil }, { s:kept("ZED") })
    assert(s:restore {
      { seq = 1, time_ms = 1, op = "topup", topup_account = "zed", amount = "2", currency = "CNY" },
    })
    assert.same({ true, "zed" }, { s:kept("ZED") })
  end)
end)

-- One node: an admin create racing a reload. The reload (nginx's master) checked its file
-- against the created accounts, and opened the file's accounts later; a worker's create
-- checked the store, then wrote the account. A create between the reload's check and its opens
-- (or a reload between a create's check and its write) left a file account erin and a created
-- erin: one balance, two clients. The master's check and opens, and a create's checks and
-- write, are now each one step under the lock of account writes.
describe("one node: an admin create racing a reload", function()
  fake_ngx.suite(setup, teardown) -- the ngx the one-node store calls outside nginx
  local accounts = require "kling.gateway.accounts"
  local config = require "kling.gateway.config"
  local ledgers = require "kling.money.ledger"

  local function cfg(file_accounts)
    return config.check { upstream = { base_url = "http://127.0.0.1:1", api_key = "upstream-key-1" },
      journal = "/tmp/j", accounts = file_accounts }
  end
  local ALICE = { name = "alice", api_key = "gw-alice-key-1", credit = "10" }
  local ERIN_FILE = { name = "erin", api_key = "gw-erin-file-1", credit = "50" }
  local ERIN_NEW = { name = "erin", api_key = "gw-erin-made-1", credit = "5" }

  -- The node: its dict and store, a worker's accounts (the running config: alice) and nginx's
  -- master's G at a reload (the new config: alice and erin).
  local function node()
    local d = fake_dict.new()
    local store = store_over(d)
    local journal = { append = function()
      return true
    end }
    local function kept(name)
      return store:kept(name)
    end
    local worker = accounts.new { cfg = cfg { ALICE }, dict = d, journal = journal, kept = kept }
    local G = { ledger_dict = d, cfg = cfg { ALICE, ERIN_FILE }, meter = assert(ledgers.new { store = store }) }
    G.accounts = accounts.new { cfg = G.cfg, dict = d, journal = journal, kept = kept }
    assert(store:open_account("alice", "10"))
    return d, store, worker, G
  end

  -- The worker's create as the admin API makes it: added, then opened.
  local function create(worker, store)
    local ok, err = worker:add(ERIN_NEW)
    if ok then
      assert(store:open_account("erin", ERIN_NEW.credit))
    end
    return ok, err
  end

  -- Whether the dict has a created erin and erin's balance is the file's (opened at 50).
  local function both(d, store)
    local a = store:account("erin")
    return d:get("cn:erin") ~= nil and a ~= nil and a.limit == "50"
  end

  it("a create while the reload checks and opens is refused (try again), and after it (erin is kept)", function()
    local d, store, worker, G = node()
    local during
    local open = G.meter.open_account
    G.meter.open_account = function(self, name, credit)
      if name == "erin" and not during then
        during = { create(worker, store) }
      end
      return open(self, name, credit)
    end
    assert(accounts.open_all(G, true))
    assert.is_nil(during[1])
    assert.equal(409, during[2].status)
    assert.matches("being created or changed", during[2].message, 1, true)
    local ok, err = create(worker, store)
    assert.is_nil(ok)
    assert.equal(409, err.status)
    assert.equal("name", err.field)
    assert.is_false(both(d, store))
  end)

  it("a reload while a create checks and writes waits for it, then refuses the file that takes its name",
    function()
      local d, store, worker, G = node()
      local reload
      local safe_set = d.safe_set
      d.safe_set = function(self, k, v, ...)
        if k == "cn:erin" and not reload then -- the create checked the store, and writes now
          reload = { accounts.open_all(G, true) }
        end
        return safe_set(self, k, v, ...)
      end
      assert(create(worker, store))
      -- the reload found the lock held all along (here the create never ends while it waits)
      assert.is_nil(reload[1])
      assert.matches("being created or changed", reload[2], 1, true)
      d.safe_set = safe_set
      local ok, err = accounts.open_all(G, true) -- the reload again
      assert.is_nil(ok)
      assert.matches("erin", err, 1, true)
      assert.is_false(both(d, store))
      assert.equal("5", store:account("erin").limit)
    end)
end)
