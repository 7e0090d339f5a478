--- The timer loop that polls the shared task table, one worker at a time.
-- The timer loop that polls the shared task table (kling.resty.tasks). Every worker runs an
-- ngx.timer.every; the one holding a lock in the shared dict (added with a time to live and
-- renewed each tick) does the work, so one worker polls at a time and another takes over
-- when it exits (a reload, a crash: the lock then lapses). The holder keeps the C scheduler
-- (core.sched: first poll, back-off, deadlines) for the tasks not yet ended, and their ids by
-- handle in C too (core.idmap: a busy gateway's hundred thousand open tasks in two Lua tables
-- were walked by the collector on every cycle, a fifth of a create's time); on taking over it
-- rebuilds both from the dict. Polls of one tick run concurrently in light threads.
--
-- The caller says what a poll is: poll(id, sched, h) -> outcome, where sched is the
-- scheduler and h the task's handle in it, due now (a lifecycle machine may keep polling under
-- it: kling.lifecycle.machine track, as the gateway does), and outcome is one of
--   {terminal = true [, freed = true]}     the task ended (or is gone): stop polling it
--                                          (freed: the caller already freed h)
--   {freed = true [, delay_ms =]}          h was freed, the task goes on: polled again (a new
--                                          handle) after delay_ms, else the longest interval
--   {wake_at =}                            poll again then (absolute, core.now_ms), unless the
--                                          caller already queued h earlier
--   {progress =, remaining_ms =}          not yet: the scheduler picks the next time
--   {delay_ms =}                           not yet, and not before delay_ms (Retry-After)
-- A handle the poll left in flight is always queued again: a task is never left unpolled.
-- @module kling.resty.poller
local core = require "kling.core"
local tasks_q = require "kling.resty.tasks"
local validate = require "kling.validate"

-- What start{} takes; another key is refused by name (a misspelt interval was ignored).
local START_OPTIONS = { tasks = true, poll = true, interval = true, min_interval_ms = true, max_interval_ms = true,
  max_age_ms = true, silence_ms = true, first_poll_ms = true, deadline_ms = true, batch = true, lock_ttl = true,
  lock = true, unlock = true }
-- The least of each number start{} takes (seconds: one millisecond; milliseconds: one).
local START_LEAST = { interval = 0.001, lock_ttl = 0.001, silence_ms = 1, first_poll_ms = 1, deadline_ms = 1,
  batch = 1 }

local M = {}

M.LOCK = "poller:lock"
M.LAST_TICK = "poller:last_tick" -- when the leader last ran (ngx.now()): the poll lag's base
-- Set by every worker that starts: the leader walks the table once more for tasks nobody
-- queued. A worker killed mid-create (its replacement starts) left a record that only its own
-- publish would have queued; with another worker leading, nothing looked it up until a restart.
M.RESCAN = "poller:rescan"

local function log_err(...)
  ngx.log(ngx.ERR, "kling poller: ", ...)
end

--- Starts the timer loop in this worker.
-- start{tasks =, poll =, interval = 0.2 (s), batch = 32 (polls per tick), lock_ttl = 10 (s),
-- min_interval_ms = 1000, max_interval_ms = 15000, max_age_ms (core.sched's: a task's
-- longest life, 24 h by default), silence_ms = 60000 (after a callback's
-- news, the next poll), first_poll_ms (a new task's first poll; by default the scheduler's:
-- give the silence when callbacks are expected), deadline_ms (each task's, from when this
-- poller first sees it)}
-- -> poller | nil, err. Call from init_worker_by_lua.
---@param opts {tasks: table, poll: function, interval: number, min_interval_ms: integer, max_interval_ms: integer}
---@return table|nil poller
---@return string|nil err
function M.start(opts)
  if type(opts) ~= "table" or type(opts.poll) ~= "function" or type(opts.tasks) ~= "table" then
    error("kling.resty.poller.start: {tasks =, poll = function(id) ... end} expected", 2)
  end
  validate.options("resty.poller.start", opts, START_OPTIONS)
  -- Seconds go to nginx in whole milliseconds: a lock_ttl under one was no expiry at all (a
  -- holder that died kept the lock for good), an interval under one a timer due at once, always.
  for name, least in pairs(START_LEAST) do
    local v = opts[name]
    if v ~= nil and not (type(v) == "number" and v >= least and v <= 2147483647
      and (name ~= "batch" or v == math.floor(v))) then
      error("kling.resty.poller.start: " .. name .. " must be a positive " .. (name == "batch" and "whole " or "")
        .. "number, at least " .. least .. ", got " .. validate.got(v), 2)
    end
  end
  local sched_opts = { min_interval_ms = opts.min_interval_ms or 1000, max_interval_ms = opts.max_interval_ms or 15000,
    max_age_ms = opts.max_age_ms }
  -- The scheduler's own rules (core.sched), asked now: its first tick raised in the timer,
  -- logged every tick while nothing was ever polled (no task ended, no hold settled).
  local sok, serr = pcall(core.sched, sched_opts)
  if not sok then
    error("kling.resty.poller.start: " .. tostring(serr):gsub("^kling%.core: sched: ", ""), 2)
  end
  local self = {
    tasks = opts.tasks, poll = opts.poll, dict = opts.tasks.dict,
    batch = opts.batch or 32, lock_ttl = opts.lock_ttl or 10, silence_ms = opts.silence_ms or 60000,
    deadline_ms = opts.deadline_ms, first_poll_ms = opts.first_poll_ms,
    sched_opts = sched_opts,
    pid = ngx.worker.pid(), holder = false, busy = false,
    stats = { ticks = 0, polls = 0, takeovers = 0 },
    -- The lock of one poller at a time: in the shared dict (one nginx), or the caller's
    -- (lock(ttl_s) -> held, fresh; unlock()) for several nginx nodes.
    lock = opts.lock, unlock = opts.unlock,
  }
  self.release = function()
    if self.unlock then
      if self.holder then
        self.unlock()
      end
    elseif self.holder and self.dict:get(M.LOCK) == self.pid then
      self.dict:delete(M.LOCK)
    end
    self.holder = false
  end
  local ok, err = ngx.timer.every(opts.interval or 0.2, M.tick, self)
  if not ok then
    return nil, "cannot start the poller's timer: " .. tostring(err)
  end
  self.dict:set(M.RESCAN, true)
  return self
end

M.ID_MAX = core.idmap_id_max -- bytes of a task id the poller takes (its map's limit)

-- add(self, id, now [, new]) -> the task's handle (its own, when it was there already), or nil
-- for an id no gateway makes (empty or longer than ID_MAX): logged and not polled, where
-- raising would stop every tick's polls.
local function add(self, id, now, new)
  if type(id) ~= "string" or #id == 0 or #id > M.ID_MAX then
    log_err("not polled: a task id must be 1 to ", M.ID_MAX, " bytes (got ", type(id) == "string" and #id or type(id),
      ")")
    return nil
  end
  local ids = self.ids
  local known = ids:find(id)
  if known then
    return known
  end
  local h = self.sched:add(now, nil, self.deadline_ms and now + self.deadline_ms or nil)
  ids:put(id, h)
  if new and self.first_poll_ms then
    self.sched:defer(h, now, self.first_poll_ms)
  end
  return h
end

-- Holds or takes the lock; false when another worker holds it.
local function lock(self)
  if self.lock then
    return self.lock(self.lock_ttl)
  end
  local d = self.dict
  local ok, err = d:add(M.LOCK, self.pid, self.lock_ttl)
  if ok then
    return true, true
  end
  if err ~= "exists" then
    log_err("lock: ", err)
    return false
  end
  if d:get(M.LOCK) == self.pid then
    d:set(M.LOCK, self.pid, self.lock_ttl)
    return true, false
  end
  return false
end

-- Every task the table holds live, added to this leader's scheduler (the ones it has keep
-- their schedule): at a take-over, with a scheduler made anew, and at a worker's start (RESCAN).
local function walk(self, now, why)
  self.dict:delete(M.RESCAN) -- a start after the walk began sets it again: one more walk
  local ids, err = self.tasks:active_ids()
  if not ids then
    error("cannot " .. why .. ": " .. tostring(err))
  end
  for _, id in ipairs(ids) do
    add(self, id, now)
  end
end

local function take_over(self, now)
  self.stats.takeovers = self.stats.takeovers + 1
  self.sched, self.ids = core.sched(self.sched_opts), core.idmap()
  walk(self, now, "take over")
end

-- apply(self, th, now): what one poll (th = {h, id, outcome, unmapped, live}) decided, carried
-- out once every poll of the tick is in (work: its ids are off freed handles already).
local function apply(self, th, now)
  local h, id, outcome, sched = th.h, th.id, th.outcome, self.sched
  if th.unmapped then -- ended, or its handle freed (by the poll, or by this report)
    if th.live then
      sched:report(h, now, nil, nil, true)
    end
    if not outcome.terminal then
      sched:defer(add(self, id, now), now, math.floor(outcome.delay_ms or self.sched_opts.max_interval_ms))
    end
    return
  end
  local queued = sched:next_at(h)
  if outcome.wake_at then
    local at = math.floor(outcome.wake_at)
    if queued == nil or queued > at then
      sched:defer(h, now, math.max(0, at - now))
    end
    return
  end
  if queued ~= nil then
    return -- the poll's caller queued it already
  end
  local progress = tonumber(outcome.progress)
  if progress and (progress < 0 or progress > 100) then
    progress = nil
  end
  sched:report(h, now, progress, outcome.remaining_ms and math.max(0, math.floor(outcome.remaining_ms)) or nil)
  if outcome.delay_ms and outcome.delay_ms > 0 then
    sched:defer(h, now, math.floor(outcome.delay_ms))
  end
end

local function run_one(self, id, h)
  local ok, outcome = pcall(self.poll, id, self.sched, h)
  if not ok then
    log_err("poll of ", id, " failed: ", outcome)
    return { delay_ms = 5000 }
  end
  return outcome
end

local function work(self)
  local now = core.now_ms()
  for _, id in ipairs(self.tasks:pop(tasks_q.Q_NEW, 10000)) do
    add(self, id, now, true)
  end
  -- Callback news: the task is polled again only after a silence, or at the time the news
  -- names should that come first (the task's deadline: a deadline inside the silence passed
  -- unseen until the silence's end).
  local wall = core.wall_ms()
  for _, item in ipairs(self.tasks:pop(tasks_q.Q_NEWS, 10000)) do
    local id, at = tasks_q.news_of(item)
    local h = self.ids:find(id)
    if h then
      local delay = at and math.max(0, math.min(self.silence_ms, at - wall)) or self.silence_ms
      pcall(self.sched.defer, self.sched, h, now, delay)
    end
  end
  local due, expired = self.sched:due(now, self.batch)
  for _, h in ipairs(expired) do
    -- Past its deadline: one last poll decides (the poll function ends it if it wants to).
    due[#due + 1] = h
  end
  if #due == 0 then
    return
  end
  local threads = {}
  for _, h in ipairs(due) do
    local id = self.ids:id(h)
    if id then
      threads[#threads + 1] = { h = h, id = id, co = ngx.thread.spawn(run_one, self, id, h) }
    else
      self.sched:remove(h)
    end
  end
  -- Every poll of the tick is in before any is carried out: a poll may free its handle, and
  -- the scheduler hands freed handles out again, so a task added back while another's freed
  -- handle still named that other would take its handle (and the other would be lost).
  local sched, ids = self.sched, self.ids
  for _, th in ipairs(threads) do
    local ok, outcome = ngx.thread.wait(th.co)
    self.stats.polls = self.stats.polls + 1
    outcome = ok and type(outcome) == "table" and outcome or { delay_ms = 5000 }
    th.outcome, th.live = outcome, sched:live(th.h)
    if outcome.terminal or outcome.freed or not th.live then
      th.unmapped, th.live = true, th.live and not outcome.freed
      ids:remove(th.h)
    end
  end
  local done_at = core.now_ms()
  for _, th in ipairs(threads) do
    local ok, err = pcall(apply, self, th, done_at)
    if not ok then
      -- Its handle was freed under the outcome's feet: the task is polled again afresh.
      log_err("after a poll of ", th.id, ": ", err)
      if ids:id(th.h) == th.id then
        ids:remove(th.h)
      end
      local aok, aerr = pcall(add, self, th.id, done_at)
      if not aok then
        log_err("cannot poll ", th.id, " again: ", aerr)
      end
    end
  end
end

--- One tick of the loop (the timer's callback; internal).
-- @local
function M.tick(premature, self)
  if premature then
    self.release()
    return
  end
  if self.busy then
    return
  end
  local held, fresh = lock(self)
  if not held then
    self.holder = false
    self.sched, self.ids = nil, nil -- another worker polls: its tasks are not this one's to keep
    return
  end
  self.busy = true
  self.stats.ticks = self.stats.ticks + 1
  local ok, err = pcall(function()
    if fresh or not self.holder or not self.sched then
      take_over(self, core.now_ms())
    elseif self.dict:get(M.RESCAN) then
      walk(self, core.now_ms(), "walk the tasks a started worker may have left")
    end
    self.holder = true
    work(self)
    self.dict:set(M.LAST_TICK, ngx.now())
  end)
  self.busy = false
  if not ok then
    self.holder = false -- take over again next tick
    log_err(err)
  end
end

--- How many tasks the scheduler holds.
-- How many tasks this worker's scheduler holds (0 unless it holds the lock).
---@param self table a poller
---@return integer
function M.count(self)
  if not self.sched then
    return 0
  end
  return (self.sched:count())
end

return M
