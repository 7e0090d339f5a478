-- A one-node journal is metered in one unit: its currency and the catalog that priced it
-- (each currency, and each catalog's credits, is its own money). A start whose config named
-- another price_provider in the same currency (evolink's credits read as apiinone's) replayed
-- every amount as the other money, since only each movement's currency was compared; a
-- top-up line in another currency was skipped, and the start's compaction then dropped it for
-- good; and a currency refused said only "entry in CNY, meter in credits", not what to do.
-- The journal's first line names its unit, and the replay refuses another, saying what to do.
local compact = require "kling.gateway.compact"
local fake_dict = require "spec.support.fake_dict"
local json = require "kling.json"
local shared = require "kling.money.stores.shared"

describe("kling.money.stores.shared: a journal metered in another unit", function()
  local function store(currency, price_provider)
    return shared.new { dict = fake_dict.new(), currency = currency, price_provider = price_provider }
  end

  local first = { op = "journal", version = 1, currency = "credits", price_provider = "evolink" }
  local reserve = { seq = 1, time_ms = 1, op = "reserve", amount = "5", currency = "credits", account = "alice",
    task_key = "gw1", task_id = "gw1" }
  local settle = { seq = 2, time_ms = 2, op = "settle", amount = "5", currency = "credits", account = "alice",
    task_key = "gw1", task_id = "861" }

  it("refuses a first line naming another catalog, saying what to do", function()
    local ok, err = store("credits", "apiinone"):restore { first, reserve, settle }
    assert.is_nil(ok)
    assert.equal("journal[1].price_provider", err.field)
    assert.matches("metered in credits priced by evolink, but this gateway meters in credits priced by apiinone",
      err.message, 1, true)
    assert.matches("Give the config the currency and price_provider the journal was metered in, or give it a"
      .. " new journal path to start afresh", err.message, 1, true)
  end)

  it("refuses a first line naming another currency", function()
    local ok, err = store("CNY", "kling"):restore { first }
    assert.is_nil(ok)
    assert.equal("journal[1].currency", err.field)
    assert.matches("metered in credits priced by evolink, but this gateway meters in CNY priced by kling",
      err.message, 1, true)
  end)

  it("replays a journal of its own unit, and one whose first line names none", function()
    assert.equal(2, store("credits", "evolink"):restore { first, reserve, settle })
    local s = store("credits", "evolink")
    assert.equal(2, s:restore { { op = "journal", version = 1 }, reserve, settle })
    assert.equal(5000000, s.dict:get("a:alice:spent"))
  end)

  it("refuses a movement in another currency, saying what to do", function()
    local ok, err = store("CNY", "kling"):restore { { op = "journal", version = 1 }, reserve }
    assert.is_nil(ok)
    assert.equal("journal[2].currency", err.field)
    assert.matches("metered in credits, but this gateway meters in CNY: its amounts are another money. Give",
      err.message, 1, true)
  end)

  it("refuses a top-up in another currency rather than leave it out", function()
    local topup = { seq = 1, time_ms = 1, op = "topup", topup_account = "alice", account = "alice", amount = "25",
      currency = "CNY" }
    local ok, err = store("USD", "apimodels"):restore { { op = "journal", version = 1 }, topup }
    assert.is_nil(ok)
    assert.equal("journal[2].currency", err.field)
  end)

  it("names the unit in a compacted journal's first line", function()
    local d = fake_dict.new()
    function d.get_keys(self)
      local keys = {}
      for k in pairs(self.t) do
        keys[#keys + 1] = k
      end
      return keys
    end
    d:set("seq", 2)
    local lines = compact.lines { ledger = d, tasks = d, currency = "credits", price_provider = "evolink",
      entries = {}, now_ms = 1000 }
    local head = json.decode(lines[1])
    assert.equal("credits", head.currency)
    assert.equal("evolink", head.price_provider)
    local ok, err = store("credits", "apiinone"):restore { head }
    assert.is_nil(ok)
    assert.equal("journal[1].price_provider", err.field)
  end)
end)
