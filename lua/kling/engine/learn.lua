-- Estimates learnt from finished tasks, for requests that come without one. Per kind (model,
-- endpoint, mode, duration, sound) the engine keeps how many finished and the shortest and
-- longest time each took from its create to its end being seen. When at least 3 did and
-- they agree (the longest within 20 % of the shortest), the shortest is the expected time
-- of the others: they are polled near their end instead of backing off from their start.
-- Durations that disagree (a mixed batch) give no estimate: a minimum would put every longer
-- task on the scheduler's "late" cadence, which is dear over a long overrun. Installed as
-- methods of the engine.
local SAMPLES = 3
local SPREAD = 1.2

return function(Engine)
  function Engine:expectation(kind)
    local k = kind and self.learned[kind]
    if k and k.n >= SAMPLES and k.max <= k.min * SPREAD then
      return k.min
    end
    return nil
  end

  -- A task of `kind` took `took` ms. When that changes the expectation, tasks of that kind
  -- polled without an estimate expect it from now on (those already older: at once, at the
  -- scheduler's late gaps).
  function Engine:observe(kind, took, now)
    local before = self:expectation(kind)
    local k = self.learned[kind]
    if not k then
      k = { n = 0, min = took, max = took }
      self.learned[kind] = k
    end
    k.n = k.n + 1
    k.min = math.min(k.min, took)
    k.max = math.max(k.max, took)
    local after = self:expectation(kind)
    if not after or after == before then
      return
    end
    local sched = self.sched
    for _, rec in pairs(self.by_n) do
      if rec.kind == kind and rec.state == "sched" and not rec.expect_ms and not rec.callback then
        sched:report(rec.h, now, nil, math.max(0, after - (now - rec.created_ms)))
      end
    end
  end
end
