-- A worker's cache of billing.estimate's quotes (the price of a create was a seventh of the
-- gateway's Lua per create). A quote is kept under the catalog in force (each catalog object
-- its own cache: set_catalog installs a new object, so an override is never served an old
-- price) and every field of the request but its free text, which no catalog prices (billing's
-- facts are the method, endpoint, model, effect, mode, resolution, sound, voice, reference and
-- image, its amounts the duration and n). A request with a table or a long string among its
-- fields is priced afresh (no key is built for it); so is one billing refuses (refusals are
-- not kept). Bounded: a full cache starts over.
local billing = require "kling.billing"

local M = {}

M.MAX = 1024 -- quotes kept per catalog
M.LONG = 256 -- a string field longer than this is not put in a key
-- Free text: what the request asks to be made, never a price fact.
M.TEXT = { prompt = true, negative_prompt = true }

local function piece(k, v)
  local t = type(v)
  if t == "string" then
    if #v > M.LONG then
      return nil
    end
    return #k .. ":" .. k .. "s" .. #v .. ":" .. v
  elseif t == "number" then
    -- Whole numbers (durations, counts) as integers: exact, and cheaper than %.17g.
    if v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53 then
      return #k .. ":" .. k .. "i" .. string.format("%d", v)
    end
    return #k .. ":" .. k .. "n" .. string.format("%.17g", v)
  elseif t == "boolean" then
    return #k .. ":" .. k .. (v and "T" or "F")
  end
  return nil -- a table (lists, inputs): not keyed
end

-- key(req) -> the request's fields but its free text, in one string | nil (not cacheable).
-- Each field is its name and value with their lengths, sorted: two requests share a key only
-- when every such field is equal.
function M.key(req)
  local parts, n = {}, 0
  for k, v in pairs(req) do
    if type(k) ~= "string" then
      return nil
    end
    if not M.TEXT[k] then
      local p = piece(k, v)
      if not p then
        return nil
      end
      n = n + 1
      parts[n] = p
    end
  end
  -- Sorted by insertion: a request has a handful of fields, and LuaJIT compiles this loop,
  -- where table.sort compares through the C API.
  for i = 2, n do
    local p, j = parts[i], i - 1
    while j > 0 and parts[j] > p do
      parts[j + 1] = parts[j]
      j = j - 1
    end
    parts[j + 1] = p
  end
  return table.concat(parts, "|")
end

local Cache = {}
Cache.__index = Cache

-- new() -> a cache (one per worker: it lives in the worker's gateway state).
function M.new()
  local self = setmetatable({ by_catalog = setmetatable({}, { __mode = "k" }) }, Cache)
  -- estimate as a plain function (kling.money.hold.worst_case takes one), made once
  self.price = function(req)
    return self:estimate(req)
  end
  return self
end

-- estimate(req) -> quote | nil, err: billing.estimate(req), from the cache when the same
-- catalog priced the same fields before. The quote is shared: callers read it, never change it.
function Cache:estimate(req)
  local cat = billing.catalog(req.provider)
  local key = cat and M.key(req)
  if not key then
    return billing.estimate(req)
  end
  key = tostring(cat.date) .. "|" .. key
  local c = self.by_catalog[cat]
  if not c then
    c = { n = 0, quotes = {} }
    self.by_catalog[cat] = c
  end
  local q = c.quotes[key]
  if q then
    return q
  end
  local err
  q, err = billing.estimate(req)
  if not q then
    return nil, err
  end
  if c.n >= M.MAX then
    c.n, c.quotes = 0, {}
  end
  c.quotes[key], c.n = q, c.n + 1
  return q
end

return M
