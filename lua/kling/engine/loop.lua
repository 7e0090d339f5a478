-- The engine's loop: timers, slots, due polls and answers, one turn at a time. Requests
-- start over the libcurl multi handle (start) and are collected as they finish (wait); the
-- loop sleeps in curl_multi_poll (or sleep_ms when nothing is in flight) until the next
-- answer or the next due time, never busy-waiting. Installed as methods of the engine.
local queue = require "kling.engine.queue"
local ms = require("kling.engine.args").ms

local push, pop, qsize = queue.push, queue.pop, queue.size

local DEADLINE = 0 -- timer token of a task's deadline (kling.engine)
local MAX_SLEEP_MS = 60000

return function(Engine)
  function Engine:queue_create(rec)
    if rec.state ~= "ready" then
      self:set_state(rec, "ready")
      push(self.q_create, rec)
    end
  end

  function Engine:queue_lookup(rec)
    if rec.state ~= "lready" then
      self:set_state(rec, "lready")
      push(self.q_poll, rec)
    end
  end

  function Engine:start(rec, op, now)
    local ctx, t = self.ctx, rec.task
    local req = self.req
    local headers = req.headers
    headers.accept = "application/json"
    headers.authorization = ctx.auth and ctx.auth:bearer(self.wall_s()) or nil
    headers["content-type"] = nil
    req.method, req.body = "GET", nil
    if op == "create" then
      if self.hook_create then
        self.hook_create(t)
      end
      local c = rec.c
      c.sent_ms = now
      req.method, req.url, req.body = c.method, self.base_url .. c.path, c.body
      if c.body then
        headers["content-type"] = "application/json"
      end
      self.creates_sent = self.creates_sent + 1
    elseif op == "lookup" then
      req.url = self.base_url .. self.provider.external_query_path(t.endpoint, t.external_task_id)
      self.lookups_sent = self.lookups_sent + 1
    else
      req.url = self.base_url .. self.provider.query_path(t.endpoint, t.id)
      self.polls_sent = self.polls_sent + 1
      rec.polls = rec.polls + 1
    end
    self:set_state(rec, op)
    local id, serr = self.http:start(req)
    if not id then -- the transfer could not start: nothing left the host
      return self:answer(rec, { ok = false, error = "other", message = serr, sent = false, received = false }, now)
    end
    self.inflight[id] = rec
    rec.xfer = id
    self.n_inflight = self.n_inflight + 1
  end

  function Engine:answer(rec, res, now)
    local op = rec.state
    if op == "create" then
      self:on_create(rec, res, now)
    elseif op == "lookup" then
      self:on_lookup(rec, res, now)
    else
      self:on_poll(rec, res, now)
    end
  end

  -- Starts queued requests while there is room: polls and creates take turns, so that
  -- neither a flood of due polls nor a batch of creates starves the other.
  function Engine:dispatch(now)
    local qp, qc = self.q_poll, self.q_create
    local turn = true
    while self.n_inflight < self.max_requests do
      local has_p, has_c = qp.h <= qp.t, qc.h <= qc.t
      if not has_p and not has_c then
        break
      end
      local rec
      if has_p and (turn or not has_c) then
        rec = pop(qp)
      else
        rec = pop(qc)
      end
      turn = not turn
      local s = rec.state
      if s == "pready" then
        self:start(rec, "poll", now)
      elseif s == "lready" then
        self:start(rec, "lookup", now)
      elseif s == "ready" then
        self:start(rec, "create", now)
      end
    end
  end

  function Engine:fire_timers(now)
    local tm = self.timers
    while true do
      local at = tm:peek()
      if not at or at > now then
        return
      end
      local _, n, tok = tm:pop()
      local rec = self.by_n[n] -- nil once the task has ended
      local s = rec and rec.state
      if rec then
        if tok == DEADLINE then
          if s == "create" then
            tm:push(now + 1000, n, DEADLINE) -- a create's answer must land first: its fate decides
          elseif not rec.h then
            self:finish(rec, self:timeout_error(rec), now)
          end
        elseif tok == rec.tok then
          if s == "delay" then
            if rec.adopt then
              self:queue_lookup(rec)
            else
              self:queue_create(rec)
            end
          elseif s == "lwait" then
            self:queue_lookup(rec)
          end
        end
      end
    end
  end

  -- Timers that can only be skipped (of ended tasks, and deadlines the C scheduler holds now)
  -- are dropped once they are at least half of the heap: 10,000 tasks in flight would
  -- otherwise carry 10,000 dead deadlines.
  function Engine:prune_timers()
    local tm = self.timers
    if tm:size() < 1024 or 2 * self.moot_timers < tm:size() then
      return
    end
    local by_n = self.by_n
    tm:keep(function(n, tok)
      local rec = by_n[n]
      if not rec then
        return false
      end
      if tok == DEADLINE then
        return not rec.h
      end
      return tok == rec.tok
    end)
    self.moot_timers = 0
  end

  -- Due polls into the queue, as many as there is room for; expired tasks end.
  function Engine:collect_due(now)
    local room = self.max_requests - self.n_inflight - qsize(self.q_poll)
    if room <= 0 then
      return
    end
    local due, expired = self.sched:due(now, room)
    for _, h in ipairs(expired) do
      local rec = self.by_h[h]
      if rec then
        self:finish(rec, self:timeout_error(rec), now)
      else
        self.sched:remove(h)
      end
    end
    for _, h in ipairs(due) do
      local rec = self.by_h[h]
      if rec and rec.state == "sched" then
        self:set_state(rec, "pready")
        push(self.q_poll, rec)
      end
    end
  end

  function Engine:expire_all(now)
    for _, rec in pairs(self.by_n) do
      if rec.state ~= "create" then
        self:finish(rec, self:timeout_error(rec, "was still running when the run's deadline passed"), now)
      end
    end
  end

  function Engine:wait_ms(now, max_wait, recovering)
    local w = max_wait or MAX_SLEEP_MS
    if self.n_inflight < self.max_requests then
      if qsize(self.q_poll) > 0 or qsize(self.q_create) > 0 then
        return 0
      end
      local nw = self.sched:next_wakeup(now)
      if nw and nw < w then
        w = nw
      end
    end
    local at = self.timers:peek()
    if at and at - now < w then
      w = at - now
    end
    if recovering and w > 500 then
      w = 500
    end
    if self.run_deadline and self.run_deadline - now < w then
      w = self.run_deadline - now
    end
    return math.max(0, math.floor(w))
  end

  -- One turn of the loop: fire timers, hand out slots, start due requests, then wait (at most
  -- max_wait_ms) for answers or the next due time, and handle what came. Returns the number of
  -- tasks still active.
  function Engine:step(max_wait_ms)
    local now = self.now()
    if self.run_deadline and now >= self.run_deadline then
      self:expire_all(now)
    end
    self:prune_timers()
    self:fire_timers(now)
    local recovering = self:recover(now)
    self:collect_due(now)
    self:dispatch(now)
    local wait = self:wait_ms(now, max_wait_ms, recovering)
    if #self.ended > 0 or self.active_n == 0 then
      wait = 0 -- a waiter has news (or nothing is left to wait for): no sleep
    end
    if self.n_inflight > 0 then
      local results, werr = self.http:wait(wait)
      if not results then
        error("kling.engine: the HTTP driver failed: " .. tostring(werr))
      end
      now = self.now()
      for _, res in ipairs(results) do
        local rec = self.inflight[res.id]
        if rec then
          self.inflight[res.id] = nil
          self.n_inflight = self.n_inflight - 1
          rec.xfer = nil
          self:answer(rec, res, now)
        end
      end
      self:flush_bounced(now)
      self:dispatch(now)
    elseif wait > 0 then
      self.sleep(wait)
    end
    return self.active_n
  end

  -- Drives the loop until no create is unsettled (each task has an id, has failed, or waits
  -- here for a slot), or until timeout seconds have passed.
  function Engine:pump(timeout)
    local now = self.now()
    local deadline = timeout and now + ms("engine:pump", "timeout", timeout)
    while self.creating_n > 0 and (not deadline or now < deadline) do
      self:step(deadline and deadline - now or nil)
      now = self.now()
    end
    return self.creating_n == 0
  end

  -- set_deadline(seconds | nil): the run's deadline from now; every task still running then
  -- ends with a timeout error (it keeps running at the provider).
  function Engine:set_deadline(seconds)
    if seconds == nil then
      self.run_deadline = nil
      self.sched:set_run_deadline(nil)
      return
    end
    self.run_deadline = self.now() + ms("engine:set_deadline", "deadline", seconds, nil, true)
    self.sched:set_run_deadline(self.run_deadline)
  end

end
