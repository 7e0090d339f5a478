--- Local files as request inputs: a path given for an image or video field.
-- Each provider declares in its dialect what its media fields take (`P.media_inputs`:
-- field -> "base64" or "url"); this module finds the local paths among a request's values,
-- reads the files where the provider takes base64 and refuses them by name where it needs a
-- URL. It runs before any network call or reservation, on the user's own requests only: a
-- client that forwards requests from the network (the gateway) is made with
-- `kling.new{local_files = false}`, and nothing here ever reads a path an answer carried.
-- @module kling.local_file
local core = require "kling.core"
local errors = require "kling.errors"

local M = {}

--- The largest file read: 10 MB, the official API's limit for an image.
M.MAX_BYTES = 10 * 1024 * 1024

--- The largest input file read as text (a manifest, a storyboard, --defaults, --rates, --file).
M.MAX_TEXT = 256 * 1024 * 1024

--- A UTF-8 byte order mark (U+FEFF): editors on Windows ("UTF-8 with BOM") start a file with one.
M.BOM = "\239\187\191"

--- A file's text without the byte order mark it starts with: the one rule of every file a user
-- gives (a manifest, a storyboard, --file, --defaults, --rates, the gateway's config), where a
-- BOM is taken at the start only (anywhere else the JSON decoder refuses it).
---@param text string
---@return string
function M.without_bom(text)
  return text:sub(1, 3) == M.BOM and text:sub(4) or text
end

--- Reads a file the user named as an input (a manifest, a storyboard, --defaults, --rates, a
-- request's --file): the one place these are read. Only a regular file is read (a directory,
-- a FIFO or a device is named as such, checked before any open: nothing blocks), at most
-- MAX_TEXT bytes; a BOM it starts with is removed (M.without_bom).
---@param path string
---@return string|nil text
---@return string|nil err naming the path and why ("x is a directory", the OS's reason)
function M.read_text(path)
  if type(path) ~= "string" or path == "" then
    return nil, "no file named"
  end
  if path:find("%c") then
    return nil, "a file path must not contain control characters"
  end
  local data, err = core.read_regular(path, M.MAX_TEXT + 1)
  if not data then
    return nil, tostring(err)
  end
  if #data > M.MAX_TEXT then
    return nil, string.format("%s is over %d bytes", path, M.MAX_TEXT)
  end
  return M.without_bom(data)
end

-- Base64 of the formats the APIs take starts with these (JPEG, PNG, MP4's box size).
local MAGIC = { "/9j/", "iVBORw0K", "AAAA" }

local function looks_base64(v)
  if not v:match("^[%w+/=\r\n]+$") then
    return false
  end
  if #v >= 128 then
    return true
  end
  for _, m in ipairs(MAGIC) do
    if v:sub(1, #m) == m then
      return true
    end
  end
  return false
end

--- Whether a request value is meant as a local file path.
-- A string that is not a URL (http(s) or another scheme), not `data:` and not base64 data.
---@param v any a field's value
---@return boolean
function M.is_path(v)
  if type(v) ~= "string" or v == "" then
    return false
  end
  if v:match("^%a[%w+.-]*://") or v:match("^[Dd][Aa][Tt][Aa]:") then
    return false
  end
  return not looks_base64(v)
end

-- What the official API takes inline: JPEG and PNG images (their files' first bytes).
local IMAGE_MAGIC = { "\255\216\255", "\137PNG\r\n\26\n" }

local function is_image(data)
  for _, m in ipairs(IMAGE_MAGIC) do
    if data:sub(1, #m) == m then
      return true
    end
  end
  return false
end

--- Reads a local image file as base64, checking it first.
-- Refused (a validation error naming `field`): control characters in the path, a path that is
-- not a regular file (a FIFO, a device, /dev/stdin, a directory: checked before anything is
-- opened for reading, so nothing blocks), a file that cannot be opened, an empty file, a file
-- over `limit` bytes, a file that is not a JPG or PNG image (the only files read are images:
-- providers take videos by URL).
---@param path string
---@param field string the request field it was given for (named in errors)
---@param limit? integer bytes (MAX_BYTES)
---@param provider? string named in errors
---@return string|nil base64 the file's bytes in base64
---@return kling.Error|nil err kind `validation`
function M.read(path, field, limit, provider)
  limit = limit or M.MAX_BYTES
  local function fail(rule)
    return nil, errors.validation(field, rule, provider)
  end
  if path:find("%c") then
    return fail("a local file path must not contain control characters")
  end
  -- Read at most one byte past the limit: a file growing meanwhile never fills memory.
  local data, rerr, kind = core.read_regular(path, limit + 1)
  if kind then
    return fail("the local file " .. path .. " is not a regular file (it is " .. kind
      .. "); only regular files are read")
  end
  if not data then
    return fail("cannot read the local file (a value that is not an http(s) URL or base64 data is a path): "
      .. tostring(rerr))
  end
  if data == "" then
    return fail("the local file " .. path .. " is empty")
  end
  if #data > limit then
    return fail(string.format("the local file %s is over %d bytes (%d MB, the API's limit)", path, limit,
      math.floor(limit / (1024 * 1024))))
  end
  if not is_image(data) then
    return fail("the local file " .. path .. " is not a JPG or PNG image (the only files sent inline)")
  end
  return core.b64encode(data)
end

-- The places a declaration names: "image", "image_list[]" (string items), "image_list[].image"
-- (a key of table items), "input.image" (a key of a table field).
local function parse(decl)
  local top, rest = decl:match("^([%w_]+)(.*)$")
  return top, rest
end

-- Walks value v along the rest of a declaration; calls visit(value, where) for each local
-- path found there. Returns v itself when nothing changed, else a copy with the new values
-- (the caller's tables are never changed); or nil and the error.
local function walk(v, rest, where, visit)
  if rest == "" then
    if M.is_path(v) then
      return visit(v, where)
    end
    return v
  end
  if type(v) ~= "table" then
    return v
  end
  local copy
  local function put(k, x)
    if not copy then
      copy = setmetatable({}, getmetatable(v))
      for kk, xx in pairs(v) do
        copy[kk] = xx
      end
    end
    copy[k] = x
  end
  if rest:sub(1, 2) == "[]" then
    local inner = rest:sub(3)
    for i, item in ipairs(v) do
      local got, err = walk(item, inner, where .. "[" .. i .. "]", visit)
      if got == nil then
        return nil, err
      end
      if got ~= item then
        put(i, got)
      end
    end
    return copy or v
  end
  local key, after = rest:match("^%.([%w_]+)(.*)$")
  if key and v[key] ~= nil then
    local got, err = walk(v[key], after, where .. "." .. key, visit)
    if got == nil then
      return nil, err
    end
    if got ~= v[key] then
      put(key, got)
    end
  end
  return copy or v
end

-- A provider's declarations, sorted (the same error first every time) and parsed: {top, rest,
-- takes} each. Made once per declaration table (a provider's is fixed once loaded: a memo,
-- as kling.providers' own checks) since every request of every create walks them.
local compiled = setmetatable({}, { __mode = "k" })

local function declarations(media)
  local list = compiled[media]
  if list then
    return list
  end
  list = {}
  for decl in pairs(media) do
    list[#list + 1] = decl
  end
  table.sort(list)
  for i, decl in ipairs(list) do
    local top, rest = parse(decl)
    list[i] = { top = top, rest = rest, takes = media[decl] }
  end
  compiled[media] = list
  return list
end

-- Every local path in the provider's media fields (`P.media_inputs`), in a fixed order, put
-- through visit(path, where, takes) -> the value to put in its place | nil, err.
-- Returns the top-level fields that changed, or nil when none did; or nil and the first
-- error. The request itself is never changed.
local function each_path(P, req, visit)
  if not P.media_inputs then
    return nil
  end
  local out
  for _, d in ipairs(declarations(P.media_inputs)) do
    local takes, top, rest = d.takes, d.top, d.rest
    local v = (out and out[top] ~= nil) and out[top] or req[top]
    if v ~= nil then
      local got, err = walk(v, rest, top, function(path, where)
        return visit(path, where, takes)
      end)
      if got == nil then
        return nil, err
      end
      if got ~= v then
        out = out or {}
        out[top] = got
      end
    end
  end
  return out
end

--- The fields of a request whose local files were read, as the provider takes them.
-- For each media field the provider declares (`P.media_inputs`), a local path is read and put
-- in base64 where the provider says "base64", and refused by name where it says "url".
-- Returns the top-level fields that changed (`{image = "<base64>", ...}`), or nil when none
-- did; or nil and the error. The request itself is never changed.
---@param P table the provider (its `name` and `media_inputs`)
---@param req table a canonical request
---@param limit? integer bytes per file (MAX_BYTES)
---@return table|nil fields the replaced top-level fields, or nil
---@return kling.Error|nil err kind `validation`, naming the field and the rule
function M.inline(P, req, limit)
  return each_path(P, req, function(path, where, takes)
    if takes ~= "base64" then
      return nil, errors.validation(where, "this provider needs a URL: '" .. path:gsub("%c", "?")
        .. "' is a local file, which " .. P.name .. " does not take inline; upload it and give its http(s) URL",
        P.name)
    end
    return M.read(path, where, limit, P.name)
  end)
end

--- A request whose relative local paths are read from `dir` rather than the current
-- directory: what a manifest's rows mean by `"image": "frames/a.png"` (the manifest's own
-- directory), wherever `kling run` is started from. Only the provider's media fields are
-- touched; URLs, base64 and absolute paths stay as they are.
-- Returns the top-level fields that changed, or nil when none did (as `inline` does).
---@param P table the provider (its `media_inputs`)
---@param req table a canonical request
---@param dir string the directory relative paths are taken from
---@return table|nil fields
function M.rebase(P, req, dir)
  if dir == "" or dir == "." then
    return nil
  end
  return each_path(P, req, function(path)
    return path:sub(1, 1) == "/" and path or (dir:gsub("/+$", "") .. "/" .. path)
  end)
end

--- A request with the fields `inline` returned put in place (a shallow copy), or the
-- request itself when there are none.
---@param req table
---@param fields table|nil what `inline` returned
---@return table req
function M.apply(req, fields)
  if not fields then
    return req
  end
  local copy = {}
  for k, v in pairs(req) do
    copy[k] = v
  end
  for k, v in pairs(fields) do
    copy[k] = v
  end
  return copy
end

return M
