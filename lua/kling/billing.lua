--- Billing: estimate, settle, quote, and ledgers with hard-cap budgets.
-- Billing: the price of a request before it is sent (estimate), the charge for what was
-- delivered (settle), the comparison across providers (quote), and budgets (kling.ledger).
-- Prices come from the dated catalogs in kling/prices/ (data); kling.core evaluates them in
-- integer micro-units, so no float ever touches an amount.
-- @module kling.billing
local core = require "kling.core"
local errors = require "kling.errors"

local M = {}

--- The providers `quote` asks, in order.
-- The providers quote() asks, in this order (kling.providers.names).
M.providers = { "kling", "apiinone", "apimodels", "evolink", "compat" }

local overrides = {} -- provider -> catalog set by the user (set_catalog)

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

local function known_provider(name)
  if overrides[name] then
    return true
  end
  for _, p in ipairs(M.providers) do
    if p == name then
      return true
    end
  end
  return false
end

--- The price catalog in force for a provider.
-- Returns the catalog in force for a provider: opts.catalog, the user's, or the shipped one.
---@param provider string
---@param opts? {catalog: table}
---@return table|nil catalog
---@return kling.Error|nil err
function M.catalog(provider, opts)
  if opts and opts.catalog then
    return opts.catalog
  end
  if type(provider) ~= "string" or not known_provider(provider) then
    return nil, validation("provider", "unknown provider '" .. tostring(provider) .. "' (known: "
      .. table.concat(M.providers, ", ") .. ")")
  end
  if overrides[provider] then
    return overrides[provider]
  end
  local ok, cat = pcall(require, "kling.prices." .. provider)
  if not ok then
    return nil, unpriced(provider, "no price catalog for provider '" .. provider .. "'")
  end
  return cat
end

--- Replaces a provider's catalog for this process (nil restores the shipped one).
---@param provider string
---@param cat table|nil a catalog, or nil to restore the shipped one
---@return boolean|nil ok
---@return kling.Error|nil err what is wrong with the catalog
function M.set_catalog(provider, cat)
  errors.check_arg("billing.set_catalog", 1, provider, "string")
  if cat == nil then
    overrides[provider] = nil
    return true
  end
  local ok, err = check_catalog(provider, cat)
  if not ok then
    return nil, err
  end
  overrides[provider] = cat
  return true
end

--- Checks a catalog's shape (every rule, price and fact).
---@param provider string
---@param cat table
---@return boolean|nil ok
---@return kling.Error|nil err
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
local function facts(req, cat, provider)
  -- Without an endpoint (nor a catalog default) only rules that ignore it can match; one
  -- that needs it reports the field missing.
  local endpoint = norm_endpoint(req.endpoint) or cat.endpoint_default
  local d = defaults_for(cat, endpoint or "*")
  local input = type(req.input) == "table" and req.input or {}
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
---@field usd table|nil {amount, micros} where a USD rate is known

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

local function cheaper(a, b)
  if (a.usd ~= nil) ~= (b.usd ~= nil) then
    return a.usd ~= nil
  end
  if a.usd and a.usd.micros ~= b.usd.micros then
    return a.usd.micros < b.usd.micros
  end
  if not a.usd and a.currency ~= b.currency then
    return a.currency < b.currency
  end
  if a.micros ~= b.micros then
    return a.micros < b.micros
  end
  return a.provider < b.provider
end

--- A request priced on every provider, cheapest first (`kling.quote`).
-- quote(req [, opts]) -> list of quotes, one per provider that can price the request, cheapest
-- first by USD where a rate is known (those without one follow); `unavailable` lists the
-- others with their error. opts.providers limits the providers asked; opts.usd_rates adds
-- rates ({kling = "0.14"}: USD per unit of that provider's currency).
---@param req table a canonical request
---@param opts? {providers: string[], usd_rates: table}
---@return kling.Quote[] quotes with `quotes.unavailable = {{provider, error}}`
function M.quote(req, opts)
  if type(req) ~= "table" then
    errors.misuse("billing.quote", "request table expected")
  end
  local names = (opts and opts.providers) or M.providers
  local list, unavailable = {}, {}
  for _, name in ipairs(names) do
    local q, err = price(req, nil, { provider = name, usd_rates = opts and opts.usd_rates })
    if q then
      list[#list + 1] = q
    else
      unavailable[#unavailable + 1] = { provider = name, error = err }
    end
  end
  table.sort(list, cheaper)
  list.unavailable = unavailable
  return list
end

-- ---- ledger: budgets as a hard cap ----
-- Reserve the estimate before submit, settle to the actual charge on success, release on
-- failure. A reservation that would take spent + reserved past the limit fails with kind
-- "budget" before anything is sent, however many tasks are in flight. Every movement is an
-- entry {seq, time_ms, op, task_key, task_id, amount, micros, currency} that can be written as
-- a JSON line and replayed (the batch journal keeps them).

local json = require "kling.json"

--- A ledger: a budget with a hard cap (`kling.ledger`). Amounts are integer micro-units.
---@class kling.Ledger
---@field currency string
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

--- Micro-units of an amount in the ledger's currency (internal).
-- Micro-units of `x` (integer micros or a quote) in the ledger's currency.
-- @local
function Ledger:micros_of(x, field)
  local m = x
  if type(x) == "table" then
    if x.currency == self.currency then
      m = x.micros
    elseif self.currency == "USD" and x.usd then
      m = x.usd.micros
    else
      return nil, validation(field, "a quote in " .. tostring(x.currency) .. " cannot be counted against a "
        .. self.currency .. " budget (no conversion rate)")
    end
  end
  if not integral(m) then
    return nil, validation(field, "integer micro-units or a quote are required")
  end
  if m < 0 then
    return nil, validation(field, "must not be negative")
  end
  return m
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

--- Appends one entry (internal).
-- @local
function Ledger:record(op, key, micros, time_ms, extra)
  self.seq = self.seq + 1
  local e = {
    seq = self.seq, time_ms = time_ms or self.clock(), op = op, task_key = key, task_id = self.task_ids[key],
    amount = core.money_format(micros), micros = micros, currency = self.currency,
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

-- The three movements. `time_ms` is given when replaying history.
local function do_reserve(self, key, m, enforce, time_ms)
  if self.holds[key] or self.settled[key] then
    return nil, validation("task_key", "'" .. key .. "' already has a reservation or a charge")
  end
  local committed, err = checked(core.money_add(self.spent_micros, self.reserved_micros), "budget")
  if not committed then
    return nil, err
  end
  local after
  after, err = checked(core.money_add(committed, m), "quote")
  if not after then
    return nil, err
  end
  if enforce and after > self.limit_micros then
    return nil, errors.new {
      kind = "budget", field = "budget.limit",
      message = "reserving " .. core.money_format(m) .. " " .. self.currency .. " would pass the limit of "
        .. core.money_format(self.limit_micros) .. " (spent " .. core.money_format(self.spent_micros)
        .. ", reserved " .. core.money_format(self.reserved_micros) .. ")",
    }
  end
  self.holds[key] = m
  self.in_flight = self.in_flight + 1
  self.reserved_micros = core.money_add(self.reserved_micros, m) -- fits: spent + reserved + m did
  return self:record("reserve", key, m, time_ms)
end

local function do_settle(self, key, m, time_ms)
  if self.settled[key] then
    return nil, validation("task_key", "'" .. key .. "' is already settled")
  end
  local spent, err = checked(core.money_add(self.spent_micros, m), "actual")
  if not spent then
    return nil, err
  end
  local held = self.holds[key]
  if held then
    self.holds[key] = nil
    self.in_flight = self.in_flight - 1
    self.reserved_micros = core.money_sub(self.reserved_micros, held) -- held <= reserved
  end
  self.spent_micros = spent
  self.settled[key] = true
  return self:record("settle", key, m, time_ms, { reserved_amount = core.money_format(held or 0) })
end

local function do_release(self, key, time_ms)
  local held = self.holds[key]
  if held == nil then
    return nil, validation("task_key", "'" .. key .. "' has no reservation to release")
  end
  self.holds[key] = nil
  self.in_flight = self.in_flight - 1
  self.reserved_micros = core.money_sub(self.reserved_micros, held)
  return self:record("release", key, held, time_ms)
end

--- Holds an estimate before a create.
-- reserve(task_key, quote | micros [, {task_id=}]) -> entry | nil, err (kind "budget" when
-- spent + reserved + this would pass the limit).
---@param task_key string
---@param quote kling.Quote|integer
---@param info? {task_id: string}
---@return table|nil entry
---@return kling.Error|nil err kind `budget` past the limit
function Ledger:reserve(task_key, quote, info)
  local key = key_of(task_key)
  local m, err = self:micros_of(quote, "quote")
  if not m then
    return nil, err
  end
  note_task_id(self, key, type(info) == "table" and info.task_id)
  return do_reserve(self, key, m, true)
end

--- Replaces a reservation by the actual charge.
-- settle(task_key, actual micros | settled quote [, {task_id=}]) -> entry | nil, err.
-- The reservation is replaced by the actual charge, which is recorded even past the limit:
-- it has been incurred. A charge without a reservation (a synchronous call) is recorded too.
---@param task_key string
---@param actual kling.Quote|integer
---@param info? {task_id: string}
---@return table|nil entry
---@return kling.Error|nil err
function Ledger:settle(task_key, actual, info)
  local key = key_of(task_key)
  local m, err = self:micros_of(actual, "actual")
  if not m then
    return nil, err
  end
  note_task_id(self, key, type(info) == "table" and info.task_id)
  return do_settle(self, key, m)
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

--- The limit in micro-units.
---@return integer
function Ledger:limit()
  return self.limit_micros
end

--- What was charged, in micro-units.
---@return integer
function Ledger:spent()
  return self.spent_micros
end

--- What is held for tasks in flight, in micro-units.
---@return integer
function Ledger:reserved()
  return self.reserved_micros
end

--- What may still be reserved, in micro-units.
-- What may still be reserved: limit - spent - reserved (negative once charges passed it).
---@return integer
function Ledger:balance()
  return core.money_sub(core.money_sub(self.limit_micros, self.spent_micros), self.reserved_micros)
end

--- The micro-units held for one task, if any.
---@param task_key string
---@return integer|nil
function Ledger:reservation(task_key)
  return self.holds[key_of(task_key)]
end

--- Limit, spent, reserved and balance as decimal strings, with the currency.
---@return table
function Ledger:summary()
  local fmt = core.money_format
  return {
    currency = self.currency, limit = fmt(self.limit_micros), spent = fmt(self.spent_micros),
    reserved = fmt(self.reserved_micros), balance = fmt(self:balance()), in_flight = self.in_flight,
    entries = #self.log,
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
  if e.currency ~= self.currency then
    return nil, validation("line.currency", "entry in " .. tostring(e.currency) .. ", ledger in " .. self.currency)
  end
  local m, err = core.money_parse(e.amount)
  if not m then
    return nil, validation("line.amount", err)
  end
  local time_ms = type(e.time_ms) == "number" and e.time_ms or nil
  note_task_id(self, e.task_key, e.task_id)
  if e.op == "reserve" then
    return do_reserve(self, e.task_key, m, false, time_ms)
  elseif e.op == "settle" then
    return do_settle(self, e.task_key, m, time_ms)
  elseif e.op == "release" then
    return do_release(self, e.task_key, time_ms)
  end
  return nil, validation("line.op", "unknown op '" .. tostring(e.op) .. "'")
end

--- Makes a ledger (`kling.ledger`).
-- ledger{limit = "50.00", currency = "CNY" [, clock = fn -> ms] [, on_entry = fn(entry, line)]
-- [, lines = {JSON lines to replay}]} -> ledger | nil, err
---@param opts {limit: string|integer, currency: string, clock: fun(): integer, on_entry: function, lines: string[]}
---@return kling.Ledger|nil ledger
---@return kling.Error|nil err
function M.ledger(opts)
  if type(opts) ~= "table" then
    errors.misuse("billing.ledger", "options table expected")
  end
  if type(opts.limit) ~= "string" then
    return nil, validation("budget.limit", "a decimal string is required (e.g. \"50.00\")")
  end
  local limit, err = core.money_parse(opts.limit)
  if not limit then
    return nil, validation("budget.limit", err)
  end
  if limit < 0 then
    return nil, validation("budget.limit", "must not be negative")
  end
  if type(opts.currency) ~= "string" or opts.currency == "" then
    return nil, validation("budget.currency", "a currency is required (CNY, USD, credits)")
  end
  local self = setmetatable({
    currency = opts.currency, limit_micros = limit, spent_micros = 0, reserved_micros = 0,
    holds = {}, settled = {}, task_ids = {}, in_flight = 0, seq = 0, log = {},
    clock = opts.clock or core.wall_ms or function()
      return os.time() * 1000
    end,
  }, Ledger)
  for i, line in ipairs(opts.lines or {}) do
    local ok, rerr = self:replay(line)
    if not ok then
      rerr.field = "lines[" .. i .. "]" .. (rerr.field and ("." .. rerr.field) or "")
      return nil, rerr
    end
  end
  self.on_entry = opts.on_entry -- set after the replay: restored entries are already persisted
  return self
end

M.Ledger = Ledger

return M
