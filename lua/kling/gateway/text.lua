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

-- A string written as is when it needs no escaping (ids, names, states); else by cjson.
local function str(v)
  if v:find('^[%w._:/ -]*$') then
    return '"' .. v .. '"'
  end
  return json.encode(v)
end

-- One value as JSON (nil when it cannot be encoded).
local function value(v)
  local t = type(v)
  if t == "string" then
    return str(v)
  elseif t == "number" and v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53 then
    return string.format("%d", v) -- integral: written whole (cjson would go through %.14g)
  elseif t == "boolean" then
    return v and "true" or "false"
  end
  return json.encode(v)
end

-- object(t, last[, cached]) -> the JSON text of the object t with its key `last` written
-- last | nil, err. cached: {key = JSON text} for values already encoded (the same text).
-- Falls back to json.encode(t) when a key is not a plain name.
function M.object(t, last, cached)
  local tail = t[last]
  if type(tail) ~= "string" then
    return json.encode(t)
  end
  local parts, n = { "{" }, 1
  for k, v in pairs(t) do
    if k ~= last then
      if type(k) ~= "string" or not k:find("^[%w_]+$") then
        return json.encode(t)
      end
      local s = cached and cached[k]
      if not s then
        local err
        s, err = value(v)
        if not s then
          return nil, err
        end
      end
      parts[n + 1], parts[n + 2], parts[n + 3] = '"' .. k .. '":', s, ","
      n = n + 3
    end
  end
  parts[n + 1], parts[n + 2], parts[n + 3] = '"' .. last .. '":', str(tail), "}"
  return table.concat(parts)
end

-- record(rec[, request_json]) -> the task record as JSON text, its id last | nil, err.
-- request_json: rec.request already encoded (a create's record is written twice, with the
-- same request facts).
function M.record(rec, request_json)
  return M.object(rec, "id", request_json and { request = request_json } or nil)
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
