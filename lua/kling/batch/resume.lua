-- Picking a batch up from its journal: each row is set where the journal left it. A row that
-- ended stays ended; a task the provider has is tracked by its id; a create whose answer
-- never reached the journal, or that a run reported uncertain, is adopted by its external id
-- (looked up before anything is created again), or, where the provider has no external ids,
-- reported uncertain and never resent. The budget's ledger (replayed from the journal) is brought in line with the ends
-- the journal saw, by lifecycle machines taken up on those ended tasks. Installed as a
-- method of the batch by kling.batch.
local blocking = require "kling.runner.blocking"
local lifecycle = require "kling.lifecycle.machine"
local task_mod = require "kling.task"

return function(Batch)
  -- An attempt that ended while no machine ran for it (the journal has its end, or a later
  -- attempt, and the ledger still has its hold: the batch stopped in between): a machine
  -- taken up on the ended task ends the hold, as the one that ran it would have (settled to
  -- the price of what it delivered, never nothing; or released). The money is the machine's
  -- and kling.lifecycle.effects', over the blocking runner; nothing is sent.
  function Batch:end_hold(row, key, status, a, e)
    local client = self:client_for(row)
    if not client then
      return -- no client for its provider now: the hold stays until a run that has one
    end
    row.client = client
    local fields = { id = e and e.task_id or a.task_id, endpoint = a.endpoint, status = status,
      request = self:priced(row), ledger_key = key }
    for _, o in ipairs(e and e.outputs or {}) do
      if not o.alt then -- an output's second file (an audio's wav): the same output, priced once
        local k = tostring(o.kind) .. "s"
        fields[k] = fields[k] or {}
        fields[k][#fields[k] + 1] = { url = o.url, duration = o.duration }
      end
    end
    local t = task_mod.new(client, fields)
    local m = lifecycle.existing { provider = client.provider, task = t, key = key }
    blocking.drive(client, m, m:watch(client.driver:now_ms()))
  end

  -- The ledger's side of what the journal says about each attempt of a row.
  function Batch:reconcile_ledger(row, h)
    if not self.ledger then
      return
    end
    for n, a in pairs(h.attempts) do
      local key = row.id .. "#" .. n
      local e = a.ended
      local status = e and (e.status == "succeeded" or e.status == "failed") and e.status
        or (not e and n < h.attempt and "failed") or nil
      if status and self.ledger:reservation(key) then
        self:end_hold(row, key, status, a, e)
      end
    end
  end

  -- Whether the journal shows nothing was ever sent for a row: only refusals (invalid,
  -- unpriced), no attempt begun, no file, no end.
  local function never_sent(h)
    return next(h.attempts) == nil and next(h.files) == nil and next(h.placing or {}) == nil and not h.final
  end

  -- resume(state) -> true | nil, message (the journal does not fit the manifest). A manifest may
  -- be edited under its journal as far as nothing sent changes: rows added run; a row nothing
  -- was sent for (refused as invalid or unpriced, or not started) may be fixed, changed or
  -- removed (a removed one journaled as dropped, so that kling status counts it no more); a
  -- row whose create was sent (its task exists, or may) is refused when changed or removed,
  -- naming it: its task, charge and files are the manifest's row's.
  function Batch:resume(st)
    local ids, dropped = {}, {}
    for id in pairs(st.rows) do
      ids[#ids + 1] = id
    end
    table.sort(ids)
    for _, id in ipairs(ids) do
      if not self.by_id[id] then
        if not never_sent(st.rows[id]) then
          return nil, "the journal names row '" .. id .. "', which the manifest has not: its create was sent, so the "
            .. "row may not be removed (resume with the manifest that started this batch, or use a new --out "
            .. "directory)"
        end
        dropped[#dropped + 1] = id
      end
    end
    for _, row in ipairs(self.rows) do
      local h = st.rows[row.id]
      if h then
        for n, a in pairs(h.attempts) do
          if a.hash and a.hash ~= row.hash then
            return nil, string.format("row '%s' (line %d) has changed since its attempt %d was sent: a row whose "
              .. "create was sent may not change (resume with the manifest it started with, or use a new --out "
              .. "directory)", row.id, row.line, n)
          end
        end
      end
    end
    for _, id in ipairs(dropped) do -- nothing was sent for it: gone from the batch
      self:append { t = "dropped", row = id }
    end
    for _, row in ipairs(self.rows) do
      local h = st.rows[row.id]
      if h then
        self:resume_row(row, h)
      end
    end
    return true
  end

  function Batch:resume_row(row, h)
    row.attempt = h.attempt
    row.files, row.placing = h.files, h.placing
    local a = h.attempts[h.attempt] or {}
    row.ext, row.task_id, row.endpoint = a.ext, a.task_id, a.endpoint
    self:reconcile_ledger(row, h)
    local e = a.ended
    if e then
      row.error, row.charge, row.outputs = e.error, e.charge, e.outputs
      row.task_id = row.task_id or e.task_id
    end
    local lost = e and e.status == "uncertain" and not row.task_id and self:findable(row)
    if h.final and not (lost and h.final.state == "uncertain") then
      row.st = h.final.state
      return
    end
    if lost then
      -- A create whose answer was lost, its hold kept: looked up again by its external id
      -- (the same one: a create sent again under it is refused as a duplicate, never twice).
      row.error = nil
      row.mode, row.st = "adopt", "pending"
    elseif e then
      if e.status == "succeeded" then
        row.st = "resume_download"
      elseif e.status == "uncertain" then
        row.st = "resume_final_uncertain"
      else
        row.st = "resume_failed"
      end
    elseif row.task_id then
      row.mode, row.st = "track", "pending"
    elseif a.intent and row.ext then
      row.mode, row.st = "adopt", "pending"
    elseif a.intent then
      row.st = "resume_uncertain"
    end
  end

  -- Rows the journal left between two steps: carried on now that the journal is open.
  function Batch:carry_on(row)
    local s = row.st
    if s == "resume_download" then
      local client, err = self:client_for(row)
      if not client then
        return self:park(row, "cannot download: " .. tostring(err))
      end
      row.client = client
      self:fetch_outputs(row)
    elseif s == "resume_failed" then
      self:after_failure(row)
    elseif s == "resume_final_uncertain" then
      self:finalize(row, "uncertain")
    elseif s == "resume_uncertain" then
      self:uncertain(row, { kind = "network", message = "the batch stopped after sending the create and before "
        .. "its answer was journaled" })
    end
  end
end
