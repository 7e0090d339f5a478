-- Estimates learnt from finished tasks, for requests that come without one. Per kind
-- (provider, host, model, endpoint, mode, duration, sound) the engine keeps the latest times
-- tasks took, also across runs through a small cache file (kling.engine.durations_file): the
-- provider's own (its finish time minus its create time) when it reports both, else from the
-- create to the end being seen (which counts the client's own lateness). When at least 3 are
-- known and they agree (the longest within 50 % of the shortest), a new task of the kind is
-- expected to end between the shortest and the longest: core.sched polls it from the window's
-- start at gaps of 4 % of its end (sched:expect), about 3-4 polls a task for durations within
-- +-15 %. Durations that disagree more (a mixed batch) give no window: polls through a wide one
-- would cost more than the back-off. Installed as methods of the engine.
local durations_file = require "kling.engine.durations_file"

local SAMPLES = 3
local SPREAD = 1.5
local MOVED = 0.9 -- a window whose start moved earlier than this share of the old one is news
local SAVE_EVERY_MS = 10000 -- new samples reach the file at most this often during a wait

-- A kind's record: samples (latest durations_file.KEEP by create time, oldest first, each
-- {wall_s of the create, took_ms}),
-- fresh (those not yet in the file) and the window they give, {shortest, longest} (false: none).
local function summarise(k)
  local lo, hi = math.huge, -math.huge
  for _, s in ipairs(k.samples) do
    lo, hi = math.min(lo, s[2]), math.max(hi, s[2])
  end
  k.expect = #k.samples >= SAMPLES and hi <= lo * SPREAD and { math.floor(lo), math.ceil(hi) } or false
end

-- How long the task took by the provider's own clock (ms), when it reports its create and
-- finish times (created_at, updated_at in seconds) and they fit what was seen: nil else.
local function provider_took(task, seen)
  local from, to = task and tonumber(task.created_at), task and tonumber(task.updated_at)
  if not from or not to then
    return nil
  end
  local took = (to - from) * 1000
  if took > 0 and took <= seen * 1.1 + 1000 then
    return took
  end
end

-- Says once per path and process that the cache file is left alone: on the client's debug sink
-- when it has one, else on stderr (a run goes on without the file).
local warned = {}
local function warn(client, msg)
  if warned[msg] then
    return
  end
  warned[msg] = true
  local text = "kling: learnt durations: " .. msg .. "; the file is neither read nor written"
  local sink = client and client.debug_sink
  if sink then
    sink(text)
  else
    io.stderr:write(text, "\n")
  end
end

return function(Engine)
  -- The kinds read from the file, once, on first use (nothing when learn_file is false).
  function Engine:learnt()
    local learned = self.learned
    if not learned then
      learned = {}
      local kinds, refused = {}, nil
      if self.learn_file then
        kinds, refused = durations_file.read(self.learn_file)
      end
      if refused then
        warn(self.client, refused)
      end
      for kind, samples in pairs(kinds) do
        local k = { samples = samples, fresh = {} }
        summarise(k)
        learned[kind] = k
      end
      self.learned = learned
    end
    return learned
  end

  -- The window a task of `kind` is expected to end in, {shortest, longest} ms from its create,
  -- or nil.
  function Engine:expectation(kind)
    local k = kind and self:learnt()[kind]
    return k and k.expect or nil
  end

  -- A task of `kind` ended `took` ms after its create was answered (task: its last fields, for
  -- the provider's own times). A first window, or one whose start moved clearly earlier, also
  -- moves the tasks of that kind already out that have not reached its start (one being polled
  -- at that moment: when its poll answers). Those past it
  -- are moved (polled at once, then through the window or at the late cadence) only while
  -- tasks wait for their model's slots: the rest of a first wave has likely ended with its
  -- first tasks and holds those slots; otherwise they go on backing off (a batch's first
  -- window comes from its shortest tasks, and the late cadence would poll the longer ones more
  -- than the back-off does). Other changes apply to the next tasks, as re-placing every waiting
  -- task at each sample would keep pushing their polls later.
  function Engine:observe(kind, took, now, task)
    local learned = self:learnt()
    local k = learned[kind]
    if not k then
      k = { samples = {}, fresh = {}, expect = false }
      learned[kind] = k
    end
    local before = k.expect
    -- Stamped with its create time: the latest samples are then the tasks created last, not
    -- those that finished last (of a batch created at once, the longest ones).
    local s = { self.wall_s() - took / 1000, math.floor(provider_took(task, took) or took) }
    if not durations_file.valid_sample(s) then
      return -- longer than any task lives (a clock that jumped): neither kept nor written
    end
    durations_file.insert(k.samples, s)
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
    local after = k.expect
    if not after or (before and after[1] >= before[1] * MOVED) then
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
