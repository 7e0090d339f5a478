-- Following the gateway's tasks after their create: the poller's poll function, the
-- upstream's callbacks, and the one place a task ends (settle from what was delivered, or
-- release), plus forwarding the end to the client's own callback_url.
local billing = require "kling.billing"
local budget = require "kling.money.hold"
local core = require "kling.core"
local json = require "kling.json"
local http = require "kling.resty.http"
local callback_host = require "kling.gateway.callback_host"
local official = require "kling.gateway.official"
local owners = require "kling.gateway.owners"
local public_url = require "kling.gateway.public_url"
local metrics = require "kling.gateway.metrics"

local M = {}

local TERMINAL = { succeeded = true, failed = true, cancelled = true }
M.TERMINAL = TERMINAL
M.FORWARD_SCHEDULE_S = { 1, 2, 4 } -- retries of a client callback after the first attempt

local function now_ms()
  return core.wall_ms()
end

-- Copies what a fresh upstream answer says into the record.
local function update(rec, t)
  rec.status = t.status
  rec.message = t.message
  rec.progress = t.progress
  rec.upstream_id = rec.upstream_id or t.id
  rec.result = official.result(t) or rec.result
  rec.updated_at = now_ms()
end

-- client_secret(G, account_name) -> "whsec_..." | nil: the secret an account's forwarded
-- callbacks are signed with, derived from client_webhook_secret for that account alone (a
-- client verifying with one shared secret could sign forged task ends for every other client).
-- The client reads it in its balance.
function M.client_secret(G, account_name)
  local secret = G.cfg.client_webhook_secret
  if not secret then
    return nil
  end
  return "whsec_" .. core.b64encode(core.hmac_sha256(secret, "kling-gateway-client:" .. account_name))
end

-- Sends the official task object to the client's callback_url from a timer, retried on
-- FORWARD_SCHEDULE_S until a 2xx, signed the Standard Webhooks way with the account's own
-- secret (M.client_secret) when the gateway has a client_webhook_secret.
local forward
forward = function(premature, G, id, attempt)
  if premature then
    return
  end
  local rec = G.tasks:get(id)
  if not rec or not rec.callback_url then
    return
  end
  -- Checked at the create; checked again here in case the config changed since.
  local allowed, why = public_url.check(rec.callback_url, G.cfg.allow_private_callbacks)
  if not allowed then
    ngx.log(ngx.WARN, "kling gateway: callback of ", id, " not sent: callback_url ", why)
    return
  end
  -- A name goes where the gateway's own resolution says, checked like an address.
  local address, aerr, final = callback_host.address(G, rec.callback_url)
  if address == nil then
    ngx.log(ngx.WARN, "kling gateway: callback of ", id, " not sent: ", aerr)
    local wait = not final and M.FORWARD_SCHEDULE_S[attempt]
    if wait then
      ngx.timer.at(wait, forward, G, id, attempt + 1)
    end
    return
  end
  local body = json.encode(official.view(rec))
  local headers = { ["Content-Type"] = "application/json" }
  local secret = M.client_secret(G, rec.account)
  if secret then
    local msg_id = "msg_" .. id
    local ts = tostring(math.floor(core.wall_s()))
    headers["webhook-id"], headers["webhook-timestamp"] = msg_id, ts
    headers["webhook-signature"] = core.webhook_sign { secret = secret, id = msg_id, timestamp = ts, body = body }
  end
  -- The receiver is the client's: only its status is read, never a body it could make endless.
  local res = http.request({ method = "POST", url = rec.callback_url, address = address or nil, headers = headers,
    body = body, timeout_ms = 10000 }, { fresh = true, status_only = true })
  local delivered = res.ok and res.status >= 200 and res.status < 300
  if not delivered then
    local wait = M.FORWARD_SCHEDULE_S[attempt]
    ngx.log(ngx.WARN, "kling gateway: callback of ", id, " to its client failed (attempt ", attempt, "): ",
      res.ok and ("HTTP " .. res.status) or res.message)
    if wait then
      ngx.timer.at(wait, forward, G, id, attempt + 1)
    end
  end
end

-- Every reservation, settlement and release of the gateway is decided in this file, the one
-- file outside lua/kling/money/ that calls a ledger's reserve, settle or release (the
-- boundary spec, spec/unit/money_boundary_spec.lua, holds it to that). G.meter is the
-- gateway's Ledger (kling.money.ledger over kling.money.stores.shared or .redis), its
-- accounts the gateway's clients.

-- reserve(G, rec, micros, s) -> entry | nil, err: the estimate held before anything is
-- forwarded; s (the record as JSON) is journaled with it, one line for both.
function M.reserve(G, rec, micros, s)
  return G.meter:reserve(rec.id, micros, { task_id = rec.id, account = rec.account, record = s })
end

-- create_held(G, rec, micros, s) -> entry | nil, err, stage ("task": the record was refused,
-- err a message; "hold": the reservation was, err an error): the task recorded and its
-- estimate held, journaled on one line (or, with Redis, in one round trip), before anything
-- is forwarded.
function M.create_held(G, rec, micros, s)
  if G.tasks.create_held then
    return G.tasks:create_held(rec, s, G.meter, micros, { task_id = rec.id })
  end
  local ok, err = G.tasks:create(rec, s)
  if not ok then
    return nil, err, "task"
  end
  local e, herr = M.reserve(G, rec, micros, s)
  if not e then
    G.tasks:drop(rec, false)
    return nil, herr, "hold"
  end
  return e
end

-- unreserve(G, rec): a create that was not forwarded (or refused upstream) costs nothing.
function M.unreserve(G, rec)
  return G.meter:release(rec.id, { task_id = rec.id })
end

-- After a restart: a task ended in the journal whose money movement never made it there
-- (nginx died in between) gets it now, from the record; a hold whose task was never journaled
-- (nginx died between the reservation and the record, before anything was forwarded) is
-- released.
function M.settle_orphans(G, entries)
  local last = {}
  for _, e in ipairs(entries) do
    if (e.op == "task" or e.op == "reserve") and type(e.record) == "table" and e.record.id then
      local prev = last[e.record.id]
      if not (prev and prev.final) then
        last[e.record.id] = e.record
      end
    end
  end
  for id, rec in pairs(last) do
    if rec.final and G.meter:hold(id) then
      if rec.status == "succeeded" then
        local m = core.money_parse(tostring(rec.charge))
        if m then
          G.meter:settle(id, m, { task_id = rec.upstream_id })
        end
      elseif rec.charge == "0" then
        G.meter:release(id, { task_id = rec.upstream_id })
      end
    end
  end
  for key in pairs(G.meter.store:holds()) do
    if not last[key] or last[key].dropped then
      G.meter:release(key, { task_id = key })
    end
  end
end

-- The money movement of an ended record: settle or release (or nothing: keep_hold). A store
-- that cannot be reached now (Redis restarting) is retried from a timer until it answers;
-- the end itself is already recorded, so the movement is owed, never lost.
M.MOVE_RETRY_S = { 0.5, 1, 2, 4, 8, 15, 30, 60, 60, 60, 60, 60 }
function M.move(G, rec, micros, keep_hold, attempt)
  local e, merr
  if rec.status == "succeeded" then
    e, merr = G.meter:settle(rec.id, micros, { task_id = rec.upstream_id })
  elseif not keep_hold then
    e, merr = G.meter:release(rec.id, { task_id = rec.upstream_id })
  end
  local wait = merr and merr.field == "store" and M.MOVE_RETRY_S[attempt or 1]
  if wait then
    ngx.timer.at(wait, function(premature)
      if not premature then
        M.move(G, rec, micros, keep_hold, (attempt or 1) + 1)
      end
    end)
  end
  return e, merr
end

-- Ends a record once, with the meter: succeeded tasks are charged from what they delivered
-- (the price of a delivery the catalog cannot price is the reservation, never nothing),
-- others release their reservation. keep_hold ends the record but leaves the money held
-- (its fate upstream is unknown). Returns true when this call ended it.
function M.finish(G, rec, keep_hold)
  local micros
  if rec.status == "succeeded" then
    local q, err = billing.settle(rec.request, rec.usage or { count = 1 })
    local _, held = G.meter:hold(rec.id)
    micros = q and q.micros or held or 0
    if not q then
      rec.billing_error = tostring(err)
    end
    rec.charge = core.money_format(micros)
  elseif not keep_hold then
    rec.charge = "0"
  end
  rec.state = "done"
  rec.updated_at = now_ms()
  local won, err = G.tasks:finish(rec)
  if not won then
    if err then
      ngx.log(ngx.ERR, "kling gateway: cannot end ", rec.id, ": ", err)
      return nil, err -- not ended: polled again
    end
    return false
  end
  local e, merr = M.move(G, rec, micros, keep_hold)
  if merr then
    ngx.log(ngx.ERR, "kling gateway: meter for ", rec.id, ": ", tostring(merr))
  end
  local owned, oerr = owners.record(G, rec) -- the ids it shows are this account's alone
  if not owned then
    ngx.log(ngx.ERR, "kling gateway: cannot record whose ids ", rec.id, " has: ", tostring(oerr))
  end
  if rec.callback_url then
    local ok, terr = ngx.timer.at(0, forward, G, rec.id, 1)
    if not ok then
      ngx.log(ngx.ERR, "kling gateway: cannot forward the callback of ", rec.id, ": ", terr)
    end
  end
  return true, e
end

-- Applies an upstream task (from a poll or a callback) to the record.
local function apply(G, rec, t)
  update(rec, t)
  if TERMINAL[t.status] then
    rec.usage = budget.usage(t)
    local ended, err = M.finish(G, rec)
    return ended ~= nil or err == nil
  end
  G.tasks:save(rec)
  return false
end

local function gone(G, rec, why)
  rec.status, rec.message = "failed", why
  M.finish(G, rec)
end

-- poll(G, id) -> outcome for kling.resty.poller
function M.poll(G, id)
  local rec, final = G.tasks:get(id)
  if not rec or final then
    return { terminal = true }
  end
  local client = G.client()
  local age_ms = now_ms() - (rec.created_at or now_ms())
  if age_ms > G.cfg.poll.deadline * 1000 then
    rec.status, rec.message = "failed", "no end seen within the gateway's deadline; the reservation stays held"
    M.finish(G, rec, true)
    return { terminal = true }
  end
  if rec.state == "creating" then
    -- Its create is still in flight in a request handler, which publishes it when done. One
    -- older than any create can take was cut short (a crash, a restart): look it up.
    if age_ms < G.creating_grace_ms then
      return {}
    end
    rec.state = "lookup"
    G.tasks:save(rec, true)
  end
  if rec.state == "lookup" or not rec.upstream_id then
    -- The create's answer was lost: find the task by our external id, never send it again.
    local asked = ngx.now()
    local t, err = client:get_task({ external_task_id = rec.id }, { endpoint = rec.endpoint })
    ngx.update_time()
    metrics.observe("lookup", ngx.now() - asked)
    if t then
      rec.state = "active"
      rec.upstream_id = t.id
      G.tasks:save(rec, true)
      return { terminal = apply(G, rec, t) }
    end
    if err.kind == "not_found" or err.http_status == 404 then
      rec.lookups = (rec.lookups or 0) + 1
      if rec.lookups >= G.cfg.poll.lookups then
        gone(G, rec, "the create's answer was lost and the provider has no such task: nothing is charged")
        return { terminal = true }
      end
      G.tasks:save(rec)
    end
    return {}
  end
  local asked = ngx.now()
  local t, err = client:fetch_task(rec.upstream_id, rec.endpoint)
  ngx.update_time()
  metrics.observe("poll", ngx.now() - asked)
  if not t then
    if err.kind == "not_found" then
      rec.misses = (rec.misses or 0) + 1
      if rec.misses >= G.cfg.poll.lookups then
        gone(G, rec, "the provider no longer knows this task: nothing is charged")
        return { terminal = true }
      end
      G.tasks:save(rec)
    end
    return {}
  end
  if apply(G, rec, t) then
    return { terminal = true }
  end
  return { progress = t.progress }
end

-- on_callback(G, task) -> true | nil, message, status: a verified upstream callback.
function M.on_callback(G, t)
  local id = G.tasks:by_upstream(t.id)
  if not id and t.external_task_id and G.tasks:get(t.external_task_id) then
    id = t.external_task_id -- our own external id upstream is the gateway's task id
  end
  local rec, final
  if id then
    rec, final = G.tasks:get(id)
  end
  if not rec then
    return nil, "no task " .. tostring(t.id) .. " here", 404
  end
  if final then
    return true
  end
  if rec.state == "lookup" then
    rec.state = "active"
    G.tasks:save(rec, true)
  end
  if not apply(G, rec, t) then
    G.tasks:news(rec.id) -- polled again only after a silence
  end
  return true
end

return M
