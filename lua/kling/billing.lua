--- Billing: estimate, settle, quote, and ledgers with hard-cap budgets (the public face).
-- The price of a request before it is sent (estimate), the charge for what was delivered
-- (settle), the comparison across providers (quote), and budgets (kling.ledger). The work is
-- done in kling.money (catalogs, quote, units, ledger and its stores); this module is their
-- public face and holds the process default catalog set, what kling.set_catalog fills and
-- what a client's own catalogs fall back to.
-- @module kling.billing
local catalogs = require "kling.money.catalogs"
local quote = require "kling.money.quote"
local ledger = require "kling.money.ledger"
local errors = require "kling.errors"
local validate = require "kling.validate"

local M = {}

-- The providers quote() asks, in this order: the registry's one list.
M.providers = quote.providers
M.Catalogs = catalogs.Catalogs
M.Ledger = ledger.Ledger

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
  return catalogs.catalogs(own, parent)
end

-- The process default, what kling.set_catalog fills: a client's own set falls back to it.
local default = catalogs.catalogs()
M.default_catalogs = default

-- The options each call reads: a misspelt one ({catalgo =}, {duraton =}) raises naming the
-- closest, instead of pricing with the shipped catalog or the request's own duration.
local PRICE_OPTIONS = { catalog = true, catalogs = true, provider = true, usd_rates = true }
local USAGE_FIELDS = { duration = true, count = true }
local QUOTE_OPTIONS = { providers = true, rates = true, usd_rates = true, catalogs = true }

-- validate.options(fn, opts, names), and the values that would otherwise raise from deep inside
-- (catalog = 5: "attempt to index a number value") or ask nobody (providers = "kling": no quote
-- and nothing said): misuse raises, naming the option.
local function check_options(fn, opts, names)
  validate.options(fn, opts, names)
  if opts == nil then
    return
  end
  if opts.catalog ~= nil and type(opts.catalog) ~= "table" then
    errors.misuse(fn, "catalog must be a catalog table (got " .. validate.type_of(opts.catalog) .. ")")
  end
  local list = opts.providers
  if list ~= nil then
    local ok = type(list) == "table"
    for k, v in pairs(ok and list or {}) do
      ok = ok and type(k) == "number" and type(v) == "string"
    end
    if not ok then
      errors.misuse(fn, "providers must be a list of provider names (got " .. validate.type_of(list) .. ")")
    end
  end
end

-- opts with the process default set when they name no catalog or set.
local function priced_by_default(opts)
  if opts and (opts.catalogs ~= nil or opts.catalog ~= nil) then
    return opts
  end
  local o = { catalogs = default }
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  return o
end

--- The price catalog in force for a provider.
-- Returns the catalog in force for a provider: opts.catalog, opts.catalogs' (a set), the
-- process default's, or the shipped one. opts.catalogs that is not a set raises.
---@param provider string
---@param opts? {catalog: table, catalogs: kling.Catalogs}
---@return table|nil catalog
---@return kling.Error|nil err kind `validation` (unknown provider) or `unpriced` (no catalog)
function M.catalog(provider, opts)
  return catalogs.catalog(provider, priced_by_default(opts))
end

--- Replaces a provider's catalog for this process (nil restores the shipped one).
-- Replaces a provider's catalog in the process default (nil restores the shipped one); a
-- client's own catalogs (kling.new{catalogs =}, client:set_catalog) take precedence.
---@param provider string
---@param cat table|nil a catalog, or nil to restore the shipped one
---@return boolean|nil ok
---@return kling.Error|nil err what is wrong with the catalog
function M.set_catalog(provider, cat)
  errors.check_arg("billing.set_catalog", 1, provider, "string")
  return default:set(provider, cat)
end

--- Checks a catalog's shape: rules with ids, known facts, a date, a currency when priced.
-- check_catalog(provider, catalog) -> true | nil, err: what set_catalog refuses, and why.
---@param provider string the provider it is for (named in the error)
---@param cat table a catalog shaped like lua/kling/prices/PROVIDER.lua
---@return boolean|nil ok
---@return kling.Error|nil err kind `validation`, `field` naming the bad part ("catalog.rules[2].match.x")
-- @function check_catalog
M.check_catalog = catalogs.check_catalog

--- The price of a request before it is sent (`kling.estimate`).
-- estimate(req [, opts]) -> quote | nil, err. opts.catalog prices with that catalog instead.
---@param req table a canonical request; `provider` (default "kling") picks the catalog
---@param opts? {catalog: table, catalogs: kling.Catalogs, provider: string, usd_rates: table}
---@return kling.Quote|nil quote
---@return kling.Error|nil err kind `validation` or `unpriced`
function M.estimate(req, opts)
  check_options("estimate", opts, PRICE_OPTIONS)
  return quote.estimate(req, priced_by_default(opts))
end

--- The product a request asks for, with its provider's catalog defaults applied (a request
-- that leaves model_name out is the catalog's default model): what a task was made with.
-- product(req [, opts]) -> {endpoint, model, mode, duration, sound, n, ...} | nil, err.
---@param req table a canonical request; `provider` (default "kling") picks the catalog
---@param opts? {catalog: table, catalogs: kling.Catalogs, provider: string}
---@return table|nil product
---@return kling.Error|nil err kind `validation` or `unpriced`
function M.product(req, opts)
  check_options("product", opts, PRICE_OPTIONS)
  local o = priced_by_default(opts)
  if o.provider == nil then
    o = { catalogs = o.catalogs, catalog = o.catalog, provider = req.provider or "kling" }
  end
  return quote.product(req, o)
end

--- The charge for what a task delivered (`kling.settle`).
-- settle(req, usage [, opts]) -> quote of the ACTUAL usage: usage.duration (seconds, a number
-- or a decimal string such as "5.041") and usage.count (outputs delivered). A field absent
-- from usage falls back to the request (breakdown.duration_from / count_from say which).
---@param req table the canonical request
---@param usage {duration: number|string, count: integer}
---@param opts? {catalog: table, catalogs: kling.Catalogs}
---@return kling.Quote|nil quote
---@return kling.Error|nil err
function M.settle(req, usage, opts)
  validate.options("settle", usage, USAGE_FIELDS)
  check_options("settle", opts, PRICE_OPTIONS)
  return quote.settle(req, usage, priced_by_default(opts))
end

--- The same product priced on every provider (`kling.quote`).
-- quote(req [, opts]) -> the quotes for the same product on every provider that can make and
-- price it, grouped by currency (ranked across currencies only with opts.rates), with
-- assumed, groups, ranked, note and unavailable (kling.money.quote.quote says how).
---@param req table a canonical request (its `provider` is ignored: every provider is asked)
---@param opts? {providers: string[], rates: table, usd_rates: table, catalogs: kling.Catalogs}
---@return kling.Quotes quotes
function M.quote(req, opts)
  check_options("quote", opts, QUOTE_OPTIONS)
  opts = priced_by_default(opts)
  -- an empty rates map ranks nothing: refused as the ledger's empty rates are, not taken as none
  if type(opts.rates) == "table" and next(opts.rates) == nil then
    errors.misuse("quote", "rates: is empty, so it converts nothing: give each currency's rate, USD per unit"
      .. " (such as CNY = \"0.14\"), or leave rates out")
  end
  -- a rate for a currency no provider charges in could never rank anything (CYN for CNY)
  local cur, unrated = require("kling.money.hold").first_unrated(opts.rates, opts.catalogs or default)
  if cur then
    errors.misuse("quote", "rates." .. cur .. ": " .. unrated)
  end
  local names = {}
  for c in pairs(type(opts.rates) == "table" and opts.rates or {}) do
    names[#names + 1] = tostring(c)
  end
  table.sort(names)
  for _, c in ipairs(names) do
    local problem = quote.rate_problem(c, opts.rates[c])
    if problem then
      errors.misuse("quote", "rates." .. c .. ": " .. problem)
    end
  end
  return quote.quote(req, opts)
end

--- The request every provider is asked to price, with the defaults made explicit.
---@param req table
---@return table product the request with its defaults explicit
---@return table assumed {field = value made explicit}
function M.same_product(req)
  return quote.same_product(req)
end

--- The unit a quote's money is in, as a name that can be compared ("evolink-credits").
---@param q kling.Quote
---@return string currency "CNY", "USD", or PROVIDER-credits
function M.currency_id(q)
  return quote.currency_id(q)
end

--- The unit a quote's money is counted in (a ledger's budgets are per unit).
-- unit(quote) or unit(currency, provider): an ISO code stands for itself, a provider's own
-- "credits" are that provider's ("evolink-credits").
---@param x kling.Quote|string a quote, or a currency name
---@param provider? string the provider whose unit a bare currency is (with a currency name)
---@return string|nil unit nil when there is no currency
function M.unit(x, provider)
  return quote.unit(x, provider)
end

--- Makes a ledger with one hard-cap budget per currency (`kling.ledger`).
-- ledger{limit = "50.00", currency = "CNY" | budgets = {{limit =, currency =}, ...}
-- [, rates = {currency =, rates = {}}] [, clock =] [, on_entry = fn(entry, line)]
-- [, lines = {JSON lines to replay}] [, store =]} -> ledger | nil, err (kling.money.ledger).
---@param opts table `limit` and `currency`, or `budgets`; `rates`, `clock`, `on_entry`, `lines`, `store`
---@return kling.Ledger|nil ledger
---@return kling.Error|nil err
function M.ledger(opts)
  validate.options("ledger", opts, ledger.OPTIONS)
  return ledger.new(opts)
end

return M
