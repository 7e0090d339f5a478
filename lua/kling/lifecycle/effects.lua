--- The one place where a runner carries out a lifecycle machine's money and credential
-- actions (reserve, settle, release, renew_token). The blocking runner and the engine hand
-- every such action to M.apply unopened, so the ledger is reached through one file: the
-- money package's functions (kling.money.hold) are called here and nowhere else. A client's
-- actions go to its budget; the gateway's (the OpenResty runner's action mapper,
-- kling.gateway.track, the one file outside lifecycle/ and money/ that names a movement) to
-- its Ledger of accounts, `G.meter` (the `meter_*` functions below).
-- @module kling.lifecycle.effects
local core = require "kling.core"
local billing = require "kling.billing"
local budget = require "kling.money.hold"

local M = {}

-- A `reserve` action: the request's estimate held under the action's key (once: the key is
-- the runner's own, and a hold it has from a run before this one is the task's). Returns what
-- the machine's reserved() takes: the quote (or true without a budget), or nil and the
-- refusal (kind `budget`, `unpriced` or `validation`).
local function reserve(client, act)
  return budget.reserve(client, act.key, act.request, act.once)
end

-- A `settle` or `release` action: the task's hold settled to the price of what it delivered
-- (never to nothing: an unpriceable delivery charges the reservation), or released; at most
-- once by key. Returns the ledger entry, or nil and an error (also kept on the task as
-- `billing_error`).
local function account(client, act)
  local t = act.task
  if not client.ledger or t.accounted then
    return nil
  end
  t.ledger_key = t.ledger_key or act.key
  return budget.account(client, t) -- settles a success, releases anything else
end

-- Tokens are renewed at most once a second for a client, however many of its requests saw
-- the same expiry at once (each of them is still sent again once).
local RENEW_EVERY_MS = 1000

--- Carries out a `renew_token` action: the client's token is signed afresh for the next send.
---@param ctx table the client's call context (its `auth`)
---@param now integer monotonic ms
function M.renew_token(ctx, now)
  if not ctx.auth then
    return
  end
  local last = ctx.renewed_ms
  if last == nil or now - last > RENEW_EVERY_MS then
    ctx.auth:invalidate()
    ctx.renewed_ms = now
  end
end

-- The actions carried out here: runners hand them over unopened, and decide nothing of them.
M.TYPES = { reserve = true, settle = true, release = true, renew_token = true }
local NONE = {}

--- Carries out one of a client's machine's money or credential actions (M.TYPES): the only
-- way a runner (the blocking one, the engine) reaches a ledger. Returns the actions that
-- follow from it (a reserve's answer fed to `m`, the machine that asked), else an empty list.
---@param client kling.Client
---@param act table the action
---@param now integer monotonic ms
---@param m? table the machine the action came from (needed for a reserve)
---@return table[] acts
function M.apply(client, act, now, m)
  local ty = act.type
  if ty == "reserve" then
    return m:reserved(now, reserve(client, act))
  elseif ty == "settle" or ty == "release" then
    account(client, act)
  elseif ty == "renew_token" then
    M.renew_token(client.ctx, now)
  end
  return NONE
end

-- ---- a Ledger of accounts: the gateway's meter ---------------------------------------------
-- The gateway reserves in its create handler and ends tasks in the OpenResty runner; every
-- movement of its meter goes through these functions (the money boundary spec holds every
-- file outside lua/kling/money/ and lua/kling/lifecycle/ to that).

--- Holds `micros` under `key` for `info.account` before anything is forwarded.
-- -> entry | nil, err (kind `budget` when the account's balance cannot hold it)
---@param meter table a kling.money.ledger with accounts
---@param key string the task's key (the gateway's task id)
---@param micros integer
---@param info table {task_id, account, record}
function M.meter_reserve(meter, key, micros, info)
  return meter:reserve(key, micros, info)
end

--- The same hold, made in the store's round trip that writes the task's record (the Redis
-- store: the record and its hold in one script per create). -> call, read(result) -> entry |
-- nil, err (kling.money.ledger reserve_call; err.key_index: which of the record's keys existed)
---@param meter table
---@param key string
---@param micros integer
---@param info table {task_id, account}
---@param writes table the record's writes ({set =, add =, push =}: the store's reserve_call)
function M.meter_reserve_call(meter, key, micros, info, writes)
  return meter:reserve_call(key, micros, info, writes)
end

--- The price a `settle` action asks of the meter: what the task delivered (`request`: the
-- facts the catalog prices, `usage`: kling.money.usage), or nil and why (billing_error) when
-- the catalog cannot price the delivery: the store then charges the hold, never nothing. The
-- store caps it at the hold in the step that ends the hold (meter_account; kling.money.stores
-- .memory charge_of states the rule): the hold is the estimate of what was asked (or the
-- endpoint's longest, where the provider bills media by its real length), and an answer that
-- says more was delivered (a 10 s video for a 5 s request, 9 images for n = 1) would take the
-- account past its balance, a hard cap. A release is 0.
-- -> micros | nil, billing_error
---@param act table {type = "settle" | "release", key}
---@param request table
---@param usage? table
function M.meter_price(act, request, usage)
  if act.type ~= "settle" then
    return 0
  end
  local q, err = billing.settle(request, usage or { count = 1 })
  if not q then
    return nil, tostring(err)
  end
  return q.micros
end

--- What a settle at `price` comes to against `held` (charge_of, the stores' one rule), and the
-- billing_error that says why, when it is not the price: the record's own account of its
-- end, made from the hold recorded with it (its `quote`) before its money moves. The store's
-- settle decides the money (its entry: meter_account); a record that disagrees is amended.
-- -> micros, billing_error | nil
---@param price integer|nil meter_price's (nil: unpriced)
---@param held integer|nil the hold (nil: none known)
---@param why? string meter_price's billing_error
function M.meter_charge(price, held, why)
  local m, capped = budget.charge_of(price, held)
  if capped then
    return m, "the delivery priced " .. core.money_format(price) .. ", more than the " .. core.money_format(held)
      .. " held for what was asked: charged what was held"
  end
  return m, price == nil and why or nil
end

--- Carries out a `settle` (at the price `micros`, never more than the hold: nil charges the
-- hold) or `release` action on the meter.
-- -> entry (its micros: the charge; `priced`: a price past the hold, not charged) | nil, err
-- (err.field == "store": the store cannot be reached now; try again)
---@param meter table
---@param act table {type = "settle" | "release", key}
---@param micros? integer the price (meter_price), for a settle
---@param info? table {task_id, by}
function M.meter_account(meter, act, micros, info)
  if act.type == "settle" then
    return meter:settle(act.key, micros, { task_id = info and info.task_id, by = info and info.by,
      at_most_held = true })
  end
  return meter:release(act.key, info)
end

return M
