-- Field checkers for the official API's request bodies, in the simulator's own words. Each
-- returns the cleaned value (or true), or nil and an error {status, code, message} naming
-- the field and the rule, as the API's 1201 answers do. Pure (no ngx).
local M = {}

M.MAX_IMAGE_BYTES = 10 * 1024 * 1024

function M.bad(message)
  return { status = 400, code = 1201, message = message }
end
local bad = M.bad

-- Characters (UTF-8 code points), not bytes.
function M.chars(s)
  return select(2, s:gsub("[^\128-\191]", ""))
end
local chars = M.chars

-- The keys of a set, sorted (for "must be one of ..." messages).
function M.sorted_keys(set)
  local names = {}
  for k in pairs(set) do
    names[#names + 1] = k
  end
  table.sort(names)
  return names
end

-- An absent field: an error when it is required, else nothing.
local function absent(field, required)
  if required then
    return nil, bad(field .. " is required")
  end
  return nil
end

function M.is_int(x)
  return type(x) == "number" and x == math.floor(x)
end

function M.is_array(t)
  return type(t) == "table" and (#t > 0 or next(t) == nil)
end

-- A duration as the official API writes it: whole seconds in decimal digits without a leading
-- zero ("5"; "05", " 5", "5.0" or "0x5" are no duration the API lists). -> seconds | nil
function M.seconds(v)
  return type(v) == "string" and v:match("^[1-9]%d*$") and tonumber(v) or nil
end

-- A string field of at most `limit` characters.
function M.text(body, field, limit, required)
  local v = body[field]
  if v == nil then
    return absent(field, required)
  end
  if type(v) ~= "string" then
    return nil, bad(field .. " must be a string")
  end
  if required and v:match("^%s*$") then
    return nil, bad(field .. " must not be empty")
  end
  if chars(v) > limit then
    return nil, bad(field .. " must be at most " .. limit .. " characters (got " .. chars(v) .. ")")
  end
  return v
end

-- One of `allowed` (a set), or `default` when absent.
function M.enum(body, field, allowed, default)
  local v = body[field]
  if v == nil then
    return default
  end
  if type(v) ~= "string" or not allowed[v] then
    return nil, bad(field .. " must be one of " .. table.concat(M.sorted_keys(allowed), ", ") .. " (got "
      .. tostring(v) .. ")")
  end
  return v
end

-- A number in [lo, hi] (default when absent); `step` 0.1 asks for one decimal at most.
function M.number(body, field, lo, hi, default, step)
  local v = body[field]
  if v == nil then
    return default
  end
  if type(v) ~= "number" or v ~= v or v < lo or v > hi then
    return nil, bad(field .. " must be a number in " .. lo .. ".." .. hi)
  end
  if step and math.abs(v * 10 - math.floor(v * 10 + 0.5)) > 1e-6 then
    return nil, bad(field .. " must have at most one decimal place (got " .. v .. ")")
  end
  return v
end

-- An integer in [lo, hi] (default when absent).
function M.int(body, field, lo, hi, default)
  local v = body[field]
  if v == nil then
    return default
  end
  if not M.is_int(v) or v < lo or v > hi then
    return nil, bad(field .. " must be an integer in " .. lo .. ".." .. hi)
  end
  return v
end

function M.boolean(body, field, default)
  local v = body[field]
  if v == nil then
    return default
  end
  if type(v) ~= "boolean" then
    return nil, bad(field .. " must be a boolean")
  end
  return v
end

function M.url(body, field, required)
  local v = body[field]
  if v == nil then
    return absent(field, required)
  end
  if type(v) ~= "string" or not v:match("^https?://[^%s/]+") then
    return nil, bad(field .. " must be an http(s) URL")
  end
  return v
end

-- An id: a non-empty string, or a whole number (element ids are longs).
function M.id(body, field, required)
  local v = body[field]
  if v == nil then
    return absent(field, required)
  end
  if (type(v) == "string" and v ~= "" and #v <= 128) or (M.is_int(v) and v >= 0) then
    return v
  end
  return nil, bad(field .. " must be a non-empty string id")
end

-- model_name (default when absent) among `allowed` (a set), else a 1203 naming endpoint `ep`.
function M.model(body, default, allowed, ep)
  local m = body.model_name == nil and default or body.model_name
  if type(m) ~= "string" then
    return nil, bad("model_name must be a string")
  end
  if not allowed[m] then
    return nil, { status = 404, code = 1203, message = "model_name " .. m .. " does not exist for " .. ep }
  end
  return m
end

-- Exactly one of two fields (a and b), or at most one when optional.
function M.one_of(body, a, b, optional)
  local n = (body[a] ~= nil and 1 or 0) + (body[b] ~= nil and 1 or 0)
  if n == 2 then
    return nil, bad(a .. " and " .. b .. " cannot both be given")
  end
  if n == 0 and not optional then
    return nil, bad("one of " .. a .. " or " .. b .. " is required")
  end
  return body[a] ~= nil and a or (body[b] ~= nil and b or nil)
end

local function be16(s, i)
  local a, b = s:byte(i, i + 1)
  return a * 256 + b
end

-- Width and height of a PNG or JPEG, or nil.
function M.image_size(bytes)
  if bytes:sub(1, 8) == "\137PNG\r\n\26\n" and #bytes >= 24 then
    return be16(bytes, 17) * 65536 + be16(bytes, 19), be16(bytes, 21) * 65536 + be16(bytes, 23), "png"
  end
  if bytes:sub(1, 2) == "\255\216" then
    local i = 3
    while i + 8 <= #bytes do
      if bytes:byte(i) ~= 255 then
        return nil
      end
      local marker = bytes:byte(i + 1)
      if marker >= 0xC0 and marker <= 0xCF and marker ~= 0xC4 and marker ~= 0xC8 and marker ~= 0xCC then
        return be16(bytes, i + 7), be16(bytes, i + 5), "jpeg"
      end
      i = i + 2 + be16(bytes, i + 2)
    end
  end
  return nil
end

-- An image value: an http(s) URL, or raw base64 of a JPEG/PNG within the documented limits
-- (at most 10 MB, at least 300 px a side, aspect 1:2.5..2.5:1). `field` names it in errors.
function M.image_value(v, field, decode_b64)
  if type(v) ~= "string" or v == "" then
    return nil, bad(field .. " must be a non-empty string (an image URL or raw base64)")
  end
  if v:match("^https?://") then
    return true
  end
  if v:match("^data:") then
    return nil, bad(field .. " must be raw base64 without a 'data:' prefix, or a URL")
  end
  local bytes = decode_b64(v)
  if not bytes then
    return nil, bad(field .. " is neither an http(s) URL nor valid base64")
  end
  if #bytes > M.MAX_IMAGE_BYTES then
    return nil, bad(field .. " must be at most 10 MB (got " .. #bytes .. " bytes)")
  end
  local w, h = M.image_size(bytes)
  if not w then
    return nil, bad(field .. " must be a JPEG or PNG image")
  end
  if w < 300 or h < 300 then
    return nil, bad(field .. " must be at least 300 px wide and high (got " .. w .. "x" .. h .. ")")
  end
  if 2 * math.max(w, h) > 5 * math.min(w, h) then
    return nil, bad(field .. " aspect ratio must be between 1:2.5 and 2.5:1 (got " .. w .. "x" .. h .. ")")
  end
  return true
end

function M.image(body, field, decode_b64, required)
  if body[field] == nil then
    return absent(field, required)
  end
  return M.image_value(body[field], field, decode_b64)
end

-- An array of at most `max` objects each with `key` (a string or number); -> count.
function M.object_list(body, field, max, key, min)
  local v = body[field]
  if v == nil then
    if min and min > 0 then
      return nil, bad(field .. " is required (" .. min .. " to " .. max .. " items)")
    end
    return 0
  end
  if not M.is_array(v) or #v > max or #v < (min or 0) then
    return nil, bad(field .. " must be an array of " .. (min and min > 0 and (min .. " to ") or "at most ") .. max
      .. " items")
  end
  for i, item in ipairs(v) do
    if type(item) ~= "table" or (type(item[key]) ~= "string" and type(item[key]) ~= "number") then
      return nil, bad(field .. "[" .. i .. "]." .. key .. " is required")
    end
  end
  return #v
end

-- An array of 1..max objects whose `key` is an image; -> count.
function M.image_list(body, field, max, key, decode_b64, min)
  local n, err = M.object_list(body, field, max, key, min)
  if not n then
    return nil, err
  end
  for i, item in ipairs(body[field] or {}) do
    local ok, ierr = M.image_value(item[key], field .. "[" .. i .. "]." .. key, decode_b64)
    if not ok then
      return nil, ierr
    end
  end
  return n
end

-- watermark_info {enabled = boolean} -> enabled
function M.watermark(body)
  local wm = body.watermark_info
  if wm ~= nil and (type(wm) ~= "table" or (wm.enabled ~= nil and type(wm.enabled) ~= "boolean")) then
    return nil, bad("watermark_info must be an object {enabled = boolean}")
  end
  return type(wm) == "table" and wm.enabled == true
end

-- callback_url and external_task_id, shared by every asynchronous create; fills r.
function M.task_options(body, r)
  local cb = body.callback_url
  if cb ~= nil and (type(cb) ~= "string" or not cb:match("^https?://.")) then
    return nil, bad("callback_url must be an http(s) URL")
  end
  r.callback_url = cb
  local ext = body.external_task_id
  if ext ~= nil and (type(ext) ~= "string" or ext == "") then
    return nil, bad("external_task_id must be a non-empty string")
  end
  r.external_task_id = ext
  local wm, err = M.watermark(body)
  if wm == nil then
    return nil, err
  end
  r.watermark = wm
  return r
end

-- Runs checks in order: each is fn() -> value | nil, err; a nil value with no error is fine.
function M.all(...)
  for i = 1, select("#", ...) do
    local ok, err = select(i, ...)()
    if ok == nil and err then
      return nil, err
    end
  end
  return true
end

return M
