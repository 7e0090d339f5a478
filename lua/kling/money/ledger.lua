--- The one Ledger: budgets as a hard cap, over a pluggable store.
-- Reserve the estimate before a create, settle to the actual charge on success, release on
-- failure. A reservation that would take spent + reserved past an account's limit is refused
-- (kind "budget") before anything is sent, however many tasks are in flight. Every movement
-- is an entry {seq, time_ms, op, task_key, task_id, amount, micros, currency} that can be
-- written as a JSON line and replayed.
--
-- The ledger decides (which account a quote counts against, conversions at the user's rates,
-- the refusals and their codes); the store holds the balances and carries out each movement
-- atomically: kling.money.stores.memory (in the process), .file (memory plus an append-only
-- fsync'd file: the batch), .shared (ngx.shared plus a journal: the gateway on one node),
-- .redis (one Lua script per movement: the gateway on several nodes).
--
-- Accounts: a budget ledger has one account per currency, named by it (a client's or a
-- batch's budgets); the gateway's accounts are its clients, named by the caller
-- (info.account), all in the store's currency. Every currency is its own money: CNY, USD and
-- each gateway's credits ("apiinone-credits", "evolink-credits") are never added together; a
-- quote counts against the budget of its own unit, else (with rates the user gave) is
-- converted into the rates' currency, else is refused with kind "budget", code "no_budget".
-- @module kling.money.ledger
local core = require "kling.core"
local errors = require "kling.errors"
local json = require "kling.json"
local prices = require "kling.money.quote"
local memory = require "kling.money.stores.memory"
local validate = require "kling.validate"

local M = {}

-- What new's options may hold (kling.ledger raises on another, naming it), and what one budget
-- may: an unknown key is refused by name, never dropped with the budget made of the rest.
M.OPTIONS = { limit = true, currency = true, budgets = true, rates = true, clock = true, on_entry = true,
  lines = true, store = true }
local BUDGET_FIELDS = { limit = true, currency = true }

local EXACT_MAX = 9007199254740992 -- 2^53 micro-units: the last a double (LuaJIT, ngx.shared, Redis's Lua) holds

M.TOPUP_ID_MAX = 128 -- bytes of a top-up's id (Ledger:topup)

local function validation(field, message)
  return errors.new { kind = "validation", field = field, message = message }
end

--- A ledger: hard-cap accounts over a store (`kling.ledger`); its methods below.
-- Amounts are integer micro-units of one account's currency; a method's optional currency
-- names the budget (default: the first given).
---@class kling.Ledger
---@field currency string the first budget's currency (the default of limit, spent, reserved, balance)
---@field rates table|nil {currency, rates}: how a quote in a unit without a budget is counted
---@field store table where the balances live (kling.money.stores.*)
local Ledger = {}
Ledger.__index = Ledger
Ledger.__name = "kling.ledger"
M.Ledger = Ledger

local function integral(v)
  return type(v) == "number" and v == math.floor(v) and (math.type == nil or math.type(v) == "integer")
end

local function no_budget(self, unit, field)
  local have = self:currencies()
  return errors.new {
    kind = "budget", code = "no_budget", field = field,
    message = "no budget in " .. tostring(unit) .. " (the budget is in " .. table.concat(have, ", ")
      .. "): give one in " .. tostring(unit) .. (self.rates and "" or ", or rates to count it in "
      .. tostring(have[1])),
  }
end

-- The currency of an account, or nil when the store has no such account.
local function currency_of(self, account)
  return self.store:currency(account)
end

--- Micro-units of an amount and the account they count against (internal).
-- Micro-units of `x` and the account it counts against: `x` is integer micros (in the
-- currency of `account`, else of `key`'s reservation, else of the first budget) or a quote
-- ({micros, currency[, provider]}). -> micros, account, conversion | nil, err
-- @local
function Ledger:micros_of(x, field, key, account)
  local m, acct, conv = x, account, nil
  if type(x) == "table" then
    local unit = prices.unit(x)
    m = x.micros
    if account then
      if unit ~= currency_of(self, account) then
        return nil, no_budget(self, unit, field)
      end
    elseif self.budgets[unit] then
      acct = unit
    elseif self.rates and self.rates.rates[unit] and integral(m) then
      acct = self.rates.currency
      conv = { amount = core.money_format(m), currency = unit, rate = self.rates.rates[unit] }
      m = core.money_scale(m, conv.rate)
    elseif self.budgets.USD and x.usd and #self.order == 1 then
      -- A single USD budget counts a quote at the catalog's published USD rate.
      acct, m = "USD", x.usd.micros
    else
      return nil, no_budget(self, unit, field)
    end
  elseif not acct then
    acct = (key and self.store:hold(key)) or self.currency
  end
  if not integral(m) then
    return nil, validation(field, "integer micro-units or a quote are required")
  end
  if m < 0 then
    return nil, validation(field, "must not be negative")
  end
  return m, acct, conv
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

local function task_id_of(info)
  local id = type(info) == "table" and info.task_id
  if id ~= nil and id ~= false and id ~= json.null then
    return tostring(id)
  end
  return nil
end

local function converted(conv)
  return conv and { from_amount = conv.amount, from_currency = conv.currency, rate = conv.rate } or nil
end

-- What a store is told of a movement: the task id and the entry's extra fields (one shared
-- empty table when there are none: stores only read it).
-- info.record (the gateway's task record as JSON) rides on the reservation's journal line.
local NOTHING = {}
-- info.by: who decided a movement the code did not ("operator": kling.gateway.holds), written on
-- its ledger line; a word of letters, digits, '_' and '-'.
local function by_of(info)
  local by = type(info) == "table" and info.by or nil
  if by ~= nil and not (type(by) == "string" and #by <= 32 and by:match("^[%w_-]+$")) then
    errors.misuse("ledger", "info.by must be a word of letters, digits, '_' and '-' (at most 32), got "
      .. tostring(by))
  end
  return by
end

local function movement(info, conv)
  local task_id = task_id_of(info)
  local record = type(info) == "table" and info.record or nil
  local forgotten = type(info) == "table" and info.forgotten == true or nil
  local open_max = type(info) == "table" and info.open_max or nil
  local by = by_of(info)
  if task_id == nil and conv == nil and record == nil and not forgotten and not open_max and not by then
    return NOTHING
  end
  return { task_id = task_id, extra = converted(conv), record = record, forgotten = forgotten, open_max = open_max,
    by = by }
end

-- open_max, when given: the most holds its account may have open at once.
local function open_max_problem(info)
  local most = type(info) == "table" and info.open_max
  if most and not (type(most) == "number" and most >= 1 and most == math.floor(most) and most < 2 ^ 31) then
    return validation("open_max", "must be a whole number of tasks, at least 1 (got " .. tostring(most) .. ")")
  end
end

-- The error for a store's refusal code (kling.money.stores.memory lists them).
local function refusal(self, code, detail, key, account, m, named)
  local fmt = core.money_format
  if code == "over" then
    local a = self.store:account(account) or {}
    local cur = a.currency or account
    if named then
      return errors.new { kind = "budget", field = "balance", message = "the balance of " .. account .. " ("
        .. fmt(a.balance_micros or detail or 0) .. " " .. cur .. " available) cannot hold " .. fmt(m) .. " " .. cur }
    end
    return errors.new { kind = "budget", field = "budget.limit",
      message = "reserving " .. fmt(m) .. " " .. cur .. " would pass the limit of " .. fmt(a.limit_micros or 0)
        .. " " .. cur .. " (spent " .. fmt(a.spent_micros or 0) .. ", reserved " .. fmt(a.reserved_micros or 0) .. ")" }
  elseif code == "busy" then
    return errors.new { kind = "rate_limited", field = "open_max", retryable = true, message = tostring(account)
      .. " has " .. tostring(detail) .. " tasks open, the most it may have at once: one must end first" }
  elseif code == "unknown_account" then
    if named then
      return validation("account", "unknown account '" .. tostring(account) .. "'")
    end
    return validation("task_key", "'" .. key .. "' has no reservation and no known account")
  elseif code == "exists" then
    return validation("task_key", "'" .. key .. "' already has a reservation or a charge")
  elseif code == "ended" then
    return validation("task_key", "'" .. key .. "' is already " .. tostring(detail or "settled"))
  elseif code == "exists_key" then
    local e = validation("record", "the record's key number " .. tostring(detail) .. " exists")
    e.key_index = detail
    return e
  elseif code == "no_record" then
    return validation("task_key", "'" .. key .. "' has no task record to hold for")
  elseif code == "no_hold" then
    return validation("task_key", "'" .. key .. "' has no reservation to release")
  elseif code == "range" then
    return validation(detail, "amount out of range")
  elseif code == "journal" then
    return errors.new { kind = "server", field = "journal", message = tostring(detail) }
  end
  return errors.new { kind = "server", field = "store", message = tostring(detail or code) }
end

--- Holds an estimate before a create.
-- reserve(task_key, quote | micros [, {task_id=, account=, open_max=}]) -> entry | nil, err
-- (kind "budget" when spent + reserved + this would pass the limit of its account, or no
-- budget counts it; "rate_limited", field open_max, when the account already has open_max
-- holds open). `account` names the account (the gateway's client); without it the quote's
-- unit picks the budget.
---@param task_key string|integer the task's key (its external id)
---@param quote kling.Quote|integer a quote (counted in the budget of its unit) or micros of the first budget
---@param info? {task_id: string, account: string, open_max: integer}
---@return table|nil entry
---@return kling.Error|nil err kind `budget` (code `no_budget` when no budget counts it), `rate_limited` or `validation`
function Ledger:reserve(task_key, quote, info)
  local bad = open_max_problem(info)
  if bad then
    return nil, bad
  end
  local key = key_of(task_key)
  local named = type(info) == "table" and info.account or nil
  local m, acct, conv = self:micros_of(quote, "quote", nil, named)
  if not m then
    return nil, acct
  end
  if acct == nil then
    -- A ledger over a store of accounts (kling.money.stores.shared, .redis) has no budget to
    -- fall back on: without a name the shared store raised inside nginx ("attempt to
    -- concatenate local 'account'").
    return nil, validation("account", "is required: this ledger has no budget, its store holds per account "
      .. "(reserve(key, micros, {account = name}))")
  end
  local e, code, detail = self.store:reserve(acct, key, m, movement(info, conv))
  if not e then
    return nil, refusal(self, code, detail, key, acct, m, named)
  end
  return e
end

--- Holds an estimate in the same store round trip as the task record it is for.
-- reserve_call(task_key, micros, {task_id=, account=}, record) -> call, read: for a store
-- that batches calls (kling.money.stores.redis: the gateway sends the record and the hold in
-- one call), the reservation as a call to send, held only if the record key `record` exists,
-- or made in the same script as the record's own writes (`record` a table: the store's
-- reserve_call says what it holds), and read(result) -> entry | nil, err as reserve answers
-- (err.key_index: which of the record's keys existed). A store without batching raises.
---@param task_key string|integer
---@param micros integer in the account's currency
---@param info {task_id: string, account: string}
---@param record string|table
---@return table call
---@return fun(result: any): table|nil, kling.Error|nil read
function Ledger:reserve_call(task_key, micros, info, record)
  local bad = open_max_problem(info)
  if bad then
    errors.misuse("ledger", bad.message)
  end
  local key = key_of(task_key)
  if not self.store.reserve_call then
    errors.misuse("ledger", "reserve_call needs a store that batches calls (kling.money.stores.redis)")
  end
  local acct = info.account
  local call, read = self.store:reserve_call(acct, key, micros, movement(info), record)
  return call, function(res)
    local e, code, detail = read(res)
    if not e then
      return nil, refusal(self, code, detail, key, acct, micros, acct)
    end
    return e
  end
end

--- Replaces a reservation by the actual charge.
-- settle(task_key, actual micros | settled quote [, {task_id=, account=}]) -> entry | nil, err.
-- The reservation is replaced by the actual charge, which is recorded even past the limit:
-- it has been incurred. A charge without a reservation (a synchronous call) is recorded too
-- (in info.account's, or the quote's budget). Micros are in the currency of the reservation.
-- info.at_most_held: the charge is never more than the hold (the gateway's: a client's balance
-- is a hard cap), and actual nil charges the hold (a delivery that could not be priced); the
-- store decides it in the step that ends the hold (kling.money.stores.memory charge_of), and
-- the entry's `priced` is the price it did not charge.
---@param task_key string|integer
---@param actual kling.Quote|integer|nil the settled quote, or micros in the reservation's currency
---@param info? {task_id: string, account: string, at_most_held: boolean}
---@return table|nil entry
---@return kling.Error|nil err kind `validation` (already settled, another currency) or `budget`
function Ledger:settle(task_key, actual, info)
  local key = key_of(task_key)
  local named = type(info) == "table" and info.account or nil
  local m, acct, conv
  local at_most = type(info) == "table" and info.at_most_held == true or nil
  if actual == nil and at_most then
    acct = named or self.currency -- the hold's own account where there is one (the store's)
  elseif type(actual) == "table" then
    -- A quote counts in its unit's account (or the rates' one), which must be the one the
    -- reservation is in.
    local held_in = self.store:hold(key)
    m, acct, conv = self:micros_of(actual, "actual", key, named)
    if m and held_in and held_in ~= acct then
      return nil, validation("actual", "'" .. key .. "' was reserved in " .. tostring(currency_of(self, held_in))
        .. ", not " .. tostring(currency_of(self, acct)))
    end
  else
    -- Micros are in the reservation's currency (the store knows it), else the named account's
    -- or the first budget's.
    m, acct = self:micros_of(actual, "actual", nil, named or self.currency or "")
  end
  if not m and not (actual == nil and at_most) then
    return nil, acct
  end
  local e, code, detail = self.store:settle(key, m, { task_id = task_id_of(info), account = acct,
    extra = converted(conv), by = by_of(info), at_most_held = at_most })
  if not e then
    return nil, refusal(self, code, detail, key, acct, m)
  end
  return e
end

--- Drops a reservation: the task failed, nothing is charged.
-- release(task_key [, {task_id=, forgotten=}]) -> entry | nil, err: the task failed; nothing is
-- charged. forgotten = true: the task goes with this release (refused at its create: nothing can
-- end it again), so a store need not remember the end for long.
---@param task_key string
---@param info? {task_id: string, forgotten: boolean}
---@return table|nil entry
---@return kling.Error|nil err
function Ledger:release(task_key, info)
  local key = key_of(task_key)
  local e, code, detail = self.store:release(key, movement(info))
  if not e then
    return nil, refusal(self, code, detail, key)
  end
  return e
end

local function account(self, currency)
  local a = self.store:account(currency or self.currency)
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
  return account(self, currency).limit_micros
end

--- What was charged against one budget, in micro-units.
---@param currency? string the budget's currency (default: the first budget's)
---@return integer micros
function Ledger:spent(currency)
  return account(self, currency).spent_micros
end

--- What is held for tasks in flight in one budget, in micro-units.
---@param currency? string the budget's currency (default: the first budget's)
---@return integer micros
function Ledger:reserved(currency)
  return account(self, currency).reserved_micros
end

--- What may still be reserved, in micro-units.
-- What may still be reserved: limit - spent - reserved (negative once charges passed it).
---@param currency? string the budget's currency (default: the first budget's)
---@return integer micros
function Ledger:balance(currency)
  return account(self, currency).balance_micros
end

--- The currencies the ledger holds a budget in, in the order given.
---@return string[] currencies e.g. {"CNY", "evolink-credits"}
function Ledger:currencies()
  local out = {}
  for i, c in ipairs(self.order) do
    out[i] = c
  end
  return out
end

--- What one task holds now: micro-units and their currency, or nil.
-- reservation(task_key) -> micros, currency | nil: what the key holds now.
---@param task_key string|integer
---@return integer|nil micros
---@return string|nil currency
function Ledger:reservation(task_key)
  local acct, m = self.store:hold(key_of(task_key))
  if acct then
    return m, currency_of(self, acct)
  end
  return nil
end

--- What one task was charged once settled: micro-units and their currency, or nil.
-- settled(task_key) -> micros, currency | nil: the key's charge once settled (nil as well on
-- a store that keeps no charges by key: the gateway's).
---@param task_key string|integer
---@return integer|nil micros
---@return string|nil currency
function Ledger:settled(task_key)
  local acct, m = self.store:charge(key_of(task_key))
  if acct then
    return m, currency_of(self, acct)
  end
  return nil
end

--- One account's figures (the gateway's clients): name, currency, limit, spent, reserved,
-- balance (decimal strings) and the same in *_micros; nil when there is no such account.
---@param name string
---@return table|nil
function Ledger:account(name)
  return self.store:account(name)
end

--- Opens an account or sets its limit (a decimal string: the credit it may spend). In a store
-- shared by several nodes (kling.money.stores.redis) the limit is the account's credit only
-- when the store first opens it: afterwards the store's own stands (set_credit changes it), and
-- its credit comes back second when it is not `limit`.
---@param name string
---@param limit string
---@param opts? table the store's own options (the Redis store's `file`)
---@return table|nil account its figures, as account() gives them
---@return kling.Error|integer|nil err, or the store's own credit (micros) where it kept it
function Ledger:open_account(name, limit, opts)
  return self.store:open_account(name, limit, opts)
end

--- Replaces an account's credit (micro-units; its top-ups kept, its balance moved by the
-- difference), recorded as a `credit` movement. For a store shared by several nodes, whose
-- credits the configs no longer set once an account is opened; a store without it raises.
---@param name string
---@param micros integer
---@return table|nil account its figures, as account() gives them
---@return kling.Error|nil err kind `validation` (unknown account, past what a store holds exactly) or `server`
function Ledger:set_credit(name, micros)
  if not self.store.set_credit then
    errors.misuse("ledger", "set_credit needs a store shared by several nodes (kling.money.stores.redis)")
  end
  -- A credit of EXACT_MAX or more passes the cap by itself; the store checks the limit (the
  -- credit plus the top-ups) in the step that sets it, as a top-up's.
  local s, err = false, nil
  if not (type(micros) == "number" and micros >= EXACT_MAX) then
    s, err = self.store:set_credit(name, micros, EXACT_MAX)
  end
  if s == false then
    return nil, validation("credit", "the account's credit and top-ups would pass " .. core.money_format(EXACT_MAX)
      .. ", the most every store holds exactly")
  end
  return s, err
end

--- Adds credit to an account (micro-units), recorded before it counts. With `id` (the
-- operator's own name for this top-up: an invoice, a payment) it is added once: the same id
-- again, with the same amount, adds nothing and says so (a retry after a lost answer must not
-- credit twice); with another amount it is refused naming id.
---@param name string
---@param micros integer
---@param id? string
---@return table|nil account its figures, as account() gives them
---@return kling.Error|boolean|nil err, or true when `id` was applied before (nothing added)
function Ledger:topup(name, micros, id)
  -- Printable ASCII only: an id is matched byte for byte, and two spellings of one accented
  -- letter (composed, decomposed), or one with an invisible character, would be two top-ups.
  if id ~= nil and not (type(id) == "string" and #id <= M.TOPUP_ID_MAX and id:find("^[!-~]+$")) then
    -- shown byte for byte: an invisible character quoted as itself would show nothing wrong
    local shown = type(id) == "string" and ("\"" .. id:sub(1, 64):gsub("[^!-~]", function(c)
      return string.format("\\x%02X", c:byte())
    end) .. "\"" .. (#id > 64 and ("... (" .. #id .. " bytes)") or "")) or validate.got(id)
    return nil, validation("id", "id: must be 1 to " .. M.TOPUP_ID_MAX .. " printable ASCII characters without"
      .. " spaces (got " .. shown .. ")")
  end
  -- Past EXACT_MAX the gateway's stores (doubles in ngx.shared and Redis's Lua) lose micro-units,
  -- and on LuaJIT every later summary of the account would raise. Each store checks the cap in
  -- the same step that adds the credit (false: refused), so two top-ups racing on several
  -- workers or nodes cannot both pass it.
  -- A top-up of EXACT_MAX or more passes it by itself (each store would call it no amount).
  local s, err = false, nil
  if not (type(micros) == "number" and micros >= EXACT_MAX) then
    s, err = self.store:topup(name, micros, EXACT_MAX, id)
  end
  if s == false then
    return nil, validation("amount", "the account's credit would pass " .. core.money_format(EXACT_MAX)
      .. ", the most every store holds exactly")
  end
  return s, err
end

--- The account holding a task key's reservation, and its micro-units (or nil; and a message
-- when the store could not say: Redis away).
---@param task_key string
---@return string|nil account
---@return integer|nil micros
---@return string|nil err
function Ledger:hold(task_key)
  return self.store:hold(key_of(task_key))
end

--- Every budget's figures as decimal strings.
-- summary() -> the first budget's figures (currency, limit, spent, reserved, balance as
-- decimal strings), in_flight, entries, budgets = one such table per currency, rates.
---@return table summary `currency`, `limit`, `spent`, `reserved`, `balance`, `in_flight`, `entries`, `budgets`, `rates`
function Ledger:summary()
  local budgets = {}
  for i, c in ipairs(self.order) do
    local a = account(self, c)
    budgets[i] = { currency = a.currency, limit = a.limit, spent = a.spent, reserved = a.reserved, balance = a.balance }
  end
  local first = budgets[1] or {}
  return {
    currency = first.currency, limit = first.limit, spent = first.spent, reserved = first.reserved,
    balance = first.balance, in_flight = self.store:open_holds(), entries = self.store:entries_count(),
    budgets = budgets, rates = self.rates,
  }
end

--- Every movement, oldest first.
-- Every movement so far, oldest first (a new list; the entries themselves are shared). Only
-- stores that keep them in the process (memory, file) have them.
---@return table[]
function Ledger:entries()
  return self.store:entries()
end

--- One entry as a JSON line.
-- One entry as a JSON line. Amounts travel as decimal strings: JSON numbers pass through
-- doubles (and cjson prints 14 digits), exact only for small amounts.
---@param _ kling.Ledger|nil the ledger (unused: ledger:line(e) or Ledger.line(nil, e))
---@param e table an entry
---@return string
function Ledger.line(_, e)
  return memory.line(e)
end

--- The entries as JSON lines.
-- JSON lines of the entries from sequence number `from` (default 1) on.
---@param from? integer first sequence number (1)
---@return string[]
function Ledger:lines(from)
  local out = {}
  for _, e in ipairs(self:entries()) do
    if e.seq >= (from or 1) then
      out[#out + 1] = memory.line(e)
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
  -- A line from an accounts ledger (the gateway's) replays into its account where this ledger
  -- has it, else into the budget of its currency.
  local acct = type(e.account) == "string" and self.store:account(e.account) and e.account or e.currency
  if type(acct) ~= "string" or currency_of(self, acct) ~= e.currency then
    return nil, validation("line.currency", "entry in " .. tostring(e.currency) .. ", the ledger has budgets in "
      .. table.concat(self:currencies(), ", "))
  end
  local m, err = core.money_parse(e.amount)
  if not m then
    return nil, validation("line.amount", err)
  end
  local info = { task_id = task_id_of(e), account = acct, enforce = false,
    time_ms = type(e.time_ms) == "number" and e.time_ms or nil,
    extra = type(e.from_currency) == "string"
      and { from_amount = e.from_amount, from_currency = e.from_currency, rate = e.rate } or nil }
  local out, code, detail
  if e.op == "reserve" then
    out, code, detail = self.store:reserve(acct, e.task_key, m, info)
  elseif e.op == "settle" then
    out, code, detail = self.store:settle(e.task_key, m, info)
  elseif e.op == "release" then
    out, code, detail = self.store:release(e.task_key, info)
  else
    return nil, validation("line.op", "unknown op '" .. tostring(e.op) .. "'")
  end
  if not out then
    return nil, refusal(self, code, detail, e.task_key, acct, m)
  end
  return out
end

-- field: the budget's name in the errors (budgets[2], budget.budgets[2]).
local function budget_of(b, field)
  for k in pairs(type(b) == "table" and b or NOTHING) do
    if not BUDGET_FIELDS[k] then
      return nil, validation(field .. "." .. tostring(k), validate.unknown_name(tostring(k), BUDGET_FIELDS, "field"))
    end
  end
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
  local problem = prices.currency_problem(b.currency)
  if problem then
    return nil, validation(field .. ".currency", problem)
  end
  return { currency = b.currency, limit = b.limit }
end

--- Why `rate` cannot convert `cur` into `currency` (the rates' own), or nil: the one rule of
-- a rate, for the ledger's rates and a rates file alike. A rate is a positive decimal string
-- (at most 6 decimals, as every amount) of units of `currency` per unit of another currency.
---@param cur any the currency converted
---@param rate any its rate
---@param currency string the rates' own currency
---@return string|nil problem
function M.rate_problem(cur, rate, currency)
  if type(cur) ~= "string" or cur == "" then
    return "a rate is named by its currency"
  end
  if cur == currency then
    return cur .. " is the rates' own currency: a rate converts another currency into it"
  end
  local m, why
  if type(rate) == "string" then
    m, why = core.money_parse(rate)
  end
  if not m or m <= 0 then
    -- money_parse's reason without its own echo of the value (cut short: "'99...'... (44 bytes): ")
    why = why and why:gsub("^'.-'[^:]*: ", "") or (m and "not positive") or ("a " .. type(rate))
    if why == "amount out of range" and math.maxinteger then -- the range named (LuaJIT's C says its own)
      why = why .. ": at most " .. core.money_format(math.maxinteger) .. ", as every amount"
    end
    return "a positive decimal string with at most 6 decimals is required, such as \"0.14\" (got "
      .. (type(rate) == "string" and ("\"" .. validate.brief(rate, 40) .. "\"") or tostring(rate)) .. ": " .. why
      .. ")"
  end
  return nil
end

local RATES_FIELDS = { "currency", "rates" }

--- Why a rates table ({currency = "CNY", rates = {USD = "7.1"}}, a rates file's JSON object)
-- is not one, or nil: the path of the field under it ("" for the whole) and the rule. A field
-- it does not know is named with the closest known one ("rate: is not a field of the rates;
-- did you mean rates?"); a missing one, and a wrong type, by name. The one check of the
-- ledger's `rates` and of `kling run --rates FILE`; the rates themselves are rate_problem's.
---@param r any
---@return string|nil field "currency", "rates", the unknown key, or "" for r itself
---@return string|nil problem
function M.rates_problem(r)
  if type(r) ~= "table" or r[1] ~= nil or json.is_array(r) then
    return "", "got " .. validate.type_of(r)
  end
  local unknown = {}
  for k in pairs(r) do
    if k ~= "currency" and k ~= "rates" then
      unknown[#unknown + 1] = tostring(k)
    end
  end
  table.sort(unknown)
  if unknown[1] then
    local near = validate.closest(unknown[1], RATES_FIELDS)
    return unknown[1], "is not a field of the rates" .. (near and ("; did you mean " .. near .. "?") or "")
      .. " (known: currency, rates)"
  end
  if r.currency == nil then
    return "currency", "is required: the currency the rates count in, a budget's (such as CNY)"
  elseif type(r.currency) ~= "string" or r.currency == "" then
    return "currency", "must be a currency's name (such as CNY), got " .. validate.type_of(r.currency)
  elseif r.rates == nil then
    return "rates", "is required: each other currency's rate, in units of " .. r.currency .. " (such as USD: \"7.1\")"
  elseif type(r.rates) ~= "table" or r.rates[1] ~= nil then
    return "rates", "must be an object of each other currency's rate (such as USD: \"7.1\"), got "
      .. validate.type_of(r.rates)
  elseif next(r.rates) == nil then
    -- {} converts nothing: with it a run said "other currencies counted in CNY" and counted none
    return "rates", "is empty, so it converts nothing: give each other currency's rate in units of " .. r.currency
      .. " (such as USD: \"7.1\"), or leave the rates out"
  end
  return nil
end

-- rates {currency = "CNY", rates = {USD = "7.1", ["evolink-credits"] = "0.1"}}: units of
-- `currency` per unit of each other currency (decimal strings, at most 6 decimals).
local function rates_of(r, budgets, field)
  if r == nil then
    return nil
  end
  local at, why = M.rates_problem(r)
  if at == "" then
    return nil, validation(field, "{currency = \"CNY\", rates = {USD = \"7.1\", ...}} is required (" .. why .. ")")
  elseif at then
    return nil, validation(field .. "." .. at, why)
  end
  if not budgets[r.currency] then
    return nil, validation(field .. ".currency", "rates count in " .. r.currency .. ", which has no budget")
  end
  local out = {}
  for cur, rate in pairs(r.rates) do
    local problem = M.rate_problem(cur, rate, r.currency)
    if problem then
      return nil, validation(field .. ".rates." .. tostring(cur), problem)
    end
    out[cur] = rate
  end
  return { currency = r.currency, rates = out }
end

-- The budgets of opts: {limit, currency} or budgets = {{limit, currency}, ...}; none with a
-- store whose accounts are opened by name (the gateway's). -> list | nil, err
-- `named` names an option in the errors (budgets -> budget.budgets for kling.new's budget).
local function budgets_of(opts, named)
  if opts.budgets == nil and opts.limit == nil and opts.currency == nil and opts.store then
    return {}
  end
  local list, field = opts.budgets, named("budgets")
  if list == nil then
    -- A single budget's fields are budget.limit, budget.currency under either name.
    list, field = { { limit = opts.limit, currency = opts.currency } }, nil
  elseif type(list) ~= "table" or #list == 0 then
    return nil, validation(field, "a list of {limit, currency} is required")
  end
  local out, seen = {}, {}
  for i, b in ipairs(list) do
    local where = field and (field .. "[" .. i .. "]") or "budget"
    local a, err = budget_of(b, where)
    if not a then
      return nil, err
    end
    if seen[a.currency] then
      return nil, validation(where .. ".currency", "a second budget in " .. a.currency)
    end
    seen[a.currency] = true
    out[#out + 1] = a
  end
  return out
end

--- Makes a ledger with one hard-cap budget per currency (`kling.ledger`).
-- new{limit = "50.00", currency = "CNY" | budgets = {{limit =, currency =}, ...}
-- [, rates = {currency =, rates = {}}] [, clock = fn -> ms] [, on_entry = fn(entry, line)]
-- [, lines = {JSON lines to replay}] [, store = a kling.money.stores.* store]} -> ledger |
-- nil, err. Limits are decimal strings; each currency is its own money ("apiinone-credits"
-- and "evolink-credits" differ). rates = {currency = "CNY", rates = {USD = "7.1"}}: units of
-- `currency` (one of the budgets) per unit of each other currency, so that a quote in USD
-- counts against the CNY budget. Without a budget in its unit (or a rate) a quote is refused:
-- kind "budget", code "no_budget". The store defaults to memory; a store given without
-- budgets (the gateway's) has its accounts opened by name (open_account). `name`: what the
-- caller calls opts, which the errors' fields are named under (kling.new: "budget", so that a
-- misspelt key is budget.limt, a list's budget.budgets[2].limt); without it, budgets[2].limt.
---@param opts table `limit` and `currency`, or `budgets`; `rates`, `clock`, `on_entry`, `lines`, `store` (above)
---@param name? string
---@return kling.Ledger|nil ledger
---@return kling.Error|nil err
function M.new(opts, name)
  if type(opts) ~= "table" then
    errors.misuse("billing.ledger", "options table expected")
  end
  local function named(field)
    return name and (name .. "." .. field) or field
  end
  for k in pairs(opts) do
    if not M.OPTIONS[k] then
      return nil, validation(named(tostring(k)), validate.unknown_name(tostring(k), M.OPTIONS, "field"))
    end
  end
  local list, err = budgets_of(opts, named)
  if not list then
    return nil, err
  end
  local store = opts.store or memory.new { clock = opts.clock }
  local budgets, order = {}, {}
  for _, b in ipairs(list) do
    local ok, oerr = store:open_account(b.currency, b.limit, b.currency)
    if not ok then
      return nil, oerr
    end
    budgets[b.currency], order[#order + 1] = true, b.currency
  end
  local rates, rerr = rates_of(opts.rates, budgets, named("rates"))
  if rerr then
    return nil, rerr
  end
  local self = setmetatable({ currency = order[1], budgets = budgets, order = order, rates = rates, store = store },
    Ledger)
  for i, line in ipairs(opts.lines or {}) do
    local ok, lerr = self:replay(line)
    if not ok then
      lerr.field = named("lines[" .. i .. "]") .. (lerr.field and ("." .. lerr.field) or "")
      return nil, lerr
    end
  end
  -- Set after the replay: restored entries are already persisted.
  if opts.on_entry then
    store.on_entry = opts.on_entry
  end
  if store.opened then
    store:opened()
  end
  return self
end

return M
