-- The engine as a runner of the lifecycle machine (kling.lifecycle.machine): each task is a
-- machine, and its table is also the engine's record of the task (no second table beside
-- it: n, kind, slot, waiter (the wait watching it), io and tracked are the engine's fields
-- in it; when a create was sent is kept in sent_at, only while its fate is unknown). The
-- engine feeds a machine its events (answers, timers, deadlines, callbacks, grants of a slot,
-- cancel) and carries out what comes back; it decides nothing of a task's life itself:
--   send      -> queued, then started over the driver's asynchronous seam (kling.driver.multi)
--   wake      -> the engine's timers (kling.engine.timers), or nothing where the scheduler
--                (core.sched) holds the task's next poll (due() hands it back)
--   acquire / refused / created / done -> the slot limiter (kling.engine.limits)
--   reserve, settle, release, renew_token -> kling.lifecycle.effects.apply (the only way to money)
--   journal, created, news, done       -> hooks, indexes, counters and the waiters' counts
-- Installed as methods of the engine.
local effects = require "kling.lifecycle.effects"
local queue = require "kling.engine.queue"

local push = queue.push
local MONEY = effects.TYPES -- reserve, settle, release, renew_token

-- Machine states of a task whose create is not settled yet (submit_many waits these out; a
-- task waiting for a provider slot does not count, nor one not started: start() leaves it).
local CREATING = { create_wait = true, creating = true, lookup = true, lookup_wait = true }
local ENDED = { done = true, expired = true }
-- States a move into or out of changes a count (creating, ended): a poll's own moves
-- (scheduled, polling and back) with no news of status change none.
local COUNTED = { create_wait = true, creating = true, lookup = true, lookup_wait = true, done = true,
  expired = true }
-- A task's phase for the waiters' counts, from its status while it runs.
local PHASE = { pending = "waiting", queued = "queued", running = "running" }

local WAKE = 1 -- timer token of a machine's wake-up (kling.engine.loop; 0 is a deadline)

local function append(acts, more)
  for _, a in ipairs(more) do
    acts[#acts + 1] = a
  end
end

return function(Engine)
  -- waiting | queued | running | succeeded | failed
  function Engine.phase(_, m)
    if ENDED[m.state] then
      return (m.err == nil and m.task.status == "succeeded") and "succeeded" or "failed"
    end
    return PHASE[m.task.status] or "waiting"
  end

  -- Whether the run's deadline has passed: a task given a slot then ends instead of creating.
  function Engine:past_run(now)
    return self.run_deadline ~= nil and now >= self.run_deadline
  end

  --- Feeds one event to a task's machine (ev: the machine's method: "start", "answer",
  -- "timer", "deadline", "callback", "granted", "cancel", ...; a, b its arguments after now)
  -- and carries out its actions; then the indexes and counts that follow a task's state are
  -- brought up to date.
  function Engine:feed(m, ev, now, a, b)
    local h0, s0, t = m.h, m.state, m.task
    local st0 = t.status
    if ev == "answer" or ev == "timer" then -- a poll's events: into a reused list
      local d = self.depth + 1
      self.depth = d
      local acts = self.lists[d]
      if not acts then
        acts = {}
        self.lists[d] = acts
      end
      local r
      if ev == "answer" then
        r = m:answer(now, a, b, acts)
      else
        r = m:timer(now, acts)
      end
      if r[1] ~= nil then -- a poll's answer that only reschedules has none
        self:carry(m, r, now)
      end
      if acts[1] ~= nil then
        for i = #acts, 1, -1 do
          acts[i] = nil
        end
      end
      self.depth = d - 1
    else
      self:carry(m, m[ev](m, now, a, b), now)
    end
    local h = m.h
    if h ~= h0 then
      local by_h = self.by_h
      if h0 then
        if by_h[h0] == m then
          by_h[h0] = nil
        end
        self.scheduled_n = self.scheduled_n - 1
      end
      if h then
        by_h[h] = m
        self.scheduled_n = self.scheduled_n + 1
      end
    end
    local s = m.state
    -- else neither its counts nor its phase moved
    if t.status ~= st0 or (s ~= s0 and (COUNTED[s0] or COUNTED[s])) then
      if s0 == "creating" and m.was_uncertain and s ~= "creating" then
        self.uncertain_n = self.uncertain_n + 1 -- its create's fate was unknown (stats)
      end
      local c0, c = CREATING[s0], CREATING[s]
      if c0 ~= c then
        self.creating_n = self.creating_n + (c and 1 or -1)
      end
      local p0 = PHASE[st0] or "waiting" -- it ran until this event
      local p
      if ENDED[s] then
        p = (m.err == nil and t.status == "succeeded") and "succeeded" or "failed"
      else
        p = PHASE[t.status] or "waiting"
      end
      if p ~= p0 then
        if m.waiter then
          m.waiter:move(m, p0, p)
        end
        self.dirty = true
      end
    end
  end

  function Engine:carry(m, acts, now)
    local i = 1
    while true do
      local a = acts[i]
      if a == nil then
        return
      end
      i = i + 1
      local ty = a.type
      if ty == "news" then -- luacheck: ignore 542 (the phase counts follow in feed())
      elseif ty == "send" then -- queued; started by dispatch() while there is room
        if m.io then
          self:drop_request(m) -- one request per task at a time: a newer one replaces an older
        end
        m.io = a
        push(a.purpose == "create" and self.q_create or self.q_poll, m)
      elseif ty == "wake" then
        if not (m.h and m.state == "scheduled") then -- else the scheduler holds it (due())
          self.timers:push(a.at, m.n, WAKE)
        end
      elseif ty == "acquire" then
        if self:acquire(m, a.front) then
          append(acts, self:past_run(now) and m:deadline(now) or m:granted(now))
        end
      elseif MONEY[ty] then -- handed over unopened: a reserve's answer comes back as actions
        append(acts, effects.apply(self.client, a, now, m))
      elseif ty == "journal" then
        -- "create": the caller's journal hears it as the request starts (Engine:start), after
        -- submit has handed the task back; "created": now.
        if a.what == "created" and self.hook_created then
          self.hook_created(m.task)
        end
      elseif ty == "created" then
        self:created(m, now)
      elseif ty == "refused" then
        self:refused(m, a.slot_full, now)
      elseif ty == "retry" then
        if m.h then
          self.poll_errors = self.poll_errors + 1
        end
        local on_retry = self.ctx.on_retry
        if on_retry then
          on_retry { attempt = a.attempt, delay_ms = a.delay_ms, kind = a.kind, code = a.code,
            http_status = a.http_status, path = a.path }
        end
      elseif ty == "abandon" then
        self:drop_request(m)
      elseif ty == "refused_cancel" then
        self.cancel_refusal = a.err
      elseif ty == "done" then
        self:let_go(m, a.err, now)
      end
    end
  end

  -- The task's request, queued or in flight, no longer matters.
  function Engine:drop_request(m)
    local io = m.io
    if type(io) == "number" then
      self.driver:cancel(io)
      self.n_inflight = self.n_inflight - 1
    end
    m.io = false
  end

  -- The provider has the task.
  function Engine:created(m, now)
    self.created_n = self.created_n + 1
    if m.adopted then
      self.adopted_n = self.adopted_n + 1
    end
    self.sent_at[m.n] = nil
    self:confirm_slot(m, now)
    local t = m.task
    if m.has_callback and t.id then
      self.by_id[t.id] = m
    end
  end

  -- The task ended (the machine said done): the engine lets go of it. The caller's
  -- references keep the task; the engine keeps only the polls it took (recs, weak keys).
  function Engine:let_go(m, err, now)
    local t = m.task
    self:drop_request(m)
    local success = err == nil and t.status == "succeeded"
    self:release_slot(m, now, success)
    t.error = err
    if success and m:saw_whole_life() then
      local took = now - m.created_ms
      self.finished_n = self.finished_n + 1
      self.finished_ms = self.finished_ms + took
      if m.kind and self.learn then
        self:observe(m.kind, took, now, t)
      end
    end
    self.by_n[m.n] = nil
    self.sent_at[m.n] = nil
    self.recs[t] = m.polls or 0
    if m.has_callback then
      if t.id and self.by_id[t.id] == m then
        self.by_id[t.id] = nil
      end
      local ext = t.external_task_id
      if ext and self.by_ext[ext] == m then
        self.by_ext[ext] = nil
      end
    end
    self.active_n = self.active_n - 1
    if m.waiter then
      self.ended[#self.ended + 1] = m
    end
  end

  -- A learnt window for a kind reaches its tasks polled without one (kling.engine.learn), also
  -- those with a poll in flight; late: tasks of the model wait for slots, so those past the
  -- window's start move too.
  function Engine:relearn(kind, window, now)
    local late = {}
    for _, m in pairs(self.by_n) do
      if m.kind == kind and (m.state == "scheduled" or m.state == "polling") then
        local model = self:model_of(m)
        if late[model] == nil then
          local lim = self.limiters[model]
          late[model] = (lim and lim:queued() > 0) or false
        end
        self:feed(m, "learnt", now, window, late[model])
      end
    end
  end
end
