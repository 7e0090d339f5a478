-- Estimates learnt from finished tasks, for requests that come without one. Per kind
-- (provider, host, model, endpoint, mode, duration, sound) the engine keeps the latest times
-- tasks took from their create to their end being seen, also across runs through a small
-- cache file (kling.engine.durations_file). When at least 3 are known and they agree (the
-- longest within 20 % of the shortest), the shortest is the expected time of the others:
-- they are polled near their end instead of backing off from their start. Durations that
-- disagree (a mixed batch) give no estimate: a minimum would put every longer task on the
-- scheduler's "late" cadence, which is dear over a long overrun. Installed as methods of the
-- engine.
local durations_file = require "kling.engine.durations_file"

local SAMPLES = 3
local SPREAD = 1.2
local SAVE_EVERY_MS = 10000 -- new samples reach the file at most this often during a wait

-- A kind's record: samples (latest durations_file.KEEP, oldest first, each {wall_s, took_ms}),
-- fresh (those not yet in the file) and the expectation they give (false: none).
local function summarise(k)
  local lo, hi = math.huge, -math.huge
  for _, s in ipairs(k.samples) do
    lo, hi = math.min(lo, s[2]), math.max(hi, s[2])
  end
  k.expect = #k.samples >= SAMPLES and hi <= lo * SPREAD and lo or false
end

return function(Engine)
  -- The kinds read from the file, once, on first use (nothing when learn_file is false).
  function Engine:learnt()
    local learned = self.learned
    if not learned then
      learned = {}
      for kind, samples in pairs(self.learn_file and durations_file.read(self.learn_file) or {}) do
        local k = { samples = samples, fresh = {} }
        summarise(k)
        learned[kind] = k
      end
      self.learned = learned
    end
    return learned
  end

  function Engine:expectation(kind)
    local k = kind and self:learnt()[kind]
    return k and k.expect or nil
  end

  -- A task of `kind` took `took` ms. When that gives a first or shorter expectation, tasks of
  -- that kind polled without an estimate expect it from now on (those already older: at
  -- once, at the scheduler's late gaps).
  function Engine:observe(kind, took, now)
    local learned = self:learnt()
    local k = learned[kind]
    if not k then
      k = { samples = {}, fresh = {}, expect = false }
      learned[kind] = k
    end
    local before = k.expect
    local s = { self.wall_s(), took }
    k.samples = durations_file.union(k.samples, { s })
    local fresh = k.fresh
    if #fresh >= durations_file.KEEP then
      table.remove(fresh, 1) -- only the latest KEEP can reach the file: 10,000 ending at once are not kept
    end
    fresh[#fresh + 1] = s
    summarise(k)
    self.learn_dirty = true
    if now - (self.learn_saved_ms or -math.huge) >= SAVE_EVERY_MS then
      self:save_learnt(now)
    end
    -- Only a first or shorter expectation moves the tasks already out: a longer one (the
    -- window of samples moved on) applies to the next ones, and re-reporting every task at
    -- each sample would keep pushing their polls later.
    local after = k.expect
    if not after or (before and after >= before) then
      return
    end
    self:relearn(kind, after, now) -- each task's machine decides (kling.engine.run)
  end

  -- Merges the samples learnt since the last save into the cache file (when there is one). A
  -- file that cannot be written leaves the engine as it was: the cache is an optimisation.
  function Engine:save_learnt(now)
    self.learn_saved_ms = now
    if not self.learn_dirty or not self.learn_file then
      return
    end
    self.learn_dirty = false
    local fresh = {}
    for kind, k in pairs(self.learned) do
      if #k.fresh > 0 then
        fresh[kind] = k.fresh
        k.fresh = {}
      end
    end
    durations_file.merge(self.learn_file, fresh)
  end
end
