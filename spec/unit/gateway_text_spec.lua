-- The texts a create writes, built with the part that differs between creates (the task id)
-- last: OpenResty's LuaJIT hashes a long string from its first and last 8 bytes and 16
-- samples, so records that differ only in their id made every new one walk a long hash chain
-- (issue 12's speed work; bench/gateway/README.md).
local json = require "kling.json"
local text = require "kling.gateway.text"
local shared = require "kling.money.stores.shared"

local function same(a, b)
  assert.same(json.decode(json.encode(a)), json.decode(b))
end

describe("kling.gateway.text", function()
  local rec = {
    id = "gw5cbd1e36ca5767a400003691", account = "bench", endpoint = "videos/text2video", status = "queued",
    state = "creating", created_at = 1796311460803, updated_at = 1796311460804, quote = "1.25",
    external_task_id = 'mine "1"\n\\ é', callback_url = "https://example.com/cb?a=1&b=2",
    request = { model = "kling-v1", duration = 5, mode = "std", prompt = "a boat", sound = false,
      multi_prompt = { { prompt = "one", duration = 2 } }, image_list = json.array {} },
  }

  it("issue 12.5: a create's record text decodes to the record and ends with its id", function()
    local s = assert(text.record(rec))
    same(rec, s)
    assert.equal('"id":"' .. rec.id .. '"}', s:sub(-#rec.id - 8))
    assert.truthy(s:find('"image_list":[]', 1, true), s) -- an empty array stays an array
  end)

  it("issue 12.5: odd values and keys are encoded as kling.json encodes them", function()
    for _, r in ipairs {
      { id = "gw1", n = 0.5, big = 2 ^ 60, neg = -3, t = true, name = "tab\there", u = "漢字" },
      { id = "gw2" },
      { id = "gw3", ["not a name"] = 1, created_at = 5 },
      { id = 7, x = 1 }, -- an id that is not a string: kling.json as a whole
      { id = "gw4", upstream_id = 'up "q"', list_n = 3, callback_url = "https://x/cb?a=b&c=d" },
    } do
      same(r, assert(text.record(r)))
    end
  end)

  it("issue 12: a create's publish reuses the part of its record that did not change (text.stable)", function()
    local r = json.decode(json.encode(rec))
    local stable = assert(text.stable(r))
    -- the same record either way (as JSON: the order of an object's keys is pairs', which Lua
    -- 5.4 seeds anew in each process)
    same(r, assert(text.record(r, stable)))
    -- what a create's publish changes: its upstream id, status, state, time and list number
    r.upstream_id, r.status, r.state, r.updated_at, r.list_n = "8617963225", "submitted", "active", r.updated_at + 9, 7
    local again = assert(text.record(r, stable))
    same(r, again)
    assert.are.same(json.decode(assert(text.record(r))), json.decode(again))
    assert.equal('"id":"' .. r.id .. '"}', again:sub(-#r.id - 8))
    for _, k in ipairs { "id", "status", "state", "upstream_id", "list_n", "created_at", "external_task_id" } do
      assert.falsy(stable:find('"' .. k .. '"', 1, true), k)
    end
    assert.equal("", assert(text.stable({ id = "gw1", status = "queued" })))
    same({ id = "gw1", status = "queued" }, assert(text.record({ id = "gw1", status = "queued" }, "")))
  end)

  it("issue 12.5: the provider's body carries the gateway's id last, wherever the provider puts it", function()
    local body = { model_name = "kling-v1", duration = "5", external_task_id = "gwabc00000001", prompt = "x" }
    local s = assert(text.body(body, "gwabc00000001"))
    same(body, s)
    assert.equal('"external_task_id":"gwabc00000001"}', s:sub(-35))
    same({ prompt = "x" }, assert(text.body({ prompt = "x" }, "gwabc")))
    same({ prompt = "x" }, assert(text.body({ prompt = "x" }, nil)))
  end)
end)

describe("kling.money.stores.shared journal_line", function()
  it("issue 12.5: a reservation's journal line is the entry and its record, the record last", function()
    local rec_s = assert(text.record({ id = "gwabc00000001", state = "creating" }))
    local e = { seq = 12, time_ms = 1796311460803, op = "reserve", task_key = "gwabc00000001",
      task_id = "gwabc00000001", amount = "1.5", currency = "CNY", account = "alice.b-c" }
    local line = assert(shared.journal_line(e, rec_s))
    local back = json.decode(line)
    assert.same(json.decode(rec_s), back.record)
    back.record = nil
    assert.same(e, back)
    assert.equal(rec_s .. "}", line:sub(-#rec_s - 1))
  end)

  it("issue 12.5: strings that need escaping are escaped, a settle line keeps its reserved amount", function()
    local e = { seq = 1, time_ms = 2, op = "settle", task_key = 'k"\n', task_id = "upstream id é",
      amount = "0", currency = "CNY", account = "a", reserved_amount = "1" }
    assert.same(e, json.decode(assert(shared.journal_line(e))))
  end)
end)
