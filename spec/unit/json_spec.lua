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

  -- A task id of 18 digits sent as a JSON number (861796292580000001) came back as the double
  -- 861796292580000000: polls then asked for another task.
  it("decode_answer keeps integers at or above 2^53 exact, as their digits, and never raises", function()
    local v = assert(json.decode_answer('{"data": {"task_id": 861796292580000001, "n": 5, "ms": 1700000000000,'
      .. ' "f": 1.5e20, "s": "a \\" 861796292580000002", "edge": [9007199254740991, 9007199254740992],'
      .. ' "neg": -12345678901234567890}}'))
    assert.are.equal("861796292580000001", v.data.task_id)
    assert.are.equal(5, v.data.n)
    assert.are.equal(1700000000000, v.data.ms)
    assert.are.equal(1.5e20, v.data.f)
    assert.are.equal('a " 861796292580000002', v.data.s)
    assert.are.same({ 9007199254740991, "9007199254740992" }, v.data.edge)
    assert.are.equal("-12345678901234567890", v.data.neg)
    assert.are.equal("861796292580000001", json.decode_answer(" 861796292580000001"))
    -- bad text: an error, never a raise, never a number read leniently
    for _, bad in ipairs { '{"id": 0861796292580000001}', '{"id": 861796292580000001', '{"a": "x 861796292580000001',
      '{"id": 86179629258000000"1"}', ':861796292580000001', string.rep("[", 2000) .. "12345678901234567",
      '{"id": 861796292580000001\\', 42, nil, "" } do
      local ok, got, err = pcall(json.decode_answer, bad)
      assert.is_true(ok, got)
      assert.is_nil(got, tostring(bad))
      assert.is_string(err)
    end
  end)

  it("decode_answer keeps an 18-digit id exact under LuaJIT (nginx's Lua) too", function()
    local nginx = require "support.nginx"
    local jit_cpath, none = nginx.jit_cpath()
    if not jit_cpath then
      pending(none)
      return
    end
    local http = require "socket.http"
    local srv = nginx.start([[
      location = /ids {
        content_by_lua_block {
          local json = require "kling.json"
          local t = require("kling.providers").get("kling")
          local v = json.decode_answer('{"task_id": 861796292580000001, "task_status": "submitted", '
            .. '"n": 123456789012345}')
          local task = t.parse_task(v)
          local bad, err = json.decode_answer('{"id": 861796292580000001')
          ngx.say(type(jit), " ", v.task_id, " ", task.id, " ", string.format("%d", v.n), " ", tostring(bad),
            " ", type(err))
        }
      }
    ]], { cpath = jit_cpath })
    local body, code = http.request(srv.url .. "/ids")
    local log = srv.error_log()
    srv.stop()
    assert.equal(200, code, log)
    assert.equal("table 861796292580000001 861796292580000001 123456789012345 nil string\n", body)
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
    local jitted = require("support.as_luajit")("kling.json")
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
