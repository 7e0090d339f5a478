local accounts = require "kling.gateway.accounts"
local config = require "kling.gateway.config"

describe("kling.gateway.accounts.latest", function()
  it("gives each created account as last changed, in the order they were created", function()
    local got = accounts.latest {
      { op = "account", created = { name = "carol", api_key = "k-carol-1" } },
      { op = "reserve", account = "carol" },
      { op = "account", created = { name = "dave", api_key = "k-dave-1" } },
      { op = "account", changed = { name = "carol", api_key = "k-carol-2", suspended = true } },
      { op = "account", changed = { name = "carol", api_key = "k-carol-3" } },
    }
    assert.same({ { name = "carol", api_key = "k-carol-3" }, { name = "dave", api_key = "k-dave-1" } }, got)
  end)

  it("ignores a change of an account never created, a second creation, and lines that are not accounts", function()
    local got = accounts.latest {
      { op = "account", changed = { name = "ghost", api_key = "k-ghost" } },
      { op = "account", created = { name = "erin", api_key = "k-erin-1" } },
      { op = "account", created = { name = "erin", api_key = "k-erin-other" } },
      { op = "account", created = "not a table" },
      { op = "account", changed = { api_key = "no name" } },
      { op = "topup", account = "erin" },
    }
    assert.same({ { name = "erin", api_key = "k-erin-1" } }, got)
  end)
end)

-- A created account the config file contradicts (a reload added a file account of its name, or
-- one using its key or secret) signs nothing in: balances are kept by name, so its old key
-- signed in as the file's new account and spent that client's credit.
describe("kling.gateway.accounts sign-in of created accounts", function()
  local json = require "kling.json"
  local saved_ngx

  local function dict(created)
    local t = {}
    for _, a in ipairs(created) do
      local s = json.encode(a)
      t["cn:" .. a.name] = s
      if a.api_key then
        t["ck:" .. a.api_key] = s
      end
      if a.access_key then
        t["ca:" .. a.access_key] = s
      end
    end
    return { get = function(_, k)
      return t[k], 0
    end }
  end

  local function cfg(file_accounts)
    return config.check { upstream = { base_url = "http://127.0.0.1:1", api_key = "upstream-key-1" },
      journal = "/tmp/j", accounts = file_accounts }
  end

  setup(function()
    saved_ngx = _G.ngx
    _G.ngx = { WARN = 5, log = function() end, now = function()
      return 0
    end }
  end)
  teardown(function()
    _G.ngx = saved_ngx
  end)

  local CREATED = { name = "erin", api_key = "erin-created-key", credit = "1" }
  local SIGNER = { name = "fay", access_key = "fay-ak", secret_key = "fay-secret-1", credit = "1" }

  it("signs a created account in while the file does not contradict it", function()
    local a = accounts.new { cfg = cfg { { name = "bob", api_key = "bob-file-key", credit = "1" } },
      dict = dict { CREATED, SIGNER } }
    assert.equal("erin", a:by_key("erin-created-key").name)
    assert.equal("fay", a:by_access("fay-ak").name)
  end)

  it("refuses its keys once the file has an account of its name", function()
    local a = accounts.new { cfg = cfg { { name = "erin", api_key = "erin-file-key", credit = "100" } },
      dict = dict { CREATED } }
    assert.is_nil(a:by_key("erin-created-key"))
    assert.equal("erin-file-key", a:by_key("erin-file-key").api_key)
    assert.equal("erin-file-key", a:get("erin").api_key)
  end)

  it("refuses its keys once the file uses one of its keys or secrets", function()
    local a = accounts.new { cfg = cfg { { name = "gus", api_key = "fay-secret-1", credit = "1" } },
      dict = dict { SIGNER } }
    assert.is_nil(a:by_access("fay-ak"))
  end)
end)

-- A config file whose account takes the name or a key of an account the admin API created is
-- refused at a start and at a reload (kling.gateway.accounts.file_clash): it took the created
-- account over silently, one way after a reload (the created copy still signed its old key in,
-- suspended, beside the file's) and another after a restart (the created account gone, its key
-- another account's, whose balance its client then spent).

describe("kling.gateway.accounts.file_clash", function()
  local function cfg(accts)
    return config.check { upstream = { provider = "kling", base_url = "http://127.0.0.1:1", api_key = "upstream-key" },
      journal = "/tmp/kling-file-clash-spec.jsonl", admin_key = "admin-key-0123456789", accounts = accts }
  end
  local alice = { name = "alice", api_key = "key-alice-0123456789", credit = "1" }
  local carol = { name = "carol", api_key = "key-carol-0123456789", access_key = "ak-carol",
    secret_key = "sk-carol-0123456789", credit = "20", suspended = true }

  it("takes a file whose accounts share nothing with the created ones", function()
    assert.is_nil(accounts.file_clash(cfg { alice }, { carol }))
    assert.is_nil(accounts.file_clash(cfg { alice }, {}))
  end)

  it("refuses a file account named as a created one, in any case, naming both", function()
    for _, name in ipairs { "carol", "Carol" } do
      local why = accounts.file_clash(cfg { alice, { name = name, api_key = "key-new-0123456789", credit = "5" } },
        { carol })
      assert.matches("accounts[2].name: " .. name .. " is the name of account carol, which the admin API created",
        why, 1, true)
    end
  end)

  it("refuses a created account's key or secret held anywhere in the file, naming the role", function()
    local why = accounts.file_clash(cfg { alice, { name = "zed", api_key = carol.api_key, credit = "5" } }, { carol })
    assert.matches("accounts[2].api_key: is account carol's api_key, which the admin API created", why, 1, true)
    why = accounts.file_clash(cfg { alice, { name = "zed", api_key = carol.secret_key, credit = "5" } }, { carol })
    assert.matches("accounts[2].api_key: is account carol's secret_key", why, 1, true)
    local c = cfg { alice }
    why = accounts.file_clash(c, { { name = "dave", api_key = "admin-key-0123456789" } })
    assert.matches("admin_key: is account dave's api_key", why, 1, true)
  end)

  it("reads the created accounts a node's shared memory holds", function()
    local store = { ["cn:carol"] = require("kling.json").encode(carol), ["ck:x"] = "{}", seq = 4 }
    local dict = { get_keys = function()
      local out = {}
      for k in pairs(store) do
        out[#out + 1] = k
      end
      return out
    end, get = function(_, k) return store[k] end }
    local found = accounts.in_dict(dict)
    assert.equal(1, #found)
    assert.equal("carol", found[1].name)
  end)
end)

describe("kling.gateway.admin.amount_of", function()
  local admin = require "kling.gateway.admin"
  local json = require "kling.json"

  -- {"credit": 50} and {} were both answered "is required, not negative".
  it("says what was sent when a top-up's or a credit's amount is no decimal string", function()
    local cases = {
      { 50, "got the number 50: write it as a string, \"50\"" }, { nil, "missing" }, { json.null, "missing" },
      { { 1 }, "got a JSON object or array" }, { true, "got a boolean" }, { "-1", "negative" },
    }
    for _, c in ipairs(cases) do
      local m, why = admin.amount_of(c[1])
      assert.is_nil(m)
      assert.matches(c[2], why, 1, true)
    end
    assert.equal(25500000, admin.amount_of("25.5"))
  end)
end)

describe("kling.gateway.accounts in_redis", function()
  -- With a Redis store a node cannot read Redis at start: its first worker says a clash in the
  -- error log, from the created accounts it reads there.
  it("reads the created accounts of the store's hash, once each", function()
    local json = require "kling.json"
    local carol = { name = "carol", api_key = "key-carol-0123456789" }
    local flat = { "cn:carol", json.encode(carol), "ck:key-carol-0123456789", json.encode(carol), "cn:bad", "{" }
    local red = { hgetall = function(_, key)
      assert.equal("kgw:accounts", key)
      return flat
    end }
    local r = { prefix = "kgw:", with = function(_, fn) return fn(red) end }
    local a = accounts.new { cfg = { accounts = {}, by_key = {}, by_access = {} }, dict = {}, redis = r }
    local got = assert(a:in_redis())
    assert.same({ carol }, got)
    r.with = function() return nil, "redis down" end
    local none, err = a:in_redis()
    assert.is_nil(none)
    assert.equal("redis down", err)
  end)
end)

describe("kling.gateway.accounts file_taken", function()
  -- With Redis, a file account named as a created one is found by the first worker's check of
  -- the file at each start and reload (check_file), and a top-up sent to that name is refused
  -- (the store's balance of it is the created account's). Before that check (the reload's
  -- master forgets the last one; Redis not answering it) the name was "not taken", and a
  -- top-up meant for the file's client credited the created one: it cannot be said yet.
  local fake_dict = require "spec.support.fake_dict"
  local function with(file_taken)
    local d = fake_dict.new()
    d:set(accounts.FILE_TAKEN, file_taken)
    local erin = { name = "erin", api_key = "gw-erin-file-key" }
    return accounts.new { cfg = { accounts = { erin }, by_key = { [erin.api_key] = erin }, by_access = {},
      by_name = { erin = erin } }, dict = d, redis = {} }
  end

  it("cannot say before the file was checked at this start or reload", function()
    local taken, why = with(nil):file_taken("erin")
    assert.is_nil(taken)
    assert.matches("not yet checked", why, 1, true)
  end)

  it("says taken or not once checked", function()
    assert.is_true(with("\nerin\n"):file_taken("erin"))
    assert.is_false(with(""):file_taken("erin"))
  end)

  -- Every file account answered 503 at each reload (and start) until the first worker had
  -- opened them all in Redis. One the store opened as the file's before (no created account
  -- has its name, nor can take it since) signs in, and takes top-ups, meanwhile; the others wait.
  it("lets a file account the store opened as the file's sign in before the whole file is checked", function()
    local a = with(nil)
    local none, why = a:by_key("gw-erin-file-key")
    assert.is_nil(none)
    assert.matches("erin is not yet checked", why, 1, true)
    assert.is_nil((a:file_taken("erin")))
    assert(a:file_opened("erin"))
    assert.equal("erin", a:by_key("gw-erin-file-key").name)
    assert.is_false(a:file_taken("erin"))
    a.dict:set(accounts.FILE_TAKEN, "\nerin\n") -- the check, once done, is the word
    local saved = rawget(_G, "ngx")
    _G.ngx = { log = function() end, ERR = 4 } -- luacheck: ignore 122 (its refusal is logged)
    local signed = a:by_key("gw-erin-file-key")
    _G.ngx = saved -- luacheck: ignore 122
    assert.is_nil(signed)
  end)
end)

-- An account name's case has one rule, the stores' (kling.money.stores.memory name_fold):
-- accounts.lua and the config folded names with :lower() of their own, so that a change of
-- the rule would have left the file's checks and the admin API's taking two names for one
-- account that the stores keep as one, or the other way round. Checked by giving the rule
-- another fold ('-' as '_', a rule the stores could have) and seeing every check follow it.
describe("kling.gateway.accounts and config fold a name by the stores' one rule", function()
  local memory = require "kling.money.stores.memory"
  local fold
  setup(function()
    fold = memory.name_fold
    memory.name_fold = function(name)
      return (fold(name):gsub("%-", "_"))
    end
  end)
  teardown(function()
    memory.name_fold = fold
  end)
  local function doc(accts)
    return { upstream = { provider = "kling", base_url = "http://127.0.0.1:1", api_key = "upstream-key" },
      journal = "/tmp/kling-fold-spec.jsonl", admin_key = "admin-key-0123456789", accounts = accts }
  end
  local a_b = { name = "a-b", api_key = "key-a-b-0123456789", credit = "1" }

  it("the config refuses two names the rule folds to one", function()
    local ok, err = pcall(config.check, doc { a_b, { name = "A_b", api_key = "key-a_b-0123456789", credit = "1" } })
    assert.is_false(ok)
    assert.matches("accounts[2].name: 'A_b' is already accounts[1]'s", err, 1, true)
  end)

  it("file_clash finds a created account the rule folds to a file account's name", function()
    local why = accounts.file_clash(config.check(doc { a_b }), { { name = "A_b", api_key = "key-created-012345" } })
    assert.matches("accounts[1].name: a-b is the name of account A_b", why, 1, true)
  end)

  it("a created account the rule folds to a file account's name does not sign in", function()
    local saved = rawget(_G, "ngx")
    _G.ngx = { WARN = 5, log = function() end, now = function() -- luacheck: ignore 122
      return 0
    end }
    local created = require("kling.json").encode { name = "A_b", api_key = "key-created-012345", credit = "1" }
    local t = { ["cn:A_b"] = created, ["ck:key-created-012345"] = created }
    local a = accounts.new { cfg = config.check(doc { a_b }), dict = { get = function(_, k)
      return t[k], 0
    end } }
    local signed = a:by_key("key-created-012345")
    _G.ngx = saved -- luacheck: ignore 122
    assert.is_nil(signed)
  end)
end)

-- PATCH /gateway/admin/accounts/<name> setting api_key to the account's own access_key was
-- refused naming access_key, the field the operator had not touched: a clash within the
-- account is named at the field the change sets.
describe("kling.gateway.accounts change: a key clashing with the account's own", function()
  local fake_dict = require "spec.support.fake_dict"
  local json = require "kling.json"
  local saved
  setup(function()
    saved = rawget(_G, "ngx")
    _G.ngx = { WARN = 5, ERR = 4, log = function() end, now = os.time, sleep = function() end, -- luacheck: ignore 122
      worker = { pid = function()
        return 1
      end } }
  end)
  teardown(function()
    _G.ngx = saved -- luacheck: ignore 122
  end)

  it("is refused naming the field set (api_key), not the one kept (access_key)", function()
    local carol = { name = "carol", access_key = "ak-carol-01", secret_key = "sk-carol-0123456789", credit = "1" }
    local d = fake_dict.new()
    local text = json.encode(carol)
    d:set("cn:carol", text)
    d:set("ca:" .. carol.access_key, text)
    local a = accounts.new { cfg = config.check { upstream = { provider = "kling", base_url = "http://127.0.0.1:1",
      api_key = "upstream-key" }, journal = "/tmp/kling-change-spec.jsonl",
      accounts = { { name = "bob", api_key = "key-bob-0123456789", credit = "1" } } }, dict = d }
    assert.equal("carol", a:get("carol").name)
    local changed, err = a:change("carol", function(cur)
      local t = {}
      for k, v in pairs(cur) do
        t[k] = v
      end
      t.api_key = cur.access_key
      return config.account(t, "account")
    end)
    assert.is_nil(changed)
    assert.equal(409, err.status)
    assert.equal("api_key", err.field)
    assert.matches("^api_key: is already used as access_key", err.message)
  end)
end)
