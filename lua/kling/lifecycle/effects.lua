--- The one place where a runner carries out a lifecycle machine's money and credential
-- actions (reserve, settle, release, renew_token). Every runner calls these, so the ledger is
-- reached through one file: the money package's functions (kling.money.hold) are called
-- here and nowhere else in the runners. A client's actions go to its budget; the gateway's
-- (the OpenResty runner, kling.gateway.track) to its Ledger of accounts, `G.meter` (the
-- `meter_*` functions below).
-- @module kling.lifecycle.effects
local billing = require "kling.billing"
local budget = require "kling.money.hold"

local M = {}

--- Carries out a `reserve` action for a client's ledger.
-- Returns what the machine's reserved() takes: the quote (or true without a budget), or nil
-- and the refusal (kind `budget`, `unpriced` or `validation`).
---@param client kling.Client
---@param act table {type = "reserve", key, request}
---@return table|boolean|nil quote
---@return kling.Error|nil err
function M.reserve(client, act)
  return budget.reserve(client, act.key, act.request)
end

--- Carries out a `settle` or `release` action: the task's reservation is settled to the price
-- of what it delivered (never to nothing: an unpriceable delivery charges the reservation),
-- or released. Returns the ledger entry, or nil and an error (also kept on the task as
-- `billing_error`).
---@param client kling.Client
---@param act table {type = "settle" | "release", key, task}
function M.account(client, act)
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

--- Carries out one money or credential action; true when `act` was one of them.
-- reserve is not among them: its answer goes back to the machine (M.reserve).
function M.apply(client, act, now)
  local ty = act.type
  if ty == "settle" or ty == "release" then
    M.account(client, act)
    return true
  elseif ty == "renew_token" then
    M.renew_token(client.ctx, now)
    return true
  end
  return false
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

--- The charge a `settle` or `release` action comes to on the meter: the price of what the
-- task delivered (`request`: the facts the catalog prices, `usage`: kling.money.usage), or,
-- when the catalog cannot price the delivery, what is held: never nothing. A release is 0.
-- -> micros, billing_error (a message, when the delivery could not be priced)
---@param meter table
---@param act table {type = "settle" | "release", key}
---@param request table
---@param usage? table
function M.meter_charge(meter, act, request, usage)
  if act.type ~= "settle" then
    return 0
  end
  local q, err = billing.settle(request, usage or { count = 1 })
  if q then
    return q.micros
  end
  local _, held = meter:hold(act.key)
  return held or 0, tostring(err)
end

--- Carries out a `settle` (to `micros`) or `release` action on the meter.
-- -> entry | nil, err (err.field == "store": the store cannot be reached now; try again)
---@param meter table
---@param act table {type = "settle" | "release", key}
---@param micros? integer the charge (meter_charge), for a settle
---@param info? table {task_id}
function M.meter_account(meter, act, micros, info)
  if act.type == "settle" then
    return meter:settle(act.key, micros, info)
  end
  return meter:release(act.key, info)
end

return M
