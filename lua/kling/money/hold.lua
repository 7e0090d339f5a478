--- A task's hold on a ledger: reserve the estimate before a create is sent, settle to the
-- actual charge (priced from what the task delivered) when it succeeds, release when it fails,
-- each at most once by key. Reached through kling.lifecycle.effects, which carries out a
-- lifecycle machine's money actions for every runner; the ledger (kling.money.ledger) keeps
-- the cap hard however many tasks are in flight. Also: budgets as the command line and the
-- batch journal spell them.
-- @module kling.money.hold
local core = require "kling.core"
local errors = require "kling.errors"
local ledgers = require "kling.money.ledger"
local prices = require "kling.money.quote"
local usage = require "kling.money.usage"
local providers = require "kling.providers"
local validate = require "kling.validate"

local M = {}

-- A capped settle's charge (price, held) -> micros, capped: the stores' one rule, read by the
-- record's account of its end (kling.lifecycle.effects meter_charge).
M.charge_of = require("kling.money.stores.memory").charge_of

-- The units the providers charge in: each provider's catalog currency in `set` (a catalog set:
-- billing's process default, or a client's over it), as a budget names it ("evolink-credits").
-- -> {unit = true}, the units sorted
function M.units(set)
  local units, list = {}, {}
  for _, name in ipairs(providers.names) do
    local cat = set:get(name)
    local unit = type(cat) == "table" and cat.currency and prices.unit(cat.currency, name)
    if unit and not units[unit] then
      units[unit] = true
      list[#list + 1] = unit
    end
  end
  table.sort(list)
  return units, list
end

-- Why a budget in `currency` could never count anything, or nil: no provider (of `set`) charges
-- in it and `rates` ({currency =, rates = {}}) does not convert it. `rates_name` is how the
-- caller's rates are named ("--rates", "budget.rates"). kling run's --budget 50XYZ and
-- kling.new{budget = {currency = "RMB"}} are refused by this one rule.
function M.uncountable(currency, rates, set, rates_name)
  local units, list = M.units(set)
  if units[currency] or type(rates) == "table" and (rates.currency == currency
      or type(rates.rates) == "table" and rates.rates[currency] ~= nil) then
    return nil
  end
  return "no provider charges in " .. tostring(currency) .. " and no " .. rates_name .. " converts it, so nothing "
    .. "could count against it (the providers' units: " .. table.concat(list, ", ") .. ")"
end

-- Why a rate for currency `cur` could never apply, or nil: no provider (of `set`) charges in it
-- (a typo: CYN). The one rule of every rate a user gives: kling.quote's and kling quote's
-- USD rates, kling.new's budget.rates and kling run's --rates file.
function M.unrated(cur, set)
  local units, list = M.units(set)
  if units[cur] then
    return nil
  end
  local near = require("kling.validate").closest(tostring(cur), list)
  return "no provider charges in " .. tostring(cur) .. ", so its rate could never apply"
    .. (near and ("; did you mean " .. near .. "?") or "") .. " (the providers' units: " .. table.concat(list, ", ")
    .. ")"
end

-- The first currency of a rates map ({CUR = rate}) that M.unrated refuses, in name order: its
-- name and why. -> cur, problem | nil
function M.first_unrated(rates, set)
  local names = {}
  for cur in pairs(type(rates) == "table" and rates or {}) do
    names[#names + 1] = tostring(cur)
  end
  table.sort(names)
  for _, cur in ipairs(names) do
    local problem = M.unrated(cur, set)
    if problem then
      return cur, problem
    end
  end
  return nil
end

-- opts.budget: {limit = "50.00", currency = "CNY"} or a ledger shared by several clients. A
-- provider's own unit ("credits") names that provider's ("evolink-credits"): the client's.
-- A budget in a currency no provider of `set` (the client's catalogs) charges in and no rate
-- converts is refused by name (M.uncountable): every create would wait for a budget in the
-- currency it is priced in. A ledger given is taken as it is (it may be shared with code of
-- the caller's that counts other money).
-- `set` defaults to the process default (billing's). Returns the ledger, nil when there is no
-- budget, or nil and an error.
function M.open(budget, provider, set)
  if budget == nil then
    return nil
  end
  if getmetatable(budget) == ledgers.Ledger then
    return budget
  end
  if type(budget) ~= "table" then
    return nil, errors.validation("budget", "must be {limit = \"50.00\", currency = \"CNY\"} or a ledger")
  end
  local b = {}
  for k, v in pairs(budget) do
    b[k] = v
  end
  b.currency = b.currency == "credits" and prices.unit(b.currency, provider) or b.currency
  if type(b.budgets) == "table" then
    -- each budget of a list is qualified the same way as a single one
    local list = {}
    for i, one in ipairs(b.budgets) do
      list[i] = one
      if type(one) == "table" then
        list[i] = {}
        for k, v in pairs(one) do
          list[i][k] = v
        end
        list[i].currency = one.currency == "credits" and prices.unit(one.currency, provider) or one.currency
      end
    end
    b.budgets = list
  end
  -- The ledger refuses a key it does not know by name (budget.limt, budget.budgets[2].limt).
  local ledger, err = ledgers.new(b, "budget")
  if not ledger then
    return nil, err
  end
  set = set or require("kling.billing").default_catalogs -- (billing requires kling.money: not at load)
  local cur, unrated = M.first_unrated(type(b.rates) == "table" and b.rates.rates, set)
  if cur then
    return nil, errors.validation("budget.rates.rates." .. cur, unrated)
  end
  local each = type(b.budgets) == "table" and b.budgets or { b }
  for i, one in ipairs(each) do
    local problem = M.uncountable(one.currency, b.rates, set, "budget.rates")
    if problem then
      return nil, errors.validation(each == b.budgets and ("budget.budgets[" .. i .. "].currency") or "budget.currency",
        problem)
    end
  end
  local at, why = M.unused_budget(ledger, each, provider, set)
  if at then
    return nil, errors.validation(each == b.budgets and ("budget.budgets[" .. at .. "].currency") or "budget.currency",
      why)
  end
  return ledger
end

-- The first budget of `each` (the list a client's ledger was made of) that none of `provider`'s
-- creates could count against, and why: the client's own ledger counts one provider's quotes,
-- in one unit, against the account the ledger picks for it (its own budget, else the rates'
-- currency, else a single USD budget at the catalog's USD rate). An evolink client's budget in
-- CNY with no rate was taken, then every create refused "no budget". -> index, problem | nil
function M.unused_budget(ledger, each, provider, set)
  local cat = set:get(provider)
  local cur = type(cat) == "table" and cat.currency
  local unit = cur and prices.unit(cur, provider)
  if not unit then
    return nil -- no price in a currency: its creates are unpriced, which says so itself
  end
  -- the ledger's own choice (micros_of), asked of a quote in the provider's unit
  local usd = (cur == "USD" or cat.usd_rate) and { micros = 0 } or nil
  local m, acct = ledger:micros_of({ micros = 0, currency = cur, provider = provider, usd = usd }, "budget")
  acct = m and acct or nil -- else acct is the ledger's "no budget" error
  for i, one in ipairs(each) do
    local c = one.currency
    if c ~= acct then
      local head = provider .. " charges in " .. unit .. " and "
      if acct then
        return i, head .. "its creates count against the budget in " .. acct .. ", never this one in " .. c
          .. " (the provider's unit: " .. unit .. "; remove it)"
      end
      local why = ledger.rates and ledger.rates.currency == c and ("budget.rates has no rate for " .. unit)
        or ("no budget.rates converts " .. unit .. " into " .. c)
      return i, head .. why .. ", so no create could count against a budget in " .. c .. " (the provider's unit: "
        .. unit .. "; give a budget in " .. unit .. ", or budget.rates = {currency = \"" .. c .. "\", rates = {[\""
        .. unit .. "\"] = \"...\"}})"
    end
  end
  return nil
end

--- The request as priced on the client's provider (a copy): at the endpoint the provider
-- sends it to (kling.lifecycle.machine's choice, endpoint_def's below), written out: the
-- provider's default_endpoint, which kling.money.quote also prices a request without one at.
function M.priced(client, req)
  local r = {}
  for k, v in pairs(req) do
    r[k] = v
  end
  r.provider = client.provider.name
  r.endpoint = providers.endpoint(client.provider, req)
  return r
end

-- The request's price on the client's provider, with the client's catalogs (opts: as
-- kling.money.quote.estimate's).
function M.estimate(client, req, opts)
  return client.catalogs:estimate(M.priced(client, req), opts)
end

-- A reserve's request has passed its provider's validation in its machine (kling.lifecycle.machine
-- start): its estimate does not look again for what the provider would refuse.
local VALIDATED = { validated = true }

-- ceiling(def, req) -> request | nil: req as the largest charge it can bring, where the
-- endpoint def prices the length of media the caller only declares (def.media_seconds_max,
-- a number of seconds or a function of the request: the provider bills the media's real
-- length, whatever duration said). Holding its estimate keeps a balance a hard cap; nil:
-- the request is its own ceiling.
function M.ceiling(def, req)
  local max = def and def.media_seconds_max
  if type(max) == "function" then
    max = max(req)
  end
  if type(max) ~= "number" or (type(req.duration) == "number" and req.duration >= max) then
    return nil
  end
  local r = {}
  for k, v in pairs(req) do
    r[k] = v
  end
  r.duration = max
  return r
end

-- worst_case(estimate, def, req) -> quote | nil, err, at_ceiling: what a hold on req must
-- be: its estimate, or the estimate at the endpoint's ceiling (M.ceiling) when that is more.
-- estimate(req) -> quote | nil, err prices a request; at_ceiling is true when only the
-- ceiling could not be priced. Every hold (the client's, the batch's, the gateway's) is this.
function M.worst_case(estimate, def, req)
  local q, err = estimate(req)
  if not q then
    return nil, err
  end
  local top = M.ceiling(def, req)
  if top then
    local w, werr = estimate(top)
    if not w then
      return nil, werr, true
    end
    if w.micros > q.micros then
      return w
    end
  end
  return q
end

-- The definition of the endpoint a request goes to on provider P (nil: not one it knows).
function M.endpoint_def(P, req)
  local endpoint = providers.endpoint(P, req)
  return endpoint and P.endpoints and P.endpoints[endpoint]
end

-- Reserves the request's estimate (its worst case) under `key`. Returns the quote, true when
-- there is no budget, or nil and an error (kind "budget", "unpriced" or "validation"); nothing
-- is sent in that case. An unpriced request cannot be held to a cap, so it is refused.
-- once: the key is the caller's own, kept across restarts (a batch row's attempt): when it
-- holds already (a run before this one reserved it), that hold is the task's, not a second.
function M.reserve(client, key, req, once)
  local ledger = client.ledger
  if not ledger then
    return true
  end
  if once then
    local held, currency = ledger:reservation(key)
    if held then
      return { micros = held, currency = currency, held = true }
    end
  end
  -- media billed by its real length is held at the endpoint's longest: a budget is a hard cap
  local q, err = M.worst_case(function(r)
    return M.estimate(client, r, r == req and VALIDATED or nil) -- a ceiling (another request) is checked
  end, M.endpoint_def(client.provider, req), req)
  if not q then
    err.message = (err.message or "") .. " (a budget is set: every request needs a price; give one in Lua with"
      .. " client:set_catalog or kling.set_catalog, or run it without a budget)"
    return nil, err
  end
  local ok, rerr = ledger:reserve(key, q)
  if not ok then
    rerr.provider = rerr.provider or client.provider.name
    return nil, rerr
  end
  return q
end

-- What a finished task delivered (kling.money.usage).
M.usage = usage.of_task

--- The charge of what a request delivered (usage: kling.money.usage's), priced as its hold
-- was, with the client's catalogs: a quote, or nil and why not.
function M.charge(client, req, delivered)
  return client.catalogs:settle(M.priced(client, req), delivered)
end

-- Called when a task with a reservation ends: settles or releases what its key holds, at
-- most once (idempotent by key: a key that holds nothing, ended here or by a run before a
-- restart, is left alone). A success is charged the price of what it delivered, or, when that
-- price is unknown or cannot be counted, its reservation: never nothing. Returns the ledger
-- entry, or nil and an error (which is also kept on the task as `billing_error`).
function M.account(client, t)
  local ledger = client.ledger
  if not ledger or not t.ledger_key or t.accounted then
    return nil
  end
  t.accounted = true
  local key = t.ledger_key
  local held = ledger:reservation(key)
  if not held then
    return nil
  end
  local info = { task_id = t.id }
  if t.status ~= "succeeded" then
    return ledger:release(key, info)
  end
  local q, err = M.charge(client, t.request or {}, M.usage(t))
  if q then
    t.charge_quote = q
    local e, serr = ledger:settle(key, q, info)
    if e then
      return e
    end
    err, t.charge_quote = serr, nil
  end
  t.billing_error = err
  return ledger:settle(key, held, info), err
end

-- ---- budgets as the command line and the batch journal spell them ----

-- One budget as text: "50" (in `default_currency`), "50CNY", "50 CNY", "50:CNY",
-- "300:evolink-credits". -> {limit = "50", currency = "CNY"} | nil, message
-- The amount is what comes before the currency (letters and '-' at the end, or what follows a
-- ':' or a space), so that "1e999CNY" is the amount 1e999 in CNY, refused with the money
-- parser's own reason, never a currency "e999CNY".
local SHAPE = "a decimal amount with its currency, such as \"50CNY\" or \"300:evolink-credits\""

function M.parse(text, default_currency)
  -- a number is a float: batch.run{budget = 123456789.123456} ran under the cap tostring made of
  -- it, 123456789.12346; money is a decimal string, as kling.new's budget.limit must be
  if type(text) ~= "string" then
    return nil, "a budget is " .. SHAPE .. ", a string (got " .. validate.got(text) .. ")"
  end
  local amount, currency = text:match("^%s*(.-)%s*:%s*(.-)%s*$")
  if not amount then
    amount, currency = text:match("^%s*(%S+)%s+(%S+)%s*$")
  end
  if not amount then
    amount, currency = text:match("^%s*(.-)(%a[%a%-]*)%s*$")
  end
  if not amount then
    amount, currency = text:match("^%s*(.-)%s*$"), default_currency
  end
  local m, why = nil, "not a decimal number"
  if amount ~= "" then
    m, why = core.money_parse(amount)
  end
  if m and m < 0 then
    m, why = nil, "negative"
  end
  if not m or currency == "" then
    return nil, "budget must be " .. SHAPE .. " (got \"" .. text .. "\": "
      .. (currency == "" and "no currency after ':'" or tostring(why):gsub("^'.-': ", "")) .. ")"
  end
  if not currency then
    return nil, "budget " .. text .. ": give its currency (\"" .. text .. "CNY\", \"" .. text .. ":evolink-credits\")"
  end
  local problem = prices.currency_problem(currency)
  if problem then
    return nil, "budget " .. text .. ": " .. problem
  end
  return { limit = amount, currency = currency }
end

-- Budgets from texts (one per currency). -> list | nil, message
function M.parse_all(texts, default_currency)
  if type(texts) ~= "table" then
    texts = { texts }
  end
  local list, seen = {}, {}
  for _, t in ipairs(texts) do
    local b, err = M.parse(t, default_currency)
    if not b then
      return nil, err
    end
    if seen[b.currency] then
      return nil, "two budgets in " .. b.currency .. " (one per currency)"
    end
    seen[b.currency] = true
    list[#list + 1] = b
  end
  return list
end

-- A rates file (JSON): {"currency": "CNY", "rates": {"USD": "7.10", "evolink-credits": "0.10"}},
-- units of `currency` per unit of each other one, as decimal strings. -> rates | nil, message
function M.read_rates(path)
  local text, err = require("kling.local_file").read_text(path)
  if not text then
    -- kling quote's form (CNY=0.14) given for a file: say what the file holds, not only "cannot open"
    local pairs_form = type(path) == "string" and path:match("^[%w%-_]+=[^/]*$")
    return nil, "cannot read the rates: " .. err .. (pairs_form and ("; --rates takes a JSON file {\"currency\": "
      .. "\"CNY\", \"rates\": {\"USD\": \"7.10\"}} (units of currency per unit of each other one), not"
      .. " CURRENCY=RATE pairs (those are kling quote's, in USD)") or "")
  end
  local v, jerr, dup = require("kling.json").decode_strict(text)
  if dup then
    return nil, path .. ": " .. jerr
  end
  if v == nil then
    return nil, path .. ": rates must be a JSON object {\"currency\": \"CNY\", \"rates\": {\"USD\": \"7.10\", ...}} ("
      .. tostring(jerr) .. ")"
  end
  local at, why = ledgers.rates_problem(v)
  if at == "" then
    return nil, path .. ": rates must be a JSON object {\"currency\": \"CNY\", \"rates\": {\"USD\": \"7.10\", ...}} ("
      .. why .. ")"
  elseif at then
    return nil, path .. ": " .. at .. ": " .. why:gsub("of the rates", "of a rates file")
  end
  for cur, rate in pairs(v.rates) do
    local problem = ledgers.rate_problem(cur, rate, v.currency)
    if problem then
      return nil, path .. ": rates." .. tostring(cur) .. ": " .. problem
    end
  end
  return { currency = v.currency, rates = v.rates }
end

-- The budget a batch journal's header keeps: {budgets = {...}, rates =} (older journals:
-- {limit, currency}). -> budgets, rates | nil
function M.from_header(b)
  if type(b) ~= "table" then
    return nil
  end
  if b.budgets then
    -- empty rates (journals written before they were refused) converted nothing: none, on resume
    local r = b.rates
    return b.budgets, not (type(r) == "table" and type(r.rates) == "table" and next(r.rates) == nil) and r or nil
  end
  if b.limit then
    return { { limit = b.limit, currency = b.currency } }, nil
  end
  return nil
end

-- A ledger over those budgets and rates, with the journal's movements replayed; `store`
-- (kling.money.stores.file over the batch's journal) keeps each new movement.
function M.ledger(budgets, rates, lines, store)
  return ledgers.new { budgets = budgets, rates = rates, lines = lines, store = store }
end

-- "12.5 CNY + 40 evolink-credits": every budget's spend, each in its own currency.
function M.spend_text(ledger)
  local parts = {}
  for _, cur in ipairs(ledger:currencies()) do
    parts[#parts + 1] = core.money_format(ledger:spent(cur)) .. " " .. cur
  end
  return table.concat(parts, " + ")
end

return M
