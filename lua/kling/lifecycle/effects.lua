--- The one place where a runner carries out a lifecycle machine's money and credential
-- actions (reserve, settle, release, renew_token). Every runner calls these, so the ledger is
-- reached through one file: the money package's functions (kling.money.hold) are called
-- here and nowhere else in the runners.
-- @module kling.lifecycle.effects
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

return M
