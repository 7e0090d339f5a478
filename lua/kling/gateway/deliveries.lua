-- The end of a task sent to its client's own callback_url (the official task object, signed
-- the Standard Webhooks way with the account's own secret when the gateway has a
-- client_webhook_secret), retried on RETRY_S until a 2xx.
--
-- Each send may wait its receiver's 10 s, in a timer: one timer per task end let a client
-- whose receiver never answers hold every running timer of the worker (nginx allows 256), so
-- that other clients' callbacks, the poller's ticks and the metrics were dropped. Sends are
-- queued per account instead, in this worker: at most SENDERS timers send at once, at most
-- PER_ACCOUNT of them for one account, the accounts taken in turn.
--
-- A failed send waited for its retry in a timer of its own: nginx lets a worker hold 1024
-- pending timers, and about 1000 task ends whose receivers fail at once took them all, so that
-- other accounts' retries and the gateway's own timers (the poller's) could not start. A retry
-- waits in this worker's list instead, woken by one timer (at most every WAKE_S while any wait),
-- and what a worker holds (queued, sent, waiting) is bounded by the config's callback_queue: a
-- task end past it is not told its client, counted (kling_gateway_callbacks_dropped_total) and
-- logged.
--
-- A worker that stops (a reload, nginx's worker_shutdown) hands what it holds and has not sent
-- to the node's shared memory (HANDOFF, a list in the tasks dict: each callback's due time,
-- attempt, account and task), and the workers that run adopt it, at most every ADOPT_S and
-- within their callback_queue: a reload drops none. A worker killed outright, and nginx's
-- stop (its shared memory goes with it), still lose what they held.
local core = require "kling.core"
local json = require "kling.json"
local http = require "kling.resty.http"
local callback_host = require "kling.gateway.callback_host"
local metrics = require "kling.gateway.metrics"
local official = require "kling.gateway.official"
local public_url = require "kling.gateway.public_url"

local M = {}

M.RETRY_S = { 1, 2, 4 } -- retries of a client callback after the first attempt
M.SENDERS, M.PER_ACCOUNT = 16, 4
M.WAKE_S = 0.25 -- the longest the waker sleeps while retries wait (a retry is at most that late)

-- client_secret(G, account) -> "whsec_..." | nil: the secret an account's forwarded callbacks
-- are signed with, derived from client_webhook_secret for that account alone (a client
-- verifying with one shared secret could sign forged task ends for every other client) and for
-- the keys it signs in with now: a key replaced (a leaked one, PATCH or the config file) gives
-- it a new secret. Derived from the name alone, it outlived the key: whoever held the leaked key
-- had read it in the balance and went on signing task ends the client's receiver took as the
-- gateway's. The client reads it in its balance. account: {name, api_key, access_key, secret_key}.
function M.client_secret(G, account)
  local secret = G.cfg.client_webhook_secret
  if not secret then
    return nil
  end
  -- names and keys hold no newline: each part stands apart
  local text = "kling-gateway-client:" .. account.name .. "\n" .. (account.api_key or "") .. "\n"
    .. (account.access_key or "") .. "\n" .. (account.secret_key or "")
  return "whsec_" .. core.b64encode(core.hmac_sha256(secret, text))
end

-- This worker's queues: {queues = {account = {head =, tail =, [i] = {id, attempt}}},
-- order = {accounts, in turn}, next = index in order, busy = {account = its sends running},
-- running = sends running, waiting = a heap of {due, account, item} by due, held = callbacks
-- queued, running and waiting, waker = true while the waker's timer is pending}.
local function state(G)
  local s = G.deliveries
  if not s then
    s = { queues = {}, order = {}, next = 1, busy = {}, running = 0, waiting = {}, held = 0 }
    G.deliveries = s
  end
  return s
end

-- One attempt: true when it is over (delivered, refused for good), else the wait before the next.
local function send(G, id, attempt)
  local rec, rerr = G.tasks:get(id)
  if rec == false then
    -- Redis cannot be read now: an attempt, tried again on the schedule (it was dropped)
    ngx.log(ngx.WARN, "kling gateway: callback of ", id, " not sent now: its record cannot be read (",
      tostring(rerr), ")")
    return not M.RETRY_S[attempt], M.RETRY_S[attempt]
  elseif not rec or not rec.callback_url then
    return true
  end
  -- Checked at the create; checked again here in case the config changed since.
  local allowed, why = public_url.check(rec.callback_url, G.cfg.allow_private_callbacks)
  if not allowed then
    ngx.log(ngx.WARN, "kling gateway: callback of ", id, " not sent: callback_url ", why)
    return true
  end
  -- A name goes where the gateway's own resolution says, checked like an address.
  local address, aerr, final = callback_host.address(G, rec.callback_url)
  if address == nil then
    ngx.log(ngx.WARN, "kling gateway: callback of ", id, " not sent: ", aerr)
    return final or not M.RETRY_S[attempt], M.RETRY_S[attempt]
  end
  local body = json.encode(official.view(rec))
  local headers = { ["Content-Type"] = "application/json" }
  local secret
  if G.cfg.client_webhook_secret then
    local account, gerr = G.accounts:get(rec.account)
    if not account then -- the store cannot say now (or the account is gone): signed by nothing, not sent
      ngx.log(ngx.WARN, "kling gateway: callback of ", id, " not sent now: account ", rec.account, " cannot be read (",
        tostring(gerr or "no such account"), ")")
      return not (gerr and M.RETRY_S[attempt]), gerr and M.RETRY_S[attempt]
    end
    secret = M.client_secret(G, account)
  end
  if secret then
    -- One message a state of the record: its retries share the id, and a later one (an
    -- operator's settle of a kept hold) has its own, which a receiver does not drop as a repeat.
    local msg_id = "msg_" .. id .. "_" .. string.format("%d", tonumber(rec.updated_at) or 0)
    local ts = tostring(math.floor(core.wall_s()))
    headers["webhook-id"], headers["webhook-timestamp"] = msg_id, ts
    headers["webhook-signature"] = core.webhook_sign { secret = secret, id = msg_id, timestamp = ts, body = body }
  end
  -- The receiver is the client's: only its status is read, never a body it could make endless.
  local res = http.request({ method = "POST", url = rec.callback_url, address = address or nil, headers = headers,
    body = body, timeout_ms = 10000 }, { fresh = true, status_only = true })
  if res.ok and res.status >= 200 and res.status < 300 then
    return true
  end
  ngx.log(ngx.WARN, "kling gateway: callback of ", id, " to its client failed (attempt ", attempt, "): ",
    res.ok and ("HTTP " .. res.status) or res.message)
  return not M.RETRY_S[attempt], M.RETRY_S[attempt]
end

local pump, wake

M.HANDOFF, M.ADOPT_S = "callbacks:handoff", 1

-- One handed-off callback: "DUE ATTEMPT ACCOUNT ID" (neither an account's name nor a task id
-- holds a space).
local function handed(due, account, item)
  return string.format("%.3f %d %s %s", due, item[2], account, item[1])
end

-- hand_off(G, s): what this stopping worker holds and is not sending now goes to HANDOFF.
local function hand_off(G, s)
  local d = G.tasks.dict
  local function put(due, account, item)
    local ok, err = d:rpush(M.HANDOFF, handed(due, account, item))
    if not ok then
      metrics.inc("kling_gateway_callbacks_dropped_total")
      ngx.log(ngx.ERR, "kling gateway: callback of ", item[1], " to account ", account, " dropped: its worker stops",
        " and the shared dict cannot hold it (", tostring(err), ")")
    end
    s.held = s.held - 1
  end
  for _, account in ipairs(s.order) do
    local q = s.queues[account]
    for i = q.head, q.tail do
      put(0, account, q[i])
      q[i] = nil
    end
    q.head = q.tail + 1
  end
  for _, e in ipairs(s.waiting) do
    put(e[1], e[2], e[3])
  end
  s.waiting = {}
end

-- The waiting retries: a binary heap by due time (heap[1] the next due).
local function heap_push(heap, e)
  local i = #heap + 1
  heap[i] = e
  while i > 1 do
    local p = math.floor(i / 2)
    if heap[p][1] <= e[1] then
      break
    end
    heap[i], heap[p] = heap[p], e
    i = p
  end
end

local function heap_pop(heap)
  local top, n = heap[1], #heap
  local last = heap[n]
  heap[n] = nil
  n = n - 1
  if n > 0 then
    local i = 1
    while true do
      local c = 2 * i
      if c > n then
        break
      end
      if c < n and heap[c + 1][1] < heap[c][1] then
        c = c + 1
      end
      if heap[c][1] >= last[1] then
        break
      end
      heap[i] = heap[c]
      i = c
    end
    heap[i] = last
  end
  return top
end

-- Arms the waker (one timer a worker) when it is not pending and retries wait, or callbacks
-- are queued with no sender running (one that could not start for want of a timer).
local function arm(G, s)
  local stuck = s.running == 0 and s.held > #s.waiting
  if s.waker or not (s.waiting[1] or stuck) or ngx.worker.exiting() then
    return
  end
  ngx.update_time()
  local sleep = M.WAKE_S
  if s.waiting[1] then
    sleep = math.max(0, math.min(s.waiting[1][1] - ngx.now(), M.WAKE_S))
  end
  local ok, err = ngx.timer.at(sleep, wake, G)
  if ok then
    s.waker = true
  else -- no timer now: the next send or push arms it
    ngx.log(ngx.ERR, "kling gateway: callback retries wait: ", err)
  end
end

local function enqueue(s, account, item)
  local q = s.queues[account]
  if not q then
    q = { head = 1, tail = 0 }
    s.queues[account] = q
    s.order[#s.order + 1] = account
  end
  q.tail = q.tail + 1
  q[q.tail] = item
end

-- The waker: the retries now due go back to their accounts' queues.
wake = function(premature, G)
  local s = state(G)
  s.waker = nil
  if premature then
    return hand_off(G, s)
  end
  ngx.update_time()
  local now = ngx.now()
  while s.waiting[1] and s.waiting[1][1] <= now do
    local e = heap_pop(s.waiting)
    enqueue(s, e[2], e[3])
  end
  pump(G)
  arm(G, s)
end

-- A sender: one queued callback, then the queues are looked at again.
local function sender(premature, G, account, item)
  local s = state(G)
  local again
  if not premature then
    local ok, done, wait = pcall(send, G, item[1], item[2])
    if not ok then
      ngx.log(ngx.ERR, "kling gateway: callback of ", item[1], ": ", tostring(done))
    elseif not done then
      again = wait
    end
  end
  s.running, s.busy[account] = s.running - 1, s.busy[account] - 1
  if premature then -- not sent: still held, handed off below
    enqueue(s, account, item)
  elseif again then -- still held: it waits for its retry
    ngx.update_time()
    heap_push(s.waiting, { ngx.now() + again, account, { item[1], item[2] + 1 } })
  else
    s.held = s.held - 1
  end
  if premature or ngx.worker.exiting() then
    return hand_off(G, s)
  end
  pump(G)
  arm(G, s)
end

-- Starts senders while there are free ones and an account with work that is under its share.
pump = function(G)
  if ngx.worker.exiting() then -- nginx is stopping: no new send keeps this worker on
    return
  end
  local s = state(G)
  local n = #s.order
  local idle = 0
  while s.running < M.SENDERS and idle < n do
    local i = s.next
    s.next = i % n + 1
    local account = s.order[i]
    local q = s.queues[account]
    local item = q[q.head]
    if item and (s.busy[account] or 0) < M.PER_ACCOUNT then
      idle = 0
      local ok, err = ngx.timer.at(0, sender, G, account, item)
      if not ok then -- no timer now: it stays first, the next send, push or wake starts it
        ngx.log(ngx.ERR, "kling gateway: callback of ", item[1], " waits: ", err)
        return
      end
      q[q.head], q.head = nil, q.head + 1
      s.running, s.busy[account] = s.running + 1, (s.busy[account] or 0) + 1
    else
      idle = idle + 1
    end
  end
end

-- push(G, account, id): queues the callback of task id (ended) to its client; one past what
-- the worker may hold (the config's callback_queue) is dropped, counted and logged.
function M.push(G, account, id)
  local s = state(G)
  if s.held >= G.cfg.callback_queue then
    metrics.inc("kling_gateway_callbacks_dropped_total")
    ngx.log(ngx.ERR, "kling gateway: callback of ", id, " to account ", account, " dropped: this worker holds ",
      s.held, " callbacks already (callback_queue)")
    return
  end
  s.held = s.held + 1
  enqueue(s, account, { id, 1 })
  if ngx.worker.exiting() then -- no send starts here any more: another worker's
    return hand_off(G, s)
  end
  pump(G)
  arm(G, s)
end

-- adopt(premature, G): callbacks stopped workers handed off, taken into this worker's queues
-- (as many as its callback_queue leaves room for), each at its due time.
local function adopt(premature, G)
  if premature or ngx.worker.exiting() then
    return
  end
  local s, d = state(G), G.tasks.dict
  local took = false
  ngx.update_time()
  while s.held < G.cfg.callback_queue do
    local v = d:lpop(M.HANDOFF)
    if not v then
      break
    end
    local due, attempt, account, id = v:match("^(%S+) (%d+) (%S+) (%S+)$")
    if id then
      s.held, took = s.held + 1, true
      local item = { id, tonumber(attempt) }
      if tonumber(due) > ngx.now() then
        heap_push(s.waiting, { tonumber(due), account, item })
      else
        enqueue(s, account, item)
      end
    end
  end
  if took then
    pump(G)
    arm(G, s)
  end
end

-- start(G): this worker adopts handed-off callbacks (init_worker).
function M.start(G)
  local ok, err = ngx.timer.every(M.ADOPT_S, adopt, G)
  if not ok then
    ngx.log(ngx.ERR, "kling gateway: callbacks other workers hand off are not sent by this one: ", err)
  end
end

return M
