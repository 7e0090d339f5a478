-- A client's budget: reserve the estimate before a create is sent, settle to the actual charge
-- (priced from what the task delivered) when it succeeds, release when it fails. The ledger
-- (kling.billing) keeps the cap hard however many tasks are in flight.
local billing = require "kling.billing"
local core = require "kling.core"
local errors = require "kling.errors"

local M = {}

-- opts.budget: {limit = "50.00", currency = "CNY"} or a ledger shared by several clients.
-- Returns the ledger, nil when there is no budget, or nil and an error.
function M.open(budget)
  if budget == nil then
    return nil
  end
  if getmetatable(budget) == billing.Ledger then
    return budget
  end
  if type(budget) ~= "table" then
    return nil, errors.validation("budget", "must be {limit = \"50.00\", currency = \"CNY\"} or a ledger")
  end
  return billing.ledger(budget)
end

local function priced_request(client, req)
  local r = {}
  for k, v in pairs(req) do
    r[k] = v
  end
  r.provider = client.provider.name
  return r
end

-- The request's price on the client's provider, with the client's catalogs.
function M.estimate(client, req)
  return client.catalogs:estimate(priced_request(client, req))
end

-- Reserves the request's estimate under `key` (its external id). Returns the quote, true when
-- there is no budget, or nil and an error (kind "budget", "unpriced" or "validation"); nothing
-- is sent in that case. An unpriced request cannot be held to a cap, so it is refused.
function M.reserve(client, key, req)
  local ledger = client.ledger
  if not ledger then
    return true
  end
  local q, err = M.estimate(client, req)
  if not q then
    err.message = (err.message or "") .. " (a budget is set: give the provider's price with client:set_catalog"
      .. " or kling.set_catalog)"
    return nil, err
  end
  local ok, rerr = ledger:reserve(key, q)
  if not ok then
    rerr.provider = rerr.provider or client.provider.name
    return nil, rerr
  end
  return q
end

-- What a finished task delivered, in the terms billing.settle prices: seconds of video or
-- audio (as decimal text, to the millisecond) and the number of outputs.
function M.usage(t)
  local provider = t.client and t.client.provider
  local own = provider and provider.usage and provider.usage(t)
  if own then
    return own
  end
  local outputs = t.videos or t.audios or t.images
  if type(outputs) ~= "table" or #outputs == 0 then
    return { count = 1 }
  end
  local ms = 0
  local timed = false
  for _, o in ipairs(outputs) do
    local d = tonumber(o.duration)
    if d then
      ms = ms + math.floor(d * 1000 + 0.5)
      timed = true
    end
  end
  return { count = #outputs, duration = timed and core.seconds_format(ms) or nil }
end

-- Called once when a task with a reservation ends: settles or releases. Returns the ledger
-- entry, or nil and an error (which is also kept on the task as `billing_error`).
function M.account(client, t)
  local ledger = client.ledger
  if not ledger or not t.ledger_key or t.accounted then
    return nil
  end
  t.accounted = true
  local info = { task_id = t.id }
  if t.status ~= "succeeded" then
    return ledger:release(t.ledger_key, info)
  end
  local q, err = client.catalogs:settle(priced_request(client, t.request or {}), M.usage(t))
  if not q then
    -- The price of what was delivered is unknown: charge the reservation, never nothing.
    t.billing_error = err
    return ledger:settle(t.ledger_key, ledger:reservation(t.ledger_key) or t.quote.micros, info)
  end
  t.charge_quote = q
  return ledger:settle(t.ledger_key, q, info)
end

return M
