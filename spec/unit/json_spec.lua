-- kling.json: integers kept integers, empty arrays kept arrays, canonical text for hashes,
-- and settings that stay the module's own.
local json = require "kling.json"

describe("kling.json", function()
  it("decodes integral numbers as integers and never raises on bad text", function()
    local v = assert(json.decode('{"id": 1700000000000, "x": 1.5}'))
    assert.are.equal("integer", math.type(v.id))
    assert.are.equal(1.5, v.x)
    local bad, err = json.decode("{\"a\": ")
    assert.is_nil(bad)
    assert.is_string(err)
    assert.is_nil((json.decode(nil)))
  end)

  it("encodes a marked empty table as an array, also nested", function()
    assert.are.equal("[]", json.encode(json.array {}))
    assert.are.equal('{"a":[]}', json.encode { a = json.array {} })
  end)

  it("quote writes any string as a JSON string that decodes to it", function()
    for _, s in ipairs { "", "kling-v1", "videos/text2video", 'a "quoted" \\ word', "line\nbreak\0nul\31",
      "caf\195\169" } do
      local text = json.quote(s)
      assert.equals('"', text:sub(1, 1))
      assert.equals('"', text:sub(-1))
      assert.is_nil(text:find("[%z\1-\31]"))
      assert.equals(s, json.decode(text))
    end
  end)

  it("canonical text does not depend on key order or on 2.0 against 2", function()
    local a, b = { z = 1, a = { 2.0, { y = 1, x = 2 } } }, { a = { 2, { x = 2, y = 1 } }, z = 1 }
    assert.are.equal(json.canonical(a), json.canonical(b))
    assert.are.equal('{"a":[2,{"x":2,"y":1}],"z":1}', json.canonical(a))
    assert.are.equal("[]", json.canonical(json.array {}))
  end)

  -- Inside nginx other code shares the Lua state's cjson: configuring the module itself
  -- (sparse arrays, precision) would change how that code encodes.
  it("keeps its cjson settings to itself: the process's cjson.safe keeps its defaults", function()
    local shared = require "cjson.safe"
    local sparse = { [1] = 1, [40] = 2 }
    assert.is_string(json.encode(sparse)) -- ours turns an excessively sparse array into an object
    local text, err = shared.encode(sparse)
    assert.is_nil(text)
    assert.matches("sparse", err)
  end)
end)
