-- What a wait reports as it goes: counts of the watched tasks by phase, the charges the
-- provider reported so far (summed as integer micro-units: no float touches money), and an
-- ETA. Counts move incrementally as tasks change phase, so an event costs nothing per task;
-- only the ETA walks the unfinished tasks, and events are throttled by the engine.
local core = require "kling.core"

local Watch = {}
Watch.__index = Watch

local M = {}

-- Phases a task goes through: waiting (here: for a slot, a delay or its create's answer),
-- queued and running (at the provider), then succeeded or failed.
M.PHASES = { "waiting", "queued", "running", "succeeded", "failed" }

-- tasks: the caller's list (not copied; the records are looked up while they run, so that a
-- task's record can be dropped as soon as it ends).
function M.new(started_ms, tasks)
  return setmetatable({
    total = 0, started_ms = started_ms, spend = 0, charged = 0, unreadable_charges = 0,
    counts = { waiting = 0, queued = 0, running = 0, succeeded = 0, failed = 0 },
    tasks = tasks,
  }, Watch)
end

-- Adds a succeeded task's charge: the one the provider reported (a decimal string or number, in
-- its unit), else the one its budget settled it at (task.charge_quote, in the provider's unit
-- too): apimodels reports none, and a run of its tasks said spend "0" while the client's own
-- ledger, and the provider, had charged them. A task with neither is not counted in `charged`.
function Watch:charge(task)
  local amount = task.charge
  if amount == nil then
    local q = task.charge_quote
    if type(q) == "table" and type(q.micros) == "number" then
      self.spend = core.money_add(self.spend, q.micros) or self.spend
      self.charged = self.charged + 1
    end
    return
  end
  local micros = core.money_parse(type(amount) == "number" and string.format("%.6f", amount) or tostring(amount))
  if micros then
    self.spend = core.money_add(self.spend, micros)
    self.charged = self.charged + 1
  else
    self.unreadable_charges = self.unreadable_charges + 1
  end
end

-- A task watched from now on, in its phase now.
function Watch:add(phase, task)
  self.total = self.total + 1
  self.counts[phase] = self.counts[phase] + 1
  if phase == "succeeded" then
    self:charge(task)
  end
end

function Watch:move(rec, from, to)
  local c = self.counts
  c[from] = c[from] - 1
  c[to] = c[to] + 1
  if to == "succeeded" then
    self:charge(rec.task)
  end
end

function Watch:finished()
  return self.counts.succeeded + self.counts.failed
end

-- Seconds until every watched task should have ended, or nil when nothing is known: each
-- task at the provider takes its estimate (the request's hint, the provider's eta, else the
-- mean of the tasks seen to finish); tasks waiting for a slot go in waves of the key's
-- effective limit after that.
function Watch:eta_s(engine, now)
  local mean = engine.finished_n > 0 and engine.finished_ms / engine.finished_n or nil
  local longest, waiting = 0, {}
  local recs = engine.recs
  for _, t in ipairs(self.tasks) do
    local rec = recs[t]
    local phase = type(rec) == "table" and rec.waiter == self and rec.task.status -- running: no ended phase
    if phase == "queued" or phase == "running" then -- at the provider
      local expected = rec.expect_ms or mean
      if not expected then
        return nil
      end
      local left = (rec.created_ms or now) + expected - now
      if left > longest then
        longest = left
      end
    elseif phase == "pending" then -- waiting here
      local key = engine:model_of(rec)
      waiting[key] = (waiting[key] or 0) + 1
    end
  end
  local extra = 0
  for key, n in pairs(waiting) do
    if not mean then
      return nil
    end
    local limit = engine:effective_limit(key)
    local waves = limit and math.ceil(n / limit) or 1
    extra = math.max(extra, waves * mean)
  end
  return math.max(0, longest + extra) / 1000
end

-- The event handed to on_progress.
function Watch:event(engine, now)
  local c = self.counts
  return {
    total = self.total, waiting = c.waiting, queued = c.waiting + c.queued, running = c.running,
    succeeded = c.succeeded, failed = c.failed, done = c.succeeded + c.failed,
    spend = core.money_format(self.spend), spend_micros = self.spend, charged = self.charged,
    unreadable_charges = self.unreadable_charges > 0 and self.unreadable_charges or nil,
    elapsed_s = (now - self.started_ms) / 1000, eta_s = self:eta_s(engine, now),
  }
end

return M
