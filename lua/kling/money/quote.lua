--- Prices: estimate, settle and quote, from the catalogs in integer micro-units.
-- The price of a request before it is sent (estimate), the charge for what was delivered
-- (settle), and the same product compared across providers (quote). Prices come from the
-- catalog in force (kling.money.catalogs: opts.catalog, opts.catalogs' set, or the shipped
-- one); kling.core evaluates the rules in integer micro-units, so no float ever touches an
-- amount, and an `unpriced` rule is an error, never 0.
-- @module kling.money.quote
local core = require "kling.core"
local errors = require "kling.errors"
local providers = require "kling.providers"
local catalogs = require "kling.money.catalogs"
local validate = require "kling.validate"

local M = {}

-- The providers quote() asks, in this order: the registry's one list.
M.providers = providers.names

local function validation(field, message, provider)
  return errors.new { kind = "validation", field = field, message = message, provider = provider }
end

local function unpriced(provider, message)
  return errors.new { kind = "unpriced", message = message, provider = provider }
end

-- ---- units: every currency is its own money ----
-- CNY, USD and each gateway's credits (API in One's and EvoLink's "credits" are different
-- money: "apiinone-credits", "evolink-credits") are distinct units, never added together
-- without a rate: a ledger keeps a budget per unit and quote() groups prices by unit.

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

--- Why `currency` cannot name one currency, or nil: an ISO code in upper case ("CNY", "USD") or
-- a provider's own unit ("evolink-credits"). A bare "credits" is no one currency (each gateway's
-- credits are its own money), and "cny" or " CNY" would be a currency of their own.
---@param currency any
---@return string|nil problem
function M.currency_problem(currency)
  if type(currency) ~= "string" or currency == "" then
    return "a currency is required (CNY, USD, evolink-credits, ...)"
  end
  if currency:match("^%u%u%u$") or currency:match("^%l[%l%d]*%-%l[%l%d%-]*$") then
    return nil
  end
  local shown = '"' .. currency:sub(1, 40):gsub("[%c\127]", function(c)
    return string.format("\\x%02x", c:byte())
  end) .. '"'
  if currency:match("^%a%a%a$") then
    return shown .. " is not a currency code: codes are upper case (" .. currency:upper() .. ")"
  elseif currency:lower() == "credits" then
    return shown .. " is not one currency: name the provider's unit, such as evolink-credits or apiinone-credits"
  end
  return shown .. " is not a currency: an ISO code in upper case (CNY, USD) or a provider's unit "
    .. "(evolink-credits)"
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
      local sum_ms, serr = core.money_add(total, ms) -- checked: a plain + wraps around on Lua 5.4
      if not sum_ms then
        return nil, validation(field, "the shots' durations add up to more than can be priced (" .. serr .. ")",
          provider)
      end
      total = sum_ms
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
      return nil, validation(k, "must be a string, got " .. validate.type_of(v), provider)
    end
  end
  -- Without an endpoint, the one the provider would send it to (its default_endpoint: an
  -- image makes image2video), else the catalog's default; without either only rules that
  -- ignore it can match, and one that needs it reports the field missing.
  local endpoint = norm_endpoint(req.endpoint)
  if endpoint == nil then
    local P = providers.get(provider)
    endpoint = P and P.default_endpoint and P.default_endpoint(req) or cat.endpoint_default
  end
  local d = defaults_for(cat, endpoint or "*")
  local input = type(req.input) == "table" and req.input or {}
  for _, k in ipairs { "model_name", "mode" } do
    if input[k] ~= nil and type(input[k]) ~= "string" then
      return nil, validation("input." .. k, "must be a string, got " .. validate.type_of(input[k]), provider)
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
    return nil, validation("sound", "must be a boolean (true or false), got " .. validate.type_of(sound), provider)
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
  for _, k in ipairs(catalogs.FACTS) do
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
  local cat, err = catalogs.catalog(provider, opts)
  if not cat then
    return nil, err
  end
  local f
  f, err = facts(req, cat, provider)
  if not f then
    return nil, err
  end
  -- What the provider would refuse is not priced (an estimate only: a settle prices what ran;
  -- nor a request its lifecycle machine has validated whole already: opts.validated).
  local dialect = usage == nil and not (opts and opts.validated) and providers.get(provider)
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

--- The product a request asks for, with the provider's defaults (its catalog's) applied:
-- {endpoint, model, mode, duration, sound, n, ...}, or nil and a validation or unpriced error.
-- What learnt durations are kept by (kling.lifecycle.learnt): a default left out and the same
-- default written out are one product.
---@param req table a canonical request
---@param opts {provider: string, catalogs: table}
function M.product(req, opts)
  local cat, err = catalogs.catalog(opts.provider, opts)
  if not cat then
    return nil, err
  end
  return facts(req, cat, opts.provider)
end

--- The price of a request before it is sent (`kling.estimate`).
-- estimate(req [, opts]) -> quote | nil, err. opts.catalog prices with that catalog instead;
-- opts.validated: the request has passed its provider's validation whole (a lifecycle
-- machine's reserve), so what the provider would refuse is not looked for again.
---@param req table a canonical request; `provider` (default "kling") picks the catalog
---@param opts? {catalog: table, provider: string, usd_rates: table, validated: boolean}
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

-- The image an estimate stands in for one left out (or one a create would read from a file).
local STANDIN_IMAGE = "https://example.com/kling-estimate-stand-in.png"

--- The fields of a request that a provider cannot honour, as its validation error (nil when
-- it takes them all: an unknown field, a value out of range, another provider's field name
-- are refused by name). Content a price does without (a prompt left out, an image) is stood
-- in for; a prompt given is checked as a create checks it (control characters, length).
-- What `kling.estimate` and `kling.quote` ask before pricing what no create would send.
---@param name string the provider
---@param product table a canonical request
---@return kling.Error|nil err kind `validation`, naming the field
function M.cannot_honour(name, product)
  local P = providers.get(name)
  if not (P and P.validate and P.default_endpoint) then
    return nil
  end
  -- a client's option in the request (base_url, a key) prices nothing: refused by name, as a create does
  local opt, why = validate.client_option_problem(product)
  if opt then
    return errors.validation(opt, why, name)
  end
  local probe = {}
  for k, v in pairs(product) do
    probe[k] = v
  end
  probe.provider = nil -- names the dialect, not a field of the request
  local stood_in = probe.prompt == nil
  if stood_in and not probe.multi_shot then
    probe.prompt = "x"
  end
  local endpoint = providers.endpoint(P, probe)
  probe.endpoint = nil
  if not P.endpoints[endpoint] then
    return nil
  end
  -- What a price does without is passed over: a prompt stood in for (refused where the endpoint
  -- takes none) and an image (left out, or a local file submit would read first). Passed over by
  -- standing in for it (or, refused still, leaving it out) and validating again, so that the
  -- fields the provider checks after it are checked too: an unknown field (an api_key) after an
  -- image the endpoint takes none of was priced, by kling estimate and kling quote alike.
  local err
  for _ = 1, 4 do
    err = P.validate(probe, endpoint)
    local field = err and err.field
    if field == "prompt" and stood_in and probe.prompt ~= nil then
      probe.prompt = nil
    elseif field == "image" and probe.image ~= STANDIN_IMAGE then
      probe.image = STANDIN_IMAGE
    elseif field == "image" and probe.image ~= nil then
      probe.image = nil
    elseif field and probe[field] == nil and tostring(err.message):find("^is required") then
      -- content a price does without, left out (a lip-sync's session_id): an estimate prices
      -- what it is given; the fields the provider checks after it go unchecked here, as before
      err = nil
      break
    else
      break
    end
  end
  if err and err.field and not (err.field == "prompt" and stood_in) and err.field ~= "image" then
    return err
  end
  -- the request's own expected seconds (never sent), as a create checks them (kling.lifecycle.machine)
  local problem = product.estimate ~= nil and validate.seconds_problem(product.estimate)
  if problem then
    return validation("estimate", problem, name)
  end
  return nil
end

--- An estimate as a caller is answered: what the provider would refuse of the request first
-- (cannot_honour: the provider's own validation, in the order submit checks it, so that an
-- estimate names the same first error as the create would), then its price facts' own error,
-- then the estimate (or `unpriced`). One rule for kling.estimate, client:estimate and
-- `kling estimate`.
-- strict(name, req, q, err) -> q, err | nil, err
function M.strict(name, req, q, err)
  local refused = type(name) == "string" and type(req) == "table" and M.cannot_honour(name, req)
  if refused then
    return nil, refused
  end
  if err and err.kind == "validation" then
    return nil, err
  end
  return q, err
end

local function by_amount(a, b)
  if a.micros ~= b.micros then
    return a.micros < b.micros
  end
  return a.provider < b.provider
end

--- Why `rate` cannot rank a quote in `cur` (USD per unit of `cur`), or nil: the one rule of a
-- rate (kling.money.ledger.rate_problem) in USD, whose own rate is 1 and nothing else (USD = "2"
-- was taken over its 1 and ranked a provider charging in USD behind dearer ones).
---@param cur any
---@param rate any
---@return string|nil problem
function M.rate_problem(cur, rate)
  if cur == "USD" then
    if type(rate) == "string" and core.money_parse(rate) == 1000000 then
      return nil
    end
    return "USD is the unit rates are in: its rate is 1 (got " .. validate.got(rate) .. ")"
  end
  return require("kling.money.ledger").rate_problem(cur, rate, "USD")
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
    local herr = M.cannot_honour(name, product)
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

return M
