-- A one-node account dropped from the config file whose tasks all ended at no charge (failed
-- upstream: spent 0, no top-ups) kept its task records for retention_days, yet its compaction
-- wrote no line of its balance (only accounts with spend or top-ups): after the next start
-- the store kept nothing of its name (kling.money.stores.shared kept), and the admin API gave
-- that name to a new account, which listed and read the old account's tasks and inherited its
-- failures of the day (max_failed_daily). Its balance line is kept while it has task records.
local compact = require "kling.gateway.compact"
local fake_dict = require "spec.support.fake_dict"
local json = require "kling.json"

describe("kling.gateway.compact: an account with tasks and nothing spent", function()
  local function dict(t)
    local d = fake_dict.new()
    for k, v in pairs(t) do
      d:set(k, v)
    end
    function d.get_keys(self)
      local keys = {}
      for k in pairs(self.t) do
        keys[#keys + 1] = k
      end
      return keys
    end
    return d
  end

  local function balance_of(lines, name)
    for _, l in ipairs(lines) do
      local e = json.decode(l)
      if e.op == "balance" and e.account == name then
        return e
      end
    end
  end

  it("keeps its balance line while a record of its is kept, and not once none is", function()
    local failed = json.encode { id = "gw1", account = "zoe", endpoint = "videos/text2video", status = "failed",
      state = "done", final = true, charge = "0", created_at = 1, updated_at = 2, list_n = 1 }
    local ledger = dict { ["a:zoe:spent"] = 0, ["a:zoe:reserved"] = 0, ["a:bob:spent"] = 0, seq = 3 }
    local lines = compact.lines { ledger = ledger, tasks = dict { ["f:gw1"] = failed }, currency = "CNY",
      entries = {}, now_ms = 1000 }
    local b = balance_of(lines, "zoe")
    assert.is_table(b)
    assert.equal("0", b.spent)
    assert.is_nil(balance_of(lines, "bob")) -- no spend, no top-up, no task: nothing to keep
  end)
end)
