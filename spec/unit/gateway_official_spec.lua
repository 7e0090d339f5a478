local official = require "kling.gateway.official"

describe("kling.gateway.official", function()
  it("issue 12.1: durations written as decimal strings become numbers", function()
    local req = assert(official.to_canonical { prompt = "p", duration = "10",
      multi_prompt = { { prompt = "a", duration = "3" } } })
    assert.equal(10, req.duration)
    assert.equal(3, req.multi_prompt[1].duration)
  end)

  -- Lua's tonumber also reads hex, exponents and padded strings: those stay strings, so the
  -- request's own check refuses them naming the field instead of pricing a guess.
  it("issue 12.1: hex, exponent, signed or padded duration strings are not read as numbers", function()
    for _, s in ipairs { "0x5", "5e0", " 5", "5 ", "+5", "-5", "5.0", "0x0A", "inf", "nan" } do
      local req = assert(official.to_canonical { prompt = "p", duration = s,
        multi_prompt = { { prompt = "a", duration = s } } })
      assert.equal(s, req.duration, s)
      assert.equal(s, req.multi_prompt[1].duration, s)
    end
  end)
end)
