-- What the engine does with each answer: a create's, a lookup's by external id, a poll's,
-- or a callback's. The retry decisions are core.decide's (the same policy as
-- kling.transport): a query is retried while its error is transient, until the task's
-- deadline; a create is sent again only when it provably never left the host, or when the
-- provider refused it (rate-limited: it said no, nothing exists). A create whose answer was lost
-- is looked up by its external id before anything else. Installed as methods of the engine.
local core = require "kling.core"
local errors = require "kling.errors"
local providers = require "kling.providers"
local transport = require "kling.transport"
local task_mod = require "kling.task"
local effects = require "kling.lifecycle.effects"

local TERMINAL = task_mod.TERMINAL
local read_result = transport.read_result

local PHASE = { pending = "waiting", queued = "queued", running = "running", succeeded = "succeeded",
  failed = "failed", cancelled = "failed" }

return function(Engine)
  function Engine:decide(method, attempt, f, res, now, deadline)
    local ctx = self.ctx
    return core.decide {
      method = method, attempt = attempt, max_attempts = ctx.max_attempts, http_status = f.status,
      code = tonumber(f.code), codes = self.provider.codes, transport = f.transport, sent = f.sent,
      received = f.received,
      retry_after = res.headers and res.headers["retry-after"], now_s = self.wall_s(),
      budget_ms = math.max(0, deadline - now), base_ms = ctx.base_ms, cap_ms = ctx.cap_ms,
    }
  end

  function Engine:error_of(f, d, extra)
    return transport.failure(f, d, self.provider.name, extra)
  end

  -- The token expired in flight (the provider's renew_token_codes): a new token, and the same
  -- request again at once, once per request. True when handled.
  function Engine:renewed(rec, f, now)
    if not self.ctx.auth or rec.renewed or not providers.token_expired(self.provider, f) then
      return false
    end
    effects.renew_token(self.ctx, now) -- at most once a second per client (kling.lifecycle.effects)
    rec.renewed = true
    return true
  end

  function Engine:protocol(msg, extra)
    local e = errors.new { kind = "protocol", provider = self.provider.name, message = msg, retryable = false }
    for k, v in pairs(extra or {}) do
      e[k] = v
    end
    return e
  end

  -- The task exists at the provider (create answered, found by external id, or a callback
  -- told us first): poll it from now on.
  function Engine:accept(rec, fields, now)
    local t = rec.task
    t:update(fields)
    rec.c, rec.adopt, rec.renewed, rec.lookups, rec.uncertain_err = nil, nil, nil, nil, nil
    rec.fails = 0
    rec.created_ms = now
    if rec.callback then
      self.by_id[t.id] = rec
    end
    self.created_n = self.created_n + 1
    self:confirm_slot(rec, now)
    if self.hook_created then
      self.hook_created(t)
    end
    self:set_phase(rec, PHASE[t.status] or "queued")
    if TERMINAL[t.status] then
      return self:finish(rec, t.status ~= "succeeded" and t:failure() or nil, now)
    end
    self:schedule(rec, now)
  end

  -- Into the scheduler; a task with a callback is polled only after a silence.
  function Engine:schedule(rec, now)
    local expect = rec.expect_ms
    local h = self.sched:add(now, expect, rec.deadline)
    rec.h = h
    self.by_h[h] = rec
    self.moot_timers = self.moot_timers + 1 -- the scheduler keeps its deadline from now on
    self:set_state(rec, "sched")
    if not expect and self.learn then
      self:expect_learnt(rec, now) -- the window its kind's tasks took (kling.engine.learn), else back-off
    end
    if rec.callback then
      self.sched:defer(h, now, self.silence_ms)
    end
  end

  -- The create's fate is unknown (sent, no usable answer): look it up by external id.
  function Engine:uncertain(rec, err, now)
    self.uncertain_n = self.uncertain_n + 1
    if not rec.task.external_task_id or not self.provider.external_query_path then
      return self:finish(rec, err, now)
    end
    rec.uncertain_err = err
    rec.lookups, rec.fails = 0, 0
    self:queue_lookup(rec)
  end

  function Engine:on_create(rec, res, now)
    local data, f = read_result(self.provider, res)
    if data ~= nil then
      local fields, perr = self.provider.parse_task(data, rec.task.endpoint)
      if fields then
        return self:accept(rec, fields, now)
      end
      return self:uncertain(rec, self:protocol("create succeeded but its answer is unreadable: " .. perr,
        { uncertain = true, external_task_id = rec.task.external_task_id }), now)
    end
    if self:renewed(rec, f, now) then
      return self:queue_create(rec)
    end
    local d = self:decide("POST", rec.fails, f, res, now, rec.deadline)
    if d.uncertain then
      return self:uncertain(rec, self:error_of(f, d, { external_task_id = rec.task.external_task_id }), now)
    end
    if d.retry then -- provably never left the host
      rec.fails = rec.fails + 1
      rec.not_before = now + d.delay_ms
      self:set_state(rec, "delay")
      return self:timer(rec, rec.not_before)
    end
    if d.kind == "rate_limited" and f.status and (rec.deadline - now) > d.delay_ms then
      -- Refused, nothing created: queue again; the provider says whether its slots are full.
      return self:bounce(rec, now, math.max(d.delay_ms, 1000), providers.slot_full(self.provider, f))
    end
    if rec.resent and d.kind == "validation" then
      -- The create sent again after a lookup found nothing was refused (a duplicate
      -- external id): the first one exists after all. Look again.
      return self:uncertain(rec, rec.uncertain_err, now)
    end
    self:finish(rec, self:error_of(f, d), now)
  end

  function Engine:on_lookup(rec, res, now)
    local data, f = read_result(self.provider, res)
    if data ~= nil then
      if type(data) == "table" and data[1] ~= nil then
        data = data[1]
      end
      local fields, perr = self.provider.parse_task(data, rec.task.endpoint)
      if fields then
        self.adopted_n = self.adopted_n + 1
        return self:accept(rec, fields, now)
      end
      if perr:find("status", 1, true) then
        return self:finish(rec, self:protocol(perr), now)
      end
      f = { transport = "protocol", message = perr, status = res.status, sent = true, received = true }
    end
    if self:renewed(rec, f, now) then
      return self:queue_lookup(rec)
    end
    local d = self:decide("GET", rec.fails, f, res, now, rec.deadline)
    if d.kind == "not_found" then
      if rec.adopt then -- resuming: nothing exists under this external id, create it
        rec.adopt = nil
        return self:queue_create(rec)
      end
      rec.lookups = rec.lookups + 1
      if rec.lookups < self.lookups then
        -- A create still being handled may not be visible yet: look again, later.
        rec.not_before = now + 1000 * math.floor(2 ^ (rec.lookups - 1))
        self:set_state(rec, "lwait")
        return self:timer(rec, rec.not_before)
      end
      if not rec.resent then
        -- Looked up and not found: the design allows one more create, under the same
        -- external id so that the provider refuses it should the first appear after all.
        rec.resent = true
        rec.fails = 0
        return self:queue_create(rec)
      end
      return self:finish(rec, rec.uncertain_err, now)
    end
    if d.retryable and rec.deadline > now then
      rec.fails = rec.fails + 1
      rec.not_before = now + d.delay_ms
      self:set_state(rec, "lwait")
      return self:timer(rec, rec.not_before)
    end
    self:finish(rec, self:error_of(f, d, { uncertain = rec.uncertain_err and true or nil,
      external_task_id = rec.task.external_task_id }), now)
  end

  function Engine:on_poll(rec, res, now)
    local data, f = read_result(self.provider, res)
    if data ~= nil then
      local fields, perr = self.provider.parse_task(data, rec.task.endpoint)
      if fields then
        rec.fails, rec.renewed = 0, nil
        return self:news(rec, fields, now, false)
      end
      if perr:find("status", 1, true) then
        -- A status this module does not know: an error, never "keep polling".
        return self:finish(rec, self:protocol(perr), now)
      end
      f = { transport = "protocol", message = perr, status = res.status, sent = true, received = true }
    end
    self:set_state(rec, "sched")
    if self:renewed(rec, f, now) then
      return self.sched:defer(rec.h, now, 0)
    end
    local d = self:decide("GET", rec.fails, f, res, now, rec.deadline)
    if d.retryable then
      rec.fails = rec.fails + 1
      self.poll_errors = self.poll_errors + 1
      return self.sched:defer(rec.h, now, d.delay_ms)
    end
    self:finish(rec, self:error_of(f, d), now)
  end

  -- News of a task from a poll or a callback.
  function Engine:news(rec, fields, now, from_callback)
    local t = rec.task
    t:update(fields)
    self:set_phase(rec, PHASE[t.status] or rec.phase)
    if TERMINAL[t.status] then
      if rec.h then
        self.sched:report(rec.h, now, nil, nil, true)
        self.by_h[rec.h] = nil
        rec.h = nil
      end
      return self:finish(rec, t.status ~= "succeeded" and t:failure() or nil, now)
    end
    if rec.state == "poll" and from_callback then
      return -- the poll in flight reports when it answers
    end
    if rec.state == "pready" or not from_callback then
      self:set_state(rec, "sched")
    end
    local progress = tonumber(t.progress)
    if progress and (progress < 0 or progress > 100) then
      progress = nil
    end
    local eta = tonumber(t.eta)
    eta = eta and eta >= 0 and math.floor(eta * 1000) or nil
    if eta then
      rec.expect_ms = now + eta - rec.created_ms
    end
    self.sched:report(rec.h, now, progress, eta)
    if rec.callback and (from_callback or rec.heard) then
      -- Callbacks are arriving: the next poll is only a fallback after a silence.
      self.sched:defer(rec.h, now, self.silence_ms)
    end
  end
end
