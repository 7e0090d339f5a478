--- Many tasks in one process: the engine behind submit_many, wait_all and wait_any.
-- kling.engine: many tasks in one process, none blocking another. Creates and polls run
-- concurrently over the libcurl multi driver (start/wait); the C scheduler decides when each
-- task is polled (near its expected finish when an estimate or progress is known, back-off
-- otherwise, deadlines always); the C slot limiter keeps tasks waiting here, per model,
-- while the provider's parallel slots are full, and follows 1303/429 (AIMD). Callbacks
-- delivered with deliver() advance a task, which is then polled only after a silence.
--
-- A task's life (rec.state): slot (waiting for a slot) -> delay (waiting out a refusal) ->
-- ready -> create (POST in flight) -> sched (queued in the scheduler) <-> pready (due) <->
-- poll (GET in flight) -> done. An uncertain create goes lwait/lready/lookup (GET by
-- external id) instead of ever being sent again blindly.
-- @module kling.engine
local core = require "kling.core"
local errors = require "kling.errors"
local json = require "kling.json"
local task_mod = require "kling.task"
local effects = require "kling.lifecycle.effects"
local local_file = require "kling.local_file"
local timers = require "kling.engine.timers"
local args = require "kling.engine.args"
local queue = require "kling.engine.queue"
local durations_file = require "kling.engine.durations_file"
local validate = require "kling.validate"

local Engine = {}
Engine.__index = Engine
Engine.__name = "kling.engine"
require("kling.engine.limits")(Engine)
require("kling.engine.answers")(Engine)
require("kling.engine.loop")(Engine)
require("kling.engine.wait")(Engine)
require("kling.engine.deliver")(Engine)
require("kling.engine.learn")(Engine)

local M = {}

-- States in which a task's create is not settled yet (submit_many waits these out; a task
-- refused for lack of slots waits in state "slot" instead).
local CREATING = { ready = true, delay = true, create = true, lwait = true, lready = true, lookup = true }
local DEADLINE = 0 -- timer token of a task's deadline (kling.engine.loop)

local ms, whole = args.ms, args.whole

local function limit_value(fn, name, v)
  return whole(fn, name, v, nil, 1000000)
end

-- The driver's clock (driver:now_ms(), ...) when it has one, so that a test driver's fake
-- time runs the engine too; else kling.core's.
-- The learnt-durations file: opts.learn_file (a path, or false for none), else the default.
local function learn_file(opts)
  local f = opts.learn_file
  if f == false or opts.learn == false then
    return nil
  end
  if f ~= nil and type(f) ~= "string" then
    errors.misuse("engine.new", "learn_file must be a path or false")
  end
  return f or durations_file.default_path()
end

local function clock(driver, name, default)
  if driver and type(driver[name]) == "function" then
    local fn = driver[name]
    return function(...)
      return fn(driver, ...)
    end
  end
  return default
end

-- The options engine.new takes (see M.new).
local NEW_OPTIONS = {}
for _, k in ipairs { "adopt", "backoff", "callback_silence", "deadline", "estimate", "http", "jitter", "learn",
  "learn_file", "lookups", "max_interval", "max_parallel", "max_requests", "min_interval", "now_ms", "on_create",
  "on_created", "seed", "sleep_ms", "slots", "timeout", "wall_s", "webhook_secret", "webhook_tolerance" } do
  NEW_OPTIONS[k] = true
end

--- Makes an engine for a client (used through client:submit_many, wait_all, wait_any).
-- engine.new(client, opts): opts (times in seconds) =
--   max_requests   HTTP requests in flight at once (64: on loopback more only costs memory)
--   max_parallel   provider slots: a number for every model, or {[model] = n}; unset: unlimited
--                  until the provider refuses a create with 1303/429, then learnt
--   slots          {decrease, recover_after, recover_ms, cooldown_ms} for the AIMD limiter
--   min_interval, max_interval, jitter, backoff   the poll scheduler (client's poll_min/poll_max)
--   timeout        each task's deadline from its submission (client's wait_timeout)
--   deadline       the run's deadline from now (none)
--   callback_silence   a task with callback_url is polled after this long without news (60)
--   webhook_secret, webhook_tolerance   verify callbacks (Standard Webhooks), +-300 s
--   learn          without an estimate, expect a task to take as long as the tasks of its
--                  kind seen to finish, when they agree (kling.engine.learn) (true)
--   learn_file     where learnt durations are kept across runs (kling.engine.durations_file:
--                  $XDG_CACHE_HOME/kling/durations.json, else ~/.cache/...); false: nowhere
--   lookups        lookups by external id that find nothing before an uncertain create is
--                  sent again under the same external id (3)
--   on_create(task)    called just before a create is sent (task.external_task_id is set)
--   on_created(task)   called when the provider has the task (task.id is set)
--   http, now_ms, sleep_ms, wall_s, seed   the multi handle (driver.http) and the clocks (the
--                  driver's, else kling.core's), for tests
--   adopt, estimate    accepted and not used here: they are options of each submit
-- Any other option name raises, naming the closest known one; a bad value raises too.
---@param client kling.Client the client whose provider, driver and ctx the engine uses
---@param opts? table the options above
---@return table engine
function M.new(client, opts)
  errors.check_arg("engine.new", 1, client, "table")
  opts = opts or {}
  errors.check_arg("engine.new", 2, opts, "table")
  validate.options("engine.new", opts, NEW_OPTIONS)
  local driver = client.driver
  local http = opts.http or (driver and driver.http)
  if http == nil then
    errors.misuse("engine.new", "the client's driver has no libcurl multi handle (driver.http): give opts.http")
  end
  local min_ms = ms("engine.new", "min_interval", opts.min_interval, math.floor(client.poll_min * 1000))
  local max_ms = ms("engine.new", "max_interval", opts.max_interval, math.max(min_ms,
    math.floor(client.poll_max * 1000)))
  if max_ms < min_ms then
    errors.misuse("engine.new", "max_interval must be at least min_interval")
  end
  local so = opts.slots or {}
  local self = setmetatable({
    client = client, provider = client.provider, ctx = client.ctx, base_url = client.base_url, http = http,
    now = opts.now_ms or clock(driver, "now_ms", core.now_ms), sleep = opts.sleep_ms or clock(driver, "sleep_ms",
      core.sleep_ms), wall_s = opts.wall_s or clock(driver, "wall_s", core.wall_s),
    sched = core.sched { min_interval_ms = min_ms, max_interval_ms = max_ms, jitter = opts.jitter,
      backoff = opts.backoff, seed = opts.seed },
    timers = timers.new(),
    limiters = {}, model_limits = {}, learnt_limit = {}, built_ms = {},
    slot_opts = { decrease = so.decrease, recover_after = so.recover_after,
      recover_ms = so.recover_ms, cooldown_ms = so.cooldown_ms },
    -- recs: task -> its record while it runs, the number of polls it took once it has ended
    -- (weak keys). by_id and by_ext index the tasks a callback may name (with a callback_url).
    recs = setmetatable({}, { __mode = "k" }), by_n = {}, by_h = {}, by_id = {}, by_ext = {},
    -- one request table and one header table, reused: start() copies them into C at once
    req = { method = "GET", headers = {}, timeout_ms = client.ctx.timeout_ms,
      connect_timeout_ms = client.ctx.connect_timeout_ms },
    inflight = {}, n_inflight = 0, bounced = {}, q_poll = queue.new(), q_create = queue.new(), ended = {},
    next_n = 0, active_n = 0, creating_n = 0, dirty = false, moot_timers = 0,
    max_requests = whole("engine.new", "max_requests", opts.max_requests, 64, 100000),
    task_timeout_ms = ms("engine.new", "timeout", opts.timeout, math.floor(client.wait_timeout * 1000)),
    silence_ms = ms("engine.new", "callback_silence", opts.callback_silence, 60000),
    lookups = whole("engine.new", "lookups", opts.lookups, 3, 100),
    learn = opts.learn ~= false, learned = false, learn_file = learn_file(opts), kinds = {},
    kind_prefix = client.provider.name .. "|" .. (tostring(client.base_url):match("^%a+://([^/:]+)") or "") .. "|",
    webhook_secret = opts.webhook_secret, webhook_tolerance = opts.webhook_tolerance or 300,
    hook_create = opts.on_create, hook_created = opts.on_created,
    -- counters (stats())
    polls_sent = 0, creates_sent = 0, lookups_sent = 0, created_n = 0, adopted_n = 0, uncertain_n = 0,
    rate_limited = 0, poll_errors = 0, callbacks_n = 0, finished_n = 0, finished_ms = 0,
  }, Engine)
  local mp = opts.max_parallel
  if type(mp) == "table" then
    for model, n in pairs(mp) do
      self.model_limits[model] = limit_value("engine.new", "max_parallel[" .. tostring(model) .. "]", n)
    end
  elseif mp ~= nil then
    self.default_limit = limit_value("engine.new", "max_parallel", mp)
  end
  if opts.deadline ~= nil then
    self:set_deadline(opts.deadline)
  end
  return self
end

function Engine:__tostring()
  return string.format("kling.engine(%s, %d active, %d requests in flight)", self.provider.name, self.active_n,
    self.n_inflight)
end

-- ---- bookkeeping -------------------------------------------------------------------------

function Engine:set_state(rec, s)
  if CREATING[rec.state] then
    self.creating_n = self.creating_n - 1
  end
  if CREATING[s] then
    self.creating_n = self.creating_n + 1
  end
  rec.state = s
end

function Engine:set_phase(rec, p)
  if rec.phase ~= p then
    if rec.watch then
      rec.watch:move(rec, rec.phase, p)
    end
    rec.phase = p
    self.dirty = true
  end
end

function Engine:timer(rec, at)
  rec.tok = rec.tok + 1
  self.timers:push(at, rec.n, rec.tok)
end

function Engine:timeout_error(rec, why)
  local t = rec.task
  return errors.new { kind = "timeout", retryable = true, provider = self.provider.name, task_id = t.id,
    external_task_id = t.external_task_id,
    message = string.format("task %s %s (last status %s)%s", tostring(t.id or t.external_task_id or rec.n),
      why or "did not finish by its deadline", t.status,
      rec.uncertain_err and "; its create's answer was lost and it was not found by external id" or "") }
end

-- Ends a task: succeeded when err is nil and the provider said so, else failed with err.
function Engine:finish(rec, err, now)
  if rec.state == "done" then
    return
  end
  if rec.xfer then
    self.http:cancel(rec.xfer)
    self.inflight[rec.xfer] = nil
    self.n_inflight = self.n_inflight - 1
    rec.xfer = nil
  end
  if rec.h then
    self.sched:remove(rec.h)
    self.by_h[rec.h] = nil
    rec.h = nil
  end
  local t = rec.task
  local success = err == nil and t.status == "succeeded"
  if not success and err == nil then
    err = t:failure()
  end
  self:release_slot(rec, now, success)
  if t.ledger_key and not t.accounted and not t.id and not rec.uncertain_err and not (err and err.uncertain) then
    -- No task was made (refused, never sent, or ended before its create): nothing is owed.
    -- A task that exists, or may, keeps its reservation until it is seen ended.
    effects.account(self.client, { type = "release", key = t.ledger_key, task = t })
  end
  self:set_state(rec, "done")
  t.error = err
  if success and rec.created_ms then
    local took = now - rec.created_ms
    self.finished_n = self.finished_n + 1
    self.finished_ms = self.finished_ms + took
    if rec.kind and self.learn then
      self:observe(rec.kind, took, now, t)
    end
  end
  self:set_phase(rec, success and "succeeded" or "failed")
  self.by_n[rec.n] = nil
  -- The record is dropped: a finished task is known by its own fields (error, status) and
  -- the polls it took; the caller's references keep the task alive, the engine holds nothing
  -- of it (its timers name records by number and skip those no longer in by_n).
  self.recs[t] = rec.polls
  self.moot_timers = self.moot_timers + 1 -- its deadline at least (kling.engine.loop prune_timers)
  if rec.callback then
    if t.id and self.by_id[t.id] == rec then
      self.by_id[t.id] = nil
    end
    local ext = t.external_task_id
    if ext and self.by_ext[ext] == rec then
      self.by_ext[ext] = nil
    end
  end
  rec.c = nil
  self.active_n = self.active_n - 1
  if rec.watch then
    self.ended[#self.ended + 1] = rec
  end
end

-- ---- adding tasks ------------------------------------------------------------------------

function Engine:new_rec(t, now, topts)
  local n = self.next_n + 1
  self.next_n = n
  local timeout_ms = ms("engine:submit", "timeout", topts.timeout, self.task_timeout_ms)
  -- Kept small (10,000 of these must fit in a few MiB): the fields every task has are made
  -- here, so the table is sized once; c holds the create's payload until it is accepted.
  local rec = { n = n, task = t, phase = "waiting", state = "new", fails = 0, tok = 0, deadline = now + timeout_ms,
    key = false, kind = false, c = false, h = false, created_ms = false, polls = 0 }
  self.recs[t] = rec
  self.by_n[n] = rec
  self.active_n = self.active_n + 1
  self.dirty = true
  self.timers:push(rec.deadline, n, DEADLINE)
  return rec
end

local function without(req, key)
  local copy = {}
  for k, v in pairs(req) do
    if k ~= key then
      copy[k] = v
    end
  end
  return copy
end

-- submit(req, {estimate =, timeout =, adopt =}) -> task. Never blocks: the create goes out
-- from step()/wait(). req.estimate (seconds, not sent to the provider) or opts.estimate is
-- the expected duration, which lets the scheduler poll about once near the end. adopt: look
-- the task up by req.external_task_id first, create it only if the provider has none
-- (resuming a batch). A request that fails validation gives a task that has already
-- failed, with `error` set.
function Engine:submit(req, topts)
  errors.check_arg("engine:submit", 1, req, "table")
  topts = topts or {}
  errors.check_arg("engine:submit", 2, topts, "table")
  local now = self.now()
  local provider = self.provider
  local estimate = topts.estimate
  if req.estimate ~= nil then
    estimate = req.estimate
    req = without(req, "estimate")
  end
  local t = task_mod.new(self.client, { status = "pending", request = req })
  local rec = self:new_rec(t, now, topts)
  if estimate ~= nil and (type(estimate) ~= "number" or not (estimate > 0 and estimate <= 2147483)) then
    return self:fail_now(rec, errors.validation("estimate", "must be a positive number of seconds", provider.name), now)
  end
  rec.expect_ms = estimate and math.floor(estimate * 1000)
  local endpoint, files = self.client:prepare(req) -- files: what its local files became (kling.local_file)
  if not endpoint then
    return self:fail_now(rec, files, now)
  end
  if req.external_task_id == nil and self.client.auto_external_id and provider.capabilities.external_ids then
    req = without(req)
    req.external_task_id = "kl-" .. core.random_hex(12)
    t.request = req
  end
  if topts.adopt and req.external_task_id == nil then
    return self:fail_now(rec, errors.validation("external_task_id", "is required to adopt (look up) a task",
      provider.name), now)
  end
  local call = provider.build(local_file.apply(req, files), endpoint)
  local body = call.body
  if body ~= nil and type(body) ~= "string" then
    local eerr
    body, eerr = json.encode(body)
    if not body then
      return self:fail_now(rec, errors.validation("request", "cannot be encoded as JSON: " .. tostring(eerr),
        provider.name), now)
    end
  end
  if self.client.ledger then
    -- The client's budget: the estimate is held before anything is sent (kling.money.hold).
    local key = req.external_task_id or ("local-" .. core.random_hex(12))
    local quote, berr = effects.reserve(self.client, { key = key, request = req })
    if not quote then
      return self:fail_now(rec, berr, now)
    end
    t.ledger_key, t.quote = key, quote
  end
  rec.c = { method = call.method, path = call.path, body = body }
  rec.callback = req.callback_url ~= nil or nil
  rec.key = req.model or provider.default_model or "default"
  -- One string per kind, shared: a long string made per task would cost 10,000 copies.
  local kind = table.concat({ self.kind_prefix .. rec.key, endpoint, tostring(req.mode), tostring(req.duration),
    tostring(req.sound) }, "|")
  rec.kind = self.kinds[kind] or kind
  self.kinds[kind] = rec.kind
  rec.adopt = topts.adopt and true or nil
  t.endpoint, t.external_task_id = endpoint, req.external_task_id
  if rec.callback and req.external_task_id then
    self.by_ext[req.external_task_id] = rec
  end
  if not self.limiters[rec.key] then
    local c = self:configured_limit(rec.key)
    if c then
      self:build_limiter(rec.key, c, now)
    end
  end
  self:want_slot(rec, now)
  return t
end

function Engine:fail_now(rec, err, now)
  rec.task.status = "failed"
  self:finish(rec, err, now)
  return rec.task
end

-- track(task, {estimate =, timeout =}) -> task: polls a task created elsewhere (it has an
-- id and an endpoint). It holds no slot of the engine's limiter.
function Engine:track(t, topts)
  errors.check_arg("engine:track", 1, t, "table")
  topts = topts or {}
  if type(t.id) ~= "string" or type(t.endpoint) ~= "string" then
    errors.misuse("engine:track", "a task with an id and an endpoint expected (from client:submit or get_task)")
  end
  if type(self.recs[t]) == "table" then -- still running here
    return t
  end
  local now = self.now()
  local rec = self:new_rec(t, now, topts)
  rec.key = "tracked"
  rec.callback = type(t.request) == "table" and t.request.callback_url ~= nil or nil
  rec.expect_ms = topts.estimate and ms("engine:track", "estimate", topts.estimate)
  local fields = {}
  for k, v in pairs(t) do
    fields[k] = v
  end
  fields.client = nil
  self:accept(rec, fields, now)
  self.created_n = self.created_n - 1
  return t
end

-- ---- inspection --------------------------------------------------------------------------

function Engine:stats()
  local live, queued, in_flight, bytes = self.sched:count()
  local limits = {}
  for key, lim in pairs(self.limiters) do
    local eff, conf = lim:limit()
    limits[key] = { effective = eff, configured = conf, in_use = lim:in_use(), waiting = lim:queued() }
  end
  return {
    active = self.active_n, creating = self.creating_n, requests_in_flight = self.n_inflight,
    polls = self.polls_sent, creates = self.creates_sent, lookups = self.lookups_sent, created = self.created_n,
    adopted = self.adopted_n, uncertain = self.uncertain_n, rate_limited = self.rate_limited,
    poll_errors = self.poll_errors, callbacks = self.callbacks_n,
    scheduler = { live = live, queued = queued, in_flight = in_flight, bytes = bytes }, limits = limits,
  }
end

-- The status queries sent for a task so far (lookups by external id not counted).
function Engine:polls_of(t)
  local rec = self.recs[t]
  if type(rec) == "table" then
    return rec.polls
  end
  return rec
end

M.Engine = Engine
return M
