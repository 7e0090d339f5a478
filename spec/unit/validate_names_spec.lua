-- Names a reader tells apart (a batch row's id, a gateway client's external_task_id) and text
-- that says nothing (a prompt of invisible characters only): found by a new user's trial, where
-- "a", "a" + U+200B and "a" + U+FEFF were three rows that printed alike, an id of spaces ran,
-- and a prompt of U+200B U+FEFF was sent and charged.
local validate = require "kling.validate"

describe("validate.name_problem", function()
  it("takes one line of visible text, counted in characters", function()
    for _, name in ipairs { "a", "row-1", "order 42", "Zoë", "漢字の行", ("猫"):rep(128), "a.b_c-d" } do
      assert.is_nil(validate.name_problem(name, 128), name)
    end
  end)

  it("refuses what shows as nothing or as a space, naming the character", function()
    local hidden = { 0xA0, 0xAD, 0x034F, 0x061C, 0x115F, 0x1680, 0x180E, 0x2000, 0x200A, 0x200B, 0x200C, 0x200D,
      0x200E, 0x2028, 0x202E, 0x202F, 0x205F, 0x2060, 0x2066, 0x2800, 0x3000, 0x3164, 0xFE0F, 0xFEFF, 0xFFA0, 0xFFF9,
      0x1D173, 0xE0001, 0xE0100, 0x85, 0x7F, 0x1B, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F, 0x2065, 0xFFF0,
      0xFFF8 }
    for _, cp in ipairs(hidden) do
      local why = validate.name_problem("a" .. utf8.char(cp) .. "b", 128)
      assert.is_string(why, string.format("U+%04X", cp))
      assert.matches(string.format("%%(got U%%+%04X%%)$", cp), why)
    end
  end)

  it("refuses bytes that are not UTF-8, spaces at an end, nothing, and too many characters", function()
    assert.matches("got bytes that are not UTF%-8", validate.name_problem("bad\255\254", 128))
    assert.matches("got a space at its start", validate.name_problem("   ", 128))
    assert.matches("got a space at its end", validate.name_problem("a ", 128))
    assert.matches("got 0 characters", validate.name_problem("", 128))
    assert.matches("got 129 characters", validate.name_problem(("é"):rep(129), 128))
    assert.matches("got a number", validate.name_problem(5, 128))
  end)
end)

-- "Zoë" composed (U+00EB) and decomposed (e + U+0308, as macOS and some editors write it) print
-- alike and compared apart: two batch rows, two elements made and paid for one name. A name
-- the library compares is refused when it is spelt decomposed, naming the mark and the rule.
describe("names spelt decomposed (NFD)", function()
  local element = require "kling.element"
  local composed = { "Zoë", "Ångström", "한국", "がぎ", "Crème brûlée", "naïve-1", "Ωμέγα", "ঋতুপর্ণ" }
  local decomposed = { { "Zoe\u{308}", 0x308 }, { "A\u{30A}ngstro\u{308}m", 0x30A },
    { "\u{1112}\u{1161}\u{11AB}", 0x1161 }, { "か\u{3099}", 0x3099 }, { "x\u{20D7}", 0x20D7 },
    { "e\u{1DC0}", 0x1DC0 }, { "a\u{FE20}", 0xFE20 }, { "q\u{1AB0}", 0x1AB0 } }

  it("are refused by name_problem naming the mark, the composed spelling taken", function()
    for _, name in ipairs(composed) do
      assert.is_nil(validate.name_problem(name, 128), name)
      assert.is_nil(validate.decomposed_problem(name), name)
    end
    for _, c in ipairs(decomposed) do
      local why = validate.name_problem(c[1], 128)
      assert.is_string(why, c[1])
      assert.matches(string.format("(got U+%04X, a combining mark: a decomposed spelling (NFD); write the name "
        .. "composed (NFC)", c[2]), why, 1, true)
      assert.matches(string.format("^U%%+%04X, a combining mark", c[2]), validate.decomposed_problem(c[1]))
    end
    assert.is_nil(validate.decomposed_problem("plain ascii"))
  end)

  it("are refused as an element's name and as a name an element_list gives", function()
    local spec = { name = "Zoë", description = "a girl", images = { "https://example.com/a.png" } }
    assert.is_nil(element.check(spec))
    spec.name = "Zoe\u{308}"
    local err = element.check(spec)
    assert.are.equal("name", err.field)
    assert.matches("must be spelt composed (got U+0308", err.message, 1, true)
    local _, rerr = element.resolve({ "Zoe\u{308}" }, { cache = "/nonexistent/elements.json" })
    assert.are.equal("element_list[1]", rerr.field)
    assert.matches("must be spelt composed (got U+0308", rerr.message, 1, true)
  end)

  it("are refused as a batch row's id: two rows named alike were two rows", function()
    local manifest = require "kling.batch.manifest"
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local path = dir .. "/rows.jsonl"
    local f = assert(io.open(path, "wb"))
    f:write('{"id": "Zoë", "prompt": "a"}\n{"id": "Zoe\\u0308", "prompt": "b"}\n')
    f:close()
    local rows, err = manifest.load(path)
    os.execute("rm -rf " .. dir)
    assert.is_nil(rows)
    assert.matches("U+0308, a combining mark", tostring(err), 1, true)
  end)
end)

describe("validate.blank", function()
  it("is true of spaces, line breaks and invisible characters only", function()
    for _, s in ipairs { "", "   ", "\t\n", "\u{200B}\u{FEFF}", "\u{3000}\u{A0}", "\u{2800}", "\u{E0020}" } do
      assert.is_true(validate.blank(s), s)
    end
    for _, s in ipairs { "a", " \u{200B}x", "猫", "\u{200B}é" } do
      assert.is_false(validate.blank(s), s)
    end
  end)

  it("a required text field of invisible characters only is refused as empty", function()
    local err = validate.text(nil, { prompt = "\u{200B}\u{FEFF}" }, "prompt", { required = true })
    assert.is_table(err)
    assert.equal("prompt", err.field)
    assert.equal("must not be empty (it holds only spaces or invisible characters)", err.message)
  end)
end)
