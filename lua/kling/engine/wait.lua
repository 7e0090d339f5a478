-- Waiting on tasks: wait_all, wait_any, with on_done per task and throttled on_progress
-- events (counts, spend, ETA; kling.engine.progress). Installed as methods of the engine.
local core = require "kling.core"
local errors = require "kling.errors"
local progress = require "kling.engine.progress"
local args = require "kling.engine.args"
local ms = args.ms
local validate = require "kling.validate"
local collector = require "kling.engine.collector"
local task_mod = require "kling.task"

-- The options wait_all and wait_any take; any other name is a mistake, refused by name.
local WAIT_OPTIONS = { timeout = true, on_progress = true, on_done = true, progress_interval = true }

-- The options' names, and the callbacks' type (a number there raised "attempt to call a number
-- value" from inside the loop, once tasks had been polled): misuse raises, naming it.
local function check_options(fn, opts)
  validate.options(fn, opts, WAIT_OPTIONS)
  -- the times too, by their rule (0: at once, every event): a bad progress_interval raised
  -- only from inside the loop, as "engine:wait", once the tasks were under watch
  for _, k in ipairs { "timeout", "progress_interval" } do
    local problem = opts and opts[k] ~= nil and args.ms_problem(opts[k], true)
    if problem then
      errors.misuse(fn, k .. " " .. problem)
    end
  end
  for _, k in ipairs { "on_progress", "on_done" } do
    local v = opts and opts[k]
    if v ~= nil and type(v) ~= "function" then
      errors.misuse(fn, k .. " must be a function (got " .. validate.type_of(v) .. ")")
    end
  end
end

return function(Engine)

  function Engine:flush_ended(w, opts)
    local before = w.ended_before
    if before then -- tasks that had ended before this wait: their on_done comes first, once
      w.ended_before = nil
      if opts.on_done then
        for _, t in ipairs(before) do
          opts.on_done(t, t.error)
        end
      end
    end
    local ended = self.ended
    if #ended == 0 then
      return
    end
    self.ended = {}
    for _, rec in ipairs(ended) do
      if rec.waiter == w then
        w.first = w.first or rec.task
        if opts.on_done then
          opts.on_done(rec.task, rec.task.error)
        end
      end
    end
  end

  function Engine:wait_loop(w, opts, deadline)
    local interval = ms("engine:wait", "progress_interval", opts.progress_interval, 1000, true)
    local on_progress = opts.on_progress
    w.reported = -math.huge
    while true do
      self:flush_ended(w, opts)
      local now = self.now()
      if on_progress and self.dirty and now - w.reported >= interval then
        self.dirty = false
        w.reported = now
        on_progress(w:event(self, now))
      end
      if (opts.any and w.first) or w:finished() >= w.total or (deadline and now >= deadline) then
        break
      end
      self:step(deadline and deadline - now or nil)
    end
    if on_progress then
      on_progress(w:event(self, self.now()))
    end
  end

  -- Puts each of tasks under watch w (a task listed twice counts once).
  function Engine:watch_each(fn, w, tasks)
    errors.check_list(fn, "tasks", tasks)
    local seen = {} -- tasks that had ended already
    for i, t in ipairs(tasks) do
      local rec = self.recs[t]
      if rec == nil then
        errors.misuse(fn, "tasks[" .. i .. "] is not a task of this engine (use the tasks submit_many returned)")
      end
      if type(rec) ~= "table" then -- it has ended: its record is gone (kling.engine finish)
        if not seen[t] then
          seen[t] = true
          w:add(t.error == nil and "succeeded" or "failed", t)
          w.ended_before = w.ended_before or {}
          w.ended_before[#w.ended_before + 1] = t
          if w.any and not w.first then
            w.first = t
          end
        end
      elseif rec.waiter ~= w then
        rec.waiter = w
        w:add(self:phase(rec), t)
      end
    end
  end

  -- The common part of wait_all and wait_any: watches tasks until opts says to stop.
  function Engine:watch_tasks(fn, tasks, opts)
    errors.check_arg(fn, 1, tasks, "table")
    opts = opts or {}
    errors.check_arg(fn, 2, opts, "table")
    self:may_drive(fn) -- before anything is watched
    if self.watching then
      -- Inside nginx the likelier cause is a client shared by requests or timers of a worker.
      errors.misuse(fn, "the engine is already waiting: called from on_done or on_progress, or, inside nginx,"
        .. " from a second request or timer sharing this client (make the client in the handler or timer"
        .. " that waits)")
    end
    local now = self.now()
    local deadline = opts.timeout and now + ms(fn, "timeout", opts.timeout, nil, true)
    local w = progress.new(now, tasks)
    w.any = opts.any
    self:watch_each(fn, w, tasks)
    self.watching = true
    if deadline then -- a learnt window starting after the wait's end is not waited for (kling.lifecycle)
      self.profile.wait_until_ms = deadline
      for _, t in ipairs(tasks) do
        local rec = self.recs[t]
        if type(rec) == "table" and rec.state == "scheduled" then
          self:feed(rec, "wait_until", now)
        end
      end
    end
    local ok, err = pcall(self.drive, self, fn, self.wait_loop, self, w, opts, deadline)
    self.profile.wait_until_ms = nil
    for _, t in ipairs(tasks) do
      local rec = self.recs[t]
      if type(rec) == "table" then
        rec.waiter = false
      end
    end
    self.watching = false
    self.ended = {}
    self:save_learnt(self.now())
    if not ok then
      error(err, 0)
    end
    return w
  end

  -- The error a wait gives a task still running when it timed out (the task goes on).
  function Engine:unfinished(m)
    local t = m.task
    return errors.new { kind = "timeout", retryable = true, provider = self.provider.name, task_id = t.id,
      external_task_id = t.external_task_id,
      message = string.format("task %s had not ended when the wait timed out (last status %s)",
        tostring(t.id or t.external_task_id or m.n), t.status) }
  end

  -- wait_all(tasks, {timeout =, on_progress =, on_done =, progress_interval =}) -> results:
  -- results[i] = {task =, ok =, error =} aligned with tasks, and results.succeeded, .failed,
  -- .uncertain (ended with an error saying uncertain: the create's fate is unknown, the task
  -- may exist; not counted in failed), .refused (ended before a task was made, nothing
  -- charged: kling.task.REFUSED; not counted in failed), .unfinished, .spend (decimal string
  -- in the provider's unit), .spend_micros, .elapsed_s, .timed_out. A task still running when the wait times out
  -- gets a timeout error here but stays tracked: a later wait goes on with it. on_done(task, err)
  -- is called once for every task of the wait that ends, first for those that had ended before
  -- the wait began.
  local function wait_all(self, tasks, opts)
    local w = self:watch_tasks("wait_all", tasks, opts)
    local now = self.now()
    local c = w.counts
    local results = { succeeded = c.succeeded, failed = c.failed, unfinished = w.total - w:finished(),
      spend = core.money_format(w.spend), spend_micros = w.spend, charged = w.charged,
      elapsed_s = (now - w.started_ms) / 1000 }
    results.timed_out = results.unfinished > 0
    results.uncertain, results.refused = 0, 0
    local counted = {}
    for i, t in ipairs(tasks) do
      local rec = self.recs[t]
      if type(rec) ~= "table" then -- ended; no `error` slot when there is none (a smaller table)
        local e = t.error
        results[i] = e == nil and { task = t, ok = true } or { task = t, ok = false, error = e }
        if e and e.uncertain and t.id == nil and not counted[t] then -- (a task listed twice counts once)
          counted[t] = true
          -- its create's fate is unknown (it may run and be charged, its hold kept): not a failure
          results.uncertain, results.failed = results.uncertain + 1, results.failed - 1
        elseif e and not counted[t] and task_mod.refused(t) then
          counted[t] = true
          -- no task was made and nothing charged (kling run's refused): fix the request or budget
          results.refused, results.failed = results.refused + 1, results.failed - 1
        end
      else
        results[i] = { task = t, ok = false, error = self:unfinished(rec) }
      end
    end
    return results
  end

  -- With many active tasks the wait runs under the collector's pacing (kling.engine.collector);
  -- wait_any does not: it returns at the first end.
  function Engine:wait_all(tasks, opts)
    check_options("wait_all", opts)
    return collector.wait(self, self.active_n, wait_all, tasks, opts)
  end

  -- wait_any(tasks, {timeout =, on_progress =, on_done =}) -> task, err: the first of tasks to
  -- end (one that has already ended counts at once), with its error when it failed; or nil and
  -- a timeout error.
  function Engine:wait_any(tasks, opts)
    check_options("wait_any", opts)
    if type(tasks) == "table" and next(tasks) == nil then
      -- no task can end: not a timeout to wait out
      errors.misuse("wait_any", "tasks is empty: give at least one task")
    end
    local o = {}
    for k, v in pairs(opts or {}) do
      o[k] = v
    end
    o.any = true
    local w = self:watch_tasks("wait_any", tasks, o)
    if w.first then
      return w.first, w.first.error
    end
    return nil, errors.new { kind = "timeout", retryable = true, provider = self.provider.name,
      message = "none of the " .. w.total .. " tasks ended within the wait's timeout" }
  end
end
