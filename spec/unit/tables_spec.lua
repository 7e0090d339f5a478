-- kling.tables: copies that leave the caller's table as it was.
local tables = require "kling.tables"

describe("kling.tables", function()
  it("clone copies keys and values, not the metatable", function()
    local mt = {}
    local t = setmetatable({ 1, 2, a = "x" }, mt)
    local c = tables.clone(t)
    assert.are_not.equal(t, c)
    assert.are.same({ 1, 2, a = "x" }, c)
    assert.is_nil(getmetatable(c))
  end)

  it("without drops one key from a copy and leaves the original whole", function()
    local t = { prompt = "p", estimate = true, n = 1 }
    local c = tables.without(t, "estimate")
    assert.are.same({ prompt = "p", n = 1 }, c)
    assert.are.same({ prompt = "p", estimate = true, n = 1 }, t)
    assert.are.same(t, tables.without(t, "absent"))
  end)
end)
