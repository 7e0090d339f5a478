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

  -- Under LuaJIT a short string that needs no escaping is quoted by a loop of the module's own,
  -- not by cjson: loaded here as under LuaJIT (a `jit` global), it must write every string as
  -- cjson does, byte for byte.
  it("quote writes what cjson writes, on the path taken under LuaJIT too", function()
    local saved_jit, saved_mod = rawget(_G, "jit"), package.loaded["kling.json"]
    rawset(_G, "jit", rawget(_G, "jit") or {})
    package.loaded["kling.json"] = nil
    local ok, jitted = pcall(require, "kling.json")
    rawset(_G, "jit", saved_jit)
    package.loaded["kling.json"] = saved_mod
    assert.is_true(ok, jitted)
    local cjson = require "cjson"
    local samples = { "", "gw0123456789abcdef00000001", "bench", "a/b", "1.25", ("x"):rep(64), ("x"):rep(65),
      ("/"):rep(70) }
    for b = 0, 255 do
      samples[#samples + 1] = "id-" .. string.char(b) .. "-1"
    end
    for _, s in ipairs(samples) do
      assert.equals(cjson.encode(s), jitted.quote(s), ("%q"):format(s))
      assert.equals(cjson.encode(s), jitted.value(s))
    end
  end)

  it("canonical text does not depend on key order or on 2.0 against 2", function()
    local a, b = { z = 1, a = { 2.0, { y = 1, x = 2 } } }, { a = { 2, { x = 2, y = 1 } }, z = 1 }
    assert.are.equal(json.canonical(a), json.canonical(b))
    assert.are.equal('{"a":[2,{"x":2,"y":1}],"z":1}', json.canonical(a))
    assert.are.equal("[]", json.canonical(json.array {}))
  end)

  it("writes whole numbers of 15 digits or more exactly: ids are not sent as 8.61796639666e+17", function()
    -- cjson 2.1.0 writes 14 significant digits: video_id = 851796639666000002 (a Lua 5.4
    -- integer) went out as 8.51796639666e+17, and the API answered that no such video exists
    assert.are.equal('{"video_id":851796639666000002}', json.encode { video_id = 851796639666000002 })
    assert.are.equal('[-861796639666000001,100000000000000,99999999999999,1.5,[]]',
      json.encode { -861796639666000001, 1e14, 99999999999999, 1.5, json.array {} })
    assert.are.equal("9007199254740992", json.encode(2 ^ 53))
    -- a string that reads like the stand-in stays a string
    assert.are.equal('["\\u0000klingint5\\u0000",100000000000000]', json.encode { "\0klingint5\0", 1e14 })
  end)

  it("encodes a table that holds itself as nil, err: never a 'stack overflow' raised", function()
    -- client:submit{..., element_list = t} with t[1] = t raised "json.lua: stack overflow" from the
    -- walk that looks for empty arrays, where encode promises never to raise
    local cyc = {}
    cyc[1] = cyc
    local text, err = json.encode { element_list = cyc }
    assert.is_nil(text)
    assert.matches("nested deeper than 1000", err, 1, true)
    local obj = {}
    obj.self = obj
    assert.is_nil((json.encode(obj)))
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
