-- JSON text of what a create writes (its task record, the provider's body) built so that the
-- part that differs from one create to the next, the task id, ends the text.
--
-- Why: LuaJIT interns every string, and OpenResty's LuaJIT hashes a string of 128 bytes or
-- more from its first and last 8 bytes and 16 sampled ones only. Strings of one length that
-- differ elsewhere (two records of one request shape: the same fields, another id) share a
-- hash chain, and making each new one walks that chain and compares it with every string on
-- it: in a worker under load, 20-90 us per string (bench/gateway/README.md). With the id in
-- the last 8 bytes each such text has a hash of its own. The texts are plain JSON: a reader
-- never depends on the order of an object's keys.
local json = require "kling.json"

local M = {}

local str = json.quote

-- Whether a key is written as is: a plain name ([A-Za-z0-9_]+). A loop over its bytes, which
-- LuaJIT compiles, where the pattern matcher walks a character class per byte.
local byte = string.byte
local function plain_key(k)
  local n = type(k) == "string" and #k or 0
  if n == 0 then
    return false
  end
  for i = 1, n do
    local b = byte(k, i)
    if not (b >= 97 and b <= 122 or b >= 65 and b <= 90 or b >= 48 and b <= 57 or b == 95) then
      return false
    end
  end
  return true
end

local value = json.value -- one value as JSON (nil when it cannot be encoded)

-- object(t, last) -> the JSON text of the object t with its key `last` written last | nil,
-- err. Falls back to json.encode(t) when a key is not a plain name.
function M.object(t, last)
  local tail = t[last]
  if type(tail) ~= "string" then
    return json.encode(t)
  end
  local parts, n = { "{" }, 1
  for k, v in pairs(t) do
    if k ~= last then
      if not plain_key(k) then
        return json.encode(t)
      end
      local s, err = value(v)
      if not s then
        return nil, err
      end
      parts[n + 1], parts[n + 2], parts[n + 3] = '"' .. k .. '":', s, ","
      n = n + 3
    end
  end
  parts[n + 1], parts[n + 2], parts[n + 3] = '"' .. last .. '":', str(tail), "}"
  return table.concat(parts)
end

-- field(name, v) -> '"name":<v as JSON>,' or "" (nil) | nil, err
local function field(name, v)
  if v == nil then
    return ""
  end
  local s, err = value(v)
  if not s then
    return nil, err
  end
  return '"' .. name .. '":' .. s .. ","
end

-- A record's tail: the fields written by hand after the others, before its id: the ones that
-- differ between creates of one request shape (created_at, updated_at, upstream_id, list_n,
-- external_task_id, callback_url) and the ones a create's publish changes (status, state).
-- stable(rec) -> the JSON text of every other field of rec, without its braces | nil, err:
-- what a create's publish writes again unchanged, so that text is made once per create.
function M.stable(rec)
  local id, ca, ua, st, sa, up, ln, ext, cb = rec.id, rec.created_at, rec.updated_at, rec.status, rec.state,
    rec.upstream_id, rec.list_n, rec.external_task_id, rec.callback_url
  rec.id, rec.created_at, rec.updated_at, rec.status, rec.state, rec.upstream_id, rec.list_n, rec.external_task_id,
    rec.callback_url = nil, nil, nil, nil, nil, nil, nil, nil, nil
  local s, err = json.encode(rec)
  rec.id, rec.created_at, rec.updated_at, rec.status, rec.state, rec.upstream_id, rec.list_n, rec.external_task_id,
    rec.callback_url = id, ca, ua, st, sa, up, ln, ext, cb
  if not s then
    return nil, err
  end
  return s:sub(2, -2)
end

-- record(rec [, stable]) -> the task record as JSON text, its id last | nil, err. stable:
-- M.stable(rec) made before (the fields it covers unchanged since). The fields that differ
-- between creates of one request shape are written after the others (cjson encodes those in
-- one piece: the same text for every create of that shape, so making it again finds it).
function M.record(rec, stable)
  local id = rec.id
  if type(id) ~= "string" then
    return json.encode(rec)
  end
  local err
  if not stable then
    stable, err = M.stable(rec)
    if not stable then
      return nil, err
    end
  end
  -- The tail in one concatenation (one new long string).
  local f1, f2, f3, f4, f5, f6, f7, f8
  f1, err = field("created_at", rec.created_at)
  f2 = f1 and field("updated_at", rec.updated_at)
  f3 = f2 and field("status", rec.status)
  f4 = f3 and field("state", rec.state)
  f5 = f4 and field("upstream_id", rec.upstream_id)
  f6 = f5 and field("list_n", rec.list_n)
  f7 = f6 and field("external_task_id", rec.external_task_id)
  f8 = f7 and field("callback_url", rec.callback_url)
  if not f8 then
    return nil, err or "a task record's field cannot be encoded"
  end
  return "{" .. stable .. (stable == "" and "" or ",") .. f1 .. f2 .. f3 .. f4 .. f5 .. f6 .. f7 .. f8 .. '"id":'
    .. str(id) .. "}"
end

-- body(body, id) -> the provider's request body as JSON text, with the field that carries
-- the gateway's id (the external task id) last | nil, err.
function M.body(body, id)
  if id ~= nil then
    for k, v in pairs(body) do
      if v == id and type(k) == "string" then
        return M.object(body, k)
      end
    end
  end
  return json.encode(body)
end

return M
