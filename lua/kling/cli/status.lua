-- kling status DIR | TASK_ID: a batch directory's progress read from its journal (no network),
-- or one task asked of its provider.
local core = require "kling.core"
local json = require "kling.json"
local billing = require "kling.billing"
local budget = require "kling.money.hold"
local journal = require "kling.journal"
local state = require "kling.batch.state"
local flags = require "kling.cli.flags"
local batch = require "kling.batch"
local validate = require "kling.validate"
local multishot = require "kling.multishot"

local M = {}

M.summary = "show a task, or a batch directory's progress"

function M.define(cmd)
  cmd:description [[
DIR      a batch directory (kling run --out DIR): rows by state from DIR/journal.jsonl,
         the runs so far and the budget. Reads the journal only: safe while the batch
         runs. --rows lists every row. A row's state is one of:
           succeeded    its outputs are in DIR
           failed       failed for good at the provider
           refused      never sent (invalid or unpriced): fix the row, run again
           uncertain    its create's fate is unknown (see kling run --help)
           running      at the provider (with its task id)
           downloading  its task succeeded, its outputs are not all in DIR yet
           ending       its task failed, its retry or its end not journaled yet
           sent         its create was sent, the answer not journaled yet (a run
                        in progress, or the next run looks it up by external id)
           pending      not sent yet (not started, or waiting for a budget or keys)
TASK_ID  one task, asked of the provider (credentials as for kling run); --external when the
         id is an external_task_id; without --endpoint each video endpoint is asked, so a task
         of another endpoint (an image's, an audio's) needs --endpoint (images/generations).
         An argument that looks like a path (a "/", a leading "." or "~", an existing file,
         or, without --external or --endpoint, not a task id of the official API: digits)
         but is no batch directory is an error: nothing is sent (a storyboard's DIR, kling
         storyboard --out DIR, is named as one, with the command that finishes it). A task id of another form
         on the official API's dialect (a metering gateway's, gw...) is asked with --endpoint.
         A charge the provider reports is printed with its currency.]]
  cmd:epilog [[
Exit status: DIR: 0 every row ended, 3 rows remain, 4 the rest ended but some are uncertain,
6 the rest ended but some were refused as invalid or unpriced, 2 every row was refused so
(nothing was sent), or a bad journal (a line that is no record, no regular file), as kling run.
             TASK_ID: 0 succeeded, 3 queued or running, 4 failed or cancelled, 1 the provider
could not be read.
             2 bad usage.]]
  cmd:argument("DIR|TASK_ID", "a batch directory or a task id"):argname("DIR|TASK_ID"):target "target"
  cmd:flag("--rows", "DIR: list every row")
  cmd:flag("--json", "print JSON")
  cmd:flag("--external", "TASK_ID is an external_task_id")
  cmd:option("--endpoint", "TASK_ID's endpoint (path after /v1/, e.g. videos/omni-video)"):argname "E"
  flags.client_options(cmd)
end

local fail = flags.failure("kling status")

-- A row's state as far as the journal knows.
local function row_state(h)
  if h.final then
    return h.final.state, h.final.task_id
  end
  if h.refused then
    return "refused", nil -- never sent (invalid, unpriced): looked at again by the next run
  end
  local a = h.attempts[h.attempt] or {}
  if a.ended then
    if a.ended.status == "uncertain" then -- held, looked up again by the next run (kling.batch.resume)
      return "uncertain", nil
    end
    return a.ended.status == "succeeded" and "downloading" or "ending", a.ended.task_id
  end
  if a.task_id then
    return "running", a.task_id
  end
  if a.intent then
    return "sent", nil
  end
  return "pending", nil
end

-- Every state row_state gives (kling status --help explains each), in the order printed.
local ORDER = { "succeeded", "failed", "refused", "uncertain", "running", "downloading", "ending", "sent", "pending" }

local function batch_status(dir, opts)
  -- a journal that cannot be read as one (a line that is no record, no regular file) is bad
  -- input, exit 2, as kling run says of the same DIR (README: "bad usage, manifest or journal")
  local records, info = journal.read(dir .. "/journal.jsonl")
  if not records then
    return fail(2, info)
  end
  local st, err = state.replay(records)
  if not st then
    return fail(2, "journal " .. dir .. "/journal.jsonl: " .. err)
  end
  local header = st.last_header or {}
  local total = header.rows or 0
  local counts, rows = {}, {}
  local listed = 0
  for id, h in pairs(st.rows) do
    local s, task = row_state(h)
    counts[s] = (counts[s] or 0) + 1
    rows[#rows + 1] = { id = id, state = s, task_id = task, attempts = h.attempt }
    listed = listed + 1
  end
  counts.pending = (counts.pending or 0) + math.max(0, total - listed)
  table.sort(rows, function(a, b)
    return a.id < b.id
  end)
  local budgets
  local list, rates = budget.from_header(st.budget)
  local ledger = list and budget.ledger(list, rates, st.ledger)
  if ledger then
    budgets = {}
    for i, b in ipairs(ledger:summary().budgets) do
      budgets[i] = { limit = b.limit, currency = b.currency, spent = b.spent, reserved = b.reserved }
    end
  end
  local refused, uncertain = counts.refused or 0, counts.uncertain or 0
  local ended = (counts.succeeded or 0) + (counts.failed or 0) + refused
  local status = batch.exit_status { rows = total, unfinished = total - ended - uncertain, uncertain = uncertain,
    refused = refused }
  if opts.json then
    local out = { dir = dir, manifest = header.manifest, rows = total, runs = st.runs, counts = counts,
      budget = budgets and budgets[1], budgets = budgets, torn_last_line = info.torn or nil }
    if opts.rows then
      out.row_states = rows
    end
    io.stdout:write(assert(json.encode(out)), "\n")
    return status
  end
  -- an older or hand-made journal's header may name no manifest: said so, not "manifest nil"
  local manifest = type(header.manifest) == "string" and ("manifest " .. validate.shown(header.manifest))
    or "no manifest recorded"
  io.stdout:write(string.format("batch %s: %d rows, %d run(s), %s\n", dir, total, st.runs, manifest))
  for _, s in ipairs(ORDER) do
    if counts[s] and counts[s] > 0 then
      io.stdout:write(string.format("  %-12s %6d\n", s, counts[s]))
    end
  end
  for _, b in ipairs(budgets or {}) do
    io.stdout:write(string.format("budget: spent %s of %s %s (reserved %s)\n", b.spent, b.limit, b.currency,
      b.reserved))
  end
  if opts.rows then
    for _, r in ipairs(rows) do
      io.stdout:write(string.format("  %-20s %-12s %s\n", r.id, r.state, r.task_id and ("task " .. r.task_id) or ""))
    end
  end
  return status
end

-- Whether something is at path, found without opening it: opening a FIFO there (a FIFO named
-- as the argument, or planted as DIR/journal.jsonl) blocked the command for good.
local function exists(path)
  local text, _, kind, missing = core.read_regular(path, 0)
  return text ~= nil or kind ~= nil or missing == false
end

-- An argument meant as a directory: a "/" or a leading "." or "~", something on disk, or, on
-- the official API (whose task ids are digits) without --external or --endpoint, anything
-- else (--endpoint says the argument is a task: a metering gateway's ids are not digits).
local function path_like(arg, opts)
  if arg:find("/", 1, true) or arg:match("^[.~]") then
    return true
  end
  if exists(arg) then
    return true
  end
  local provider = opts.provider or os.getenv("KLING_PROVIDER") or "kling"
  return provider == "kling" and not opts.external and not opts.endpoint and not arg:match("^%d+$")
end

local function task_status(id, opts)
  local client, err = flags.client(opts)
  if not client then
    return fail(2, err)
  end
  local t
  t, err = client:get_task(opts.external and { external_task_id = id } or id, { endpoint = opts.endpoint })
  if not t then
    return fail(flags.refused_unsent(err) and 2 or 1, flags.lookup_failure(err))
  end
  local status = t.status == "succeeded" and 0 or (t.status == "failed" or t.status == "cancelled") and 4 or 3
  if opts.json then
    io.stdout:write(assert(json.encode(t:to_table())), "\n")
    return status
  end
  -- The endpoint when the lookup says it (the user gave it, or the provider's query path
  -- depends on it); else the model the provider reports.
  local p = client.provider
  local told = opts.endpoint or (t.endpoint and p.query_path("videos/text2video", "x")
    ~= p.query_path("videos/image2video", "x") and t.endpoint)
  local what = told or (t.model and ("model " .. tostring(t.model))) or "?"
  local pr = flags.printable
  io.stdout:write(string.format("task %s (%s): %s%s%s\n", pr(t.id), pr(what), pr(t.status),
    t.progress and (" " .. pr(t.progress) .. "%") or "", t.message and (": " .. pr(t.message)) or ""))
  for _, f in ipairs(t:files()) do -- a text-to-audio's audio twice: its mp3 and its wav
    io.stdout:write(string.format("  %s %s%s\n", f.kind, pr(f.url), f.duration and (" (" .. pr(f.duration) .. " s)")
      or ""))
  end
  if t.charge then
    local cat = billing.catalog(p.name)
    local unit = cat and billing.unit(cat.currency, p.name)
    io.stdout:write("  charge reported: ", pr(t.charge), " ", unit or ("(in " .. p.name .. "'s unit)"), "\n")
  end
  return status
end

-- The options of one form only, each with the form it belongs to: given to the other, they
-- were dropped without a word (--endpoint with a batch DIR, --rows with a task).
local TASK_ONLY = { "external", "endpoint", "provider", "base_url", "ca_file", "access_key", "secret_key", "api_key" }

local function misplaced(opts, batch_dir)
  for _, k in ipairs(batch_dir and TASK_ONLY or { "rows" }) do
    if opts[k] then
      return "--" .. k:gsub("_", "-") .. " applies to " .. (batch_dir and "a TASK_ID, and '" .. opts.target
        .. "' is a batch directory (its journal is read: no provider is asked)" or "a batch DIR, and '"
        .. opts.target .. "' is read as a task id") .. ": nothing was sent"
    end
  end
  return nil
end

function M.run(opts)
  local arg = opts.target
  if exists(arg .. "/journal.jsonl") then
    local bad = misplaced(opts, true)
    if bad then
      return fail(2, bad)
    end
    return batch_status(arg:gsub("/+$", ""), opts) -- which refuses a journal that is no regular file
  end
  -- a storyboard's DIR (kling storyboard --out DIR) was called "not a batch directory", as if
  -- nothing were there
  local dir = arg:gsub("(.)/+$", "%1")
  if exists(dir .. "/" .. multishot.JOURNAL) or exists(dir .. "/" .. multishot.LOCK) then
    return fail(2, "'" .. dir .. "' is a storyboard's directory (kling storyboard FILE --out " .. dir .. "; its "
      .. "journal is " .. multishot.JOURNAL .. "), not a batch directory: kling status reads a batch's (kling run)."
      .. " Run the same kling storyboard FILE --out " .. dir .. " again to finish it (segments already made are "
      .. "skipped, a task in flight is waited for, nothing is paid twice) or to see that it is done: nothing was sent")
  end
  if path_like(arg, opts) then
    return fail(2, "'" .. arg .. "' is not a batch directory (no " .. arg:gsub("/+$", "") .. "/journal.jsonl)"
      .. " and not a task id (a task id that is not digits, such as a gateway's, needs --endpoint E):"
      .. " nothing was sent")
  end
  -- by the rule kling download and kling cancel parse TASK_ID with: an empty one, with
  -- --endpoint or --external, reached get_task and stopped as an internal error
  local id, bad = flags.task_id(arg)
  if not id then
    return fail(2, bad .. ": nothing was sent")
  end
  bad = misplaced(opts, false)
  if bad then
    return fail(2, bad)
  end
  return task_status(id, opts)
end

return M
