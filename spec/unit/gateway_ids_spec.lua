-- The ids the gateway shows its clients are random: a counter in them let one client count every
-- other client's creates and connections between two of its own (an attacker review).
local ids = require "kling.gateway.ids"

describe("kling.gateway.ids", function()
  it("task ids are gw and 24 hex digits, and 20,000 of them are all different", function()
    local seen, n = {}, 0
    for _ = 1, 20000 do
      local id = ids.task()
      assert.matches("^gw%x+$", id)
      assert.are.equal(26, #id)
      if not seen[id] then
        seen[id], n = true, n + 1
      end
    end
    assert.are.equal(20000, n)
  end)

  it("request ids are 20 hex digits, never one after another as numbers", function()
    local prev, steps = nil, {}
    for _ = 1, 1000 do
      local id = ids.request()
      assert.matches("^%x+$", id)
      assert.are.equal(20, #id)
      if prev then
        steps[tonumber(id:sub(-6), 16) - tonumber(prev:sub(-6), 16)] = true
      end
      prev = id
    end
    local distinct = 0
    for _ in pairs(steps) do
      distinct = distinct + 1
    end
    assert.is_true(distinct > 900, distinct) -- a counter would step by one each time
  end)

  it("reset empties the buffer: a worker draws its own bytes, never its master's (forked) buffer", function()
    local core = require "kling.core"
    local real, draws = core.random_hex, 0
    core.random_hex = function(n)
      draws = draws + 1
      return real(n)
    end
    ids.random(8)
    local before = draws
    ids.random(8) -- from the buffer
    local same = draws - before
    ids.reset() -- a worker starting (init_worker)
    ids.random(8)
    local after = draws - before - same
    core.random_hex = real
    assert.are.equal(0, same)
    assert.are.equal(1, after)
  end)
end)
