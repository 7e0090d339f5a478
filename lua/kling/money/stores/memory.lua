--- The ledger's store in the process: accounts, holds and charges in Lua tables.
-- A store holds the balances and carries out each movement (kling.money.ledger decides
-- which). Every store has the same methods:
--   open_account(name, limit [, currency]) -> figures | nil, err   (limit: a decimal string)
--   account(name) -> {name, currency, limit, spent, reserved, balance (decimal strings),
--                     and the same in *_micros; open: its holds} | nil
--   reserve(account, key, micros, info) -> entry | nil, code, detail
--   settle(key, micros, info)           -> entry | nil, code, detail  (info.account: no hold;
--                                          info.at_most_held: never more than the hold, charge_of)
--   release(key, info)                  -> entry | nil, code, detail
--   currency(name) -> the account's currency | nil
--   hold(key) -> account, micros | nil;  charge(key) -> account, micros | nil
--   open_holds(), entries_count(), entries(), topup(name, micros, cap [, id]) (id: added once)
-- A store shared by several nodes (kling.money.stores.redis) opens an account once: open_account
-- answers an opened one with its figures and its own credit, and set_credit(name, micros, cap)
-- changes that credit.
-- info: task_id, extra (fields added to the entry), open_max (reserve: the most holds its
-- account may have open at once), and when replaying history time_ms and enforce = false (no
-- limit check). Refusal codes: over (detail: what is available), busy (open_max holds are
-- open: detail, how many), unknown_account, exists, ended (detail: settled|released),
-- no_hold, range (detail: the field), journal and store (detail: the message).
-- @module kling.money.stores.memory
local core = require "kling.core"
local errors = require "kling.errors"
local json = require "kling.json"

local M = {}

-- The charge of a settle that may not pass its hold (info.at_most_held: the gateway's, whose
-- clients' balances are a hard cap): the price of what was delivered, at most what was held
-- for what was asked, and the hold itself when the delivery could not be priced (price nil:
-- never nothing); without a hold (a charge made at once) the price. -> micros, capped (true
-- when the price passed the hold). The one statement of the rule: every store applies it in
-- its own settle, in the step that ends the hold (the Redis store's script runs this text).
local CHARGE_RULE = [[
local function charge_of(price, held)
  if held == nil then return price or 0, false end
  if price == nil or price > held then return held, price ~= nil end
  return price, false
end
]]
M.CHARGE_RULE = CHARGE_RULE
M.charge_of = assert(load(CHARGE_RULE .. "return charge_of", "=charge_of"))()

local Store = {}
Store.__index = Store
Store.__name = "kling.money.stores.memory"
M.Store = Store

-- The fields of an entry that its line keeps (the file store writes the same ones); by: who
-- decided a movement by hand (kling.money.ledger).
M.LINE_FIELDS = { "seq", "time_ms", "op", "task_key", "task_id", "amount", "currency", "reserved_amount",
  "from_amount", "from_currency", "rate", "account", "by" }

--- One entry as a JSON line (amounts as decimal strings; the account where it is not the
-- currency's budget: the gateway's).
---@param e table an entry
---@return string
function M.line(e)
  local t = {}
  for _, k in ipairs(M.LINE_FIELDS) do
    t[k] = e[k]
  end
  return json.encode(t)
end

--- A store in memory.
-- new{clock = fn -> ms, on_entry = fn(entry, line), currency = the currency of accounts
-- opened without one (an accounts ledger's)} -> store
---@param opts? table
---@return table store
function M.new(opts)
  opts = opts or {}
  return setmetatable({
    accounts = {}, holds = {}, charges = {}, task_ids = {}, in_flight = 0, seq = 0, log = {},
    clock = opts.clock or core.wall_ms or function()
      return os.time() * 1000
    end,
    on_entry = opts.on_entry, currency = opts.currency,
  }, Store)
end

local function figures(a)
  local fmt = core.money_format
  local balance = core.money_sub(core.money_sub(a.limit, a.spent), a.reserved)
  return { name = a.name, currency = a.currency, limit = fmt(a.limit), spent = fmt(a.spent),
    reserved = fmt(a.reserved), balance = fmt(balance), limit_micros = a.limit, spent_micros = a.spent,
    reserved_micros = a.reserved, balance_micros = balance, open = a.open }
end

function Store:open_account(name, limit, currency)
  local m, err = core.money_parse(tostring(limit))
  if not m or m < 0 then
    return nil, errors.new { kind = "validation", field = "accounts." .. tostring(name) .. ".limit",
      message = err or "must not be negative" }
  end
  local a = self.accounts[name]
  if not a then
    a = { name = name, currency = currency or self.currency, spent = 0, reserved = 0, open = 0 }
    self.accounts[name] = a
  end
  a.limit = m
  return figures(a)
end

function Store:account(name)
  local a = self.accounts[name]
  return a and figures(a)
end

function Store:currency(name)
  local a = self.accounts[name]
  return a and a.currency
end

-- topup(name, micros, cap [, id]) -> figures [, true: id was applied before, nothing added] |
-- false (the limit would pass cap) | nil, err (id applied before with another amount)
function Store:topup(name, micros, cap, id)
  local a = self.accounts[name]
  if not a then
    return nil, errors.new { kind = "validation", field = "account", message = "unknown account '" .. tostring(name)
      .. "'" }
  end
  local before = id and a.topup_ids and a.topup_ids[id]
  if before then
    if before ~= micros then
      return nil, M.topup_id_clash(name, id, before)
    end
    return figures(a), true
  end
  if cap and micros > cap - a.limit then -- a difference of two exact amounts stays exact
    return false
  end
  a.limit = core.money_add(a.limit, micros)
  if id then
    a.topup_ids = a.topup_ids or {}
    a.topup_ids[id] = micros
  end
  return figures(a)
end

--- The refusal of a top-up whose id an earlier one of another amount had (every store's; code
-- "id_used").
---@param account string
---@param id string
---@param micros integer the earlier top-up's amount
---@return kling.Error
function M.topup_id_clash(account, id, micros)
  return errors.new { kind = "validation", field = "id", code = "id_used", message = "id: top-up " .. id
    .. " of account " .. account .. " was applied with amount " .. core.money_format(micros)
    .. " (an id names one top-up: nothing added)" }
end

--- name_problem(name) -> nil | the refusal (field account) of a name the gateway's stores cannot
-- key an account by: letters, digits, '.', '_' and '-' only. Their keys join a name to what follows
-- by ':' (the one-node store's a:<name>:<counter>, both stores' tu:<account>:<id>): account "a:b"'s
-- top-up "c" was account "a"'s top-up "b:c" (answered as applied before, nothing added). Both
-- stores' open_account ask it; an account never opened is refused by every other movement.
---@param name any
---@return kling.Error|nil
function M.name_problem(name)
  if type(name) ~= "string" or not name:match("^[%w._-]+$") then
    return errors.new { kind = "validation", field = "account", message = "account: a name of letters, digits, '.',"
      .. " '_' and '-' is required (the stores' keys join it to what follows by ':'; got "
      .. (type(name) == "string" and string.format("%q", name) or type(name)) .. ")" }
  end
  return nil
end

--- The gateway's stores' rule for an account's name: one account's in any case (the config, the
-- admin API and a sign-in take names so) -> the name an account is kept by, folded: the one-node
-- store's key of it, the Redis store's field of <p>names (whose OPEN script folds by Redis's
-- string.lower, the same function). nil: no clash; else the refusal (code "name_kept") of
-- opening `name` where the store keeps `kept`, another spelling of it: every store's, so that
-- Dave beside dave is refused alike on one node and on several (opened, they were two balances:
-- a case-only rename in a config file gave the account its credit afresh).
---@param name string
---@return string folded
function M.name_fold(name)
  return name:lower()
end

---@param name string
---@param kept string|nil the name the store keeps the folded name by
---@return kling.Error|nil
function M.name_kept(name, kept)
  if kept == nil or kept == name then
    return nil
  end
  return errors.new { kind = "validation", field = "account", code = "name_kept", kept = kept, message = "account "
    .. name .. " is not opened: the store keeps account " .. kept .. " (names are one account's in any case, and"
    .. " balances and tasks are kept by name): name it " .. kept .. ", or choose another name" }
end

--- Appends one entry to the log and hands it to on_entry (internal).
-- @local
function Store:record(op, key, micros, a, info, reserved_amount)
  self.seq = self.seq + 1
  local e = {
    seq = self.seq, time_ms = info.time_ms or self.clock(), op = op, task_key = key, task_id = self.task_ids[key],
    amount = core.money_format(micros), micros = micros, currency = a.currency,
    account = a.name ~= a.currency and a.name or nil, reserved_amount = reserved_amount, by = info.by,
  }
  if info.extra then
    for k, v in pairs(info.extra) do
      e[k] = v
    end
  end
  self.log[#self.log + 1] = e
  self:persist(e)
  return e
end

-- Where a movement goes once made: on_entry (the file store writes it to disk instead).
function Store:persist(e)
  if self.on_entry then
    self.on_entry(e, M.line(e))
  end
end

local function note(self, key, info)
  if info.task_id then
    self.task_ids[key] = info.task_id
  end
end

function Store:reserve(account, key, m, info)
  local a = self.accounts[account]
  if not a then
    return nil, "unknown_account"
  end
  if self.holds[key] or self.charges[key] then
    return nil, "exists"
  end
  local committed = core.money_add(a.spent, a.reserved)
  if not committed then
    return nil, "range", "budget"
  end
  local after = core.money_add(committed, m)
  if not after then
    return nil, "range", "quote"
  end
  if info.enforce ~= false and after > a.limit then
    return nil, "over", core.money_sub(a.limit, committed)
  end
  if info.open_max and a.open >= info.open_max then
    return nil, "busy", a.open
  end
  note(self, key, info)
  self.holds[key] = { micros = m, account = account }
  self.in_flight = self.in_flight + 1
  a.open = a.open + 1
  a.reserved = core.money_add(a.reserved, m) -- fits: spent + reserved + m did
  return self:record("reserve", key, m, a, info)
end

function Store:settle(key, m, info)
  if self.charges[key] then
    return nil, "ended", "settled"
  end
  local held = self.holds[key]
  local a = self.accounts[held and held.account or info.account]
  if not a then
    return nil, "unknown_account"
  end
  local price, capped = m, false
  if info.at_most_held then
    m, capped = M.charge_of(m, held and held.micros)
  end
  local spent = core.money_add(a.spent, m)
  if not spent then
    return nil, "range", "actual"
  end
  note(self, key, info)
  if held then
    self.holds[key] = nil
    self.in_flight = self.in_flight - 1
    a.open = a.open - 1
    a.reserved = core.money_sub(a.reserved, held.micros) -- held <= reserved
  end
  a.spent = spent
  self.charges[key] = { micros = m, account = a.name }
  local e = self:record("settle", key, m, a, info, core.money_format(held and held.micros or 0))
  e.priced = capped and price or nil -- the price past the hold (the caller says why it was not charged)
  return e
end

function Store:release(key, info)
  local held = self.holds[key]
  if held == nil then
    return nil, "no_hold"
  end
  note(self, key, info)
  local a = self.accounts[held.account]
  self.holds[key] = nil
  self.in_flight = self.in_flight - 1
  a.open = a.open - 1
  a.reserved = core.money_sub(a.reserved, held.micros)
  return self:record("release", key, held.micros, a, info)
end

function Store:hold(key)
  local h = self.holds[key]
  if h then
    return h.account, h.micros
  end
  return nil
end

function Store:charge(key)
  local c = self.charges[key]
  if c then
    return c.account, c.micros
  end
  return nil
end

function Store:open_holds()
  return self.in_flight
end

function Store:entries_count()
  return #self.log
end

function Store:entries()
  local out = {}
  for i, e in ipairs(self.log) do
    out[i] = e
  end
  return out
end

return M
