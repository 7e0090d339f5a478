-- Slot limits of the engine, one kling.core slot limiter per model: a task holds a slot from
-- the moment its create is sent until it ends, and waits here, locally, while none is free.
-- A model runs unlimited until either max_parallel names a limit or the provider refuses a
-- create for lack of slots (1303, a gateway's bare 429): the limit is then learnt as the
-- number of our tasks holding a provider slot at that moment. Later refusals cut the
-- effective limit (AIMD in C). Installed as methods of the engine.
local core = require "kling.core"

-- States of a task known to hold a provider slot, and of one whose create left but whose
-- fate is not known yet (it takes a slot when the provider confirms it: accept()).
local CONFIRMED = { sched = true, pready = true, poll = true }
local SENT = { create = true, lwait = true, lready = true, lookup = true }
-- States of a task that has sent nothing yet.
local UNSENT = { ready = true, delay = true, slot = true }

local function by_n(a, b)
  return a.n < b.n
end

return function(Engine)
  function Engine:effective_limit(key)
    local lim = self.limiters[key]
    return lim and (lim:limit()) or nil
  end

  -- Grants from the limiter: each task granted a slot goes on; a grant to a task that is no
  -- longer waiting (cannot happen while finish cancels its place) is given straight back.
  function Engine:handle_grants(lim, ids, now)
    for _, id in ipairs(ids) do
      local rec = self.by_n[id]
      if rec and rec.state == "slot" then
        self:granted(rec, now)
      else
        self:handle_grants(lim, lim:release(now), now)
      end
    end
  end

  -- (Re)builds key's limiter. A learnt limit (limit nil: learn it now; learnt: raise one)
  -- counts the tasks the provider has confirmed, plus `include` (being confirmed): creates
  -- still in flight may yet be refused. A configured limit counts every sent task. Tasks at
  -- the provider keep a slot as far as the limit goes; unsent ones queue in submission order.
  function Engine:build_limiter(key, limit, now, except, learnt, include)
    learnt = learnt or limit == nil
    local holders, unsent = {}, {}
    for _, rec in pairs(self.by_n) do
      if rec.key == key and rec ~= except then
        rec.slot = nil
        if CONFIRMED[rec.state] or rec == include or (not learnt and SENT[rec.state]) then
          holders[#holders + 1] = rec
        elseif UNSENT[rec.state] and not rec.bounced then
          unsent[#unsent + 1] = rec
        end
      end
    end
    table.sort(holders, by_n)
    table.sort(unsent, by_n)
    self.learnt_limit[key] = learnt or nil
    self.built_ms[key] = now
    local o = self.slot_opts
    local lim = core.slots { limit = limit or math.max(1, #holders), decrease = o.decrease,
      recover_after = o.recover_after, recover_ms = o.recover_ms, cooldown_ms = o.cooldown_ms }
    self.limiters[key] = lim
    for _, rec in ipairs(holders) do
      rec.slot = lim:acquire(rec.n) or nil
      if not rec.slot then
        lim:cancel(rec.n) -- beyond a lowered limit: it runs on, outside the count
      end
    end
    for _, rec in ipairs(unsent) do
      self:set_state(rec, "slot")
      if lim:acquire(rec.n) then
        self:granted(rec, now)
      end
    end
    return lim
  end

  -- The provider confirmed a task that holds no slot (its create was in flight when the
  -- limiter was made): it takes one if there is room. If not, a learnt limit was too low
  -- (answers of one burst arrive in any order): the provider has this one more running.
  -- Under a configured limit it runs on outside the count.
  function Engine:confirm_slot(rec, now)
    local lim = self.limiters[rec.key]
    if lim and not rec.slot then
      rec.slot = lim:acquire(rec.n) or nil
      if not rec.slot then
        lim:cancel(rec.n)
        if self.learnt_limit[rec.key] then
          local _, c = lim:limit()
          self:build_limiter(rec.key, c + 1, now, nil, true, rec)
        end
      end
    end
  end

  -- A task wants to send its create (or its adoption lookup): a slot first, when limited.
  function Engine:want_slot(rec, now)
    local lim = self.limiters[rec.key]
    if not lim then
      return self:granted(rec, now)
    end
    self:set_state(rec, "slot")
    if lim:acquire(rec.n) then
      self:granted(rec, now)
    end
  end

  function Engine:granted(rec, now)
    rec.slot = self.limiters[rec.key] ~= nil or nil
    if rec.not_before and rec.not_before > now then
      self:set_state(rec, "delay")
      self:timer(rec, rec.not_before)
    elseif rec.adopt then
      self:queue_lookup(rec)
    else
      self:queue_create(rec)
    end
  end

  -- The task ended (or gave up its create): its slot goes to the next waiting task.
  function Engine:release_slot(rec, now, success)
    local lim = self.limiters[rec.key]
    if not lim then
      return
    end
    if success then
      lim:on_success(now)
    end
    if rec.slot then
      rec.slot = nil
      self:handle_grants(lim, lim:release(now), now)
    elseif rec.state == "slot" then
      lim:cancel(rec.n)
    end
  end

  -- The provider refused a create (nothing was created). no_slot: it had no free slot (its
  -- slot_full_codes or a bare 429, providers.slot_full): cut the limit or learn it, and the task
  -- waits for a slot again at the head of the queue. Either way it is sent again no sooner than
  -- delay_ms from now.
  function Engine:bounce(rec, now, delay_ms, no_slot)
    rec.not_before = now + delay_ms
    if not no_slot then
      self:set_state(rec, "delay")
      return self:timer(rec, rec.not_before)
    end
    self.rate_limited = self.rate_limited + 1
    local lim = self.limiters[rec.key]
    if lim then
      -- Only a create sent since the limit was set says the limit is too high: the other
      -- refusals of a burst were answers to creates sent before it.
      if rec.c and rec.c.sent_ms and rec.c.sent_ms >= self.built_ms[rec.key] then
        lim:on_rate_limited(now)
      end
      if rec.slot then
        rec.slot = nil
        self:set_state(rec, "slot") -- so that a grant made by this release is not for it
        self:handle_grants(lim, lim:release(now), now)
      end
    else
      self:build_limiter(rec.key, nil, now, rec)
    end
    -- Back to the head of the queue, once the step's answers are in: a burst refused
    -- together keeps its submission order (flush_bounced).
    self:set_state(rec, "slot")
    rec.bounced = true
    self.bounced[#self.bounced + 1] = rec
  end

  local function by_n_desc(a, b)
    return a.n > b.n
  end

  function Engine:flush_bounced(now)
    local list = self.bounced
    if #list == 0 then
      return
    end
    self.bounced = {}
    table.sort(list, by_n_desc) -- each goes to the front: the oldest last, so it leads
    for _, rec in ipairs(list) do
      rec.bounced = nil
      local lim = self.limiters[rec.key]
      if rec.state == "slot" and lim and lim:acquire(rec.n, true) then
        self:granted(rec, now)
      end
    end
  end

  -- Time-based recovery of cut limits: hand out what came back.
  function Engine:recover(now)
    local waiting = false
    for _, lim in pairs(self.limiters) do
      if lim:queued() > 0 then
        self:handle_grants(lim, lim:grant(now), now)
        waiting = waiting or lim:queued() > 0
      end
    end
    return waiting
  end

  -- set_limit(model | nil, n): the provider's parallel slots for a model (nil: every model
  -- without its own limit). Tasks already sent keep their slots as far as n goes.
  function Engine:set_limit(model, n)
    if type(n) ~= "number" or n ~= math.floor(n) or n < 1 or n > 1000000 then
      error("kling.engine:set_limit: n must be a whole number from 1 to 1000000", 2)
    end
    if model ~= nil and type(model) ~= "string" then
      error("kling.engine:set_limit: model must be a model name or nil", 2)
    end
    n = math.floor(n)
    local now = self.now()
    if model == nil then
      self.default_limit = n
      for key, lim in pairs(self.limiters) do
        local _, c = lim:limit()
        if c ~= n and not self.model_limits[key] then
          self:build_limiter(key, n, now)
        end
      end
      return
    end
    self.model_limits[model] = n
    local lim = self.limiters[model]
    local c = lim and select(2, lim:limit())
    if c ~= n then
      self:build_limiter(model, n, now)
    end
  end

  -- The limit configured for a model, for a key seen the first time.
  function Engine:configured_limit(key)
    return self.model_limits[key] or self.default_limit
  end
end
