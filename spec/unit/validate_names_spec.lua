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
