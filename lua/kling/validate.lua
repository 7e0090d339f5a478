-- Rule checkers shared by the provider files. Each returns nil when the rule holds,
-- or a validation error naming the field and the rule. Runs on Lua 5.4 and LuaJIT.
local errors = require "kling.errors"
local json_null = require("kling.json").null

local M = {}

local ESCAPES = { ["\r"] = "\\r", ["\n"] = "\\n", ["\t"] = "\\t" }

-- A number as a message shows it, the one home for that: NaN is "NaN" (tostring gave "-nan" or
-- "nan" by the sign bit and the platform: 0/0 is "-nan" on x86-64 Lua 5.4); a whole number in
-- its digits, whether an integer or a float (Lua 5.4's tostring(2^31) is "2147483648.0", LuaJIT's
-- tostring(1e15) "1e+15"), up to 2^53 where a double is still exact; others as tostring has them.
local function number_text(v)
  if v ~= v then
    return "NaN"
  elseif v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53 then
    return string.format("%d", v == 0 and 0 or v)
  end
  return tostring(v)
end

-- Lua 5.4 keeps integers apart; LuaJIT has one number type (whole numbers print as such).
local tointeger = math.tointeger or function(x)
  return x == math.floor(x) and x or nil
end

--- A number written as text (a command-line flag, a CSV cell, a --set value), the one rule for
-- all of them: decimal digits with an optional leading '-' and one '.' ("5", "-2", "0.5", ".5",
-- "5."), finite; whole numbers as integers. tonumber would also take "0x5", "1e1", "inf" and
-- surrounding spaces (" 5"), which a flag refused and a CSV cell took. -> number | nil
---@param s string
---@return number|nil
function M.decimal(s)
  if type(s) ~= "string" or not (s:match("^%-?%d+%.?%d*$") or s:match("^%-?%.%d+$")) then
    return nil
  end
  local n = tonumber(s)
  if not n or n ~= n or n == math.huge or n == -math.huge then
    return nil -- "1" followed by 400 zeros is no finite number
  end
  return tointeger(n) or n
end

--- A value's type as a wrong-type message names it ("must be a string, got ..."), the one way
-- every field says it, in JSON's words since requests are written as JSON as often as in Lua:
-- a string ("5") (quoted, brief()'d: "5" is not the number 5), a number (26), a boolean (true),
-- an array, an object, an empty array or object ({} and [] decode alike), null.
---@param v any
---@return string
function M.type_of(v)
  local t = type(v)
  if t == "string" then
    return "a string (\"" .. M.brief(v) .. "\")"
  elseif t == "number" or t == "boolean" then
    return "a " .. t .. " (" .. (t == "number" and number_text(v) or tostring(v)) .. ")"
  elseif t == "table" then
    if v[1] ~= nil or (next(v) == nil and getmetatable(v) ~= nil and require("kling.json").is_array(v)) then
      return "an array"
    end
    return next(v) == nil and "an empty array or object" or "an object"
  elseif v == json_null then
    return "null"
  end
  return "a " .. t -- a function, a userdata: only from Lua
end

--- A name a request gave (its provider, its endpoint) as a message quotes it: a string as
-- 'brief()' of it, anything else as M.type_of names it (a JSON null is null, not "userdata: NULL").
---@param v any
---@return string
function M.quoted(v)
  if type(v) == "string" then
    return "'" .. M.brief(v) .. "'"
  end
  return M.type_of(v)
end

--- A value as "got ..." shows it in a message: a number as itself (a rule on its value: "must be
-- between 0 and 1 (got 2)"), anything else as M.type_of names it.
---@param v any
---@return string
function M.got(v)
  if type(v) == "number" then
    return number_text(v)
  end
  return M.type_of(v)
end

--- A field that must be of Lua type `want` ("string", "number", "boolean"): nil when it is (or
-- is absent), else the validation error every field gives, "must be a <want>, got " ..
-- M.type_of(v) (a boolean's rule says "(true or false)").
---@param ctx table|nil
---@param req table
---@param field string
---@param want string
---@return table|nil err
function M.typed(ctx, req, field, want)
  local v = req[field]
  if v == nil or type(v) == want then
    return nil
  end
  return errors.validation(field, "must be a " .. want .. (want == "boolean" and " (true or false)" or "")
    .. ", got " .. M.type_of(v), ctx and ctx.provider)
end

-- The second byte a lead byte allows where it is narrower than 80-BF (RFC 3629, section 4):
-- E0 (no overlong 3-byte form), ED (no UTF-16 surrogates), F0 (no overlong 4-byte form), F4
-- (nothing above U+10FFFF).
local SECOND = { [0xE0] = { 0xA0, 0xBF }, [0xED] = { 0x80, 0x9F }, [0xF0] = { 0x90, 0xBF },
  [0xF4] = { 0x80, 0x8F } }

-- The continuation bytes of the well-formed UTF-8 character at s[i] (0: ASCII), or nil.
local function char_extra(s, i)
  local c = s:byte(i)
  local extra
  if c < 0x80 then
    return 0
  elseif c >= 0xC2 and c < 0xE0 then
    extra = 1
  elseif c >= 0xE0 and c < 0xF0 then
    extra = 2
  elseif c >= 0xF0 and c < 0xF5 then
    extra = 3
  else
    return nil
  end
  local second = SECOND[c]
  for k = i + 1, i + extra do
    local b = s:byte(k)
    local lo, hi = 0x80, 0xBF
    if k == i + 1 and second then
      lo, hi = second[1], second[2]
    end
    if not b or b < lo or b > hi then
      return nil
    end
  end
  return extra
end

local function escaped(c)
  return ESCAPES[c] or string.format("\\x%02X", c:byte())
end

--- A value as an error message shows it: a table is named by its kind (never its address), a
-- string's control characters escaped (\r, \n, \t, \xHH; outside ASCII, controls, separators
-- and bidirectional controls as \uXXXX: one turned the rest of the line around), and each
-- byte that is not part of well-formed UTF-8 (\xHH): a message is one line on a terminal or in
-- a log, and valid UTF-8 in a JSON answer (a task id of bytes FF FE was echoed raw), whatever
-- its input held.
---@param v any
---@return string
function M.shown(v)
  if type(v) == "table" then
    return v[1] ~= nil and "an array" or "an object"
  elseif type(v) == "number" then
    return number_text(v)
  elseif type(v) ~= "string" then
    return v == json_null and "null" or tostring(v)
  elseif not v:find("[%c\128-\255]") then
    return v
  end
  local out, i, n = {}, 1, #v
  while i <= n do
    local extra = char_extra(v, i)
    if extra == 0 then
      local c = v:sub(i, i)
      out[#out + 1] = c:find("%c") and escaped(c) or c
    elseif extra then
      local ch = v:sub(i, i + extra)
      local cp = M.line_breaker(ch) -- C1, separators, bidi controls: shown by their number
      out[#out + 1] = cp and ("\\u" .. cp:sub(3)) or ch
      i = i + extra
    else
      out[#out + 1] = escaped(v:sub(i, i))
    end
    i = i + 1
  end
  return table.concat(out)
end

-- A name or value as an error message echoes it: shown(), and cut to its first `max` bytes
-- (default 64; never within a character) with its length, so that a megabyte of field name is
-- neither sent back nor walked (only its first bytes are shown).
function M.brief(v, max)
  max = max or 64
  local long = type(v) == "string" and #v > max
  local s = M.shown(long and v:sub(1, max + 3) or v) -- max bytes and the rest of a character cut there
  if not long and #s <= max then
    return s
  end
  local cut = max
  while cut > 0 and (s:byte(cut + 1) or 0) >= 0x80 and s:byte(cut + 1) < 0xC0 do
    cut = cut - 1 -- a character cut in two is left out whole
  end
  return s:sub(1, cut) .. "... (" .. (long and #v or #s) .. " bytes)"
end

-- utf8_len in Lua, for LuaJIT (nginx), which has no utf8 library.
local function utf8_len_lua(s)
  local n, i, len = 0, 1, #s
  while i <= len do
    local extra = char_extra(s, i)
    if not extra then
      return nil
    end
    i = i + extra + 1
    n = n + 1
  end
  return n
end

-- Lua 5.4's utf8.len: the same rule in C (strict: no overlong forms, surrogates or code points
-- above U+10FFFF), without a Lua instruction a byte. Taken only where it refuses what the rule
-- refuses: Lua 5.3's takes surrogates, and a compatibility library may be laxer still.
local utf8_len_c = rawget(_G, "utf8") and utf8.len
if utf8_len_c and (utf8_len_c("\237\160\128") or utf8_len_c("\244\144\128\128")
    or utf8_len_c("\224\128\128") or utf8_len_c("\192\128")) then
  utf8_len_c = nil
end

-- ascii(s) -> whether every byte of s is below 128. LuaJIT compiles a loop over the bytes
-- (ten times faster than the pattern matcher's walk); Lua 5.4 runs the pattern's C loop faster
-- than its own.
local byte = string.byte
local ascii
if rawget(_G, "jit") then
  ascii = function(s)
    for i = 1, #s do
      if byte(s, i) > 127 then
        return false
      end
    end
    return true
  end
else
  ascii = function(s)
    return not s:find("[\128-\255]")
  end
end

--- Length in characters (code points) of a UTF-8 string; nil when it is not well-formed UTF-8
-- (RFC 3629: overlong forms, UTF-16 surrogates and code points above U+10FFFF are refused).
---@param s string
---@return integer|nil
function M.utf8_len(s)
  if ascii(s) then -- most prompts: one byte a character, nothing to check
    return #s
  end
  if utf8_len_c then
    return (utf8_len_c(s)) -- fail is nil (and a position, dropped)
  end
  return utf8_len_lua(s)
end

-- Code points that break a line of text or reorder it on display: C0, DEL and C1 controls, the
-- line and paragraph separators, the bidirectional controls (U+061C, U+200E-F, U+202A-E,
-- U+2066-9: text that shows other than it is).
local function breaks_line(cp)
  return cp < 0x20 or (cp >= 0x7F and cp <= 0x9F) or cp == 0x2028 or cp == 0x2029 or cp == 0x061C
    or cp == 0x200E or cp == 0x200F or (cp >= 0x202A and cp <= 0x202E) or (cp >= 0x2066 and cp <= 0x2069)
end

-- Every space but U+0020: U+00A0, U+1680, U+2000-A, U+202F, U+205F, U+3000.
local function wide_space(cp)
  return cp == 0xA0 or cp == 0x1680 or (cp >= 0x2000 and cp <= 0x200A) or cp == 0x202F or cp == 0x205F
    or cp == 0x3000
end

-- Code points that show as nothing (or as a space): format characters (soft hyphen, zero-width
-- space and joiners, word joiner, invisible operators, the byte-order mark, interlinear
-- annotation marks, Arabic and Syriac marks, musical format marks, tags), the Hangul, Khmer and
-- braille fillers, the Mongolian vowel separator and free variation selectors, the combining
-- grapheme joiner, the variation selectors, and the unassigned specials (U+FFF0-8). Two names
-- that differ only by one print alike. (Two spellings of one accented letter, composed and
-- decomposed, also print alike: a decomposed one is refused by its mark, `combining` below.)
local function invisible(cp)
  if cp < 0xAD then
    return false
  end
  return cp == 0xAD or cp == 0x034F or (cp >= 0x0600 and cp <= 0x0605) or cp == 0x06DD or cp == 0x070F
    or cp == 0x08E2 or cp == 0x115F or cp == 0x1160 or cp == 0x17B4 or cp == 0x17B5
    or (cp >= 0x180B and cp <= 0x180F) or (cp >= 0x200B and cp <= 0x200D) or (cp >= 0x2060 and cp <= 0x2065)
    or (cp >= 0x206A and cp <= 0x206F) or cp == 0x2800 or cp == 0x3164
    or (cp >= 0xFE00 and cp <= 0xFE0F) or cp == 0xFEFF or cp == 0xFFA0 or (cp >= 0xFFF0 and cp <= 0xFFFB)
    or cp == 0x110BD or cp == 0x110CD or (cp >= 0x13430 and cp <= 0x1343F) or (cp >= 0x1BCA0 and cp <= 0x1BCA3)
    or (cp >= 0x1D173 and cp <= 0x1D17A) or (cp >= 0xE0000 and cp <= 0xE0FFF)
end

-- The first code point of s for which bad(cp) holds, as "U+XXXX", or nil. Bytes that are not
-- UTF-8 are each read as the code point of their value (a stray C1 byte is a control too).
local function first_of(s, bad)
  local i, n = 1, #s
  while i <= n do
    local cp, extra = s:byte(i), char_extra(s, i) or 0 -- a byte not part of UTF-8: its own value
    if extra > 0 then
      cp = cp % 2 ^ (6 - extra)
      for k = i + 1, i + extra do
        cp = cp * 64 + s:byte(k) % 64
      end
    end
    if bad(cp) then
      return string.format("U+%04X", cp)
    end
    i = i + extra + 1
  end
  return nil
end

local function breaks_line_or_spaces(cp)
  return cp == 0x20 or breaks_line(cp) or wide_space(cp)
end

--- The first character of `s` that breaks a line (controls of any range, separators, bidi
-- controls; with `spaces`, any space) as "U+XXXX", or nil.
---@param s string
---@param spaces? boolean
---@return string|nil
function M.line_breaker(s, spaces)
  if not s:find(spaces and "[%z\1-\32\127-\255]" or "[%z\1-\31\127-\255]") then
    return nil -- printable ASCII (the common case, without decoding)
  end
  return first_of(s, spaces and breaks_line_or_spaces or breaks_line)
end

local function hides(cp)
  return breaks_line(cp) or wide_space(cp) or invisible(cp)
end

-- Code points that a decomposed spelling (Unicode's NFD, as macOS file names and some
-- editors write text) puts after the letter they belong to: the combining diacritical marks
-- (U+0300-036F, and their extensions, supplement, symbols and half marks), the kana voicing
-- marks (U+3099-309A: NFD's が is か + U+3099) and the Hangul conjoining vowels and finals
-- (U+1161-11FF: NFD's 한 is three jamo). A name holding one has a composed spelling (NFC: é as
-- U+00E9, not e + U+0301) that prints alike and compares apart: two names for one, so it is
-- refused rather than compared as it is (composing it needs Unicode's tables). The rare name
-- whose mark has no composed form (x + U+0304) is refused with it.
local function combining(cp)
  return (cp >= 0x0300 and cp <= 0x036F) or (cp >= 0x1161 and cp <= 0x11FF) or (cp >= 0x1AB0 and cp <= 0x1AFF)
    or (cp >= 0x1DC0 and cp <= 0x1DFF) or (cp >= 0x20D0 and cp <= 0x20FF) or cp == 0x3099 or cp == 0x309A
    or (cp >= 0xFE20 and cp <= 0xFE2F)
end

local function hides_or_combines(cp)
  return hides(cp) or combining(cp)
end

local COMPOSE = "a combining mark: a decomposed spelling (NFD); write the name composed (NFC), as one"
  .. " character per accented letter (é as U+00E9, not e + U+0301), as it prints and compares"

--- Why the name `s` is spelt decomposed, or nil: its first combining mark (kling.validate's
-- `combining`) as "U+XXXX, a combining mark: ...". For names the library compares (a batch
-- row's id, a client's external_task_id, an element's name): "Zoë" composed and decomposed
-- print alike and were two names (two rows, two elements made and paid).
---@param s string
---@return string|nil
function M.decomposed_problem(s)
  if type(s) ~= "string" or not s:find("[\204\205\225\226\227\239]") then
    return nil -- no byte that starts one of those code points (ASCII and most text, without decoding)
  end
  local bad = first_of(s, combining)
  return bad and (bad .. ", " .. COMPOSE) or nil
end

--- Why `s` cannot name something a person reads and tells apart from other names (a batch
-- row's id, a client's external_task_id), or nil: 1 to max_chars characters of valid UTF-8,
-- one line, no space but U+0020 and none at either end, nothing that shows as nothing.
---@param s any
---@param max_chars integer
---@return string|nil
function M.name_problem(s, max_chars)
  local rule = "must be 1 to " .. max_chars .. " characters of one line of text, without leading or trailing"
    .. " spaces, control, separator, bidirectional or invisible characters"
  if type(s) ~= "string" then
    return rule .. " (got " .. M.type_of(s) .. ")"
  end
  local n = M.utf8_len(s)
  if not n then
    return rule .. " (got bytes that are not UTF-8)"
  elseif n == 0 or n > max_chars then
    return rule .. " (got " .. n .. " characters)"
  elseif s:find("^ ") or s:find(" $") then
    return rule .. " (got a space at " .. (s:find("^ ") and "its start" or "its end") .. ")"
  end
  local bad = s:find("[%z\1-\31\127-\255]") and first_of(s, hides_or_combines)
  local cp = bad and tonumber(bad:sub(3), 16)
  if cp and combining(cp) and not hides(cp) then -- (U+034F, the grapheme joiner, is invisible first)
    return rule .. " (got " .. bad .. ", " .. COMPOSE .. ")"
  end
  return bad and (rule .. " (got " .. bad .. ")") or nil
end

--- Whether `s` holds nothing a reader sees: spaces, line breaks and invisible characters only.
---@param s string
---@return boolean
function M.blank(s)
  if s:find("[!-~]") then
    return false -- a visible ASCII character (almost every text, found at once)
  end
  return not first_of(s, function(cp)
    return not (cp == 0x20 or hides(cp))
  end)
end

local function fail(ctx, field, msg)
  return errors.validation(field, msg, ctx and ctx.provider)
end

-- A string field: opts.required, opts.max_chars, opts.line (one line: no control characters).
function M.text(ctx, req, field, opts)
  local v = req[field]
  if v == nil then
    if opts.required then
      return fail(ctx, field, "is required" .. (opts.why and (" " .. opts.why) or ""))
    end
    return nil
  end
  if type(v) ~= "string" then
    return M.typed(ctx, req, field, "string")
  end
  local n = M.utf8_len(v)
  if not n then
    return fail(ctx, field, "must be valid UTF-8")
  end
  if opts.required and M.blank(v) then
    return fail(ctx, field, "must not be empty" .. (v ~= "" and " (it holds only spaces or invisible characters)"
      or ""))
  end
  if opts.max_chars and n > opts.max_chars then
    return fail(ctx, field, string.format("must be at most %d characters (got %d)", opts.max_chars, n))
  end
  -- opts.line: shown on one line (a table, a log, a listing) and as written
  local bad = opts.line and M.line_breaker(v)
  if bad then
    return fail(ctx, field, "must be one line of text: no control, separator or bidirectional characters (got "
      .. bad .. ")")
  end
  -- Any text (a prompt): line breaks and tabs are text (paragraphs, lists; CR of a pasted CRLF
  -- text), other controls are not. A NUL went upstream, where a C string ends at it; ESC, BEL,
  -- DEL and the C1 controls (CSI as U+009B) are terminal commands, echoed by every log, listing
  -- and dashboard that shows the prompt. Refused by name before any network call.
  local bad_at = not opts.line and M.text_control(v)
  if bad_at then
    return fail(ctx, field, "must not contain control characters other than tab, line feed and carriage return"
      .. " (got " .. bad_at .. ")")
  end
  return nil
end

-- control_at(s, strict) -> the byte where the first control character free text may not hold
-- starts (C0 but tab, LF and CR; DEL; C1, written \194\128-\194\159 in UTF-8), or nil; strict:
-- tab, LF and CR too (an id, a token: no text of lines). As ascii(): LuaJIT compiles a loop over
-- the bytes (the pattern matcher walked every byte of a prompt twice, on every create a gateway
-- takes); Lua 5.4 runs the patterns' C loops faster than its own.
local control_at
if rawget(_G, "jit") then
  control_at = function(s, strict)
    for i = 1, #s do
      local b = byte(s, i)
      if (b < 32 and (strict or (b ~= 9 and b ~= 10 and b ~= 13))) or b == 127 then
        return i
      elseif b == 194 then
        local n = byte(s, i + 1)
        if n and n >= 128 and n <= 159 then
          return i
        end
      end
    end
    return nil
  end
else
  control_at = function(s, strict)
    local c0, c1 = s:find(strict and "[%z\1-\31\127]" or "[%z\1-\8\11\12\14-\31\127]"), s:find("\194[\128-\159]")
    return c0 and c1 and math.min(c0, c1) or c0 or c1
  end
end

--- The first control character free text may not hold (C0 other than tab, LF and CR, DEL,
-- C1), as "U+XXXX at byte N" ("a NUL character at byte N" for U+0000), or nil. `s` is UTF-8.
-- strict: tab, LF and CR are control characters too (an id, a name, a token: not free text).
---@param s string
---@param strict? boolean
---@return string|nil
function M.text_control(s, strict)
  local at = control_at(s, strict)
  if not at then
    return nil
  end
  local b = s:byte(at)
  if b == 0 then
    return "a NUL character at byte " .. at
  end
  local cp = b == 194 and s:byte(at + 1) or b
  return string.format("U+%04X at byte %d", cp, at)
end

-- The tables' keys in a fixed order (numbers first), so that the first problem is always the same one.
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then
      return a < b
    end
    return type(a) == "number" or (type(b) ~= "number" and type(a) < type(b))
  end)
  return keys
end

local CONTROLS_DEPTH = 32 -- deeper than any body a call takes (and a cycle ends there)

--- Where a value bound for a request (a call's body: ids, URLs, names, no free text) holds a
-- control character, tab, LF and CR included (text_control's strict rule): the path of the first
-- string holding one, from `field` ("points[2].x", a key's own name for a key that holds one),
-- and the problem; or nil. The one check of the fields client:call sends as they are given.
---@param v any
---@param field string|nil the value's name; nil: v is a body, its keys are the fields' names
---@return string|nil path
---@return string|nil problem
function M.controls_problem(v, field, depth)
  if type(v) == "string" then
    local bad = M.text_control(v, true)
    return bad and field, bad and ("must not contain control characters (got " .. bad .. ")")
  elseif type(v) ~= "table" or (depth or 0) >= CONTROLS_DEPTH then
    return nil
  end
  for _, k in ipairs(sorted_keys(v)) do
    local path = type(k) == "number" and ((field or "") .. "[" .. M.shown(k) .. "]")
      or (field and (field .. "." .. M.brief(k)) or M.brief(k))
    local bad = type(k) == "string" and M.text_control(k, true)
    if bad then
      return path, "must not be a name holding control characters (got " .. bad .. ")"
    end
    local at, problem = M.controls_problem(v[k], path, (depth or 0) + 1)
    if at then
      return at, problem
    end
  end
  return nil
end

local function list_words(set)
  local keys = sorted_keys(set)
  for i, k in ipairs(keys) do
    keys[i] = tostring(k)
  end
  return table.concat(keys, ", ")
end
M.list_words = list_words -- a set's values, sorted, as "a, b, c"

-- One of a set of values; `set` maps each allowed value to true.
function M.one_of(ctx, req, field, set, why)
  local v = req[field]
  if v == nil then
    return nil
  end
  if not set[v] then
    return fail(ctx, field, string.format("must be one of %s%s (got %s)", list_words(set),
      why and (" " .. why) or "", M.shown(v)))
  end
  return nil
end

function M.boolean(ctx, req, field)
  return M.typed(ctx, req, field, "boolean")
end

function M.number_in(ctx, req, field, lo, hi)
  local v = req[field]
  if v == nil then
    return nil
  end
  if type(v) ~= "number" then
    return M.typed(ctx, req, field, "number")
  elseif v ~= v then
    return fail(ctx, field, string.format("must be a number between %s and %s, got NaN", number_text(lo),
      number_text(hi)))
  end
  if v < lo or v > hi then
    return fail(ctx, field, string.format("must be between %s and %s (got %s)", number_text(lo), number_text(hi),
      number_text(v)))
  end
  return nil
end

local function is_whole(v)
  return type(v) == "number" and v == v and v % 1 == 0
end
M.is_whole = is_whole

-- A whole number in [lo, hi], or one of `set` when given.
function M.whole_in(ctx, req, field, lo, hi, set, why)
  local v = req[field]
  if v == nil then
    return nil
  end
  if type(v) ~= "number" then
    return M.typed(ctx, req, field, "number")
  end
  if not is_whole(v) then
    return fail(ctx, field, "must be a whole number, got " .. M.shown(v))
  end
  if set then
    if not set[v] then
      return fail(ctx, field, string.format("must be one of %s%s (got %s)", list_words(set),
        why and (" " .. why) or "", number_text(v)))
    end
  elseif v < lo or v > hi then
    return fail(ctx, field, string.format("must be between %d and %d%s (got %s)", lo, hi,
      why and (" " .. why) or "", number_text(v)))
  end
  return nil
end

--- Where a table given as a list is not one, or nil: a Lua table holds a list part and keys of
-- its own at once ({{image = "..."}, foo = 1}, {shot1, shot2, n = 2}, {a, nil, c}), and every
-- reader of a list walks 1..#v (ipairs stops at a hole), so a key outside the items or an item
-- after a hole was dropped unseen. A JSON array never has one. The test is kling.errors.list_gap.
-- -> nil | the field to name (field.key, field[i]), the rule
---@param v table
---@param field string the list's field name, as errors name it
---@return string|nil name
---@return string|nil why
function M.list_problem(v, field)
  local key, missing, max = errors.list_gap(v)
  if key ~= nil then
    local at = type(key) == "string" and ("." .. M.brief(key)) or ("[" .. M.shown(key) .. "]")
    return field .. at, "is not an index: a list has keys 1..n only (the key would be dropped)"
  elseif missing then
    return field .. "[" .. missing .. "]", "is missing (nil), before [" .. max .. "]: a list has no holes"
  end
  return nil
end

function M.array(ctx, req, field, max_items)
  local v = req[field]
  if v == nil then
    return nil
  end
  if type(v) ~= "table" or (next(v) ~= nil and v[1] == nil) then
    return fail(ctx, field, "must be an array, got " .. M.type_of(v))
  end
  -- a hole or a stray key in a Lua table: the JSON sent held the items before the hole alone
  -- (element_list = {a, nil, b} went as [a], and was paid for without b)
  local at, why = M.list_problem(v, field)
  if at then
    return fail(ctx, at, why)
  end
  if max_items and #v > max_items then
    return fail(ctx, field, string.format("must have at most %d items (got %d)", max_items, #v))
  end
  return nil
end

-- http(s) URL with a host, and no space or control character (NUL, ESC, DEL ...): one went out in
-- the request's JSON as it was (`kling element create --image $'https://e.x/a\x01.png'` made an
-- element of it), where no URL holds one unencoded.
function M.is_url(s)
  return type(s) == "string" and s:match("^[Hh][Tt][Tt][Pp][Ss]?://[^/%s%c]+[^%s%c]*$") ~= nil
end

-- Raw base64 (RFC 4648's alphabet, padded to a multiple of 4, no data: prefix, no line
-- breaks): what a field taking "a URL or base64" holds when it holds no URL. Decoded by the C
-- core, which refuses any other byte: a pattern scan of a 5 MB audio took three times as long
-- in the worker that checks it.
function M.is_base64(s)
  return type(s) == "string" and #s > 0 and #s % 4 == 0 and require("kling.core").b64decode(s) ~= nil
end

-- An http(s) URL when present; `rule` says what it must be (default: an http(s) URL).
function M.url(ctx, req, field, rule)
  local v = req[field]
  if v ~= nil and not M.is_url(v) then
    return fail(ctx, field, (rule or "must be an http(s) URL") .. (type(v) ~= "string" and (", got " .. M.type_of(v))
      or ""))
  end
  return nil
end

-- Why a CA file cannot be used, or nil: said when it is given (kling.new's ca_file, kling
-- gateway start's --ca-file) rather than as a network error on the first call or an nginx that
-- does not start. Only a regular file is opened (kling.core.read_regular, reading nothing): a
-- FIFO's open blocked the command for good, and a directory passed here to fail in libcurl.
function M.ca_file_problem(path)
  if path == nil then
    return nil
  elseif type(path) ~= "string" or path == "" or path:find("%c") then
    return "must be a file path without control characters"
  end
  local ok, err, kind = require("kling.core").read_regular(path, 0)
  if not ok then
    return "cannot be read: " .. tostring(err) .. (kind and ", not a file of CA certificates" or "")
  end
  return nil
end

-- Why a provider's base URL cannot be used, or nil: it goes into every request line and Host
-- header, so no spaces or control characters; credentials go as keys, never as user info in
-- the URL; paths are appended to it, so no query or fragment.
function M.base_url_problem(u, prefix)
  if type(u) ~= "string" or not u:match("^https?://[^/?#]+") then
    return "must be an http(s) URL"
  elseif u:find("[%c%s]") then
    return "must not hold spaces or control characters"
  elseif u:match("^https?://([^/?#]+)"):find("@", 1, true) then
    return "must not hold user info (user@host): credentials go in api_key or access_key + secret_key"
  elseif u:find("[?#]") then
    return "must not hold a query or a fragment (request paths are appended to it)"
  end
  -- the provider's paths start with their own prefix: ".../v1/" would send to /v1/v1/videos
  local trimmed = u:gsub("/+$", "")
  if prefix and trimmed:sub(-#prefix):lower() == prefix:lower()
    and trimmed:match("^https?://[^/]+(/.*)$") then
    return "must not end in " .. prefix .. ", which the provider's request paths already start with: give "
      .. trimmed:sub(1, -#prefix - 1)
  end
  return nil
end

-- Why a callback URL cannot be used, or nil: whoever calls it back puts it in a request line
-- of its own, so no control characters, spaces or their percent-encodings (%0d%0a), none of
-- the characters a URL may not hold raw, no user info (a credential that would be logged and
-- sent), a host, and a port in range. The one rule of the library's requests and the
-- gateway's clients' (kling.gateway.public_url adds the address checks).
function M.callback_url_problem(url)
  if type(url) ~= "string" then
    return "must be an http(s) URL string, got " .. M.type_of(url)
  elseif url:find("[%z\1-\32\127]") then
    return "must not contain control characters or spaces"
  elseif url:find("%%[01]%x") or url:find("%%7[Ff]") or url:find("%%20") then
    return "must not contain percent-encoded control characters or spaces"
  elseif url:find("[\128-\255]") then
    return "must be ASCII: percent-encode other characters (a host name in its xn-- form)"
  end
  -- Percent-encoded, a control or space of any range (%C2%85, NEL; %E2%80%A8) is one still.
  local decoded = url:find("%", 1, true) and url:gsub("%%(%x%x)", function(h)
    return string.char(tonumber(h, 16))
  end)
  local bad = decoded and M.line_breaker(decoded, true)
  if bad then
    return "must not contain percent-encoded control characters or spaces (" .. bad .. ")"
  elseif url:find("[\\\"<>{}|^`]") then
    return "must not contain \\ \" < > { } | ^ or `"
  end
  local authority = url:match("^[Hh][Tt][Tt][Pp][Ss]?://([^/?#]*)")
  if not authority then
    return "must be an http(s) URL"
  elseif authority:find("@", 1, true) then
    return "must not contain user info (user:password@)"
  end
  local host, port = authority:match("^(%b[])(.*)$")
  if not host then
    host, port = authority:match("^([^:]*)(.*)$")
  end
  if host == "" then
    return "must name a host"
  end
  if port ~= "" then
    local p = port:match("^:(%d+)$")
    if not p or tonumber(p) < 1 or tonumber(p) > 65535 then
      return "must have a port in 1..65535"
    end
  end
  return nil
end

-- callback_url (or field) when present, by callback_url_problem's rule.
function M.callback_url(ctx, req, field)
  field = field or "callback_url"
  local v = req[field]
  local problem = v ~= nil and M.callback_url_problem(v)
  return problem and fail(ctx, field, problem) or nil
end

-- An image given as a URL or as base64 (a `data:` prefix is tolerated and removed by the
-- provider mapping). Checks what can be checked before the network: format and size
-- for inline data.
function M.image(ctx, req, field, opts)
  local v = req[field]
  if v == nil then
    return nil
  end
  if type(v) ~= "string" or v == "" then
    return fail(ctx, field, "must be an image URL or base64 data, got "
      .. (v == "" and "an empty string" or M.type_of(v)))
  end
  if M.is_url(v) then
    return nil
  end
  local data = v:gsub("^data:image/[%w.+-]+;base64,", "")
  if data:find("[^%w+/=\r\n]") then
    return fail(ctx, field, "must be an http(s) URL or base64-encoded JPG/PNG data")
  end
  local approx_bytes = math.floor(#data * 3 / 4)
  local max = opts and opts.max_bytes or 10 * 1024 * 1024
  if approx_bytes > max then
    return fail(ctx, field, string.format("must be at most %d MB (got about %.1f MB)", math.floor(max / 1048576),
      approx_bytes / 1048576))
  end
  local head = data:sub(1, 16)
  if not (head:sub(1, 4) == "/9j/" or head:sub(1, 8) == "iVBORw0K") then
    return fail(ctx, field, "inline data must be a base64-encoded JPG or PNG image")
  end
  local bytes = require("kling.core").b64decode((data:gsub("[\r\n]", "")))
  if not bytes then
    return fail(ctx, field, "inline data is not valid base64")
  end
  local w, h = M.image_size(bytes)
  if not w then
    return fail(ctx, field, "inline data is not a readable JPG or PNG image")
  end
  local min_side = opts and opts.min_side or 300
  if w < min_side or h < min_side then
    return fail(ctx, field, string.format("must be at least %d px wide and high (got %dx%d)", min_side, w, h))
  end
  local max_ratio = opts and opts.max_ratio or 2.5
  if w > h * max_ratio or h > w * max_ratio then
    return fail(ctx, field, string.format("aspect ratio must be between 1:%g and %g:1 (got %dx%d)",
      max_ratio, max_ratio, w, h))
  end
  return nil
end

local function be16(s, i)
  local a, b = s:byte(i, i + 1)
  return a * 256 + b
end

local function be32(s, i)
  return be16(s, i) * 65536 + be16(s, i + 2)
end

-- Width and height of a PNG (IHDR) or JPEG (first SOFn marker), or nil.
function M.image_size(bytes)
  if bytes:sub(1, 8) == "\137PNG\r\n\26\n" and #bytes >= 24 and bytes:sub(13, 16) == "IHDR" then
    return be32(bytes, 17), be32(bytes, 21)
  end
  if bytes:sub(1, 2) ~= "\255\216" then
    return nil
  end
  local i = 3
  while i + 8 <= #bytes do
    if bytes:byte(i) ~= 0xFF then
      return nil
    end
    local marker = bytes:byte(i + 1)
    if marker == 0xFF then
      i = i + 1
    elseif marker == 0xD8 or marker == 0x01 or (marker >= 0xD0 and marker <= 0xD7) then
      i = i + 2
    else
      local len = be16(bytes, i + 2)
      local is_sof = marker >= 0xC0 and marker <= 0xCF and marker ~= 0xC4 and marker ~= 0xC8 and marker ~= 0xCC
      if is_sof then
        return be16(bytes, i + 7), be16(bytes, i + 5)
      end
      i = i + 2 + len
    end
  end
  return nil
end

-- The known name closest to `name` (a set or a list of names), or nil when none is close
-- (more than a third of the name would have to change); second, every known name as close,
-- sorted (a list of one when no other is). The rule is the C core's (src/pure/names.c), the
-- one the C checkers of sched{}, slots{} and http{} name their closest field by.
function M.closest(name, known)
  return require("kling.core").closest(name, known)
end

-- The error for an unknown name: "unknown <what>", with the closest known name when one is.
function M.unknown_name(name, known, what)
  local near = M.closest(name, known)
  return "unknown " .. what .. (near and ("; did you mean " .. near .. "?") or "")
end

-- The options of kling.new, the one list (kling.client checks its options by it). Given in a
-- request instead, one is refused by name (client_option_problem): a request's base_url was
-- accepted and never used, the request going to the client's URL.
M.CLIENT_OPTIONS = { "provider", "access_key", "secret_key", "api_key", "base_url", "ca_file", "timeout",
  "connect_timeout", "max_attempts", "retry_base_ms", "retry_cap_ms", "call_budget", "wait_timeout", "poll_min",
  "poll_max", "driver", "on_retry", "budget", "user_agent", "auto_external_id", "max_download_bytes", "engine",
  "catalogs", "debug", "local_files" }
local CLIENT_ONLY, KEYS = {}, { access_key = true, secret_key = true, api_key = true }
for _, k in ipairs(M.CLIENT_OPTIONS) do
  CLIENT_ONLY[k] = k ~= "provider" or nil -- a request may name its provider (checked against the client's)
end

--- The first field of `req` (in name order) that is a client's option, not a request's, and
-- why, or nil. A key's value is never shown (nor any other's: the field's name says it all).
---@param req table
---@return string|nil field
---@return string|nil problem
function M.client_option_problem(req)
  local found
  for k in pairs(req) do
    if CLIENT_ONLY[k] and (not found or k < found) then
      found = k
    end
  end
  if not found then
    return nil
  end
  return found, "is a client option, not a request field: give it to kling.new{" .. found .. " = ...}"
    .. (KEYS[found] and " (a credential: its value is not shown)" or "")
end

--- An object field of the provider's own (watermark_info, camera_control): a JSON object whose
-- keys are all among `known` (a list), each unknown one refused by its path and the closest
-- known name. A JSON array is not an object (decoded, [1] is a table too); an empty table may
-- have been written {} or [], and is taken as {}.
---@param ctx table|nil
---@param v any
---@param field string the object's path, e.g. "camera_control.config"
---@param known string[]
---@return table|nil err
function M.object_keys(ctx, v, field, known)
  if type(v) ~= "table" or v[1] ~= nil then
    return fail(ctx, field, "must be an object {" .. table.concat(known, ", ") .. "} (got " .. M.type_of(v) .. ")")
  end
  local set = {}
  for _, k in ipairs(known) do
    set[k] = true
  end
  local names = {}
  for k in pairs(v) do
    if not set[k] then
      names[#names + 1] = tostring(k)
    end
  end
  table.sort(names) -- the first in name order, whatever pairs' order
  if names[1] then
    return fail(ctx, field .. "." .. names[1], M.unknown_name(names[1], known, "field of " .. field))
  end
  return nil
end

-- Why a task id cannot be used, or nil when it can: an id goes into one URL path segment
-- (and the CLI's file names), so 1..200 printable ASCII characters without spaces, '/', '\',
-- '?', '#' or '%', and not the dot segments '.' and '..' (which would change the path). The
-- one check of ids for the library (get_task, cancel_task) and the CLI (TASK_ID).
function M.task_id_problem(id)
  if type(id) ~= "string" or #id == 0 or #id > 200 or id:find("[%c%s/\\?#%%\128-\255]") then
    return "must be 1..200 printable characters without spaces, '/', '\\', '?', '#' or '%'"
  end
  if id == "." or id == ".." then
    return "must not be '.' or '..' (a dot segment would change the URL path)"
  end
  return nil
end

-- Times are kept as integer milliseconds by libcurl and the scheduler (at most INT_MAX).
M.MAX_SECONDS = 2147483

-- Why a time option (kling.new, client:with, task:wait) cannot be used, or nil when it can: a
-- positive number of seconds, at most MAX_SECONDS (about 24 days).
function M.seconds_problem(v)
  if type(v) ~= "number" or v ~= v or v <= 0 or v > M.MAX_SECONDS then
    return "must be a positive number of seconds, at most " .. M.MAX_SECONDS .. " (got " .. M.got(v) .. ")"
  end
  return nil
end

-- A time option's seconds (checked by seconds_problem) as the whole milliseconds libcurl and the
-- scheduler take: rounded, and at least 1, so that a positive time under half a millisecond
-- (1e-9 s, which seconds_problem takes) is 1 ms, never the 0 ms the driver refuses by raising.
function M.seconds_ms(v)
  return math.max(1, math.floor(v * 1000 + 0.5))
end

-- Why one of the per-call options of kling.new and client:with (other than the times, which
-- seconds_problem checks) cannot be used, or nil when it can: the one rule of each, so
-- that kling.new refuses what client:with refuses, before the first call would raise in the
-- C core (max_attempts = "3": "kling.core: field 'max_attempts' must be an integer").
local CALL_OPTION_RULES = {
  max_attempts = function(v)
    return not (M.is_whole(v) and v >= 1 and v <= 2147483647) and "must be a whole number of tries from 1 to 2147483647"
  end,
  retry_base_ms = function(v)
    return not (M.is_whole(v) and v >= 0 and v <= 2147483647)
      and "must be a whole number of milliseconds from 0 to 2147483647"
  end,
  on_retry = function(v)
    return type(v) ~= "function" and "must be a function(info)"
  end,
  auto_external_id = function(v)
    return type(v) ~= "boolean" and "must be a boolean (true or false)"
  end,
  local_files = function(v)
    return type(v) ~= "boolean" and "must be a boolean (true or false)"
  end,
  -- it goes into a request header as it is: a CR or LF there would add headers of its own
  user_agent = function(v)
    return not (type(v) == "string" and #v >= 1 and #v <= 256 and not v:find("[%c\128-\255]"))
      and "must be 1..256 printable ASCII characters (no control characters: it is a header)"
  end,
  debug = function(v)
    return not (type(v) == "boolean" or type(v) == "function") and "must be true, false or a function(text)"
  end,
  driver = function(v)
    return not (type(v) == "table" and type(v.request) == "function")
      and "must be a driver (a table with a request method, as kling.resty.driver makes)"
  end,
}
CALL_OPTION_RULES.retry_cap_ms = CALL_OPTION_RULES.retry_base_ms

--- Why a per-call option of kling.new or client:with cannot be used, or nil (also for an option
-- it has no rule for, or a nil value). -> string|nil, naming the value given
function M.call_option_problem(name, v)
  local rule = CALL_OPTION_RULES[name]
  local problem = v ~= nil and rule and rule(v)
  if problem then
    return problem .. " (got " .. M.got(v) .. ")"
  end
  return nil
end

-- Why a wait's poll_min and poll_max (seconds) cannot go together, or nil: the first poll
-- interval may not exceed the longest (the scheduler would quietly raise the longest).
function M.poll_order_problem(min, max)
  if min > max then
    return "poll_min (" .. min .. " s) is longer than poll_max (" .. max .. " s): the first poll interval may not "
      .. "exceed the longest"
  end
  return nil
end

-- Raises (misuse) when `opts` holds a key not in `known` (a set), naming the closest known one:
-- kling.new{timeuot = 5} is a mistake to fix, not an option to ignore. `what` names such a key
-- in the message, %s standing for it ("option %s" unless given).
function M.options(fn, opts, known, what)
  if type(opts) ~= "table" then
    return
  end
  for k in pairs(opts) do
    if not known[k] then
      local name = tostring(k)
      errors.misuse(fn, M.unknown_name(name, known, string.format(what or "option %s", "'" .. name .. "'")))
    end
  end
end

-- external_task_id: what a create names its task by is what looks it up again (get_task,
-- the uncertain create's lookup), so it takes the task id's rule; a create took ids (CR/LF,
-- '/', 256 characters) that the lookup then refused.
function M.external_id(ctx, req)
  local v = req.external_task_id
  if v == nil then
    return nil
  end
  if type(v) ~= "string" then
    return M.typed(ctx, req, "external_task_id", "string")
  end
  local problem = M.task_id_problem(v)
  return problem and fail(ctx, "external_task_id", problem .. " (the task is looked up by it)")
end

-- Runs checks in order and returns the first failure.
function M.first(...)
  for i = 1, select("#", ...) do
    local err = select(i, ...)
    if err then
      return err
    end
  end
  return nil
end

return M
