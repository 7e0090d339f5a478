-- Slot limits of the engine, one kling.core slot limiter per model: a task holds a slot from
-- the moment its create is sent until it ends, and waits here, locally, while none is free.
-- A model runs unlimited until either max_parallel names a limit or the provider refuses a
-- create for lack of slots (its machine says `refused` with slot_full: Kling's 1303, a
-- gateway's bare 429): the limit is then learnt as the number of our tasks holding a
-- provider slot at that moment. Later refusals cut the effective limit (AIMD in C). The
-- machine asks for a slot (`acquire`) before a create and is told `granted`; the limiter is
-- the engine's resource, like its requests in flight. Installed as methods of the engine.
--
-- A task's `slot`: true (it holds one), "wait" (queued in the limiter), "front" (to queue at
-- the head once this step's answers are in: a refused create keeps its place), nil (none).
local core = require "kling.core"
local errors = require "kling.errors"

-- Machine states of a task the provider has confirmed, and of one whose create left but
-- whose fate is not known yet (it takes a slot when the provider confirms it: created).
local CONFIRMED = { created = true, scheduled = true, polling = true, cancelling = true }
local SENT = { creating = true, lookup = true, lookup_wait = true }

local function by_n(a, b)
  return a.n < b.n
end

-- A create queued here, not started yet (withdrawn when a learnt limit leaves it no slot).
local function unstarted(m)
  local io = m.io
  return type(io) == "table" and (io.purpose == "create" or (io.purpose == "lookup" and m.adopt == true))
end

return function(Engine)
  -- The model whose slots a task counts against (tasks tracked from elsewhere: none).
  function Engine:model_of(m)
    if m.tracked then
      return "tracked"
    end
    local r = m.task.request
    return r and r.model or self.provider.default_model or "default"
  end

  function Engine:effective_limit(key)
    local lim = self.limiters[key]
    return lim and (lim:limit()) or nil
  end

  -- A slot was granted to m: its queued create goes, or its machine hears it.
  function Engine:grant(m, now)
    m.slot = true
    if unstarted(m) then
      return self:requeue(m)
    end
    self:feed(m, self:past_run(now) and "deadline" or "granted", now)
  end

  function Engine:requeue(m)
    local q = self.q_create
    q.t = q.t + 1
    q[q.t] = m
  end

  -- Grants from the limiter: each task granted a slot goes on; a grant to a task no longer
  -- waiting (cannot happen while an end cancels its place) is given straight back.
  function Engine:handle_grants(lim, ids, now)
    for _, id in ipairs(ids) do
      local m = self.by_n[id]
      if m and m.slot == "wait" then
        self:grant(m, now)
      else
        self:handle_grants(lim, lim:release(now), now)
      end
    end
  end

  -- (Re)builds key's limiter. A learnt limit (limit nil: learn it now; learnt: raise one)
  -- counts the tasks the provider has confirmed, plus `include` (being confirmed): creates
  -- still in flight may yet be refused. A configured limit counts every sent task. Tasks at
  -- the provider keep a slot as far as the limit goes; the others queue in submission order.
  function Engine:build_limiter(key, limit, now, except, learnt, include)
    learnt = learnt or limit == nil
    local holders, waiting = {}, {}
    for _, m in pairs(self.by_n) do
      if m ~= except and m.slot ~= "front" and self:model_of(m) == key then
        local s = m.state
        if CONFIRMED[s] or m == include or (not learnt and SENT[s] and not unstarted(m)) then
          m.slot = nil
          holders[#holders + 1] = m
        elseif s == "slot_wait" or unstarted(m) then
          m.slot = nil
          waiting[#waiting + 1] = m
        end
      end
    end
    table.sort(holders, by_n)
    table.sort(waiting, by_n)
    self.learnt_limit[key] = learnt or nil
    self.built_ms[key] = now
    local o = self.slot_opts
    local lim = core.slots { limit = limit or math.max(1, #holders), decrease = o.decrease,
      recover_after = o.recover_after, recover_ms = o.recover_ms, cooldown_ms = o.cooldown_ms }
    self.limiters[key] = lim
    for _, m in ipairs(holders) do
      m.slot = lim:acquire(m.n) or nil
      if not m.slot then
        lim:cancel(m.n) -- beyond a lowered limit: it runs on, outside the count
      end
    end
    for _, m in ipairs(waiting) do
      m.slot = "wait"
      if lim:acquire(m.n) then
        self:grant(m, now)
      end
    end
    return lim
  end

  -- The provider confirmed a task that holds no slot (its create was in flight when the
  -- limiter was made): it takes one if there is room. If not, a learnt limit was too low
  -- (answers of one burst arrive in any order): the provider has this one more running.
  -- Under a configured limit it runs on outside the count.
  function Engine:confirm_slot(m, now)
    local key = self:model_of(m)
    local lim = self.limiters[key]
    if lim and m.slot ~= true then
      m.slot = lim:acquire(m.n) or nil
      if not m.slot then
        lim:cancel(m.n)
        if self.learnt_limit[key] then
          local _, c = lim:limit()
          self:build_limiter(key, c + 1, now, nil, true, m)
        end
      end
    end
  end

  -- The machine asks for a slot before its create (or its adoption's lookup). True when it
  -- has one now (or no limit applies); else it waits in the limiter and hears granted later.
  function Engine:acquire(m, front)
    local lim = self.limiters[self:model_of(m)]
    if not lim or m.slot == true then
      return true
    end
    if front then -- queued at the head once this step's answers are in (flush_bounced)
      m.slot = "front"
      self.bounced[#self.bounced + 1] = m
      return false
    end
    m.slot = "wait"
    if lim:acquire(m.n) then
      m.slot = true
      return true
    end
    return false
  end

  -- The task ended (or gave up its create): its slot goes to the next waiting task.
  function Engine:release_slot(m, now, success)
    local lim = self.limiters[self:model_of(m)]
    if not lim then
      return
    end
    if success then
      lim:on_success(now)
    end
    local slot = m.slot
    m.slot = nil
    if slot == true then
      self:handle_grants(lim, lim:release(now), now)
    elseif slot == "wait" then
      lim:cancel(m.n)
    end
  end

  -- The provider refused a create (nothing was created); its machine waits and asks for a
  -- slot again. slot_full: it had no free slot (providers.slot_full): cut the limit or learn
  -- it, and the task's slot goes to the next. Otherwise the task keeps its slot.
  function Engine:refused(m, slot_full, now)
    if not slot_full then
      return
    end
    self.rate_limited = self.rate_limited + 1
    local key = self:model_of(m)
    local lim = self.limiters[key]
    if lim then
      -- Only a create sent since the limit was set says the limit is too high: the other
      -- refusals of a burst were answers to creates sent before it.
      local sent = self.sent_at[m.n]
      if sent and sent >= self.built_ms[key] then
        lim:on_rate_limited(now)
      end
      if m.slot == true then
        m.slot = nil
        self:handle_grants(lim, lim:release(now), now)
      end
    else
      self:build_limiter(key, nil, now, m)
    end
    self.sent_at[m.n] = nil
  end

  local function by_n_desc(a, b)
    return a.n > b.n
  end

  -- Tasks whose create was refused queue again at the head, once the step's answers are in:
  -- a burst refused together keeps its submission order.
  function Engine:flush_bounced(now)
    local list = self.bounced
    if #list == 0 then
      return
    end
    self.bounced = {}
    table.sort(list, by_n_desc) -- each goes to the front: the oldest last, so it leads
    for _, m in ipairs(list) do
      if m.slot == "front" and self.by_n[m.n] == m then
        local lim = self.limiters[self:model_of(m)]
        m.slot = "wait"
        if not lim then
          self:grant(m, now)
        elseif lim:acquire(m.n, true) then
          self:grant(m, now)
        end
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
      errors.misuse("engine:set_limit", "n (max_parallel) must be a whole number from 1 to 1000000")
    end
    if model ~= nil and type(model) ~= "string" then
      errors.misuse("engine:set_limit", "model must be a model name or nil")
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
