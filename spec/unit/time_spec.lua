-- kling.core clocks: integer milliseconds, a monotonic clock that sleep_ms advances, a
-- wall clock that agrees with os.time(), and sleep_ms's argument rules.
local core = require "kling.core"

describe("kling.core time", function()
  it("now_ms is a monotonic integer clock", function()
    local a = core.now_ms()
    local b = core.now_ms()
    assert.equal("integer", math.type(a))
    assert.is_true(b >= a)
  end)

  it("wall_ms and wall_s agree with os.time()", function()
    local ms, s, t = core.wall_ms(), core.wall_s(), os.time()
    assert.equal("integer", math.type(ms))
    assert.equal("integer", math.type(s))
    assert.is_true(math.abs(s - t) <= 1)
    assert.is_true(math.abs(ms // 1000 - s) <= 1)
  end)

  it("sleep_ms sleeps at least the time asked, and not much more", function()
    local t0 = core.now_ms()
    core.sleep_ms(120)
    local took = core.now_ms() - t0
    assert.is_true(took >= 120, "took " .. took)
    assert.is_true(took < 1000, "took " .. took)
    t0 = core.now_ms()
    core.sleep_ms(0)
    assert.is_true(core.now_ms() - t0 < 100)
  end)

  it("sleep_ms rejects what is not a sane millisecond count", function()
    assert.has_error(function() core.sleep_ms(-1) end)
    assert.has_error(function() core.sleep_ms(1.5) end)
    assert.has_error(function() core.sleep_ms("soon") end)
    assert.has_error(function() core.sleep_ms() end)
    assert.has_error(function() core.sleep_ms(86400001) end)
    local ok, err = pcall(core.sleep_ms, -5)
    assert.is_false(ok)
    assert.matches("ms must be between 0 and 86400000", err)
  end)
end)
