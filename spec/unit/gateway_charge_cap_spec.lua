-- The gateway's charge for a task's end (kling.lifecycle.effects meter_charge) is never more
-- than its hold: an upstream answer that says more was delivered than was asked (a 10 s video
-- for a 5 s request, 9 images for n = 1) was settled at its price, past the hold, and took the
-- account past its balance (credit 2.5, held 2.5, charged 5: balance -2.5).
local billing = require "kling.billing"
local effects = require "kling.lifecycle.effects"

-- A meter whose hold of every key is `held` micros (nil: none), or that cannot say (err).
local function meter(held, err)
  return { hold = function()
    if err then
      return nil, nil, err
    end
    return held and "bob" or nil, held
  end }
end

local V5 = { provider = "kling", endpoint = "videos/text2video", method = "POST", model = "kling-v2-6", mode = "pro",
  duration = 5 }
local SETTLE = { type = "settle", key = "gw1" }

describe("gateway charge at a task's end", function()
  local held = billing.estimate(V5).micros

  it("is the price of what was delivered when that is within the hold", function()
    local m, why = effects.meter_charge(meter(held), SETTLE, V5, { count = 1, duration = "5.04" })
    assert.equal(held, m)
    assert.is_nil(why)
  end)

  it("is at most the hold when the answer says more was delivered than was asked", function()
    assert.is_true(billing.settle(V5, { count = 1, duration = "10" }).micros > held)
    local m, why = effects.meter_charge(meter(held), SETTLE, V5, { count = 1, duration = "10" })
    assert.equal(held, m)
    assert.matches("more than the 2.5 held", why, 1, true)
    local img = { provider = "kling", endpoint = "images/generations", method = "POST", model = "kling-v1", n = 1 }
    local one = billing.estimate(img).micros
    assert.equal(one, (effects.meter_charge(meter(one), SETTLE, img, { count = 9 })))
  end)

  it("waits when the store cannot say what is held, rather than charge uncapped", function()
    local m, why = effects.meter_charge(meter(nil, "connection refused"), SETTLE, V5, { count = 1, duration = "10" })
    assert.is_nil(m)
    assert.matches("connection refused", why, 1, true)
  end)

  it("is the price when there is no hold (nothing to cap against), and 0 for a release", function()
    assert.equal(billing.settle(V5, { count = 1, duration = "10" }).micros,
      (effects.meter_charge(meter(nil), SETTLE, V5, { count = 1, duration = "10" })))
    assert.equal(0, effects.meter_charge(meter(held), { type = "release", key = "gw1" }, V5, { count = 1 }))
  end)
end)
