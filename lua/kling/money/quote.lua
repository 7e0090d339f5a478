--- Billing: estimate, settle, quote, and ledgers with hard-cap budgets.
-- Billing: the price of a request before it is sent (estimate), the charge for what was
-- delivered (settle), the comparison across providers (quote), and budgets (kling.ledger).
-- Prices come from the dated catalogs in kling/prices/ (data); kling.core evaluates them in
-- integer micro-units, so no float ever touches an amount.
-- @module kling.billing
local core = require "kling.core"
local errors = require "kling.errors"
local providers = require "kling.providers"

local M = {}

-- The providers quote() asks, in this order: the registry's one list.
M.providers = providers.names

local function validation(field, message, provider)
  return errors.new { kind = "validation", field = field, message = message, provider = provider }
end

local function unpriced(provider, message)
  return errors.new { kind = "unpriced", message = message, provider = provider }
end

-- ---- catalogs ----

-- Facts a rule may match on, in the order a missing one is reported.
local FACTS = { "method", "endpoint", "model", "effect", "mode", "resolution", "sound", "voice", "reference", "image" }
local KNOWN_FACT = {}
for _, k in ipairs(FACTS) do
  KNOWN_FACT[k] = true
end

local function check_catalog(provider, cat)
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
  for _, p in ipairs(M.providers) do
    if p == name then
      return true
    end
  end
  return false
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
  if type(provider) ~= "string" or not listed(provider) then
    return nil, validation("provider", "unknown provider '" .. tostring(provider) .. "' (known: "
      .. table.concat(M.providers, ", ") .. ")")
  end
  local ok, cat = pcall(require, providers.get(provider).prices) -- the provider's link to its catalog
  if not ok then
    return nil, unpriced(provider, "no price catalog for provider '" .. provider .. "'")
  end
  return cat
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

-- The process default, what kling.set_catalog fills: a client's own set falls back to it.
local default = M.catalogs()
M.default_catalogs = default

--- The price catalog in force for a provider.
-- Returns the catalog in force for a provider: opts.catalog, opts.catalogs' (a set), the
-- process default's, or the shipped one. opts.catalogs that is not a set raises.
---@param provider string
---@param opts? {catalog: table, catalogs: kling.Catalogs}
---@return table|nil catalog
---@return kling.Error|nil err kind `validation` (unknown provider) or `unpriced` (no catalog)
function M.catalog(provider, opts)
  local set = opts and opts.catalogs
  if set ~= nil and not is_catalogs(set) then
    errors.misuse("billing", "opts.catalogs must be a catalog set (billing.catalogs)")
  end
  return (set or default):get(provider, opts)
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
M.check_catalog = check_catalog

-- ---- request facts ----

local function nonempty(v)
  if type(v) == "string" then
    return v ~= ""
  elseif type(v) == "table" then
    return next(v) ~= nil
  end
  return v ~= nil
end

local function norm_endpoint(e)
  if e == nil then
    return nil
  end
  e = e:gsub("^/+", ""):gsub("^v1/", ""):gsub("/+$", "")
  return e
end

-- Catalog defaults for an endpoint: "*" first, then the endpoint's own (false clears a value).
local function defaults_for(cat, endpoint)
  local d = {}
  local all = cat.defaults or {}
  for _, t in ipairs { all["*"] or {}, all[endpoint] or {} } do
    for k, v in pairs(t) do
      if v == false and k ~= "sound" then
        d[k] = nil
      else
        d[k] = v
      end
    end
  end
  return d
end

-- Duration in seconds (a string for kling.core) from multi-shot durations or `duration`.
local function request_duration(req, d, provider)
  local shots = req.multi_prompt
  if (req.multi_shot or req.multi_shots) and type(shots) == "table" and #shots > 0 then
    local total = 0
    for i, shot in ipairs(shots) do
      local field = "multi_prompt[" .. i .. "].duration"
      if type(shot) ~= "table" or shot.duration == nil then
        return nil, validation(field, "each shot needs a duration in seconds", provider)
      end
      local ms, err = core.seconds_ms(shot.duration)
      if not ms then
        return nil, validation(field, err, provider)
      end
      total = total + ms
    end
    local sum = core.seconds_format(total)
    if req.duration ~= nil then
      local ms, err = core.seconds_ms(req.duration)
      if not ms then
        return nil, validation("duration", err, provider)
      end
      if ms ~= total then
        return nil, validation("duration", core.seconds_format(ms)
          .. " s differs from the sum of the shots' durations (" .. sum .. " s)", provider)
      end
    end
    return sum
  end
  if req.duration ~= nil then
    return req.duration
  end
  return d.duration
end

local function is_count(n)
  return type(n) == "number" and n >= 1 and n == math.floor(n) and n < 2 ^ 53
end

-- What the catalog rules match on, plus the quantities to price.
-- The request fields the facts are read from that must be strings when given.
local STRING_FACTS = { "endpoint", "model", "model_name", "mode", "resolution", "effect_scene", "method" }

local function facts(req, cat, provider)
  for _, k in ipairs(STRING_FACTS) do
    local v = req[k]
    if v ~= nil and type(v) ~= "string" then
      return nil, validation(k, "must be a string, got " .. type(v), provider)
    end
  end
  -- Without an endpoint (nor a catalog default) only rules that ignore it can match; one
  -- that needs it reports the field missing.
  local endpoint = norm_endpoint(req.endpoint) or cat.endpoint_default
  local d = defaults_for(cat, endpoint or "*")
  local input = type(req.input) == "table" and req.input or {}
  for _, k in ipairs { "model_name", "mode" } do
    if input[k] ~= nil and type(input[k]) ~= "string" then
      return nil, validation("input." .. k, "must be a string, got " .. type(input[k]), provider)
    end
  end
  local f = {
    endpoint = endpoint,
    method = string.upper(req.method or "POST"),
    model = req.model or req.model_name or input.model_name or d.model,
    effect = req.effect_scene,
    voice = nonempty(req.voice_list),
    reference = nonempty(req.image) or nonempty(req.image_list) or nonempty(req.video_list)
      or nonempty(req.element_list),
    image = nonempty(req.image),
  }
  local sound = req.sound
  if sound == nil then
    sound = d.sound or false
  elseif type(sound) ~= "boolean" then
    return nil, validation("sound", "must be a boolean", provider)
  end
  f.sound = sound
  f.mode = req.mode or input.mode or (cat.mode_by_resolution and cat.mode_by_resolution[req.resolution])
    or d.mode
  f.resolution = req.resolution or (cat.resolution_by_mode and cat.resolution_by_mode[f.mode]) or d.resolution
  local n = req.n
  if n == nil then
    n = 1
  elseif not is_count(n) then
    return nil, validation("n", "must be a positive integer", provider)
  end
  f.n = n
  local dur, err = request_duration(req, d, provider)
  if err then
    return nil, err
  end
  f.duration = dur
  return f
end

local function fits(want, have)
  if type(want) == "table" then
    for _, w in ipairs(want) do
      if w == have then
        return true
      end
    end
    return false
  end
  return want == have
end

-- true when every fact fits; false, field when the only misfits are facts the request lacks.
local function matches(rule, f)
  local match = rule.match or {}
  local missing
  for _, k in ipairs(FACTS) do
    local want = match[k]
    if want ~= nil then
      if f[k] == nil then
        missing = missing or k
      elseif not fits(want, f[k]) then
        return false
      end
    end
  end
  if missing then
    return false, missing
  end
  return true
end

local function describe(f)
  local parts = { f.endpoint or "(no endpoint)" }
  if f.model then
    parts[#parts + 1] = "model " .. f.model
  end
  if f.mode then
    parts[#parts + 1] = "mode " .. f.mode
  end
  parts[#parts + 1] = f.sound and "sound on" or "sound off"
  return table.concat(parts, ", ")
end

-- The rule pricing the request, or nil and an unpriced / validation error.
local function find_rule(cat, f, provider)
  local missing
  for _, rule in ipairs(cat.rules) do
    local ok, lacks = matches(rule, f)
    if ok then
      if rule.invalid then
        return nil, validation(rule.invalid.field, rule.invalid.message, provider)
      end
      if rule.unpriced then
        if missing then
          break
        end
        return nil, unpriced(provider, rule.unpriced)
      end
      return rule
    end
    missing = missing or lacks
  end
  if missing then
    return nil, validation(missing, "required to price this request on " .. provider
      .. " (the provider documents no default)", provider)
  end
  return nil, unpriced(provider, "no price in the " .. provider .. " catalog of " .. tostring(cat.date)
    .. " for " .. describe(f))
end

local function usd_of(cat, micros, opts)
  local rate = opts and opts.usd_rates and opts.usd_rates[cat.provider]
  if cat.currency == "USD" then
    rate = "1"
  end
  rate = rate or cat.usd_rate
  if rate == nil then
    return nil
  end
  local usd = core.money_scale(micros, rate)
  if usd == nil then
    return nil
  end
  return { micros = usd, amount = core.money_format(usd), rate = rate }
end

-- Prices `req` with `usage` (nil for an estimate); returns a quote or nil, err.
local function price(req, usage, opts)
  if type(req) ~= "table" then
    errors.misuse("billing", "request table expected")
  end
  local provider = (opts and opts.provider) or req.provider
  if provider == nil then
    return nil, validation("provider", "required to price a request")
  end
  local cat, err = M.catalog(provider, opts)
  if not cat then
    return nil, err
  end
  local f
  f, err = facts(req, cat, provider)
  if not f then
    return nil, err
  end
  -- What the provider would refuse is not priced (an estimate only: a settle prices what ran).
  local dialect = usage == nil and providers.get(provider)
  if dialect and dialect.price_check and f.endpoint then
    err = dialect.price_check(req, f.endpoint)
    if err then
      return nil, err
    end
  end
  local rule
  rule, err = find_rule(cat, f, provider)
  if not rule then
    return nil, err
  end
  local amounts = { strict = usage == nil, duration = f.duration, count = f.n }
  local duration_from, count_from = "request", "request"
  if usage then
    if usage.duration ~= nil then
      amounts.duration, duration_from = usage.duration, "usage"
    end
    if usage.count ~= nil then
      amounts.count, count_from = usage.count, "usage"
    end
  end
  local micros, breakdown, field = core.price_eval(rule, amounts)
  if not micros then
    if usage and field then
      field = "usage." .. field
    end
    return nil, validation(field, breakdown, provider)
  end
  breakdown.catalog_date = cat.date
  breakdown.source = cat.source
  if breakdown.seconds then
    breakdown.duration_from = duration_from
  end
  if breakdown.count then
    breakdown.count_from = count_from
  end
  return {
    provider = provider,
    currency = cat.currency,
    micros = micros,
    amount = core.money_format(micros),
    rule = rule.id,
    breakdown = breakdown,
    usd = usd_of(cat, micros, opts),
  }
end

--- A price: what estimate, settle and quote return.
---@class kling.Quote
---@field provider string
---@field currency string the catalog's currency ("CNY" for kling, "USD", "credits", ...)
---@field amount string the price, a decimal string (e.g. "2.5"): never a float
---@field micros integer the same in micro-units (2500000)
---@field rule string the catalog rule that priced it, e.g. "video/kling-v2-6/pro/silent"
---@field breakdown table how: billed seconds, unit price, catalog date and source
---@field usd table|nil {amount, micros, rate} where a USD rate is known
---@field currency_id string from quote(): the unit the amount is in, credits qualified ("evolink-credits")
---@field rate table|nil from quote(): {usd, micros}: the rate given for its currency, the price in USD micros

--- What quote returns: the quotes (ranked, or grouped by currency) and these fields.
---@class kling.Quotes
---@field assumed table the defaults made explicit before pricing ({sound = false, mode = "std", ...})
---@field groups table[] {currency, quotes} per currency, each cheapest first, currencies in name order
---@field ranked boolean the list is one ranking: one currency only, or a rate for every currency
---@field note string|nil why the list is not ranked across currencies (when ranked is false)
---@field unavailable table[] {provider, error, field}: cannot price it, or cannot honour `field`

--- The price of a request before it is sent (`kling.estimate`).
-- estimate(req [, opts]) -> quote | nil, err. opts.catalog prices with that catalog instead.
---@param req table a canonical request; `provider` (default "kling") picks the catalog
---@param opts? {catalog: table, provider: string, usd_rates: table}
---@return kling.Quote|nil quote
---@return kling.Error|nil err kind `validation` or `unpriced`
function M.estimate(req, opts)
  return price(req, nil, opts)
end

--- The charge for what a task delivered (`kling.settle`).
-- settle(req, usage [, opts]) -> quote of the ACTUAL usage: usage.duration (seconds, a number
-- or a decimal string such as "5.041") and usage.count (outputs delivered). A field absent
-- from usage falls back to the request (breakdown.duration_from / count_from say which).
---@param req table the canonical request
---@param usage {duration: number|string, count: integer}
---@param opts? {catalog: table}
---@return kling.Quote|nil quote
---@return kling.Error|nil err
function M.settle(req, usage, opts)
  if type(usage) ~= "table" then
    errors.misuse("billing.settle", "usage table expected")
  end
  return price(req, usage, opts)
end

--- The unit a quote's money is in, as a name that can be compared ("evolink-credits").
-- A currency as money that can be compared: each gateway's credits are its own money (API in
-- One's and EvoLink's "credits" are different units), so a bare "credits" is qualified.
---@param q kling.Quote
---@return string currency "CNY", "USD", or PROVIDER-credits
function M.currency_id(q)
  if q.currency == "credits" then
    return q.provider .. "-credits"
  end
  return q.currency
end

-- The product every provider is asked to price: the defaults that differ between providers
-- made explicit (API in One makes sound unless told otherwise; others are silent), and a
-- resolution given without a mode turned into that mode (720p std, 1080p pro) so that no
-- catalog prices 1080p as the default mode. -> request, {field = value made explicit}
local RESOLUTION_MODE = { ["720p"] = "std", ["1080p"] = "pro" }

--- The request quote() prices on every provider: the defaults that differ made explicit.
-- A video create gets sound = false, mode (from the resolution, else "std") and duration 5
-- (not for multi-shot) where the request leaves them out; its `provider` is dropped.
---@param req table a canonical request
---@return table product a copy of req with those fields set
---@return table assumed the fields set, `{field = value}`
function M.same_product(req)
  local product, assumed = {}, {}
  for k, v in pairs(req) do
    product[k] = v
  end
  product.provider = nil
  local function assume(field, value)
    if product[field] == nil then
      product[field], assumed[field] = value, value
    end
  end
  local method = type(req.method) == "string" and req.method:upper() or "POST"
  local endpoint = req.endpoint
  local video = method == "POST" and (endpoint == nil or endpoint == "videos/text2video"
    or endpoint == "videos/image2video")
  if video then
    assume("sound", false)
    assume("mode", RESOLUTION_MODE[req.resolution] or "std")
    if not req.multi_shot then
      assume("duration", 5)
    end
  end
  return product, assumed
end

-- The fields of `product` that `name`'s provider cannot honour, as its validation error (nil
-- when it takes them all). Content the quote does without (a prompt) is stood in for.
local function cannot_honour(name, product)
  local P = providers.get(name)
  if not (P and P.validate and P.default_endpoint) then
    return nil
  end
  local probe = {}
  for k, v in pairs(product) do
    probe[k] = v
  end
  if probe.prompt == nil and not probe.multi_shot then
    probe.prompt = "x"
  end
  local endpoint = probe.endpoint or P.default_endpoint(probe)
  probe.endpoint = nil
  if not P.endpoints[endpoint] then
    return nil
  end
  local err = P.validate(probe, endpoint)
  if err and err.field and err.field ~= "prompt" and err.field ~= "image" then
    return err
  end
  return nil
end

local function by_amount(a, b)
  if a.micros ~= b.micros then
    return a.micros < b.micros
  end
  return a.provider < b.provider
end

--- A request priced on every provider, grouped by currency (`kling.quote`).
-- quote(req [, opts]) -> list of quotes for the same product on every provider that can make and
-- price it, with:
--   list.assumed     the defaults made explicit first ({sound = false, mode = "std", ...})
--   list.groups      [{currency, quotes}] each ranked cheapest first, currencies in name order
--   list.ranked      true when the list is one ranking across currencies: only with a rate
--                    (opts.rates = {CNY = "0.14", ["apiinone-credits"] = "0.01"}: USD per unit,
--                    or opts.usd_rates by provider) for every currency in it; otherwise the
--                    list is the groups one after the other and list.note says so
--   list.unavailable [{provider, error, field}]: cannot price it, or cannot honour `field`
-- opts.providers limits the providers asked; opts.catalogs prices with that set (a client's).
-- A request that is not a table raises.
---@param req table a canonical request (its `provider` is ignored: every provider is asked)
---@param opts? {providers: string[], rates: table, usd_rates: table, catalogs: kling.Catalogs}
---@return kling.Quotes quotes the quotes in order, with `assumed`, `groups`, `ranked`, `note`, `unavailable`
function M.quote(req, opts)
  if type(req) ~= "table" then
    errors.misuse("billing.quote", "request table expected")
  end
  opts = opts or {}
  local product, assumed = M.same_product(req)
  local names = opts.providers or M.providers
  local list, unavailable, by_currency = {}, {}, {}
  for _, name in ipairs(names) do
    local herr = cannot_honour(name, product)
    local q, err
    if herr then
      err = herr
    else
      q, err = price(product, nil, { provider = name, usd_rates = opts.usd_rates, catalogs = opts.catalogs })
    end
    if q then
      q.currency_id = M.currency_id(q)
      local rate = opts.rates and opts.rates[q.currency_id]
        or (opts.usd_rates and opts.usd_rates[name]) or (q.currency == "USD" and "1")
      q.rate = rate and { usd = rate, micros = core.money_scale(q.micros, rate) } or nil
      list[#list + 1] = q
      local g = by_currency[q.currency_id]
      if not g then
        g = { currency = q.currency_id, quotes = {} }
        by_currency[q.currency_id] = g
      end
      g.quotes[#g.quotes + 1] = q
    else
      unavailable[#unavailable + 1] = { provider = name, error = err, field = err and err.field }
    end
  end
  local groups = {}
  for _, g in pairs(by_currency) do
    table.sort(g.quotes, by_amount)
    groups[#groups + 1] = g
  end
  table.sort(groups, function(a, b)
    return a.currency < b.currency
  end)
  local ranked = true
  for _, q in ipairs(list) do
    ranked = ranked and q.rate ~= nil and q.rate.micros ~= nil
  end
  local out = {}
  if ranked then
    for i, q in ipairs(list) do
      out[i] = q
    end
    table.sort(out, function(a, b)
      if a.rate.micros ~= b.rate.micros then
        return a.rate.micros < b.rate.micros
      end
      return a.provider < b.provider
    end)
  else
    for _, g in ipairs(groups) do
      for _, q in ipairs(g.quotes) do
        out[#out + 1] = q
      end
    end
  end
  out.assumed, out.groups, out.unavailable = assumed, groups, unavailable
  out.ranked = ranked or #groups <= 1
  if not out.ranked then
    out.note = "prices in different currencies are not ranked against each other: each currency is ranked "
      .. "on its own (give a rate, USD per unit, for each currency to rank them together)"
  end
  return out
end

-- The same three with a set's catalogs: set:estimate(req [, opts]), set:settle(req, usage
-- [, opts]), set:quote(req [, opts]).
local function in_set(set, opts)
  local o = {}
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  o.catalogs = set
  return o
end

function Catalogs:estimate(req, opts)
  return M.estimate(req, in_set(self, opts))
end

function Catalogs:settle(req, usage, opts)
  return M.settle(req, usage, in_set(self, opts))
end

function Catalogs:quote(req, opts)
  return M.quote(req, in_set(self, opts))
end

-- ---- ledger: budgets as a hard cap ----
-- Reserve the estimate before submit, settle to the actual charge on success, release on
-- failure. A reservation that would take spent + reserved past the limit fails with kind
-- "budget" before anything is sent, however many tasks are in flight. Every movement is an
-- entry {seq, time_ms, op, task_key, task_id, amount, micros, currency} that can be written as
-- a JSON line and replayed (the batch journal keeps them).
--
-- Every currency is its own money: CNY, USD, and each gateway's credits (API in One's and
-- EvoLink's are different units: "apiinone-credits", "evolink-credits"). A ledger holds one
-- budget per currency it was given; a quote is counted against the budget of its own unit,
-- else (with rates the user gave) converted into the rates' currency, else refused with kind
-- "budget", code "no_budget" (give a budget in that unit): nothing is summed across units
-- without a rate.

local json = require "kling.json"

--- The unit a quote's money is counted in (a ledger's budgets are per unit).
-- The unit a quote's money is counted in: an ISO code (CNY, USD) stands for itself; a
-- provider's own unit ("credits") is that provider's ("evolink-credits"). A name already
-- qualified (with a "-") is kept. unit(quote) or unit(currency, provider).
---@param x kling.Quote|string a quote, or a currency name
---@param provider? string the provider whose unit a bare currency is (with a currency name)
---@return string|nil unit nil when there is no currency
function M.unit(x, provider)
  local currency = x
  if type(x) == "table" then
    currency, provider = x.currency, x.provider
  end
  if type(currency) ~= "string" or currency == "" then
    return nil
  end
  if currency:match("^%u%u%u$") or currency:find("-", 1, true) or type(provider) ~= "string" then
    return currency
  end
  return provider .. "-" .. currency
end

--- A ledger: one hard-cap budget per currency (`kling.ledger`); its methods below.
-- Amounts are integer micro-units of one budget's currency; a method's optional currency
-- names the budget (default: the first given).
---@class kling.Ledger
---@field currency string the first budget's currency (the default of limit, spent, reserved, balance)
---@field rates table|nil {currency, rates}: how a quote in a unit without a budget is counted
---@field in_flight integer reservations held now
local Ledger = {}
Ledger.__index = Ledger
Ledger.__name = "kling.ledger"

local function checked(v, what)
  if v == nil then
    return nil, validation(what, "amount out of range")
  end
  return v
end

local function integral(v)
  return type(v) == "number" and v == math.floor(v) and (math.type == nil or math.type(v) == "integer")
end

local function no_budget(self, unit, field)
  local have = {}
  for _, a in ipairs(self.order) do
    have[#have + 1] = a.currency
  end
  return errors.new {
    kind = "budget", code = "no_budget", field = field,
    message = "no budget in " .. tostring(unit) .. " (the budget is in " .. table.concat(have, ", ")
      .. "): give one in " .. tostring(unit) .. (self.rates and "" or ", or rates to count it in "
      .. have[1]),
  }
end

--- Micro-units of an amount and the budget they count against (internal).
-- Micro-units of `x` and the currency of the budget they count against: `x` is integer
-- micros (in the currency of `key`'s reservation, else the first budget's) or a quote
-- ({micros, currency[, provider]}). -> micros, currency, conversion | nil, err
-- @local
function Ledger:micros_of(x, field, key)
  local m, cur, conv = x, self.currency, nil
  if type(x) == "table" then
    local unit = M.unit(x)
    m = x.micros
    if self.accounts[unit] then
      cur = unit
    elseif self.rates and self.rates.rates[unit] and integral(m) then
      cur = self.rates.currency
      conv = { amount = core.money_format(m), currency = unit, rate = self.rates.rates[unit] }
      m = core.money_scale(m, conv.rate)
    elseif self.accounts.USD and x.usd and #self.order == 1 then
      -- A single USD budget counts a quote at the catalog's published USD rate.
      cur, m = "USD", x.usd.micros
    else
      return nil, no_budget(self, unit, field)
    end
  elseif key and self.holds[key] then
    cur = self.holds[key].currency
  end
  if not integral(m) then
    return nil, validation(field, "integer micro-units or a quote are required")
  end
  if m < 0 then
    return nil, validation(field, "must not be negative")
  end
  return m, cur, conv
end

local function key_of(task_key)
  if type(task_key) == "number" and task_key == math.floor(task_key) then
    return string.format("%d", task_key)
  end
  if type(task_key) ~= "string" or task_key == "" then
    errors.misuse("ledger", "task_key must be a non-empty string or an integer")
  end
  return task_key
end

local function note_task_id(self, key, task_id)
  if task_id ~= nil and task_id ~= false and task_id ~= json.null then
    self.task_ids[key] = tostring(task_id)
  end
end

--- Appends one entry to the log and hands it to on_entry (internal: reserve, settle, release).
-- @local
function Ledger:record(op, key, micros, currency, time_ms, extra)
  self.seq = self.seq + 1
  local e = {
    seq = self.seq, time_ms = time_ms or self.clock(), op = op, task_key = key, task_id = self.task_ids[key],
    amount = core.money_format(micros), micros = micros, currency = currency,
  }
  for k, v in pairs(extra or {}) do
    e[k] = v
  end
  self.log[#self.log + 1] = e
  if self.on_entry then
    self.on_entry(e, self:line(e))
  end
  return e
end

local function converted(conv)
  return conv and { from_amount = conv.amount, from_currency = conv.currency, rate = conv.rate } or nil
end

-- The three movements, each in the currency of one budget (`a`, its account). `time_ms` is
-- given when replaying history.
local function do_reserve(self, key, m, a, enforce, time_ms, conv)
  if self.holds[key] or self.charges[key] then
    return nil, validation("task_key", "'" .. key .. "' already has a reservation or a charge")
  end
  local committed, err = checked(core.money_add(a.spent, a.reserved), "budget")
  if not committed then
    return nil, err
  end
  local after
  after, err = checked(core.money_add(committed, m), "quote")
  if not after then
    return nil, err
  end
  if enforce and after > a.limit then
    return nil, errors.new {
      kind = "budget", field = "budget.limit",
      message = "reserving " .. core.money_format(m) .. " " .. a.currency .. " would pass the limit of "
        .. core.money_format(a.limit) .. " " .. a.currency .. " (spent " .. core.money_format(a.spent)
        .. ", reserved " .. core.money_format(a.reserved) .. ")",
    }
  end
  self.holds[key] = { micros = m, currency = a.currency }
  self.in_flight = self.in_flight + 1
  a.reserved = core.money_add(a.reserved, m) -- fits: spent + reserved + m did
  return self:record("reserve", key, m, a.currency, time_ms, converted(conv))
end

local function do_settle(self, key, m, a, time_ms, conv)
  if self.charges[key] then
    return nil, validation("task_key", "'" .. key .. "' is already settled")
  end
  local held = self.holds[key]
  if held and held.currency ~= a.currency then
    return nil, validation("actual", "'" .. key .. "' was reserved in " .. held.currency .. ", not " .. a.currency)
  end
  local spent, err = checked(core.money_add(a.spent, m), "actual")
  if not spent then
    return nil, err
  end
  if held then
    self.holds[key] = nil
    self.in_flight = self.in_flight - 1
    a.reserved = core.money_sub(a.reserved, held.micros) -- held <= reserved
  end
  a.spent = spent
  self.charges[key] = { micros = m, currency = a.currency }
  local extra = converted(conv) or {}
  extra.reserved_amount = core.money_format(held and held.micros or 0)
  return self:record("settle", key, m, a.currency, time_ms, extra)
end

local function do_release(self, key, time_ms)
  local held = self.holds[key]
  if held == nil then
    return nil, validation("task_key", "'" .. key .. "' has no reservation to release")
  end
  local a = self.accounts[held.currency]
  self.holds[key] = nil
  self.in_flight = self.in_flight - 1
  a.reserved = core.money_sub(a.reserved, held.micros)
  return self:record("release", key, held.micros, a.currency, time_ms)
end

--- Holds an estimate before a create.
-- reserve(task_key, quote | micros [, {task_id=}]) -> entry | nil, err (kind "budget" when
-- spent + reserved + this would pass the limit of its currency, or no budget counts it).
---@param task_key string|integer the task's key (its external id)
---@param quote kling.Quote|integer a quote (counted in the budget of its unit) or micros of the first budget
---@param info? {task_id: string}
---@return table|nil entry
---@return kling.Error|nil err kind `budget` (code `no_budget` when no budget counts it) or `validation`
function Ledger:reserve(task_key, quote, info)
  local key = key_of(task_key)
  local m, cur, conv = self:micros_of(quote, "quote")
  if not m then
    return nil, cur
  end
  note_task_id(self, key, type(info) == "table" and info.task_id)
  return do_reserve(self, key, m, self.accounts[cur], true, nil, conv)
end

--- Replaces a reservation by the actual charge.
-- settle(task_key, actual micros | settled quote [, {task_id=}]) -> entry | nil, err.
-- The reservation is replaced by the actual charge, which is recorded even past the limit:
-- it has been incurred. A charge without a reservation (a synchronous call) is recorded too.
-- Micros are in the currency of the reservation.
---@param task_key string|integer
---@param actual kling.Quote|integer the settled quote, or micros in the reservation's currency
---@param info? {task_id: string}
---@return table|nil entry
---@return kling.Error|nil err kind `validation` (already settled, another currency) or `budget`
function Ledger:settle(task_key, actual, info)
  local key = key_of(task_key)
  local m, cur, conv = self:micros_of(actual, "actual", key)
  if not m then
    return nil, cur
  end
  note_task_id(self, key, type(info) == "table" and info.task_id)
  return do_settle(self, key, m, self.accounts[cur], nil, conv)
end

--- Drops a reservation: the task failed, nothing is charged.
-- release(task_key [, {task_id=}]) -> entry | nil, err: the task failed; nothing is charged.
---@param task_key string
---@param info? {task_id: string}
---@return table|nil entry
---@return kling.Error|nil err
function Ledger:release(task_key, info)
  local key = key_of(task_key)
  note_task_id(self, key, type(info) == "table" and info.task_id)
  return do_release(self, key)
end

local function account(self, currency)
  local a = self.accounts[currency or self.currency]
  if not a then
    errors.misuse("ledger", "no budget in " .. tostring(currency))
  end
  return a
end

--- The limit of one budget, in micro-units.
-- limit([currency]), spent([currency]), reserved([currency]), balance([currency]): micros
-- of one budget (default: the first). A currency the ledger has no budget in raises.
---@param currency? string the budget's currency (default: the first budget's)
---@return integer micros
function Ledger:limit(currency)
  return account(self, currency).limit
end

--- What was charged against one budget, in micro-units.
---@param currency? string the budget's currency (default: the first budget's)
---@return integer micros
function Ledger:spent(currency)
  return account(self, currency).spent
end

--- What is held for tasks in flight in one budget, in micro-units.
---@param currency? string the budget's currency (default: the first budget's)
---@return integer micros
function Ledger:reserved(currency)
  return account(self, currency).reserved
end

--- What may still be reserved, in micro-units.
-- What may still be reserved: limit - spent - reserved (negative once charges passed it).
---@param currency? string the budget's currency (default: the first budget's)
---@return integer micros
function Ledger:balance(currency)
  local a = account(self, currency)
  return core.money_sub(core.money_sub(a.limit, a.spent), a.reserved)
end

--- The currencies the ledger holds a budget in, in the order given.
---@return string[] currencies e.g. {"CNY", "evolink-credits"}
function Ledger:currencies()
  local out = {}
  for i, a in ipairs(self.order) do
    out[i] = a.currency
  end
  return out
end

--- What one task holds now: micro-units and their currency, or nil.
-- reservation(task_key) -> micros, currency | nil: what the key holds now.
---@param task_key string|integer
---@return integer|nil micros
---@return string|nil currency
function Ledger:reservation(task_key)
  local h = self.holds[key_of(task_key)]
  if h then
    return h.micros, h.currency
  end
  return nil
end

--- What one task was charged once settled: micro-units and their currency, or nil.
-- settled(task_key) -> micros, currency | nil: the key's charge once settled.
---@param task_key string|integer
---@return integer|nil micros
---@return string|nil currency
function Ledger:settled(task_key)
  local c = self.charges[key_of(task_key)]
  if c then
    return c.micros, c.currency
  end
  return nil
end

--- Every budget's figures as decimal strings.
-- summary() -> the first budget's figures (currency, limit, spent, reserved, balance as
-- decimal strings), in_flight, entries, budgets = one such table per currency, rates.
---@return table summary `currency`, `limit`, `spent`, `reserved`, `balance`, `in_flight`, `entries`, `budgets`, `rates`
function Ledger:summary()
  local fmt = core.money_format
  local budgets = {}
  for i, a in ipairs(self.order) do
    budgets[i] = { currency = a.currency, limit = fmt(a.limit), spent = fmt(a.spent), reserved = fmt(a.reserved),
      balance = fmt(self:balance(a.currency)) }
  end
  local first = budgets[1]
  return {
    currency = first.currency, limit = first.limit, spent = first.spent, reserved = first.reserved,
    balance = first.balance, in_flight = self.in_flight, entries = #self.log, budgets = budgets, rates = self.rates,
  }
end

--- Every movement, oldest first.
-- Every movement so far, oldest first (a new list; the entries themselves are shared).
---@return table[]
function Ledger:entries()
  local out = {}
  for i, e in ipairs(self.log) do
    out[i] = e
  end
  return out
end

--- One entry as a JSON line.
-- One entry as a JSON line. Amounts travel as decimal strings: JSON numbers pass through
-- doubles (and cjson prints 14 digits), exact only for small amounts.
---@param _ kling.Ledger|nil the ledger (unused: ledger:line(e) or Ledger.line(nil, e))
---@param e table an entry
---@return string
function Ledger.line(_, e)
  return json.encode {
    seq = e.seq, time_ms = e.time_ms, op = e.op, task_key = e.task_key, task_id = e.task_id,
    amount = e.amount, currency = e.currency, reserved_amount = e.reserved_amount,
    from_amount = e.from_amount, from_currency = e.from_currency, rate = e.rate,
  }
end

--- The entries as JSON lines.
-- JSON lines of the entries from sequence number `from` (default 1) on.
---@param from? integer first sequence number (1)
---@return string[]
function Ledger:lines(from)
  local out = {}
  for _, e in ipairs(self.log) do
    if e.seq >= (from or 1) then
      out[#out + 1] = self:line(e)
    end
  end
  return out
end

--- Applies one persisted entry.
-- Applies one persisted entry (a JSON line or its decoded table): history is replayed as it
-- happened, without the limit check.
---@param line string|table
---@return boolean|nil ok
---@return kling.Error|nil err
function Ledger:replay(line)
  local e = line
  if type(line) == "string" then
    local err
    e, err = json.decode(line)
    if not e then
      return nil, validation("line", "not JSON: " .. tostring(err))
    end
  end
  if type(e) ~= "table" or type(e.task_key) ~= "string" or type(e.amount) ~= "string" then
    return nil, validation("line", "a ledger entry {op, task_key, amount, ...} is required")
  end
  local a = self.accounts[e.currency]
  if not a then
    return nil, validation("line.currency", "entry in " .. tostring(e.currency) .. ", the ledger has budgets in "
      .. table.concat(self:currencies(), ", "))
  end
  local m, err = core.money_parse(e.amount)
  if not m then
    return nil, validation("line.amount", err)
  end
  local time_ms = type(e.time_ms) == "number" and e.time_ms or nil
  local conv = type(e.from_currency) == "string"
    and { amount = e.from_amount, currency = e.from_currency, rate = e.rate } or nil
  note_task_id(self, e.task_key, e.task_id)
  if e.op == "reserve" then
    return do_reserve(self, e.task_key, m, a, false, time_ms, conv)
  elseif e.op == "settle" then
    return do_settle(self, e.task_key, m, a, time_ms, conv)
  elseif e.op == "release" then
    return do_release(self, e.task_key, time_ms)
  end
  return nil, validation("line.op", "unknown op '" .. tostring(e.op) .. "'")
end

local function budget_of(b, field)
  if type(b) ~= "table" or type(b.limit) ~= "string" then
    return nil, validation(field .. ".limit", "a decimal string is required (e.g. \"50.00\")")
  end
  local limit, err = core.money_parse(b.limit)
  if not limit then
    return nil, validation(field .. ".limit", err)
  end
  if limit < 0 then
    return nil, validation(field .. ".limit", "must not be negative")
  end
  if type(b.currency) ~= "string" or b.currency == "" then
    return nil, validation(field .. ".currency", "a currency is required (CNY, USD, evolink-credits, ...)")
  end
  return { currency = b.currency, limit = limit, spent = 0, reserved = 0 }
end

-- rates {currency = "CNY", rates = {USD = "7.1", ["evolink-credits"] = "0.1"}}: units of
-- `currency` per unit of each other currency (decimal strings, at most 6 decimals).
local function rates_of(r, accounts)
  if r == nil then
    return nil
  end
  if type(r) ~= "table" or type(r.currency) ~= "string" or type(r.rates) ~= "table" then
    return nil, validation("rates", "{currency = \"CNY\", rates = {USD = \"7.1\", ...}} is required")
  end
  if not accounts[r.currency] then
    return nil, validation("rates.currency", "rates count in " .. r.currency .. ", which has no budget")
  end
  local out = {}
  for cur, rate in pairs(r.rates) do
    local m = type(cur) == "string" and type(rate) == "string" and core.money_parse(rate)
    if not m or m <= 0 then
      return nil, validation("rates.rates." .. tostring(cur), "a positive decimal string is required (e.g. \"0.14\")")
    end
    out[cur] = rate
  end
  return { currency = r.currency, rates = out }
end

--- Makes a ledger with one hard-cap budget per currency (`kling.ledger`).
-- ledger{limit = "50.00", currency = "CNY" | budgets = {{limit =, currency =}, ...}
-- [, rates = {currency =, rates = {}}] [, clock = fn -> ms] [, on_entry = fn(entry, line)]
-- [, lines = {JSON lines to replay}]} -> ledger | nil, err. Limits are decimal strings; each
-- currency is its own money ("apiinone-credits" and "evolink-credits" differ). rates =
-- {currency = "CNY", rates = {USD = "7.1"}}: units of `currency` (one of the budgets) per unit
-- of each other currency, so that a quote in USD counts against the CNY budget. Without a
-- budget in its unit (or a rate) a quote is refused: kind "budget", code "no_budget".
---@param opts table `limit` and `currency`, or `budgets`; `rates`, `clock`, `on_entry`, `lines` (above)
---@return kling.Ledger|nil ledger
---@return kling.Error|nil err
function M.ledger(opts)
  if type(opts) ~= "table" then
    errors.misuse("billing.ledger", "options table expected")
  end
  local list, field = opts.budgets, "budgets"
  if list == nil then
    list, field = { { limit = opts.limit, currency = opts.currency } }, "budget"
  elseif type(list) ~= "table" or #list == 0 then
    return nil, validation("budgets", "a list of {limit, currency} is required")
  end
  local accounts, order = {}, {}
  for i, b in ipairs(list) do
    local a, err = budget_of(b, field == "budget" and field or (field .. "[" .. i .. "]"))
    if not a then
      return nil, err
    end
    if accounts[a.currency] then
      return nil, validation(field .. "[" .. i .. "].currency", "a second budget in " .. a.currency)
    end
    accounts[a.currency], order[#order + 1] = a, a
  end
  local rates, rerr = rates_of(opts.rates, accounts)
  if rerr then
    return nil, rerr
  end
  local self = setmetatable({
    currency = order[1].currency, accounts = accounts, order = order, rates = rates,
    holds = {}, charges = {}, task_ids = {}, in_flight = 0, seq = 0, log = {},
    clock = opts.clock or core.wall_ms or function()
      return os.time() * 1000
    end,
  }, Ledger)
  for i, line in ipairs(opts.lines or {}) do
    local ok, err = self:replay(line)
    if not ok then
      err.field = "lines[" .. i .. "]" .. (err.field and ("." .. err.field) or "")
      return nil, err
    end
  end
  self.on_entry = opts.on_entry -- set after the replay: restored entries are already persisted
  return self
end

M.Ledger = Ledger

return M
