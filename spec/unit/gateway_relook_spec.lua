-- When a kept hold's task is looked at again upstream (kling.gateway.relook): a few looks,
-- spread over the window both the record and the upstream keep it, none past it.
local relook = require "kling.gateway.relook"

describe("kling.gateway.relook", function()
  it("the window is retention_days, at most the upstream's 30 days", function()
    assert.are.equal(86400, relook.window_s { cfg = { retention_days = 1 } })
    assert.are.equal(30 * 86400, relook.window_s { cfg = { retention_days = 365 } })
  end)

  it("five looks at most, at their shares of the window after the end", function()
    local window = 2560 -- s: the first look 10 s after the end, the last 2,240 s after
    assert.are.equal(0, relook.due(1000, window, 1000 + 9999))
    assert.are.equal(1, relook.due(1000, window, 1000 + 10000))
    assert.are.equal(2, relook.due(1000, window, 1000 + 80000))
    assert.are.equal(4, relook.due(1000, window, 1000 + 1280000))
    assert.are.equal(5, relook.due(1000, window, 1000 + 2240000))
    assert.are.equal(5, relook.due(1000, window, 1000 + 100 * 2560000)) -- never a sixth
  end)
end)
