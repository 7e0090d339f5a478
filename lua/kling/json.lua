--- JSON: lua-cjson with integers kept integers and empty arrays kept arrays.
-- JSON over lua-cjson, with the two things Debian's cjson 2.1.0 lacks:
--  * numbers: cjson decodes every number as a float on Lua 5.4; integral values come back
--    as integers here, so ids, timestamps and counts compare and print as integers.
--  * empty arrays: cjson encodes {} as an object; json.array(t) marks a table to be
--    encoded as an array even when empty.
-- @module kling.json
-- An instance of our own: its settings are not the process's cjson's, which other code in
-- the same Lua state (an nginx worker) may have configured otherwise.
local cjson = require("cjson.safe").new()

local M = {}

cjson.encode_sparse_array(true, 1, 1)
-- JSON's numbers only: cjson also reads NaN, Infinity and hex (0x10) by default, which let a
-- signed token carry "exp": NaN (never expired: NaN <= now is false) and a create body "0xA".
cjson.decode_invalid_numbers(false)
cjson.encode_number_precision(14) -- the most cjson 2.1.0 allows; ms timestamps need 13
M.null = cjson.null

local array_mt = { __name = "kling.json.array" }
local EMPTY = "\0klingemptyarray\0"
local EMPTY_ENCODED = '"\\u0000klingemptyarray\\u0000"'

--- Marks a table to encode as an array even when empty.
---@param t table
---@return table t
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

--- Whether a table is a sequence (or marked as an array).
---@param t any
---@return boolean
function M.is_array(t)
  return getmetatable(t) == array_mt
end

local tointeger = math.tointeger

-- In place: a number is written back only when it becomes an integer, and a call is made per
-- table, not per value (every poll's answer is decoded and walked here).
local function normalize(v)
  for k, x in pairs(v) do
    local t = type(x)
    if t == "number" then
      local i = tointeger(x)
      if i then
        v[k] = i
      end
    elseif t == "table" then
      normalize(x)
    end
  end
end

--- Decodes JSON text; never raises.
-- Returns the value, or nil and a message naming the position of the error.
---@param s string
---@return any|nil value
---@return string|nil err
function M.decode(s)
  if type(s) ~= "string" then
    return nil, "expected a JSON string, got " .. type(s)
  end
  local v, err = cjson.decode(s)
  if v == nil and err then
    return nil, err
  end
  if not tointeger then
    return v -- LuaJIT: every number is a double, there is nothing to normalize (no walk)
  end
  local t = type(v)
  if t == "table" then
    normalize(v)
  elseif t == "number" then
    return tointeger(v) or v
  end
  return v
end

local quote_big_ints -- kling.core.json_quote_big_ints, loaded on first use (as dup_key below)

--- Decodes JSON a provider sent (an answer, a callback): as decode, and an integer at or above
-- 2^53 (an id of 18 digits) comes back as the string of its digits, exact on Lua 5.4 and
-- LuaJIT alike, where a number would have lost its last digits. Never raises.
---@param s string
---@return any|nil value
---@return string|nil err
function M.decode_answer(s)
  if type(s) ~= "string" then
    return M.decode(s)
  end
  -- In C (src/pure/json_bigint.c): it runs on every answer, and the pattern matcher's walk of
  -- one cost twice cjson's decode of it inside nginx.
  quote_big_ints = quote_big_ints or require("kling.core").json_quote_big_ints
  return M.decode(quote_big_ints(s))
end

local dup_key -- kling.core.json_dup_key, loaded on first use: the simulator uses this module without the C core

-- Why the key scanner found s not JSON at byte `at`, when lua-cjson took it: a control character
-- written raw in a string (RFC 8259 wants it escaped; a terminal or a log reading it acts on it).
local function raw_control(s, at)
  local b = at and s:byte(at)
  if b and b < 0x20 then
    return string.format("a control character (0x%02X) at byte %d: JSON has none outside its strings but"
      .. " whitespace, and writes one in a string escaped (\\u%04X)", b, at, b)
  end
  return nil
end

--- Decodes JSON a user or a client gave (a manifest, a config, a request body): as decode, and
-- an object that gives a key twice is refused, where cjson would keep the last one without a
-- word ({"mode": "std", "mode": "pro"} priced on one and sent with the other). Keys compare as
-- decoded ("a" and "\u0061" are one key). Never raises. Not for what the network sends.
-- Returns the value, or nil, a message ("what: requests[3].prompt: given twice ...") and, for a
-- key given twice, its path.
-- max_values: a text holding more values than that (every value counts: each member's, each
-- array item, containers and the top one) is refused before it is decoded, its 4th result
-- "values": a 20 MB body of a million one-item members cost seconds of cjson, the key check's
-- sort and a table walk before any of its fields was looked at; over the bound, it costs a scan
-- of its first max_values values.
---@param s string
---@param what string|nil what the text is, prefixed to the message
---@param max_values integer|nil the most values the text may hold
---@return any|nil value
---@return string|nil err
---@return string|nil path
---@return string|nil rule "values" when the text holds more than max_values
function M.decode_strict(s, what, max_values)
  local prefix = what and (what .. ": ") or ""
  local path, why, at, syntax_at
  if max_values and type(s) == "string" then -- counted (and keys checked) before cjson spends anything
    dup_key = dup_key or require("kling.core").json_dup_key
    path, why, at, syntax_at = dup_key(s, max_values)
    if path == nil and at then
      return nil, prefix .. "more than " .. max_values .. " JSON values (every member's value and array item"
        .. " counts; the first past the bound is at byte " .. at .. ")", nil, "values"
    end
    local raw = path == nil and raw_control(s, syntax_at)
    if raw then
      return nil, prefix .. raw
    end
  end
  local v, err = M.decode(s)
  if v == nil and err then
    return nil, prefix .. err
  end
  if type(v) == "table" then -- only a text with an object in it can give a key twice
    if not max_values then
      dup_key = dup_key or require("kling.core").json_dup_key
      local _
      path, why, _, syntax_at = dup_key(s)
    end
    if path then
      return nil, prefix .. path .. ": given twice (a key may appear once in an object: one of the two"
        .. " would be dropped)", path
    elseif path == nil then
      return nil, prefix .. (raw_control(s, syntax_at) or ("cannot be checked for keys given twice ("
        .. tostring(why) .. ")"))
    end
  end
  return v
end

-- cjson 2.1.0 writes numbers with 14 significant digits: a Lua 5.4 integer id such as
-- 861796639666000001 went out as 8.61796639666e+17 (a video_id the API then did not know, an
-- element_id of another element or none). Whole numbers from BIG up are written by hand,
-- exactly: %d for an integer, %.0f for a whole double (LuaJIT's, exact as the double is).
local BIG = 1e14
-- The stand-in carries a word no caller can know (this process's own), so that a string that
-- happens to read like it is never turned into a number.
local NONCE = ((tostring({}):match("0x(%x+)") or "") .. string.format("%x", os.time() % 0x10000000)):sub(-16)
local INT_MARK = "\0klingint" .. NONCE .. ":"
local INT_ENCODED = '"\\u0000klingint' .. NONCE .. ':(%-?%d+)\\u0000"'

local function is_big_whole(x)
  return type(x) == "number" and (x >= BIG or x <= -BIG) and x == x and x ~= math.huge and x ~= -math.huge
    and x % 1 == 0
end

local function whole_text(x)
  local i = tointeger and tointeger(x)
  if i then
    return string.format("%d", i)
  end
  return string.format("%.0f", x)
end

-- As deep as cjson writes (its encode_max_depth); a table that holds itself is deeper than any.
local MAX_DEPTH = 1000

-- Whether v holds what cjson cannot write as meant: an empty array, or a big whole number;
-- "deep" past MAX_DEPTH (the walk would overflow the C stack: "stack overflow" raised).
local function needs_marks(v, depth)
  if is_big_whole(v) then
    return true
  end
  if type(v) ~= "table" then
    return false
  end
  depth = (depth or 0) + 1
  if depth > MAX_DEPTH then
    return "deep"
  end
  local found = getmetatable(v) == array_mt and next(v) == nil
  for _, x in pairs(v) do
    local r = needs_marks(x, depth)
    if r == "deep" then
      return r
    end
    found = found or r
  end
  return found
end

local function mark(v)
  if is_big_whole(v) then
    return INT_MARK .. whole_text(v) .. "\0"
  end
  if type(v) ~= "table" then
    return v
  end
  if getmetatable(v) == array_mt and next(v) == nil then
    return EMPTY
  end
  local copy = {}
  for k, x in pairs(v) do
    copy[k] = mark(x)
  end
  return copy
end

--- Encodes a value as JSON; never raises.
-- Returns the text, or nil and a message.
---@param v any
---@return string|nil text
---@return string|nil err
function M.encode(v)
  local marks = needs_marks(v)
  if marks == "deep" then
    return nil, "Cannot serialise: nested deeper than " .. MAX_DEPTH .. " levels (a table that holds itself?)"
  elseif marks then
    local s, err = cjson.encode(mark(v))
    if not s then
      return nil, err
    end
    return (s:gsub(EMPTY_ENCODED, "[]"):gsub(INT_ENCODED, "%1"))
  end
  return cjson.encode(v)
end

-- Under LuaJIT, whether a short string is written as it is between quotes (every byte printable
-- ASCII but the three cjson escapes: '"', '\\' and '/'): a loop the JIT compiles, where a call
-- of cjson leaves the compiled trace and comes back (most strings of a task record and a journal
-- line are such: ids, names, states, amounts). Plain Lua keeps cjson, whose C loop is faster there.
local byte = string.byte
local as_is
if rawget(_G, "jit") then
  as_is = function(s)
    local n = #s
    if n > 64 then
      return false
    end
    for i = 1, n do
      local b = byte(s, i)
      if b < 32 or b > 126 or b == 34 or b == 47 or b == 92 then
        return false
      end
    end
    return true
  end
else
  as_is = function()
    return false
  end
end

--- The JSON text of a string (quoted and escaped). The one way texts built by hand (journal
-- lines, task records) write a string: cjson's escaping in C, a call whatever the string's length,
-- where a Lua pattern that proves a string needs no escaping walks it byte by byte in the
-- pattern matcher, several times slower even on an 8-byte id (bench/gateway/README.md); a short
-- one that needs none, under LuaJIT, by a compiled loop over its bytes (the same text).
---@param s string
---@return string text
function M.quote(s)
  if as_is(s) then
    return '"' .. s .. '"'
  end
  return (cjson.encode(s))
end

--- The JSON text of one value, as texts built by hand write it: a string by M.quote, an integer
-- within 2^53 whole (cjson's %.14g would round one of 15 digits or more), a boolean as itself,
-- anything else by M.encode.
---@param v any
---@return string|nil text
---@return string|nil err
function M.value(v)
  local t = type(v)
  if t == "string" then
    return M.quote(v)
  elseif t == "number" and v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53 then
    return string.format("%d", v)
  elseif t == "boolean" then
    return v and "true" or "false"
  end
  return M.encode(v)
end

local function canonical(v, out)
  local t = type(v)
  if t == "table" then
    if v[1] ~= nil or (next(v) == nil and M.is_array(v)) then
      out[#out + 1] = "["
      for i, x in ipairs(v) do
        if i > 1 then
          out[#out + 1] = ","
        end
        canonical(x, out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        keys[#keys + 1] = tostring(k)
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then
          out[#out + 1] = ","
        end
        out[#out + 1] = assert(M.encode(k))
        out[#out + 1] = ":"
        local x = v[k]
        if x == nil then
          x = v[tonumber(k)]
        end
        canonical(x, out)
      end
      out[#out + 1] = "}"
    end
  elseif t == "number" and math.type and math.type(v) == "float" and v == math.floor(v)
    and v > -2 ^ 53 and v < 2 ^ 53 then
    out[#out + 1] = string.format("%d", v)
  else
    out[#out + 1] = assert(M.encode(v))
  end
  return out
end

--- JSON with sorted keys and integral floats written as integers, so that equal tables
-- always give equal text: what request hashes (batch rows, storyboard segments, elements)
-- are taken of.
---@param v any
---@return string text
function M.canonical(v)
  return table.concat(canonical(v, {}))
end

return M
