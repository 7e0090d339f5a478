local accounts = require "kling.gateway.accounts"

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
  local config = require "kling.gateway.config"
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
