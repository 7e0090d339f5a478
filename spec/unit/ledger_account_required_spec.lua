-- kling.ledger over kling.money.stores.shared (README: OpenResty / nginx) holds per account:
-- a reserve without {account =} (or with it misspelt, {acount = ...}) raised inside nginx from
-- the store ("attempt to concatenate local 'account' (a nil value)"). It is refused, naming the
-- field.
local fake_dict = require "spec.support.fake_dict"

describe("a ledger over the shared store", function()
  require("spec.support.fake_ngx").suite(setup, teardown)

  local function ledger()
    local store = require("kling.money.stores.shared").new { dict = fake_dict.new(), currency = "CNY" }
    local l = assert(require("kling").ledger { store = store })
    assert(l:open_account("carol", "10"))
    return l
  end

  it("refuses a reserve that names no account, by field", function()
    local l = ledger()
    for _, info in ipairs { {}, { acount = "carol" } } do
      local e, err = l:reserve("t1", 1000000, info)
      assert.is_nil(e)
      assert.equals("validation", err.kind)
      assert.equals("account", err.field)
      assert.matches("is required", err.message, 1, true)
    end
    local e, err = l:reserve("t2", 1000000)
    assert.is_nil(e)
    assert.equals("account", err.field)
    assert.equals(0, l:account("carol").reserved_micros)
  end)

  it("holds one that names it", function()
    local l = ledger()
    assert.is_table((l:reserve("t1", 1000000, { account = "carol" })))
    assert.equals(1000000, l:account("carol").reserved_micros)
  end)
end)
