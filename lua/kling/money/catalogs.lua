--- Price catalogs: which catalog prices a provider, and catalog sets per owner.
-- A catalog is data (lua/kling/prices/<provider>.lua: dated, one currency, rules). A set holds
-- one owner's own catalogs (a client's), over a parent set, over the shipped catalogs. This
-- module keeps no state of its own: the process default (what kling.set_catalog fills) is a
-- set held by the public facade kling.billing, and each client holds its own set.
-- @module kling.money.catalogs
local errors = require "kling.errors"
local core = require "kling.core"
local providers = require "kling.providers"

local M = {}

local function validation(field, message, provider)
  return errors.new { kind = "validation", field = field, message = message, provider = provider }
end

local function unpriced(provider, message)
  return errors.new { kind = "unpriced", message = message, provider = provider }
end

-- Facts a rule may match on, in the order a missing one is reported (kling.money.quote
-- matches rules on them).
local FACTS = { "method", "endpoint", "model", "effect", "mode", "resolution", "sound", "voice", "reference", "image" }
local KNOWN_FACT = {}
for _, k in ipairs(FACTS) do
  KNOWN_FACT[k] = true
end

local function check_catalog(provider, cat)
  local known, perr = providers.get(provider) -- a catalog for no provider would price nothing
  if not known then
    return nil, perr
  end
  if type(cat) ~= "table" then
    return nil, validation("catalog", "a catalog table is required", provider)
  end
  if type(cat.rules) ~= "table" then
    return nil, validation("catalog.rules", "a list of rules is required", provider)
  end
  if type(cat.date) ~= "string" then
    return nil, validation("catalog.date", "the date the prices were taken is required", provider)
  end
  for i, r in ipairs(cat.rules) do
    local where = "catalog.rules[" .. i .. "]"
    if type(r) ~= "table" or type(r.id) ~= "string" then
      return nil, validation(where, "a rule table with a string id is required", provider)
    end
    for k in pairs(r.match or {}) do
      if not KNOWN_FACT[k] then
        return nil, validation(where .. ".match." .. tostring(k), "unknown fact (known: "
          .. table.concat(FACTS, ", ") .. ")", provider)
      end
    end
    if r.unpriced == nil and r.invalid == nil then
      if type(cat.currency) ~= "string" then
        return nil, validation("catalog.currency", "a priced catalog needs a currency", provider)
      end
      local ok, msg = core.price_check(r)
      if not ok then
        return nil, validation(where, msg, provider)
      end
    end
  end
  if cat.usd_rate ~= nil and not core.money_parse(tostring(cat.usd_rate)) then
    return nil, validation("catalog.usd_rate", "a decimal string is required", provider)
  end
  return true
end

-- ---- catalog sets: the user's catalogs, per owner ----
-- A client keeps its own set (kling.new{catalogs =}, client:set_catalog), so two clients never
-- see each other's prices. A provider a set holds no catalog for falls back to its parent
-- (for a client: the process default below, what kling.set_catalog fills, kept for that
-- public call), then to the catalog shipped in kling/prices/.

--- A catalog set (`billing.catalogs`): get, set, estimate, settle and quote with its catalogs.
---@class kling.Catalogs
---@field own table the catalogs this set holds, by provider name
---@field parent kling.Catalogs|nil the set it falls back to
local Catalogs = {}
Catalogs.__index = Catalogs
M.Catalogs = Catalogs

local function is_catalogs(v)
  return getmetatable(v) == Catalogs
end

--- Makes a catalog set: its own catalogs by provider, over a parent set.
-- catalogs([{provider = catalog, ...}] [, parent]) -> a set | nil, err (the first bad catalog).
-- A provider the set has no catalog for is priced by the parent's, then the shipped one. A
-- parent that is not a set raises. The set has get(provider), set(provider, catalog) and
-- estimate, settle, quote with its catalogs.
---@param own? table `{provider = catalog}`: each checked as check_catalog does
---@param parent? kling.Catalogs the set to fall back to (a client's: the process default)
---@return kling.Catalogs|nil set
---@return kling.Error|nil err kind `validation`: the first bad key or catalog
function M.catalogs(own, parent)
  if own ~= nil and type(own) ~= "table" then
    return nil, validation("catalogs", "must be a table {provider = catalog}")
  end
  if parent ~= nil and not is_catalogs(parent) then
    errors.misuse("billing.catalogs", "parent must be a catalog set (billing.catalogs)")
  end
  local set = setmetatable({ own = {}, parent = parent }, Catalogs)
  local names = {}
  for provider in pairs(own or {}) do
    names[#names + 1] = provider
  end
  table.sort(names, function(a, b) return tostring(a) < tostring(b) end)
  for _, provider in ipairs(names) do
    if type(provider) ~= "string" then
      return nil, validation("catalogs", "keys are provider names (got " .. type(provider) .. ")")
    end
    local ok, err = set:set(provider, own[provider])
    if not ok then
      return nil, err
    end
  end
  return set
end

-- The user's catalog for a provider in this set or its parents, or nil.
function Catalogs:own_catalog(provider)
  local set = self
  while set do
    local cat = set.own[provider]
    if cat then
      return cat
    end
    set = set.parent
  end
  return nil
end

local function listed(name)
  for _, p in ipairs(providers.names) do
    if p == name then
      return true
    end
  end
  return false
end

-- The catalogs shipped in kling/prices/, for a provider no set overrides.
local function shipped(provider, opts)
  if opts and opts.catalog then
    return opts.catalog
  end
  if type(provider) ~= "string" or not listed(provider) then
    return nil, providers.unknown(provider)
  end
  local ok, cat = pcall(require, providers.get(provider).prices) -- the provider's link to its catalog
  if not ok then
    return nil, unpriced(provider, "no price catalog for provider '" .. provider .. "'")
  end
  return cat
end

-- The catalog in force for a provider: opts.catalog, the user's, or the shipped one.
function Catalogs:get(provider, opts)
  if opts and opts.catalog then
    return opts.catalog
  end
  local own = type(provider) == "string" and self:own_catalog(provider)
  if own then
    return own
  end
  return shipped(provider)
end

-- Replaces a provider's catalog in this set (nil removes it: the parent's or the shipped one
-- is in force again). -> true | nil, err
function Catalogs:set(provider, cat)
  errors.check_arg("set_catalog", 1, provider, "string")
  if cat == nil then
    self.own[provider] = nil
    return true
  end
  local ok, err = check_catalog(provider, cat)
  if not ok then
    return nil, err
  end
  self.own[provider] = cat
  return true
end

--- The price catalog in force for a provider.
-- Returns the catalog in force for a provider: opts.catalog, opts.catalogs' (a set, with its
-- parents), or the shipped one. opts.catalogs that is not a set raises.
---@param provider string
---@param opts? {catalog: table, catalogs: kling.Catalogs}
---@return table|nil catalog
---@return kling.Error|nil err kind `validation` (unknown provider) or `unpriced` (no catalog)
function M.catalog(provider, opts)
  local set = opts and opts.catalogs
  if set == nil then
    return shipped(provider, opts)
  end
  if not is_catalogs(set) then
    errors.misuse("billing", "opts.catalogs must be a catalog set (billing.catalogs)")
  end
  return set:get(provider, opts)
end

--- Checks a catalog's shape: rules with ids, known facts, a date, a currency when priced.
-- check_catalog(provider, catalog) -> true | nil, err: what set_catalog refuses, and why.
---@param provider string the provider it is for (named in the error)
---@param cat table a catalog shaped like lua/kling/prices/PROVIDER.lua
---@return boolean|nil ok
---@return kling.Error|nil err kind `validation`, `field` naming the bad part ("catalog.rules[2].match.x")
-- @function check_catalog
M.check_catalog = check_catalog
M.FACTS = FACTS

-- The same three as kling.money.quote's with this set's catalogs: set:estimate(req [, opts]),
-- set:settle(req, usage [, opts]), set:quote(req [, opts]). (quote requires this module, so
-- it is required here when first used.)
local function in_set(set, opts)
  local o = {}
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  o.catalogs = set
  return o
end

function Catalogs:estimate(req, opts)
  return require("kling.money.quote").estimate(req, in_set(self, opts))
end

function Catalogs:settle(req, usage, opts)
  return require("kling.money.quote").settle(req, usage, in_set(self, opts))
end

function Catalogs:quote(req, opts)
  return require("kling.money.quote").quote(req, in_set(self, opts))
end

return M
