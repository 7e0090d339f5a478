--- One task's whole life as a sans-I/O state machine (the model is python-hyper/h11's
-- `_state.py`: every transition lives here). The caller feeds events and carries out the
-- actions that come back; the machine reads no clock (every event brings `now`, monotonic ms,
-- and `wall_s` where a Retry-After date may need it), does no I/O and draws no randomness
-- (the external id and the ledger key come from a random source the caller passes in; poll
-- jitter comes from the scheduler's seed).
--
-- Events (methods, each returns the list of actions to carry out, in order):
--   start(now)                        validate, pick the external id, ask for the reservation
--   reserved(now, ok, err)            the reservation was made (ok) or refused (err)
--   answer(now, res, wall_s)          the transport result of the request last sent
--   timer(now)                        a wake-up asked for has come
-- (answer and timer, the events of every poll, take an empty list to return the actions in
-- as a last argument: a runner of many tasks reuses one instead of making one per poll)
--   poll_due(now)                     timer(now) of a task its runner's scheduler handed back as
--                                     due, when a poll is all it does: the poll's path (a GET,
--                                     no actions), else nil and the runner calls timer(now)
--   callback(now, fields)             a provider's callback, parsed to canonical task fields
--   news(now, fields)                 a task query made outside the machine (task:refresh)
--   watch(now, sched, deadline_ms)    start polling with this scheduler (core.sched) until then
--   deadline(now)                     the runner's deadline passed (the run's, or a wait's)
--   cancel(now)                       the caller gives the task up
--   granted(now)                      the slot asked for (acquire) is the task's (profile slots)
--   refuse(now, err)                  the runner refused the request before start (its own options)
--   learnt(now, window, late)         the runner learnt how long tasks of this kind take
-- Actions ({type = ...}):
--   reserve{key, request, once}       hold the request's estimate under key (answer: reserved);
--                                     once: the key is the runner's own, a hold it has is the task's
--   send{purpose, method, path, body} purpose create | lookup | poll | cancel (answer: answer)
--   renew_token{}                     the token expired in flight: invalidate it before the send
--   wake{at}                          call timer(at) then (absolute, the caller's clock); not
--                                     made for a task its runner's scheduler holds where the
--                                     profile says wake_scheduled = false (M.new)
--   refused{slot_full, delay_ms}      the provider refused a create, nothing exists (slot limiter)
--   acquire{front}                    wait for a provider slot before the create (answer: granted);
--                                     front: the task was in line before (a refused create)
--   settle{key, task} / release{key, task}   the end's money (priced from the task's usage)
--   journal{what, task}               what = "create" (before it is sent), "created" (id known),
--                                     "uncertain" (M.forwarded: the create's fate is unknown,
--                                     its err says why; the tracker follows it up)
--   created{task}                     the provider has the task (the create phase is over)
--   news{task}                        a poll or callback brought news (on_progress); not made
--                                     where the profile says news_actions = false
--   retry{attempt, delay_ms, kind, code, http_status, path}   a create that never left, or that the
--                                     provider refused (requeue_refused), goes again after delay_ms
--   abandon{}                         a callback made the request in flight moot (cancel it)
--   refused_cancel{err}               the provider cannot cancel
--   done{task, err}                   the end: err nil when it succeeded
-- The retry decisions are core.decide's, fed the dialect's code table; this file only says
-- which request the decision is about and what follows from it.
--
-- Many tasks share one profile (M.profile: the provider, the retry and lookup policy, the
-- scheduler...), so that a task's machine holds only its own state: a runner of 10,000
-- tasks keeps 10,000 small tables, and may keep its own bookkeeping in the same table.
-- @module kling.lifecycle.machine
local core = require "kling.core"
local errors = require "kling.errors"
local json = require "kling.json"
local local_file = require "kling.local_file"
local providers = require "kling.providers"
local transport = require "kling.transport"
local validate = require "kling.validate"
local tables = require "kling.tables"

local M = {}

local TERMINAL = { succeeded = true, failed = true, cancelled = true }
M.TERMINAL = TERMINAL
-- A status only moves forward: a callback or poll reporting an earlier one is stale.
-- The longest window core.sched takes (its task age limit, int32 ms).
local WINDOW_MAX_MS = 2147483647
local RANK = { pending = 0, queued = 1, running = 2, succeeded = 3, failed = 3, cancelled = 3 }

-- Phrases providers use when a task fails on content grounds: never worth resubmitting.
local POLICY_PATTERNS = { "polic", "safety", "sensitive", "violat", "risk", "moderat", "inappropriate" }

--- The error a failed or cancelled task ends with: `content_policy` (not retryable) when the
-- reason is about content, `cancelled`, else `server` (retryable).
---@param t table canonical task fields (`id`, `status`, `message`, `fail_code`)
---@param provider_name string
---@return kling.Error
function M.failure(t, provider_name)
  if t.status == "cancelled" then
    return errors.new { kind = "cancelled", message = "task " .. tostring(t.id) .. " was cancelled",
      provider = provider_name, task = t }
  end
  -- text only: a provider's null or object there raised (parsers never raise on the network's)
  local msg = type(t.message) == "string" and t.message or "the provider reported failure without a reason"
  local lower = msg:lower()
  local kind, retryable = "server", true
  for _, p in ipairs(POLICY_PATTERNS) do
    if lower:find(p, 1, true) then
      kind, retryable = "content_policy", false
      break
    end
  end
  return errors.new { kind = kind, message = "task " .. tostring(t.id) .. " failed: " .. msg, retryable = retryable,
    provider = provider_name, task = t, code = t.fail_code }
end

--- Checks a request against every documented rule of the provider, without any I/O.
-- Returns the endpoint it goes to, or nil and a validation error naming the field and the rule.
---@param P table the provider
---@param req table a canonical request
---@param files? table the fields its local files became (kling.local_file.inline, read by the runner)
---@return string|nil endpoint
---@return kling.Error|nil err
function M.check(P, req, files)
  if req.provider ~= nil and req.provider ~= P.name then
    return nil, errors.validation("provider", "this client talks to '" .. P.name
      .. "', the request names " .. validate.quoted(req.provider))
  end
  -- a client's option in the request (base_url, a key, timeout): refused by name, never dropped
  local opt, why = validate.client_option_problem(req)
  if opt then
    return nil, errors.validation(opt, why, P.name)
  end
  local endpoint = providers.endpoint(P, req)
  local err = P.validate(local_file.apply(req, files), endpoint)
  if err then
    return nil, err
  end
  -- the request's own expected seconds (never sent): estimate = "x" passed check and submit,
  -- unread, and submit_many raised "attempt to mul a 'string'" on it
  local problem = req.estimate ~= nil and validate.seconds_problem(req.estimate)
  if problem then
    return nil, errors.validation("estimate", problem, P.name)
  end
  return endpoint
end

local Machine = {}
Machine.__index = Machine
Machine.__name = "kling.lifecycle"

-- The options every task of a profile shares (see M.new for their meaning).
local function configure(c, o)
  c.provider, c.random, c.budget = o.provider, o.random, o.budget
  c.auto_external_id = o.auto_external_id ~= false
  c.lookups_max = o.lookups or 3
  c.requeue_refused = o.requeue_refused and true or false
  c.max_attempts, c.base_ms, c.cap_ms = o.max_attempts or 5, o.base_ms or 500, o.cap_ms or 20000
  c.create_budget_ms = o.create_budget_ms or 120000
  c.silence_ms = o.callback_silence_ms or 60000
  c.slots = o.slots and true or nil
  c.learnt_ms = o.learnt_ms
  c.sched = o.sched
  c.news_actions = o.news_actions ~= false
  c.wake_scheduled = o.wake_scheduled ~= false
  c.raw_while_running = o.raw_while_running ~= false
  -- A task's counters start at these (read through the profile): a task that never fails
  -- carries no field for them (a field more can double a task table's size: its hash part
  -- grows in powers of two). Set to nil to reset.
  c.fails, c.misses = 0, 0
  return c
end

-- A task's own state, in a table whose metatable is its profile: o.record (a runner's own
-- record of the task, which the machine's state then lives in), else a new one.
local function instance(class, o)
  local t = o.task or {}
  t.status = t.status or "pending"
  if o.request ~= nil then
    t.request = o.request
  end
  local self = o.record or {}
  self.task, self.state = t, "new"
  self.adopt, self.expect_ms, self.files, self.has_callback = o.adopt and true or nil, o.expect_ms, o.files,
    o.callback
  if o.key ~= nil then -- the runner's own ledger key (M.new): kept across its restarts
    self.key, self.own_key = o.key, true
  end
  return setmetatable(self, class)
end

--- A machine for a task to create.
-- o = {provider, request, task (the table the machine keeps up to date; default a new one),
--   random (fn(nbytes) -> hex: the external id and the ledger key), budget (a ledger is set:
--   reserve first), auto_external_id (true), lookups (lookups by external id after an
--   uncertain create before it is sent once more; 0: an uncertain create ends with its error),
--   requeue_refused (a create the provider refused for want of a slot or rate is sent again
--   until create_budget_ms; else it ends with the refusal), adopt (look the external id up
--   first, create only when nothing is there), max_attempts, base_ms, cap_ms (core.decide),
--   create_budget_ms (the create phase, retries and lookups included), expect_ms (an estimate
--   of the run time), callback (a callback_url is set: poll only after callback_silence_ms),
--   files (the fields the request's local files became, read by the runner: validated and sent
--   in their place, while the task's request keeps the paths), record (a table of the
--   runner's own for the task: the machine's state is kept in it, no second table), key (the
--   ledger key to reserve under, the runner's own and kept across its restarts: a batch row's
--   attempt; the reserve action then says `once`: a hold the key has already is the task's)}.
-- Profile options (shared by every task of a profile): slots (ask for a provider slot,
-- acquire/granted, before each first create and each create after a refusal), learnt_ms
-- (fn(machine) -> ms | nil: how long a task of its kind is expected to take, when it brings
-- no expect_ms; no I/O), sched (the scheduler every task of the profile is watched with),
-- news_actions (true; false: the runner follows the task's fields itself, no news action is
-- made), wake_scheduled (true; false: the runner takes each task its scheduler holds back from
-- it when due (sched:due), so no wake action is made for a task waiting there). A runner of
-- many tasks turns both off: a poll then makes one action (its send), not three.
-- raw_while_running (true; false: a task keeps the provider's answer, `raw`, only once it has
-- ended, and none while it runs, but from a news() query: M.take) is off in a runner of many
-- tasks too.
---@param o table
---@return table machine
---@param profile? table a profile (M.profile) whose options the task shares: o's own are then ignored
function M.new(o, profile)
  errors.check_arg("lifecycle.new", 1, o, "table")
  return instance(profile or M.profile(o), o)
end

--- The options many tasks share (those of M.new but request, task, files, adopt, expect_ms
-- and callback), as the metatable of their machines: each task's table holds its own state only.
---@param o table
---@return table profile
function M.profile(o)
  local p = configure({}, o)
  -- The machine's methods are copied in: a task's method or missing field is then found (or
  -- not) in two lookups, not three (every poll of 10,000 tasks makes dozens of them).
  for k, v in pairs(Machine) do
    if p[k] == nil then
      p[k] = v
    end
  end
  p.__index = p
  return p
end

--- A machine for a task that already exists (get_task, a task created elsewhere): it starts
-- in state "created"; watch() polls it.
-- With a key (what its reservation is held under) and a task that has ended, watch() ends it
-- at once: its hold is settled or released (the end was seen while no machine ran).
---@param o table {provider, task (canonical fields with id and endpoint), key (its ledger key), expect_ms, callback}
---@param profile? table as for M.new
---@return table machine
function M.existing(o, profile)
  local self = M.new(o, profile)
  self.key = o.key
  -- Ended already, with a hold: not done until watch() has settled or released it (a task
  -- that ended while its runner was down: the adopt path of a resumed batch row).
  self.state = (TERMINAL[self.task.status] and not o.key) and "done" or "created"
  return self
end

--- A machine for a task a runner follows after a create it did not send (the gateway's
-- tasks: a request handler sent the create, the poller and the callback location follow it).
-- It is built afresh from the stored record at each event, so that nothing but the record
-- needs to outlive the event (a restart, a new poll leader, a callback in another worker).
-- With task.id it is polled; without one (the create's answer was lost, or its handler died)
-- it is looked up by external id and NEVER created again: after `lookups` answers of not
-- found the task is gone (failed, its reservation released). A task with an id that polls
-- answer not found is polled on until its deadline (the provider made it). A task that cannot
-- be looked up (no external id, or the provider or its endpoint takes none) waits for a
-- callback or its deadline, its reservation held.
-- o = existing's options plus {lookups (3), lookups_done, misses (counts so far, from the
-- record), sched, h (the runner's own handle in sched, due now: polls reuse it, the end frees
-- it), deadline_ms (absolute), in_flight_until (absolute: the create may still be on its way
-- in its handler until then, which will record its answer; it is looked up only after),
-- looked_last (the last look at the deadline was sent: the runner keeps m.final_poll)}.
---@param o table
---@return table machine
function M.track(o)
  local self = M.existing(o)
  self.tracking = true
  self.sched, self.h, self.deadline_ms = o.sched, o.h, o.deadline_ms
  self.lookups, self.misses = o.lookups_done or 0, o.misses or 0
  self.final_poll = o.looked_last or nil -- its last look at the deadline was sent (the record says)
  local t = self.task
  if self.state == "created" and not t.id then
    self.was_uncertain = true
    self.create_deadline = o.deadline_ms
    -- Findable where the create carried the external id: the rule start() sends one by.
    local P = self.provider
    if t.external_task_id and P.external_query_path and providers.takes_external_id(P, t.endpoint) then
      self.uncertain_err = self:protocol("the create's answer was lost", { uncertain = true,
        external_task_id = t.external_task_id })
      self.state = "lookup_wait" -- timer() looks it up
      self.lookup_not_before = o.in_flight_until
    end
  elseif self.state == "created" and self.h then
    self.state = "scheduled" -- timer() polls it
  end
  return self
end

--- A machine for a create its runner prepared itself (the gateway's: admitted, validated,
-- priced and held before this), in state "creating": the create is on its way (or, where the
-- runner sends it, last_request() is it) and answer() takes its answer. What follows a
-- create whose fate is unknown is the tracker's (M.track, rebuilt from the runner's record):
-- this machine only says so (journal "uncertain") and never looks it up itself.
-- o = new's options plus {key (its reservation), now (when the create left: the create
-- phase's budget counts from then), call ({method, path, body}: what a retry or a token
-- renewal sends again; none: a proxy sends the create once, and a token that expired in flight
-- is renewed for the next create while this one ends with its error)}.
---@param o table
---@param profile? table as for M.new
---@return table machine
function M.forwarded(o, profile)
  local self = M.new(o, profile)
  self.key, self.state, self.handoff = o.key, "creating", true
  local c = o.call
  if c then -- kept as the send action every send of this create carries (as send_create's)
    self.call = { type = "send", purpose = "create", method = c.method, path = c.path, body = c.body }
  end
  self.create_deadline = o.now + self.create_budget_ms
  return self
end

-- A tracked task the provider does not have: ended as failed, nothing charged.
function Machine:gone(acts, why)
  local t = self.task
  -- gone: ended by this machine (the provider had no such task), not by a status of its own
  t.status, t.message, t.gone = "failed", why, true
  return self:finish(acts, nil, false)
end

-- Whether the machine saw the task from its create's answer to its end: only then is
-- now - created_ms how long it took (a task found by its external id, or watched after it was
-- made elsewhere, is seen from later on: learnt as that, a 10 s task resumed at its end was a
-- 0 ms sample in the shared durations).
function Machine:saw_whole_life()
  return self.created_ms ~= nil and not self.adopted and not self.joined
end

function Machine:__tostring()
  return string.format("kling.lifecycle(%s %s, %s)", self.provider.name, tostring(self.task.id or
    self.task.external_task_id), self.state)
end

-- ---- building requests --------------------------------------------------------------------

local function send(purpose, method, path, body)
  if body == nil then -- a GET (every poll): a smaller table
    return { type = "send", purpose = purpose, method = method, path = path }
  end
  return { type = "send", purpose = purpose, method = method, path = path, body = body }
end

function Machine.push_send(_, acts, a)
  acts[#acts + 1] = a
  return acts
end

-- The request last sent, made again from the state (a token renewal sends it again as it
-- was): nothing of a lookup or a poll is kept per task between requests; the create's send
-- action is kept (self.call) until the task exists, and each send of the create is that table.
function Machine:last_request()
  local s, t, P = self.state, self.task, self.provider
  if s == "creating" then
    return self.call
  elseif s == "lookup" then
    return send("lookup", "GET", P.external_query_path(t.endpoint, t.external_task_id))
  end
  return send("poll", "GET", P.query_path(t.endpoint, t.id))
end

function Machine:send_create(acts)
  self.state = "creating"
  self.renewed, self.wake_at = nil, nil -- the wake-up that sends it (a retry's) has come
  acts[#acts + 1] = { type = "journal", what = "create", task = self.task }
  return self:push_send(acts, self.call)
end

function Machine:send_lookup(acts)
  self.state = "lookup"
  self.renewed = nil
  local t = self.task
  return self:push_send(acts, send("lookup", "GET", self.provider.external_query_path(t.endpoint, t.external_task_id)))
end

-- timer(now) of a scheduled task within its deadline: the poll, as a send action.
function Machine:send_poll(acts, now)
  acts[#acts + 1] = send("poll", "GET", (assert(self:poll_due(now), "lifecycle: no poll due")))
  return acts
end

--- A scheduled task is due (its scheduler handed it back) and a poll is all there is to do:
-- the poll's path (a GET, purpose poll), as timer(now)'s send action would carry it, without
-- the action list and the action table (every poll of a runner of many tasks comes here).
-- nil: more than a poll is due (or none): the runner calls timer(now), which decides.
---@param now integer monotonic ms
---@return string|nil path
function Machine:poll_due(now)
  if self.state ~= "scheduled" or (self.deadline_ms and now >= self.deadline_ms) then
    return nil
  end
  self.state = "polling"
  self.renewed = nil
  local t = self.task
  self.polls = (self.polls or 0) + 1
  return self.provider.query_path(t.endpoint, t.id)
end

function Machine:wake(acts, at)
  self.wake_at = at
  if not self.wake_scheduled and self.h and self.state == "scheduled" then
    return acts -- the runner's scheduler hands the task back when it is due (profile wake_scheduled)
  end
  acts[#acts + 1] = { type = "wake", at = at }
  return acts
end

function Machine:error(f, d, extra)
  return transport.failure(f, d, self.provider.name, extra)
end

function Machine:protocol(msg, extra)
  local e = errors.new { kind = "protocol", provider = self.provider.name, message = msg, retryable = false }
  for k, v in pairs(extra or {}) do
    e[k] = v
  end
  return e
end

-- wall: the wall clock (s) the answer came with, for a Retry-After date.
function Machine:decide(method, f, res, now, until_ms, wall)
  return core.decide {
    method = method, attempt = self.fails, max_attempts = self.max_attempts, http_status = f.status,
    code = tonumber(f.code), codes = self.provider.codes, transport = f.transport, sent = f.sent,
    received = f.received, retry_after = res.headers and res.headers["retry-after"], now_s = wall or 0,
    budget_ms = math.max(0, (until_ms or now) - now), base_ms = self.base_ms,
    cap_ms = self.cap_ms,
  }
end

-- The token expired in flight: renew it and send the same request again, once per request.
function Machine:renew(f, acts)
  if self.renewed or not providers.token_expired(self.provider, f) then
    return false
  end
  self.renewed = true
  acts[#acts + 1] = { type = "renew_token" }
  if self.state == "creating" and not self.call then
    return false -- a create a proxy sent once: the next create has a new token, this one ends
  end
  local again = self:last_request()
  acts[#acts + 1] = again
  return true
end

-- ---- the end ------------------------------------------------------------------------------

-- Ends the task. `exists`: the task exists or may (its reservation stays until it is seen
-- ended) unless the provider reported its end. Success settles; a reported failure, or an
-- end before any task was made, releases.
function Machine:finish(acts, err, exists)
  if self.state == "done" then
    return acts
  end
  local t = self.task
  local ended = TERMINAL[t.status]
  if err == nil and ended and t.status ~= "succeeded" then
    err = M.failure(t, self.provider.name)
  end
  if self.key and not self.accounted then
    if ended then
      self.accounted = true
      acts[#acts + 1] = { type = t.status == "succeeded" and "settle" or "release", key = self.key, task = t }
    elseif not exists then
      self.accounted = true
      acts[#acts + 1] = { type = "release", key = self.key, task = t }
    elseif err then
      err.ledger_key = self.key -- still held: the task may be charged
    end
  end
  self.state = ended and "done" or (exists and "expired" or "done")
  self.err = err
  self.wake_at = nil
  if self.h and self.sched then
    self.sched:remove(self.h)
  end
  self.h = nil
  acts[#acts + 1] = { type = "done", task = t, err = err }
  return acts
end

-- ---- starting -----------------------------------------------------------------------------

--- Validates the request, picks the external id and asks for the reservation (or sends the
-- create when no budget is set). A request that fails validation ends here: nothing is sent
-- and nothing held.
function Machine:start(now)
  local acts = {}
  assert(self.state == "new", "lifecycle: start() twice")
  self.watch_from = self.watch_from or now
  local until_ms = now + self.create_budget_ms
  if not self.deadline_ms or until_ms < self.deadline_ms then
    self.create_deadline = until_ms -- else the task's deadline bounds its create (create_until)
  end
  local P, t = self.provider, self.task
  local req = t.request
  local endpoint, verr = M.check(P, req, self.files)
  if not endpoint then
    return self:finish(acts, verr)
  end
  -- The external id: where the provider (and this endpoint) takes one, unless the request
  -- brings its own. It is what makes an uncertain create recoverable.
  if req.external_task_id == nil and self.auto_external_id and providers.takes_external_id(P, endpoint) then
    req = tables.clone(req)
    req.external_task_id = "kl-" .. self.random(12)
  end
  if self.adopt and req.external_task_id == nil then
    return self:finish(acts, errors.validation("external_task_id", "is required to adopt (look up) a task", P.name))
  end
  t.request, t.endpoint, t.external_task_id = req, endpoint, req.external_task_id
  local call = P.build(local_file.apply(req, self.files), endpoint)
  local body = call.body
  if body ~= nil and type(body) ~= "string" then
    local eerr
    body, eerr = json.encode(body)
    if not body then
      return self:finish(acts, errors.validation("request", "cannot be encoded as JSON: " .. tostring(eerr), P.name))
    end
  end
  self.call = send("create", call.method, call.path, body) -- what every send of this create carries
  self.files = nil -- their content is in the body now: not kept twice, nor after the create
  if self.budget then
    -- Reserve before submit: the key is the runner's own (o.key), else the external id, else
    -- a local one. A key of the runner's may hold already (reserved by a run of it that
    -- stopped before the create was answered): that hold is this task's (once).
    self.key = self.key or req.external_task_id or ("local-" .. self.random(12))
    self.state = "reserving"
    acts[#acts + 1] = { type = "reserve", key = self.key, request = req, once = self.own_key }
    return acts
  end
  return self:begin(acts)
end

function Machine:begin(acts)
  if self.slots then
    return self:want_slot(acts, false)
  end
  return self:go(acts)
end

function Machine:go(acts)
  if self.adopt then
    return self:send_lookup(acts)
  end
  return self:send_create(acts)
end

-- A provider slot before the create (profile slots: the runner's slot limiter answers with
-- granted). front: the task was in line before (its create was refused).
function Machine:want_slot(acts, front)
  self.state = "slot_wait"
  acts[#acts + 1] = { type = "acquire", front = front }
  return acts
end

--- The slot asked for is the task's: the create (or the adoption's lookup) goes out.
function Machine:granted(_)
  if self.state ~= "slot_wait" then
    return {} -- the task ended while it waited
  end
  return self:go({})
end

--- The runner refused the request before it started (an option of its own is wrong):
-- nothing was sent or held; or (M.forwarded) before it sent the create: its hold is released.
function Machine:refuse(_, err)
  assert(self.state == "new" or (self.handoff and self.state == "creating"), "lifecycle: refuse() after start()")
  return self:finish({}, err)
end

-- When the create phase must end (retries, lookups, requeued refusals).
function Machine:create_until()
  return self.create_deadline or self.deadline_ms
end

--- The reservation's outcome: refused (budget, unpriced) ends the task, nothing held.
function Machine:reserved(_, ok, err)
  assert(self.state == "reserving", "lifecycle: reserved() out of turn")
  local acts = {}
  if not ok then
    self.key = nil -- nothing is held
    return self:finish(acts, err)
  end
  self.task.quote = ok ~= true and ok or nil
  self.task.ledger_key = self.key
  return self:begin(acts)
end

-- ---- answers ------------------------------------------------------------------------------

-- The task exists (create answered, found by external id, or a callback told first).
function Machine:accept(acts, fields, now)
  self:update(fields)
  self.fails, self.renewed, self.uncertain_err, self.adopt = nil, nil, nil, nil
  self.call, self.create_deadline = nil, nil -- the create phase is over: its payload goes
  self.created_ms = now
  self.state = "created"
  local t = self.task
  acts[#acts + 1] = { type = "journal", what = "created", task = t }
  acts[#acts + 1] = { type = "created", task = t }
  if TERMINAL[t.status] then
    return self:finish(acts, nil, true)
  end
  if self.cancel_asked then -- given up while its create was in flight: cancelled now it exists
    self:cancel(now, acts)
    if self.state == "cancelling" then
      return acts
    end
    -- The provider cannot cancel (refused_cancel): the task runs on upstream, where it is
    -- charged, so it is followed to its end as any other (left "created", it was never
    -- polled: a wait without a deadline never ended, and its hold was never settled).
    self.cancel_asked = nil
  end
  if self.sched then
    return self:schedule(acts, now)
  end
  return acts
end

--- Takes freshly parsed task fields into task t (every answer, callback or refresh comes here).
-- keep_raw false (a runner of many tasks: profile raw_while_running = false): `raw`, the
-- provider's answer, is taken only from an answer that ends the task, and a running task holds
-- none. Each poll replaced the answer the task held, which had by then lived through
-- collections (seconds between polls): in generational mode that was about 330 bytes of old
-- garbage a poll, which waits for a major collection (bench/README.md, "No answer kept while a
-- task runs").
---@param t table the task
---@param fields table canonical task fields (a dialect's parse_task)
---@param keep_raw boolean|nil
function M.take(t, fields, keep_raw)
  for k, v in pairs(fields) do
    if k == "raw" then
      if keep_raw or TERMINAL[fields.status] then
        t.raw = v
      elseif t.raw ~= nil then -- one it came with (a task taken up by the runner)
        t.raw = nil
      end
    elseif k ~= "client" then
      t[k] = v
    end
  end
end

-- keep_raw: the fields come from a query the caller made (news): their answer is kept.
function Machine:update(fields, keep_raw)
  M.take(self.task, fields, keep_raw or self.raw_while_running)
end

-- The create's fate is unknown: look it up by external id, or end with the error (which
-- says so: uncertain, with the external id to look it up by).
function Machine:uncertain(acts, err)
  local t = self.task
  self.was_uncertain = true
  err.uncertain, err.external_task_id = true, t.external_task_id
  if self.handoff then -- M.forwarded: the tracker looks it up (or waits), the hold stays
    self.uncertain_err, self.state, self.wake_at = err, "lookup_wait", nil
    acts[#acts + 1] = { type = "journal", what = "uncertain", task = t, err = err }
    return acts
  end
  if self.lookups_max < 1 or not t.external_task_id or not self.provider.external_query_path then
    return self:finish(acts, err, true)
  end
  self.uncertain_err = err
  self.lookups, self.fails = 0, nil
  if self.deadline_ms then -- lookups may run to the task's deadline (create_until)
    self.create_deadline = nil
  end
  return self:send_lookup(acts)
end

local function is_status_error(perr)
  return type(perr) == "string" and perr:find("status", 1, true) ~= nil
end

function Machine:on_create(acts, res, now, wall)
  local P, t = self.provider, self.task
  local data, f = transport.read_result(P, res)
  if data ~= nil then
    local fields, perr = P.parse_task(data, t.endpoint)
    if fields then
      local says, sent = fields.external_task_id, t.external_task_id
      if says ~= nil and sent ~= nil and tostring(says) ~= tostring(sent) then
        -- About another task (an upstream that mixed two creates' answers): taken, this create
        -- would follow that task's id and show its result. Its own fate is looked up by the
        -- external id it was sent with, whose answer must echo it (task_of).
        return self:uncertain(acts, self:protocol("the create's answer is about external_task_id "
          .. tostring(says) .. ", not " .. tostring(sent), { uncertain = true, endpoint = t.endpoint }))
      end
      fields.external_task_id = says or sent
      if fields.sync then -- a result, not a task to follow: the request id names it
        fields.request_id = f.request_id
      end
      fields.id = fields.id or f.request_id -- a synchronous answer without an id of its own
      return self:accept(acts, fields, now)
    end
    return self:uncertain(acts, self:protocol("create succeeded but its answer is unreadable: " .. tostring(perr),
      { uncertain = true, endpoint = t.endpoint }))
  end
  if self:renew(f, acts) then
    return acts
  end
  local d = self:decide("POST", f, res, now, self:create_until(), wall)
  if d.uncertain then
    return self:uncertain(acts, self:error(f, d, { endpoint = t.endpoint, attempts = self.fails + 1 }))
  end
  if d.retry and self.call then -- provably never left the host (and the runner can send it again)
    self.fails = self.fails + 1
    self.state = "create_wait"
    acts[#acts + 1] = { type = "retry", attempt = self.fails, delay_ms = d.delay_ms, kind = d.kind, code = f.code,
      http_status = f.status, path = self.call.path }
    return self:wake(acts, now + d.delay_ms)
  end
  if d.kind == "rate_limited" and f.status then
    -- Refused: nothing was created. The slot limiter hears of it; the create goes again after
    -- at least 1 s where the runner queues refused creates and the deadline allows.
    local delay = math.max(d.delay_ms, 1000)
    acts[#acts + 1] = { type = "refused", slot_full = providers.slot_full(P, f), delay_ms = delay }
    if self.requeue_refused and (self:create_until() - now) > delay then
      self.state = "create_wait"
      self.refusals = (self.refusals or 0) + 1
      acts[#acts + 1] = { type = "retry", attempt = self.refusals, delay_ms = delay, kind = d.kind, code = f.code,
        http_status = f.status, path = self.call.path }
      return self:wake(acts, now + delay)
    end
  end
  if self.resent and d.kind == "validation" and f.status and t.external_task_id then
    -- A create sent again under the same external id (after lookups found nothing, or
    -- adopting) was refused: the provider refuses a duplicate, so the first one exists after
    -- all, whatever the lookups said. Never a failure: look it up again, the hold kept.
    local e, first = self:error(f, d), self.uncertain_err
    return self:uncertain(acts, errors.new { kind = first and first.kind or "protocol", provider = P.name,
      retryable = false, endpoint = t.endpoint, code = e.code, http_status = e.http_status,
      message = "uncertain: the create's answer was lost" .. (first and (" (" .. tostring(first.message) .. ")")
        or "") .. "; sent again under the same external_task_id " .. t.external_task_id .. " it was refused ("
        .. tostring(e.message) .. "), so the task exists, but lookups by external id have not found it yet" })
  end
  return self:finish(acts, self:error(f, d, { external_task_id = t.external_task_id, endpoint = t.endpoint,
    attempts = self.fails + 1 }), false)
end

--- What the status line of the create's answer alone says, before its body is read (a proxy
-- that must send its client's status first): nil when the task is made or may be (2xx, or a
-- failure after which it may exist: the body's answer() says which), else the error that
-- status means (the body may name a finer code; answer() decides the end).
---@param status integer the upstream's HTTP status
---@return kling.Error|nil
function Machine:create_status(status)
  if status >= 200 and status < 300 then
    return nil
  end
  local f = { status = status, sent = true, received = true }
  local d = self:decide("POST", f, f, 0, 0)
  if d.uncertain then
    return nil
  end
  return self:error(f, d)
end

-- A lookup's or a poll's answer as canonical task fields; or nil and the failure to decide
-- on; or nil, nil and the reason when the task is in a status this module does not know (an
-- error, never "keep polling"). The answer must be about this task: a lookup's (how =
-- "lookup") is the item that carries the external id looked up (a list whose items all name
-- others is "not found": an upstream that ignored the filter answered with its newest tasks,
-- another client's among them), a poll's the one whose id it asked. A poll's only item that
-- does not say is taken (a task queried by its id); a lookup's is not: one item of an
-- upstream that ignored the filter, naming no external id, handed a lost create another
-- account's task (reviews of stops 32 and 33). The official API echoes the external id in
-- task_info, and only it is looked up.
function Machine:task_of(res, how)
  local P = self.provider
  local data, f = transport.read_result(P, res)
  if data == nil then
    return nil, f
  end
  local items = type(data) == "table" and data[1] ~= nil and data or { data }
  local key, want = "id", self.task.id
  if how == "lookup" then
    key, want = "external_task_id", self.task.external_task_id
  end
  local fields, perr
  for _, item in ipairs(items) do
    fields, perr = P.parse_task(item, self.task.endpoint)
    local says = fields and fields[key]
    local lone = says == nil and #items == 1 and how ~= "lookup"
    if fields and (want == nil or lone or tostring(says) == tostring(want)) then
      return fields
    end
    if fields and #items == 1 then
      local other = "the answer is about " .. key .. " " .. tostring(says) .. ", not " .. tostring(want)
      if how == "lookup" then -- nothing under the id looked up
        return nil, { status = 404, message = other, sent = true, received = true }
      end
      return nil, { transport = "protocol", message = other, status = res.status, sent = true, received = true }
    end
  end
  if fields then -- a list, none of it this task's
    return nil, { status = 404, message = "no item of the answer is about " .. key .. " " .. tostring(want),
      sent = true, received = true }
  end
  if is_status_error(perr) then
    return nil, nil, perr
  end
  return nil, { transport = "protocol", message = perr, status = res.status, sent = true, received = true }
end

function Machine:on_lookup(acts, res, now, wall)
  local t = self.task
  local fields, f, unknown = self:task_of(res, "lookup")
  if fields then
    self.adopted = true
    return self:accept(acts, fields, now)
  end
  if unknown then
    return self:finish(acts, self:protocol(unknown), true)
  end
  if self:renew(f, acts) then
    return acts
  end
  local d = self:decide("GET", f, res, now, self:create_until(), wall)
  if d.kind == "not_found" then
    if self.adopt then -- resuming: nothing exists under this external id, create it
      -- (under the same id: a create sent before this lookup could see it is refused as a
      -- duplicate, which on_create takes for "it exists")
      self.adopt, self.resent = nil, true
      return self:send_create(acts)
    end
    self.lookups = self.lookups + 1
    if self.lookups < self.lookups_max then
      -- A create still being handled may not be visible yet: look again, later.
      self.state = "lookup_wait"
      return self:wake(acts, now + 1000 * math.floor(2 ^ (self.lookups - 1)))
    end
    if self.tracking then -- its create is not this machine's to send again
      return self:gone(acts, "the create's answer was lost and the provider has no such task: nothing is charged")
    end
    if not self.resent then
      -- Looked up and not found: one more create, under the same external id, so that the
      -- provider refuses it should the first appear after all.
      self.resent = true
      self.fails = nil
      return self:send_create(acts)
    end
    return self:finish(acts, self.uncertain_err, true)
  end
  -- Another lookup only when it fits before the create phase ends: its wake past that end held
  -- client:submit seconds beyond its call_budget (a 3 s budget took 9.5 s).
  local until_ms = self:create_until()
  if d.retryable and until_ms and now + d.delay_ms < until_ms then
    self.fails = self.fails + 1
    self.state = "lookup_wait"
    return self:wake(acts, now + d.delay_ms)
  end
  return self:finish(acts, self:error(f, d, { uncertain = (self.uncertain_err or self.was_uncertain) and true or nil,
    external_task_id = t.external_task_id }), self.uncertain_err ~= nil)
end

function Machine:on_poll(acts, res, now, wall)
  local fields, f, unknown = self:task_of(res)
  if fields then
    self.fails, self.misses = nil, nil
    self.state = "scheduled"
    return self:heard(acts, fields, now, false)
  end
  if unknown then
    return self:finish(acts, self:protocol(unknown), true)
  end
  self.state = "scheduled"
  if self:renew(f, acts) then
    self.state = "polling"
    return acts
  end
  local d = self:decide("GET", f, res, now, self.deadline_ms, wall)
  if d.kind == "not_found" then
    -- The provider gave this task's id: it made the task, which may run and be billed whatever
    -- a poll says (its replicas, a gateway's lag, a fault). So no count of 404s ends it: ended
    -- as gone and released, its row was created again (a batch's retry) and each copy billed.
    -- It is polled on, backing off, until it answers or its deadline ends it held (the
    -- deadline's rule: neither charged nor released by a guess); the misses are counted for
    -- that end's message.
    self.misses = self.misses + 1
    return self:wake(acts, self:clamp(self.sched:report(self.h, now)))
  end
  if d.retryable then
    self.fails = self.fails + 1
    self.poll_errors = (self.poll_errors or 0) + 1
    self.last_err = self:error(f, d)
    acts[#acts + 1] = { type = "retry", attempt = self.fails, delay_ms = d.delay_ms, kind = d.kind, code = f.code,
      http_status = f.status, path = self:last_request().path }
    return self:wake(acts, self:clamp(self.sched:defer(self.h, now, d.delay_ms)))
  end
  return self:finish(acts, self:error(f, d), true)
end

--- The transport result of the request last sent (res: the driver's result shape; wall_s: the
-- wall clock in s, which a Retry-After date is read against).
function Machine:answer(now, res, wall_s, acts)
  acts = acts or {}
  local s = self.state
  if s == "polling" then -- the answer of nearly every request
    return self:on_poll(acts, res, now, wall_s)
  elseif s == "creating" then
    return self:on_create(acts, res, now, wall_s)
  elseif s == "lookup" then
    return self:on_lookup(acts, res, now, wall_s)
  elseif s == "cancelling" then
    self.state = "scheduled"
    if self.h then -- a poll that came due meanwhile was held back: the scheduler has it again
      return self:wake(acts, self:clamp(self.sched:defer(self.h, now, math.max(0, (self.wake_at or now) - now))))
    end
    return self:wake(acts, self.wake_at or now)
  end
  return acts -- an answer that no longer matters (the task ended meanwhile)
end

-- ---- polling ------------------------------------------------------------------------------

function Machine:clamp(at)
  if self.deadline_ms and at > self.deadline_ms then
    return self.deadline_ms
  end
  return at
end

function Machine:schedule(acts, now)
  if self.tracking and self.h then -- the runner's handle (M.track): polled under it from now on
    self.state = "scheduled"
    local at = self.has_callback and self.sched:defer(self.h, now, self.silence_ms) or self.sched:report(self.h, now)
    return self:wake(acts, self:clamp(at))
  end
  local expect = self.expect_ms
  local window = not expect and self.learnt_ms and self.learnt_ms(self) -- {shortest, longest} its kind took
  self.h = self.sched:add(now, expect, self.deadline_ms)
  self.state = "scheduled"
  local at = window and self:expect_window(now, window) or self.sched:next_at(self.h)
  if self.has_callback then
    at = self.sched:defer(self.h, now, self.silence_ms)
  end
  return self:wake(acts, self:clamp(at))
end

--- Polls from now on with `sched` (a core.sched, shared or the task's own) until deadline_ms
-- (absolute, nil: the scheduler's max age). A task whose earlier wait ran out may be watched
-- again.
function Machine:watch(now, sched, deadline_ms)
  local acts = {}
  if self.state == "done" or (self.state == "expired" and not self.task.id) then
    return self:finish_again(acts) -- ended, or its create's fate is unknown: nothing to poll
  end
  if self.state == "created" and TERMINAL[self.task.status] then
    return self:finish(acts, nil, true) -- ended before it was watched: its hold ends now
  end
  if self.h and self.sched then
    self.sched:remove(self.h)
    self.h = nil
  end
  if sched ~= self.sched then -- a profile's shared scheduler is not copied into each task
    self.sched = sched
  end
  self.deadline_ms, self.watch_from, self.final_poll = deadline_ms, now, nil
  if self.state == "expired" then
    self.state, self.err = "created", nil
  end
  if self.state == "created" then
    if not self.created_ms then -- a task made elsewhere: its life is seen from now on only
      self.created_ms, self.joined = now, true
    end
    return self:schedule(acts, now)
  end
  return acts -- still creating: polling starts when the task exists
end

function Machine:finish_again(acts)
  acts[#acts + 1] = { type = "done", task = self.task, err = self.err }
  return acts
end

--- A wake-up asked for has come.
function Machine:timer(now, acts)
  acts = acts or {}
  local s = self.state
  if self.deadline_ms and now >= self.deadline_ms and s ~= "done" and s ~= "expired" then
    return self:deadline_passed(acts, now)
  end
  if s == "create_wait" then
    if self.slots then
      return self:want_slot(acts, true)
    end
    return self:send_create(acts)
  elseif s == "lookup_wait" and self.lookup_not_before and now < self.lookup_not_before then
    return self:wake(acts, self.lookup_not_before) -- a create still in flight elsewhere (M.track)
  elseif s == "lookup_wait" then
    return self:send_lookup(acts)
  elseif s == "scheduled" then
    return self:send_poll(acts, now)
  end
  return acts
end

function Machine:deadline_passed(acts, now)
  if self.state == "creating" then
    -- A create in flight: its answer must land first, its fate decides (exists or not).
    return self:wake(acts, now + 1000)
  end
  local t = self.task
  -- One last look before a timeout: the task may have ended since the last poll (a learnt
  -- window or a long back-off put the next one past the deadline; a tracker's poll leader that
  -- died and whose lock outlived the deadline). Only when no poll is in flight: one stalled at
  -- the deadline ends with the timeout (the runner drops it, the run ends on time); the last
  -- look's own answer comes back here. A tracker's machine (M.track) is made again at each
  -- wake-up: its runner keeps that the look was sent in the record (o.looked_last).
  if self.state == "polling" and self.final_poll then
    return acts
  end
  if t.id and self.state == "scheduled" and not self.final_poll then
    self.final_poll = true
    self.state, self.renewed = "polling", nil
    self.polls = (self.polls or 0) + 1
    acts[#acts + 1] = send("poll", "GET", self.provider.query_path(t.endpoint, t.id))
    return acts
  end
  local exists = t.id ~= nil or self.was_uncertain == true
  local err = errors.new { kind = "timeout", retryable = true, provider = self.provider.name, task = t,
    task_id = t.id, external_task_id = t.external_task_id,
    message = string.format("task %s did not finish within %g s (last status %s%s)%s",
      tostring(t.id or t.external_task_id), ((self.deadline_ms or now) - (self.watch_from or now))
      / 1000, tostring(t.status), self.last_err and ("; last error: " .. tostring(self.last_err)) or "",
      self.uncertain_err and "; its create's answer was lost and it was not found by external id" or ""
      .. ((self.misses or 0) > 0 and ("; the provider answered not found to its last " .. self.misses .. " polls,"
        .. " though it made the task: it may still be billed") or "")) }
  return self:finish(acts, err, exists)
end

--- The runner's own deadline passed (a run deadline, or a wait's timeout).
function Machine:deadline(now)
  return self:deadline_passed({}, now)
end

-- News of the task from a poll or a callback.
function Machine:heard(acts, fields, now, from_callback, keep_raw)
  local t = self.task
  local status = fields.status
  if status ~= t.status then -- (most polls hear the status they knew)
    local rank, rank0 = RANK[status], RANK[t.status]
    if rank and rank0 and rank < rank0 then
      fields = nil -- out of order: older news than what is known
    end
  end
  if fields then
    self:update(fields, keep_raw)
    if self.news_actions then
      acts[#acts + 1] = { type = "news", task = t }
    end
  end
  if TERMINAL[t.status] then
    return self:finish(acts, nil, true)
  end
  if not self.h then
    return acts
  end
  if from_callback and self.state == "polling" then
    return acts -- the poll in flight reschedules when it answers
  end
  local progress, eta -- read only where given (most answers give neither)
  if fields then
    progress, eta = fields.progress, fields.eta
  end
  if progress ~= nil then
    progress = tonumber(progress)
    if progress and (progress < 0 or progress > 100) then
      progress = nil
    end
  end
  if eta ~= nil then
    eta = tonumber(eta)
    eta = eta and eta >= 0 and validate.seconds_ms(eta) or nil
    if eta and self.created_ms then
      self.expect_ms = now + eta - self.created_ms -- the provider's word, for a runner's ETA
    end
  end
  local at = self.sched:report(self.h, now, progress, eta)
  if self.has_callback and (from_callback or self.heard_callback) then
    -- Callbacks are arriving: the next poll is only a fallback after a silence.
    at = self.sched:defer(self.h, now, self.silence_ms)
  end
  return self:wake(acts, self:clamp(at))
end

--- A provider's callback, parsed (kling.webhook). Duplicates and stale ones change nothing;
-- one that beats the create's answer (or the lookup) means the task exists.
function Machine:callback(now, fields)
  local acts = {}
  self.heard_callback = true
  local s = self.state
  if s == "done" or s == "expired" then
    return acts
  end
  if s == "creating" or s == "lookup" or s == "lookup_wait" then
    acts[#acts + 1] = { type = "abandon" } -- the request in flight no longer matters
    return self:accept(acts, fields, now)
  end
  if s == "created" or s == "scheduled" or s == "polling" then
    return self:heard(acts, fields, now, true)
  end
  return acts
end

-- Tells the scheduler the task should end within window ({shortest, longest} ms from its
-- creation: what tasks of its kind took); core.sched polls it from the window's start at
-- small gaps. Returns the next poll time.
function Machine:expect_window(now, window)
  local age = now - (self.created_ms or now)
  local lo, hi = math.floor(math.max(0, window[1] - age)), math.ceil(math.max(0, window[2] - age))
  local stop = self:wait_end()
  if not (lo <= hi and hi <= WINDOW_MAX_MS) or (stop and now + lo > stop) then
    -- A learnt window is evidence, not a promise: one core.sched refuses, or one that starts
    -- after this wait's deadline (which would see no poll before it), leaves the back-off.
    return self.sched:next_at(self.h)
  end
  return self.sched:expect(self.h, now, lo, hi) or self.sched:next_at(self.h)
end

-- When the wait ends: the task's deadline, or the earlier end of the runner's wait (the
-- profile's wait_until_ms, set while a wait with a timeout runs: shared, no field per task).
function Machine:wait_end()
  local d, w = self.deadline_ms, self.wait_until_ms
  if w and (not d or w < d) then
    return w
  end
  return d
end

--- A runner's wait that ends earlier began (wait_until_ms): a task whose next poll is a
-- learnt window's, starting after the wait's end, goes back to the back-off, or the wait
-- would see no poll of a task that may end in seconds.
function Machine:wait_until(now)
  local window = self.state == "scheduled" and self.h and not self.expect_ms and not self.has_callback
    and not self.tracking and self.learnt_ms and self.learnt_ms(self)
  local stop = self:wait_end()
  if not window or not stop or (self.created_ms or now) + window[1] <= stop
    or (self.sched:next_at(self.h) or math.huge) <= stop then
    return {}
  end
  self.sched:remove(self.h)
  self.h = self.sched:add(now, nil, self.deadline_ms)
  return self:wake({}, self:clamp(self.sched:next_at(self.h)))
end

--- The runner learnt how long tasks of this kind take (window = {shortest, longest} ms from
-- the creation): a task without an estimate of its own, polled without callbacks, is polled
-- through that window from now on; one whose poll is in flight takes it when the poll
-- answers (else it would back off to its end, missing the window for good). One already past
-- the window's start keeps backing off unless `late` (the runner's tasks wait for slots: the
-- rest of a first wave has likely ended with its first tasks), since a batch's first window
-- comes from its shortest tasks.
function Machine:learnt(now, window, late)
  local s = self.state
  if (s ~= "scheduled" and s ~= "polling") or self.expect_ms or self.has_callback or not self.created_ms then
    return {}
  end
  if now - self.created_ms >= window[1] and not late then
    return {}
  end
  if s == "polling" then
    self:expect_window(now, window) -- core.sched applies it at the poll's report
    return {}
  end
  return self:wake({}, self:clamp(self:expect_window(now, window)))
end

--- News from a query the caller made itself (task:refresh).
function Machine:news(now, fields)
  if self.state == "done" then
    return {}
  end
  return self:heard({}, fields, now, false, true)
end

--- The caller gives the task up. Before the create is sent it ends at once (nothing held);
-- a create in flight is cancelled once it answers; an existing task is cancelled at the
-- provider where it can be (then polled to its end), else the call is refused.
function Machine:cancel(_, acts)
  acts = acts or {}
  local s, t, P = self.state, self.task, self.provider
  if s == "done" or s == "expired" then
    return acts
  end
  if s == "new" or s == "reserving" or s == "slot_wait" or s == "create_wait"
    or (s == "lookup_wait" and self.adopt) then
    t.status = "cancelled"
    local err = errors.new { kind = "cancelled", provider = P.name,
      message = (t.external_task_id and ("task " .. t.external_task_id) or "a task") -- (no external id: EvoLink's)
        .. " cancelled before it was created" }
    return self:finish(acts, err, false)
  end
  if s == "creating" or s == "lookup" or s == "lookup_wait" then
    self.cancel_asked = true
    return acts
  end
  if not (P.capabilities.cancel and P.cancel_path) then
    acts[#acts + 1] = { type = "refused_cancel", err = errors.unsupported(P.name, "cancel") }
    return acts
  end
  self.cancel_asked = nil
  self.state = "cancelling"
  acts[#acts + 1] = send("cancel", "POST", P.cancel_path(t.id, t.endpoint))
  return acts
end

M.Machine = Machine
return M
