-- kling.engine.timers: a min-heap whose pops come out in time order, after pushes and after keep.
local timers = require "kling.engine.timers"

local function drain(h)
  local out = {}
  while h:size() > 0 do
    local at, item, tok = h:pop()
    out[#out + 1] = { at, item, tok }
  end
  return out
end

local function sorted(out)
  for i = 2, #out do
    if out[i - 1][1] > out[i][1] then
      return false
    end
  end
  return true
end

describe("engine timers", function()
  it("pops every entry, earliest first, whatever the push order", function()
    local rng = 12345
    local function rand(n) -- a fixed sequence: the same case on every run
      rng = (rng * 1103515245 + 12345) % 2147483648
      return rng % n
    end
    for _ = 1, 50 do
      local h, n = timers.new(), 1 + rand(60)
      for i = 1, n do
        h:push(rand(40), "item" .. i, i)
      end
      local out = drain(h)
      assert.are.equal(n, #out)
      assert.is_true(sorted(out))
      assert.is_nil(h:pop())
    end
  end)

  it("keep drops the entries fn refuses and the rest still pop in order", function()
    local h = timers.new()
    for i = 1, 40 do
      h:push((i * 37) % 41, i, i % 3)
    end
    h:keep(function(item, tok, at)
      assert.are.equal(item % 3, tok)
      assert.are.equal((item * 37) % 41, at)
      return tok ~= 0
    end)
    local out = drain(h)
    assert.are.equal(27, #out)
    assert.is_true(sorted(out))
    for _, e in ipairs(out) do
      assert.are_not.equal(0, e[3])
    end
  end)

  it("peek is the earliest time, nil when empty", function()
    local h = timers.new()
    assert.is_nil(h:peek())
    h:push(5, "a", 1)
    h:push(2, "b", 2)
    assert.are.equal(2, h:peek())
  end)
end)
