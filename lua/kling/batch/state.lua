-- A batch journal read back: what each row has been through. The records (kling.batch writes
-- them; each is on disk before the step it announces):
--   {t = "batch", v = 1, manifest, manifest_sha256, rows, budget = {budgets = {{limit, currency}},
--    rates}}                                               each run (older: budget = {limit, currency})
--   {t = "ledger", op, task_key, amount, currency, ...}    a budget movement (kling.billing line)
--   {t = "intent", row, attempt, ext, key, hash}           just before a create is sent
--   {t = "created", row, attempt, task_id, endpoint}       the provider has the task
--   {t = "end", row, attempt, status, task_id, error, charge, outputs}   the task ended
--   {t = "retry", row, attempt, reason}                    the next attempt (a new task) begins
--   {t = "placing", row, attempt, n, path, bytes, id}      a download, whole, is about to be moved to
--                                                          its name (id: its file's "dev:ino"): a file
--                                                          found there after a crash is the batch's only
--                                                          when it is this one
--   {t = "file", row, n, path, bytes}                      an output is in place
--   {t = "refused", row, attempt, error}                   refused before any task existed (validation,
--                                                          unpriced): refused for now, looked at again next run
--   {t = "final", row, state, attempts, task_id}           the row is over (once per row)
--   {t = "dropped", row}                                   removed from the manifest before anything was
--                                                          sent for it: its records so far are forgotten
local names = require "kling.batch.names"

local M = {}

M.VERSION = 1

-- The states a row ends a run in (refused: never sent, looked at again by the next run): what
-- a final record may say.
M.FINAL = { succeeded = true, failed = true, refused = true, uncertain = true }

local function history(rows, id)
  local h = rows[id]
  if not h then
    h = { attempt = 1, attempts = {}, files = {}, placing = {} }
    rows[id] = h
  end
  return h
end

local function attempt_of(h, n)
  n = n or h.attempt
  local a = h.attempts[n]
  if not a then
    a = {}
    h.attempts[n] = a
  end
  return a
end

local KINDS = { video = true, image = true, audio = true }

-- Why an end record's outputs are not what the batch wrote (kling.task's files: a list of
-- {kind, url, ...}), or nil: resumed rows download them, their kind naming files ({kind}),
-- and a value of another shape raised in the resume, or named a file outside DIR ("../..").
local function outputs_problem(list)
  if list == nil then
    return nil
  end
  if type(list) ~= "table" then
    return "its outputs are not a list"
  end
  for k, o in ipairs(list) do
    if type(o) ~= "table" or not KINDS[o.kind] or type(o.url) ~= "string" then
      return "its output " .. k .. " is not {kind = video|image|audio, url = string}"
    end
  end
  return nil
end

-- Why an end record's charge is not what the batch wrote ({amount, currency, rule, reported},
-- decimal strings and names; or {unpriced}), or nil: the summary and the report read it, and a
-- number there raised at the run's end, its tasks paid.
local function charge_problem(c)
  if c == nil then
    return nil
  end
  if type(c) ~= "table" then
    return "its charge is not a table"
  end
  for _, k in ipairs { "amount", "currency", "rule", "reported" } do
    if c[k] ~= nil and type(c[k]) ~= "string" then
      return "its charge's " .. k .. " is not a string"
    end
  end
  return nil
end

-- Why a batch record's budget is not one the batch writes ({budgets = {{limit, currency}},
-- rates = {...}}, or an older {limit, currency}), or nil: the run's budget is read from it
-- (kling.money.hold.from_header), and a value of another shape (null, a number) raised there.
local function budget_problem(b)
  if b == nil then
    return nil
  end
  if type(b) ~= "table" then
    return "is not an object"
  end
  if b.rates ~= nil and type(b.rates) ~= "table" then
    return "has rates that are not an object"
  end
  local list = b.budgets
  if list == nil then
    list = { b }
  elseif type(list) ~= "table" or list[1] == nil then
    return "has budgets that are not a list"
  end
  for _, x in ipairs(list) do
    if type(x) ~= "table" or type(x.limit) ~= "string" or type(x.currency) ~= "string" then
      return "is not {limit, currency} as strings"
    end
  end
  return nil
end

-- replay(records) -> state | nil, message. state = {runs, header, budget, ledger = {entries},
-- rows = {[id] = {attempt, attempts = {[n] = {ext, key, hash, task_id, endpoint, ended}},
-- files = {[n] = record}, placing = {[n] = record}, refused, final}}}
function M.replay(records)
  local st = { runs = 0, ledger = {}, rows = {} }
  for i, r in ipairs(records) do
    local t = r.t
    if t == "batch" then
      if r.v ~= M.VERSION then
        return nil, "record " .. i .. ": journal version " .. tostring(r.v) .. " (this module writes "
          .. M.VERSION .. ")"
      end
      st.runs = st.runs + 1
      st.header = st.header or r
      st.last_header = r
      local bad = budget_problem(r.budget)
      if bad then
        return nil, "record " .. i .. " (batch): its budget " .. bad
      end
      if r.budget then
        st.budget = r.budget
      end
    elseif t == "ledger" then
      st.ledger[#st.ledger + 1] = r
    elseif type(r.row) ~= "string" then
      return nil, "record " .. i .. " (" .. tostring(t) .. ") names no row"
    else
      local h = history(st.rows, r.row)
      local n = tonumber(r.attempt) or h.attempt
      if t ~= "refused" then
        h.refused = nil -- the row went further since
      end
      if t == "refused" then
        h.refused = r
      elseif t == "intent" then
        local a = attempt_of(h, n)
        a.intent, a.ext, a.key, a.hash = true, r.ext, r.key, r.hash
        h.attempt = math.max(h.attempt, n)
      elseif t == "created" then
        local a = attempt_of(h, n)
        a.task_id, a.endpoint = r.task_id, r.endpoint
        a.ext = a.ext or r.ext
      elseif t == "end" then
        local bad = outputs_problem(r.outputs) or charge_problem(r.charge)
          or (r.error ~= nil and type(r.error) ~= "table" and "its error is not a table")
        if bad then
          return nil, "record " .. i .. " (end) of row '" .. r.row .. "': " .. bad
        end
        attempt_of(h, n).ended = r
      elseif t == "retry" then
        h.attempt = math.max(h.attempt, n)
        attempt_of(h, n)
      elseif t == "placing" or t == "file" then
        local why = names.rel_refusal(r.path)
        local bad = (type(r.n) ~= "number" or r.n < 1 or r.n ~= math.floor(r.n)) and "its n is not an output's number"
          or why and ("its path " .. why)
        if bad then
          return nil, "record " .. i .. " (" .. t .. ") of row '" .. r.row .. "': " .. bad
        end
        h[t == "file" and "files" or "placing"][r.n] = r
      elseif t == "final" then
        if not M.FINAL[r.state] then -- "pending" had the row's create sent again; a number raised
          return nil, "record " .. i .. " (final) of row '" .. r.row .. "': its state is not succeeded, failed, "
            .. "refused or uncertain"
        end
        h.final = r
      elseif t == "dropped" then
        st.rows[r.row] = nil
      else
        return nil, "record " .. i .. ": unknown type '" .. tostring(t) .. "'"
      end
    end
  end
  return st
end

-- The ledger lines of a journal (for billing.ledger{lines =}).
function M.ledger_lines(st)
  return st.ledger
end

return M
