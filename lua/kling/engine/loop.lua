-- The engine's loop: timers, slots, due polls and answers, one turn at a time. Requests
-- start over the driver's asynchronous seam (driver:start with a completion, driver:wait,
-- driver:cancel: kling.driver.multi) and each answer is fed to its task's machine as it
-- comes; the loop sleeps in driver:wait (curl_multi_poll) or sleep_ms when nothing is in
-- flight, until the next answer or the next due time, never busy-waiting. Installed as
-- methods of the engine.
local collector = require "kling.engine.collector"
local errors = require "kling.errors"
local queue = require "kling.engine.queue"
local ms = require("kling.engine.args").ms

local push, pop, qsize = queue.push, queue.pop, queue.size

local DEADLINE, WAKE = 0, 1 -- timer tokens: a task's deadline, a machine's wake-up
local MAX_SLEEP_MS = 60000

return function(Engine)
  -- Starts one queued request of a task over the driver; its answer comes to answered().
  -- a: the machine's send action, or the path of a poll (Machine:poll_due: a GET); auth: the
  -- Authorization header (Engine:bearer), or nil.
  function Engine:start(m, a, now, auth)
    local req = self.req
    local headers = req.headers -- accept: application/json, set once (kling.engine)
    headers.authorization = auth
    if type(a) == "string" then -- a poll's path
      headers["content-type"] = nil
      req.method, req.url, req.body = "GET", self.base_url .. a, nil
      self.polls_sent = self.polls_sent + 1
    else
      headers["content-type"] = a.body and "application/json" or nil
      req.method, req.url, req.body = a.method, self.base_url .. a.path, a.body
      local purpose = a.purpose
      if purpose == "create" then
        if self.hook_create then -- the machine's journal{create}: on disk before the create leaves
          self.hook_create(m.task)
        end
        self.sent_at[m.n] = now
        self.creates_sent = self.creates_sent + 1
      elseif purpose == "lookup" then
        self.lookups_sent = self.lookups_sent + 1
      elseif purpose == "poll" then
        self.polls_sent = self.polls_sent + 1
      end
    end
    local id, serr = self.driver:start(req, self.answered, m)
    if not id then -- the transfer could not start: nothing left the host
      m.io = false
      return self:feed(m, "answer", now, { ok = false, error = "other", message = serr, sent = false,
        received = false }, self.wall_s())
    end
    m.io = id
    self.n_inflight = self.n_inflight + 1
  end

  -- The Authorization header: the auth's bearer for this second, made once a second (the
  -- same second gives the same token until the token is renewed: effects.renew_token), not
  -- once a request (a 200-byte string each); read once a dispatch, not once a request (a
  -- renewal comes with an answer, between dispatches).
  function Engine:bearer(ctx)
    local sec = math.floor(self.wall_s())
    if self.bearer_s ~= sec or self.bearer_renewed ~= ctx.renewed_ms then
      self.bearer_text = ctx.auth:bearer(sec)
      self.bearer_s, self.bearer_renewed = sec, ctx.renewed_ms
    end
    return self.bearer_text
  end

  -- Starts queued requests while there is room: polls and creates take turns, so that
  -- neither a flood of due polls nor a batch of creates starves the other. A create whose
  -- slot was taken back (a limit learnt meanwhile) waits for it again (kling.engine.limits).
  function Engine:dispatch(now)
    local qp, qc = self.q_poll, self.q_create
    local turn, auth, max = true, false, self.max_requests
    while self.n_inflight < max do
      local has_p, has_c = qp.h <= qp.t, qc.h <= qc.t
      if not has_p and not has_c then
        break
      end
      local m
      if has_p and (turn or not has_c) then
        m = pop(qp)
      else
        m = pop(qc)
      end
      turn = not turn
      local a = m.io -- a send action or a poll's path (queued), else nothing to start
      local ta = type(a) -- a poll (a string) is of a created task, which waits for no slot
      if ta == "string" or (ta == "table" and m.slot ~= "wait") then
        if auth == false then
          local ctx = self.ctx
          auth = ctx.auth and self:bearer(ctx) or nil
        end
        self:start(m, a, now, auth)
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
      local m = self.by_n[n] -- nil once the task has ended
      if m then
        if tok == DEADLINE then
          if not m.h then -- else the scheduler holds its deadline
            self:feed(m, "deadline", now)
          end
        elseif m.wake_at == at and not (m.h and m.state == "scheduled") then
          self:feed(m, "timer", now)
        end
      end
    end
  end

  -- Timers that can only be skipped (of ended tasks, superseded wake-ups, deadlines the
  -- scheduler holds) are dropped once they are most of a heap of 1,024 or more: 10,000
  -- tasks in flight would otherwise carry 10,000 dead deadlines. A task the scheduler does
  -- not hold has at most two live timers.
  function Engine:prune_timers()
    local tm = self.timers
    local size = tm:size()
    if size < 1024 or size <= 4 * (self.active_n - self.scheduled_n) then
      return
    end
    local by_n = self.by_n
    tm:keep(function(n, tok, at)
      local m = by_n[n]
      if not m or m.h then
        return false
      end
      return tok == DEADLINE or m.wake_at == at
    end)
  end

  -- Due polls to their machines, as many as there is room for; expired tasks end.
  function Engine:collect_due(now)
    local room = self.max_requests - self.n_inflight - qsize(self.q_poll)
    if room <= 0 then
      return
    end
    local due, expired = self.sched:due(now, room)
    local by_h = self.by_h
    for _, h in ipairs(expired) do
      local m = by_h[h]
      if m then
        self:feed(m, "deadline", now)
      else
        self.sched:remove(h)
      end
    end
    local q = self.q_poll
    for _, h in ipairs(due) do
      local m = by_h[h]
      if m then
        -- A poll and nothing else: its path is queued as is (no action list, no send action,
        -- and none of feed's counts can move); else the machine's timer() decides.
        local path = m:poll_due(now)
        if path then
          if m.io then
            self:drop_request(m)
          end
          m.io = path
          push(q, m)
        else
          self:feed(m, "timer", now)
        end
      end
    end
  end

  function Engine:expire_all(now)
    for _, m in pairs(self.by_n) do
      self:feed(m, "deadline", now)
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
    local run = self.run_deadline
    if run and run > now and run - now < w then -- once passed, every task has heard it
      w = run - now
    end
    return math.max(0, math.floor(w))
  end

  -- One turn of the loop: fire timers, hand out slots, start due requests, then wait (at most
  -- max_wait_ms) for answers or the next due time; each answer reaches its machine from the
  -- driver's completion. Returns the number of tasks still active.
  function Engine:step(max_wait_ms)
    local now = self.now()
    collector.check(self, now)
    if self.run_deadline and now >= self.run_deadline then
      self:expire_all(now)
    end
    self:prune_timers()
    self:fire_timers(now)
    self:flush_bounced(now)
    local recovering = self:recover(now)
    self:collect_due(now)
    self:dispatch(now)
    local wait = self:wait_ms(now, max_wait_ms, recovering)
    if #self.ended > 0 or self.active_n == 0 then
      wait = 0 -- a waiter has news (or nothing is left to wait for): no sleep
    end
    if self.n_inflight > 0 then
      self.batch_now = false -- the answers of this wait read the clocks once (kling.engine)
      local n, werr = self.driver:wait(wait)
      self.batch_now = false
      if not n then
        error("kling.engine: the HTTP driver failed: " .. tostring(werr))
      end
      now = self.now()
      self:flush_bounced(now)
      self:dispatch(now)
    elseif wait > 0 then
      self.sleep(wait)
    end
    return self.active_n
  end

  -- The loop is driven by one coroutine at a time. Inside nginx, two requests or timers of a
  -- worker sharing a client would each step it (each light thread in its own driver:wait), and
  -- the second's submit_many sent creates that no wait of its own could then watch. drive(fn,
  -- body, ...) runs body(...) as the driver, raising before it runs when another coroutine is
  -- driving; the same coroutine may drive again (a submit_many from on_done).
  local MAIN = {} -- the main coroutine, which LuaJIT's coroutine.running() gives as nil

  -- may_drive(fn) -> the calling coroutine; raises (fn's misuse) when another one drives.
  function Engine:may_drive(fn)
    local co = coroutine.running() or MAIN
    if self.driving and self.driving ~= co then
      errors.misuse(fn, "another request or timer is driving this engine: inside nginx, a client shared by"
        .. " a worker's requests or timers (make the client in the handler or timer that uses it); nothing was"
        .. " sent")
    end
    return co
  end

  function Engine:drive(fn, body, ...)
    local co = self:may_drive(fn)
    local outer = self.driving
    self.driving = co
    local ok, a, b = pcall(body, ...)
    self.driving = outer
    if not ok then
      error(a, 0)
    end
    return a, b
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

  Engine.WAKE, Engine.DEADLINE = WAKE, DEADLINE
end
