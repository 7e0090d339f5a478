--- Many tasks in one process: the engine behind submit_many, wait_all and wait_any.
-- kling.engine: many tasks in one process, none blocking another. Each task's life is a
-- lifecycle machine (kling.lifecycle.machine, profile "engine": uncertain creates looked up,
-- refused creates queued again, adoption, callbacks, cancel, deadlines); the engine is a
-- runner of those machines and decides nothing of a task's life itself (kling.engine.run).
-- Creates and polls run concurrently over the client's driver's asynchronous seam
-- (driver:start/wait/cancel, kling.driver.multi: libcurl multi in plain Lua; inside nginx light
-- threads over cosockets, kling.resty.multi, in a handler or a timer); the C scheduler
-- decides when each task is polled (near its expected finish when an estimate or progress is
-- known, back-off otherwise, deadlines always); the C slot limiter keeps tasks waiting here,
-- per model, while the provider's parallel slots are full, and follows 1303/429 (AIMD).
-- Callbacks delivered with deliver() advance a task, which is then polled only after a silence.
-- @module kling.engine
local core = require "kling.core"
local errors = require "kling.errors"
local lifecycle = require "kling.lifecycle.machine"
local local_file = require "kling.local_file"
local task_mod = require "kling.task"
local timers = require "kling.engine.timers"
local args = require "kling.engine.args"
local queue = require "kling.engine.queue"
local multi = require "kling.driver.multi"
local durations_file = require "kling.engine.durations_file"
local learnt = require "kling.lifecycle.learnt"
local collector = require "kling.engine.collector"
local validate = require "kling.validate"
local tables = require "kling.tables"

local Engine = {}
Engine.__index = Engine
Engine.__name = "kling.engine"
require("kling.engine.run")(Engine)
require("kling.engine.limits")(Engine)
require("kling.engine.loop")(Engine)
require("kling.engine.wait")(Engine)
require("kling.engine.deliver")(Engine)
require("kling.engine.learn")(Engine)

local M = {}

-- The most provider slots a model may be given (max_parallel, set_limit, kling run --parallel).
M.MAX_PARALLEL = 1000000

local DEADLINE = Engine.DEADLINE

local ms, whole = args.ms, args.whole

local function limit_value(fn, name, v)
  return whole(fn, name, v, nil, M.MAX_PARALLEL)
end

-- Why a learn_file path cannot be given with a driver inside an event loop (learn_file and
-- options_problem say it alike).
local EVENT_LOOP_FILE = "the driver runs inside an event loop (nginx), where the file's reads and writes would "
  .. "block it; durations are learnt in memory there (learn_file = false)"

--- The learnt-durations file of an engine's options: opts.learn_file (a path, or false for
-- none), else the default. Also the blocking runner's (kling.runner.blocking), from the
-- client's engine options. None on a driver inside an event loop (nginx): reading and writing
-- the file would block every request of the worker, so durations are learnt in memory only there.
---@param opts table the engine's options (learn, learn_file)
---@param driver table|nil the client's driver
---@return string|nil path
function M.learn_file(opts, driver)
  local f = opts.learn_file
  if f == false or opts.learn == false then
    return nil
  end
  if f ~= nil and type(f) ~= "string" then
    errors.misuse("engine.new", "learn_file must be a path or false")
  end
  if type(driver) == "table" and driver.event_loop then
    if f ~= nil then
      errors.misuse("engine.new", "learn_file: " .. EVENT_LOOP_FILE)
    end
    return nil
  end
  return f or durations_file.default_path()
end

-- The driver's clock (driver:now_ms(), ...) when it has one, so that a test driver's fake
-- time runs the engine too; else kling.core's.
local function clock(driver, name, default)
  if driver and type(driver[name]) == "function" then
    local fn = driver[name]
    return function(...)
      return fn(driver, ...)
    end
  end
  return default
end

-- The driver the engine runs on: the client's, which must have the asynchronous seam
-- (start/wait/cancel), or opts.http (a libcurl-style multi handle, for tests) under one.
local function seam(driver, http)
  if http ~= nil then
    return multi.install({ http = http })
  end
  if type(driver) ~= "table" or type(driver.start) ~= "function" or type(driver.wait) ~= "function"
    or type(driver.cancel) ~= "function" then
    errors.misuse("engine.new", "the client's driver has no asynchronous seam (start, wait, cancel: "
      .. "kling.driver.multi): give a driver that has one, or opts.http")
  end
  return driver
end

-- The options engine.new takes (see M.new).
local NEW_OPTIONS = {}
for _, k in ipairs { "adopt", "backoff", "callback_silence", "callbacks", "deadline", "estimate", "http", "jitter",
  "learn", "learn_file", "lookups", "max_interval", "max_parallel", "max_requests", "min_interval", "now_ms",
  "on_create", "on_created", "seed", "sleep_ms", "slots", "timeout", "wall_s", "webhook_secret",
  "webhook_tolerance", "insecure_callbacks" } do
  NEW_OPTIONS[k] = true
end
M.NEW_OPTIONS = NEW_OPTIONS -- kling.new checks its `engine` option's names with them

local MAX_REQUESTS, MAX_LOOKUPS = 100000, 100
local TIMES = { "callback_silence", "estimate", "max_interval", "min_interval", "timeout" }
local FUNCTIONS = { "now_ms", "on_create", "on_created", "sleep_ms", "wall_s" }

--- Why one of engine.new's option values cannot be used: the option's name and the problem,
-- or nil when each can (the names are validate.options' concern). engine.new raises with it;
-- kling.new checks its `engine` option with it, so that a bad value is refused when the client
-- is made, never at the first submit_many (nor, for some, at the first create or callback).
-- The scheduler's and the slots' own numbers are checked by the C core that takes them.
---@param opts table engine.new's options
---@param driver? table the client's driver (a learn_file path is refused on one inside an event loop)
---@return string|nil name
---@return string|nil problem
function M.options_problem(opts, driver)
  for _, k in ipairs(TIMES) do
    local problem = opts[k] ~= nil and args.ms_problem(opts[k])
    if problem then
      return k, problem
    end
  end
  local problem = opts.deadline ~= nil and args.ms_problem(opts.deadline, true)
  if problem then
    return "deadline", problem
  end
  for k, max in pairs { max_requests = MAX_REQUESTS, lookups = MAX_LOOKUPS } do
    problem = opts[k] ~= nil and args.whole_problem(opts[k], max)
    if problem then
      return k, problem
    end
  end
  local mp = opts.max_parallel
  if type(mp) == "table" then
    for model, n in pairs(mp) do
      problem = args.whole_problem(n, M.MAX_PARALLEL)
      if problem then
        return "max_parallel[" .. tostring(model) .. "]", problem
      end
    end
  elseif mp ~= nil then
    problem = args.whole_problem(mp, M.MAX_PARALLEL)
    if problem then
      return "max_parallel", problem .. " (or a table of them by model)"
    end
  end
  for _, k in ipairs { "callbacks", "insecure_callbacks" } do
    if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
      return k, args.FLAG_PROBLEM
    end
  end
  for _, k in ipairs(FUNCTIONS) do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then
      return k, "must be a function (got " .. validate.type_of(opts[k]) .. ")"
    end
  end
  if opts.learn_file ~= nil and opts.learn_file ~= false and type(opts.learn_file) ~= "string" then
    return "learn_file", "must be a path or false"
  end
  if type(opts.learn_file) == "string" and opts.learn ~= false and type(driver) == "table" and driver.event_loop then
    return "learn_file", EVENT_LOOP_FILE
  end
  if opts.webhook_secret ~= nil then
    problem = require("kling.webhook").secret_problem(opts.webhook_secret)
    if problem then
      return "webhook_secret", problem
    end
  end
  local tol = opts.webhook_tolerance
  if tol ~= nil and not (validate.is_whole(tol) and tol >= 0 and tol <= 2147483647) then
    return "webhook_tolerance", "must be a whole number of seconds from 0 (got " .. validate.got(tol) .. ")"
  end
  local ok, err
  for _, k in ipairs { "jitter", "backoff", "seed" } do
    if opts[k] ~= nil then
      ok, err = pcall(core.sched, { [k] = opts[k] })
      if not ok then
        return k, tostring(err)
      end
    end
  end
  local so = opts.slots
  if so ~= nil then
    if type(so) ~= "table" then
      return "slots", "must be a table {decrease, recover_after, recover_ms, cooldown_ms} (got "
        .. validate.type_of(so) .. ")"
    end
    ok, err = pcall(core.slots, { limit = 1, decrease = so.decrease, recover_after = so.recover_after,
      recover_ms = so.recover_ms, cooldown_ms = so.cooldown_ms })
    if not ok then
      return "slots", tostring(err)
    end
  end
  return nil
end

-- Lookups of an uncertain create run within the task's deadline: the create phase has no
-- budget of its own here.
local NO_CREATE_BUDGET_MS = 2 ^ 53

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
--   callbacks      false: nothing delivers callbacks to this engine (kling run has no intake):
--                  a task with callback_url is polled as any other (true)
--   webhook_secret, webhook_tolerance   verify callbacks (Standard Webhooks), +-300 s; without
--                  a secret deliver() refuses every callback unless insecure_callbacks = true
--                  (takes them unverified: a forged end would release a hold the provider bills)
--   learn          without an estimate, expect a task to take as long as the tasks of its
--                  kind seen to finish, when they agree (kling.engine.learn) (true)
--   learn_file     where learnt durations are kept across runs (kling.engine.durations_file:
--                  $XDG_CACHE_HOME/kling/durations.json, else ~/.cache/...); false: nowhere.
--                  Inside nginx (a driver with event_loop set) nowhere, and a path is refused
--   lookups        lookups by external id that find nothing before an uncertain create is
--                  sent again under the same external id (3)
--   on_create(task)    called just before a create is sent (task.external_task_id is set)
--   on_created(task)   called when the provider has the task (task.id is set)
--   http, now_ms, sleep_ms, wall_s, seed   a libcurl-style multi handle in place of the
--                  driver's seam, and the clocks (the driver's, else kling.core's), for tests
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
  local bad, problem = M.options_problem(opts)
  if bad then
    errors.misuse("engine.new", bad .. " " .. problem)
  end
  local driver = client.driver
  local io = seam(driver, opts.http)
  local min_ms = ms("engine.new", "min_interval", opts.min_interval, validate.seconds_ms(client.poll_min))
  local max_ms = ms("engine.new", "max_interval", opts.max_interval, math.max(min_ms,
    validate.seconds_ms(client.poll_max)))
  if max_ms < min_ms then
    errors.misuse("engine.new", "max_interval must be at least min_interval")
  end
  local so = opts.slots or {}
  local ctx = client.ctx
  local self = setmetatable({
    client = client, provider = client.provider, ctx = ctx, base_url = client.base_url, driver = io,
    now = opts.now_ms or clock(driver, "now_ms", core.now_ms), sleep = opts.sleep_ms or clock(driver, "sleep_ms",
      core.sleep_ms), wall_s = opts.wall_s or clock(driver, "wall_s", core.wall_s),
    sched = core.sched { min_interval_ms = min_ms, max_interval_ms = max_ms, jitter = opts.jitter,
      backoff = opts.backoff, seed = opts.seed },
    timers = timers.new(),
    limiters = {}, model_limits = {}, learnt_limit = {}, built_ms = {},
    slot_opts = { decrease = so.decrease, recover_after = so.recover_after,
      recover_ms = so.recover_ms, cooldown_ms = so.cooldown_ms },
    -- recs: task -> its machine while it runs, the number of polls it took once it has ended
    -- (weak keys). by_n: the running machines by number; by_h by scheduler handle; by_id and
    -- by_ext index the tasks a callback may name (with a callback_url).
    recs = setmetatable({}, { __mode = "k" }), by_n = {}, by_h = {}, by_id = {}, by_ext = {},
    -- n -> when its create was sent (ms), while the create's fate is unknown (kling.engine.limits)
    sent_at = {},
    -- one request table and one header table, reused: start() copies them into C at once
    req = { method = "GET", headers = { accept = "application/json" }, timeout_ms = ctx.timeout_ms,
      connect_timeout_ms = ctx.connect_timeout_ms },
    n_inflight = 0, bounced = {}, q_poll = queue.new(), q_create = queue.new(), ended = {},
    -- reused: action lists of the poll events (kling.engine.run), one reading of the clocks a
    -- batch of answers (answered below)
    lists = {}, depth = 0, batch_now = false, batch_wall = false,
    next_n = 0, active_n = 0, creating_n = 0, scheduled_n = 0, dirty = false,
    gc = false, -- a large wait_all's collector pacing (kling.engine.collector)
    max_requests = whole("engine.new", "max_requests", opts.max_requests, 64, MAX_REQUESTS),
    task_timeout_ms = ms("engine.new", "timeout", opts.timeout, validate.seconds_ms(client.wait_timeout)),
    silence_ms = ms("engine.new", "callback_silence", opts.callback_silence, 60000),
    callbacks = args.flag("engine.new", "callbacks", opts.callbacks, true),
    lookups = whole("engine.new", "lookups", opts.lookups, 3, MAX_LOOKUPS),
    learn = opts.learn ~= false, learned = false, learn_file = M.learn_file(opts, driver), kinds = {},
    webhook_secret = opts.webhook_secret, webhook_tolerance = opts.webhook_tolerance or 300,
    insecure_callbacks = args.flag("engine.new", "insecure_callbacks", opts.insecure_callbacks, false),
    hook_create = opts.on_create, hook_created = opts.on_created,
    -- counters (stats())
    polls_sent = 0, creates_sent = 0, lookups_sent = 0, created_n = 0, adopted_n = 0, uncertain_n = 0,
    rate_limited = 0, poll_errors = 0, callbacks_n = 0, finished_n = 0, finished_ms = 0,
  }, Engine)
  -- What every task's machine shares: the engine's profile of the lifecycle.
  self.profile = lifecycle.profile {
    provider = client.provider, random = core.random_hex, budget = client.ledger ~= nil,
    auto_external_id = client.auto_external_id, lookups = self.lookups, requeue_refused = true,
    max_attempts = ctx.max_attempts, base_ms = ctx.base_ms, cap_ms = ctx.cap_ms,
    create_budget_ms = NO_CREATE_BUDGET_MS, callback_silence_ms = self.silence_ms, slots = true,
    -- the waits' counts follow each task's status (kling.engine.run), and sched:due hands a
    -- scheduled task back: a poll makes no news or wake action, only its send; and it leaves
    -- the task no answer to keep (raw: only the one that ends it)
    news_actions = false, wake_scheduled = false, raw_while_running = false,
    sched = self.sched, learnt_ms = self.learn and function(m)
      return self:expectation(m.kind)
    end or nil,
  }
  -- Every answer comes back through this completion (driver:start's), with its machine.
  self.answered = function(m, res)
    if m.io ~= res.id then
      return -- dropped meanwhile (abandoned, or the task ended): its answer no longer matters
    end
    m.io = false
    self.n_inflight = self.n_inflight - 1
    if self.by_n[m.n] == m then
      local now, wall = self.batch_now, self.batch_wall -- one reading of the clocks for a batch of answers
      if not now then
        now, wall = self.now(), self.wall_s()
        self.batch_now, self.batch_wall = now, wall
      end
      self:feed(m, "answer", now, res, wall)
    end
  end
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

-- ---- adding tasks ------------------------------------------------------------------------

-- A task's record, which its machine fills in: the fields every running task has are made
-- here so that the table is sized once (10,000 of these must fit in a few MiB). The
-- engine's own: n, kind (what learnt durations are kept by), waiter, io (the request queued,
-- or the transfer in flight) and slot (kling.engine.limits). Twelve made here, so that what a
-- task may add (its create's call, a slot, a ledger key, an estimate) still fits the 16 a
-- table of 12 has room for: a 17th field would double it (Lua grows a table's hash part in
-- powers of two), 384 bytes more a task. So counters a task rarely needs (fails, misses) are
-- read through its profile until set (kling.lifecycle.machine), and when a create was sent is
-- kept in sent_at (kling.engine.limits), only while its fate is unknown.
function Engine:new_record(t, now, timeout_ms)
  local n = self.next_n + 1
  self.next_n = n
  local m = { n = n, kind = false, waiter = false, io = false, task = t, state = "new", h = false,
    wake_at = false, created_ms = false, polls = 0, deadline_ms = false, watch_from = false }
  self.recs[t] = m
  self.by_n[n] = m
  self.active_n = self.active_n + 1
  self.dirty = true
  local deadline = now + timeout_ms
  self.timers:push(deadline, n, DEADLINE)
  return m, deadline
end

-- The options of a task's submit and track; any other name raises, naming the closest known one
-- ({adpot = true} created what it was to adopt). adopt and key by type: {adopt = 5} read as true.
local SUBMIT_OPTIONS = { estimate = true, timeout = true, adopt = true, key = true }
local TRACK_OPTIONS = { estimate = true, timeout = true }

local function check_task_options(fn, topts, known)
  validate.options(fn, topts, known)
  if topts.adopt ~= nil and type(topts.adopt) ~= "boolean" then
    errors.misuse(fn, "adopt " .. args.FLAG_PROBLEM .. " (got " .. validate.got(topts.adopt) .. ")")
  end
  if topts.key ~= nil and (type(topts.key) ~= "string" or topts.key == "") then
    errors.misuse(fn, "key must be a non-empty string, the ledger key of the task's hold (got "
      .. validate.got(topts.key) .. ")")
  end
end

-- submit(req, {estimate =, timeout =, adopt =, key =}) -> task. Never blocks: the create goes
-- out from step()/wait(). req.estimate (seconds, not sent to the provider) or opts.estimate is
-- the expected duration, which lets the scheduler poll about once near the end. adopt: look
-- the task up by req.external_task_id first, create it only if the provider has none
-- (resuming a batch). key: the ledger key its estimate is held under (the caller's own, kept
-- across restarts: a batch row's attempt; a hold the key has already is the task's). A
-- request that fails validation gives a task that has already failed, with `error` set.
function Engine:submit(req, topts)
  errors.check_arg("engine:submit", 1, req, "table")
  topts = topts or {}
  errors.check_arg("engine:submit", 2, topts, "table")
  check_task_options("engine:submit", topts, SUBMIT_OPTIONS)
  local now = self.now()
  local provider = self.provider
  local estimate = topts.estimate
  if req.estimate ~= nil then
    estimate = req.estimate
    req = tables.without(req, "estimate")
  end
  local t = task_mod.new(self.client, { status = "pending", request = req })
  local m, deadline = self:new_record(t, now, ms("engine:submit", "timeout", topts.timeout, self.task_timeout_ms))
  local err, files
  local eproblem = estimate ~= nil and validate.seconds_problem(estimate)
  if eproblem then
    err = errors.validation("estimate", eproblem, provider.name)
  elseif self.client.local_files then -- what its local files become (kling.local_file)
    files, err = local_file.inline(provider, req)
  end
  lifecycle.new({ record = m, task = t, request = req, files = files, adopt = topts.adopt, key = topts.key,
    expect_ms = not eproblem and estimate and validate.seconds_ms(estimate) or nil,
    callback = self.callbacks and req.callback_url ~= nil or nil },
    self.profile)
  if err then
    self:feed(m, "refuse", now, err)
    return t
  end
  local key = self:model_of(m)
  if not self.limiters[key] then
    local c = self:configured_limit(key)
    if c then
      self:build_limiter(key, c, now)
    end
  end
  self:feed(m, "watch", now, self.sched, deadline)
  self:feed(m, "start", now)
  if m.state ~= "done" then
    if self.learn then -- the kind is what learnt durations are kept by: only learning reads it
      -- One string per kind, shared: a long string made per task would cost 10,000 copies.
      local kind = learnt.kind(self.client, key, t.endpoint, t.request) -- with its external id
      m.kind = self.kinds[kind] or kind
      self.kinds[kind] = m.kind
    end
    if m.has_callback and t.external_task_id then
      self.by_ext[t.external_task_id] = m
    end
  end
  return t
end

local function submit_all(self, reqs, topts, timeout)
  errors.check_list("submit_many", "reqs", reqs) -- before anything is sent
  -- every item before the first is taken in: {req, 5} queued req, then raised, and the next
  -- wait sent the create of a call that had failed
  local ext_of = {}
  for i, req in ipairs(reqs) do
    if type(req) ~= "table" then
      errors.misuse("submit_many", "reqs[" .. i .. "] must be a request table")
    end
    -- one task per external id: after a lost answer the lookup by it gave one request the
    -- other's task, its outputs and its charge
    local e = req.external_task_id
    if type(e) == "string" and ext_of[e] then
      errors.misuse("submit_many", "reqs[" .. i .. "].external_task_id '" .. e .. "' is also reqs[" .. ext_of[e]
        .. "]'s: a provider keeps one task per external id")
    elseif type(e) == "string" then
      ext_of[e] = i
    end
  end
  local tasks = {}
  for i, req in ipairs(reqs) do
    tasks[i] = self:submit(req, topts)
  end
  self:pump(timeout)
  return tasks
end

-- submit_many(reqs, {estimate =, timeout =, adopt =}, submit_timeout) -> tasks aligned with
-- reqs: submit() of each, then the loop until every create is settled or submit_timeout
-- (seconds) has passed (client:submit_many). Many requests run under the incremental
-- collector (kling.engine.collector).
function Engine:submit_many(reqs, topts, timeout)
  return self:drive("submit_many", collector.run, #reqs, submit_all, self, reqs, topts, timeout)
end

-- track(task, {estimate =, timeout =}) -> task: polls a task created elsewhere (it has an
-- id and an endpoint). It holds no slot of the engine's limiter.
function Engine:track(t, topts)
  errors.check_arg("engine:track", 1, t, "table")
  topts = topts or {}
  errors.check_arg("engine:track", 2, topts, "table")
  check_task_options("engine:track", topts, TRACK_OPTIONS)
  if type(t.id) ~= "string" or type(t.endpoint) ~= "string" then
    errors.misuse("engine:track", "a task with an id and an endpoint expected (from client:submit or get_task)")
  end
  if type(self.recs[t]) == "table" then -- still running here
    return t
  end
  local now = self.now()
  local m, deadline = self:new_record(t, now, ms("engine:track", "timeout", topts.timeout, self.task_timeout_ms))
  m.tracked = true
  lifecycle.existing({ record = m, task = t, key = t.ledger_key,
    expect_ms = topts.estimate and ms("engine:track", "estimate", topts.estimate),
    callback = self.callbacks and type(t.request) == "table" and t.request.callback_url ~= nil or nil }, self.profile)
  if m.has_callback then
    self.by_id[t.id] = m
  end
  self:feed(m, "watch", now, self.sched, deadline)
  return t
end

-- cancel(task) -> true | nil, err: gives a task up. One not created yet ends at once (nothing
-- held); one the provider has is cancelled there where the provider can (then polled to its
-- end), else the error says it cannot (kind validation). Its machine decides which.
function Engine:cancel(t)
  errors.check_arg("engine:cancel", 1, t, "table")
  local m = self.recs[t]
  if type(m) ~= "table" then
    return nil, errors.validation("task", "has ended (or is not a task of this engine): nothing to cancel",
      self.provider.name)
  end
  self.cancel_refusal = nil
  self:feed(m, "cancel", self.now())
  local err = self.cancel_refusal
  self.cancel_refusal = nil
  if err then
    return nil, err
  end
  return true
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
