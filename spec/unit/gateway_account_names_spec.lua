-- A gateway's account names are one account's in any case (the config refuses Alice beside
-- alice, a sign-in and the file's checks take them so, the Redis store names each account in
-- <p>names). The one-node store's kept asked the exact name: a created ZED beside a dropped
-- file account zed was allowed, and putting zed back in the file was then refused at start.
local fake_dict = require "spec.support.fake_dict"

-- The ngx the one-node store calls outside nginx, for the describe block it is called in.
local function with_fake_ngx()
  local saved
  setup(function()
    saved = rawget(_G, "ngx")
    _G.ngx = { now = os.time, sleep = function() end, log = function() end, ERR = 4, WARN = 5 } -- luacheck: ignore 122
  end)
  teardown(function()
    _G.ngx = saved -- luacheck: ignore 122
  end)
end

local function store_over(d)
  return require("kling.money.stores.shared").new { dict = d or fake_dict.new(), currency = "CNY" }
end

describe("the one-node store keeps an account's name in any case", function()
  with_fake_ngx()

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
