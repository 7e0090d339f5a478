-- validate.utf8_len: what a text field's length is counted by and its UTF-8 checked with, the
-- same rule on Lua 5.4 (utf8.len, in C) and on LuaJIT (nginx: no utf8 library, a Lua walk).

-- The module as another runtime loads it: without the utf8 library (LuaJIT), or with one
-- laxer than the rule (Lua 5.3's takes surrogates; this one takes any byte), which it must not use.
local function loaded_with(utf8_lib)
  local saved, loaded = rawget(_G, "utf8"), package.loaded["kling.validate"]
  rawset(_G, "utf8", utf8_lib)
  package.loaded["kling.validate"] = nil
  local ok, mod = pcall(require, "kling.validate")
  rawset(_G, "utf8", saved)
  package.loaded["kling.validate"] = loaded
  assert(ok, mod)
  return mod
end

local VALID = {
  { "", 0 },
  { "a cat", 5 },
  { "a\0b", 3 },
  { "caf\195\169", 4 },                   -- é
  { ("字"):rep(3), 3 },                   -- three bytes each
  { "\240\159\142\172 shot", 6 },         -- an emoji (four bytes), then ASCII
  { "\239\187\191x", 2 },                 -- a byte order mark is a character
  { "\237\159\191", 1 },                  -- U+D7FF, the last before the surrogates
  { "\238\128\128", 1 },                  -- U+E000, the first after them
  { "\244\143\191\191", 1 },              -- U+10FFFF, the last code point
}

local INVALID = {
  "\255bad",               -- not a lead byte
  "\192\128",              -- overlong NUL (C0)
  "\193\191",              -- overlong (C1)
  "\224\128\128",          -- overlong 3-byte form of U+0000
  "\224\159\191",          -- overlong 3-byte form of U+07FF
  "\237\160\128",          -- U+D800, a UTF-16 surrogate
  "\237\191\191",          -- U+DFFF
  "\240\128\128\128",      -- overlong 4-byte form
  "\240\143\191\191",      -- overlong 4-byte form of U+FFFF
  "\244\144\128\128",      -- U+110000, above the last code point
  "\245\128\128\128",      -- F5: no such lead byte
  "\248\136\128\128\128",  -- a 5-byte form
  "\195",                  -- cut short
  "\228\184",              -- cut short
  "a\128b",                -- a continuation byte alone
  "\195\40",               -- a lead byte without its continuation
}

local LAX = { len = function(s)
  return #s
end }

for _, case in ipairs { { "Lua 5.4 (utf8.len)", require "kling.validate" },
  { "LuaJIT (the Lua walk)", loaded_with(nil) }, { "a lax utf8 library (not used)", loaded_with(LAX) } } do
  local name, validate = case[1], case[2]
  describe("validate.utf8_len on " .. name, function()
    it("counts characters, not bytes, of well-formed UTF-8", function()
      for _, v in ipairs(VALID) do
        assert.equal(v[2], validate.utf8_len(v[1]), ("%q"):format(v[1]))
      end
    end)

    it("refuses what RFC 3629 does: bad bytes, overlong forms, surrogates, code points above U+10FFFF", function()
      for _, s in ipairs(INVALID) do
        assert.is_nil(validate.utf8_len(s), ("%q"):format(s))
      end
    end)

    it("a text field names the field and the rule", function()
      local err = validate.text({ provider = "kling" }, { prompt = "\237\160\128" }, "prompt", {})
      assert.equal("prompt", err.field)
      assert.matches("valid UTF%-8", err.message)
      assert.is_nil(validate.text({}, { prompt = ("字"):rep(2500) }, "prompt", { max_chars = 2500 }))
      assert.matches("at most 2500 characters %(got 2501%)",
        validate.text({}, { prompt = ("字"):rep(2501) }, "prompt", { max_chars = 2500 }).message)
    end)
  end)
end
