--- Batch runs: a manifest of requests turned into finished files, crash-safe.
-- kling.batch: a manifest of requests turned into finished files, unattended, without losing
-- or double-paying a task even when the process is killed halfway (kill -9, a reboot).
--
--   local batch = require "kling.batch"
--   local result, status = batch.run { manifest = "jobs.jsonl", out = "out/" }
--
-- Everything the batch does is journaled first in DIR/journal.jsonl (kling.journal: each
-- record on disk before the step it announces; records in kling.batch.state). Running the
-- same command again resumes: ended rows stay ended, tasks the provider has are tracked or
-- adopted by external id (never created again), the rest run. Rows go through one engine
-- per provider/base URL/key set (kling.engine: slots, polling, lost creates); outputs are
-- downloaded as soon as a task succeeds; at the end DIR/summary.json and DIR/report.html.
-- @module kling.batch
local core = require "kling.core"
local errors = require "kling.errors"
local kling = require "kling"
local billing = require "kling.billing"
local budget = require "kling.money.hold"
local file_store = require "kling.money.stores.file"
local journal = require "kling.journal"
local manifest = require "kling.batch.manifest"
local state = require "kling.batch.state"
local names = require "kling.batch.names"
local output_path = require "kling.output_path"
local download = require "kling.batch.download"
local progress = require "kling.batch.progress"
local report = require "kling.batch.report"
local ffmpeg = require "kling.ffmpeg"
local collector = require "kling.engine.collector"
local engine = require "kling.engine"
local validate = require "kling.validate"
local providers = require "kling.providers"

local M = {}

-- Exit statuses (bin/kling run and status): scripts may rely on them.
M.EXIT = {
  ok = 0,          -- every row ended: succeeded, or failed for good (summary.json says which)
  error = 1,       -- the batch could not run (journal unwritable, internal error)
  usage = 2,       -- bad flags, manifest or journal, or every row refused: nothing was sent
  unfinished = 3,  -- rows remain (deadline, budget, downloads, still running): run the same command again
  uncertain = 4,   -- every other row ended, but some are uncertain: see summary.json
  locked = 5,      -- another live process runs this batch directory
  refused = 6,     -- every other row ended, some were refused as invalid or unpriced: fix them, run again
}

--- A batch's exit status from its rows' counts (the run's summary and `kling status DIR`
-- alike): {rows, unfinished, uncertain, refused} -> M.EXIT value. Every row refused before
-- any task existed (invalid, unpriced) is the manifest's fault and nothing was sent, which
-- scripts must not read as a batch that ran; some rows refused (the others ran) is not a
-- success either: those rows were never made, and the same manifest refuses them again (a
-- refused row may be edited before the next run). Rows that remain or are uncertain say
-- "run again" first: the run that ends them says refused.
function M.exit_status(c)
  if c.rows > 0 and c.refused == c.rows then
    return M.EXIT.usage
  end
  return c.unfinished > 0 and M.EXIT.unfinished or c.uncertain > 0 and M.EXIT.uncertain
    or c.refused > 0 and M.EXIT.refused or M.EXIT.ok
end

local Batch = {}
Batch.__index = Batch
require("kling.batch.rows")(Batch)
require("kling.batch.resume")(Batch)

local FINAL = state.FINAL

-- ---- the lock: one process per batch directory ----

-- An flock on DIR/.lock, held for the whole run (the kernel drops it when the process ends,
-- however it ends: no stale lock, no window between checking and taking it). -> lock |
-- nil, message, exit status (locked when another process holds it, else error).
local function lock(dir)
  local path = dir .. "/" .. names.LOCK
  local l, err, busy, pid = core.lock_file(path)
  if l then
    return l
  end
  if busy then
    return nil, "another process" .. (pid and (" (pid " .. pid .. ")") or "")
      .. " is running the batch in " .. dir, M.EXIT.locked
  end
  return nil, err, M.EXIT.error
end

-- ---- set-up ----

function Batch:append(rec)
  local ok, err = self.journal:append(rec)
  if not ok then
    error("kling.batch: " .. err, 0) -- nothing may happen that the journal does not hold
  end
end

function Batch:event(row, text)
  self.progress:event(row.id .. ": " .. text)
end

local function client_key(o)
  return table.concat({ o.provider or "", o.base_url or "", o.access_key or "", o.api_key or "", o.ca_file or "" },
    "\0")
end

-- The client (and its engine) for a row: provider, base URL and keys from the row, else the
-- flags, else the environment (kling.new reads KLING_*). Keys come as a set from one place: a
-- row's api_key never loses to the flags' access and secret keys (a token signed with them
-- would go to the row's base URL).
function Batch:client_for(row)
  local o = self.opts
  local m = row.meta
  local keys = (m.access_key or m.secret_key or m.api_key) and m or o
  local co = {
    provider = m.provider or o.provider, base_url = m.base_url or o.base_url, ca_file = m.ca_file or o.ca_file,
    access_key = keys.access_key, secret_key = keys.secret_key, api_key = keys.api_key,
    poll_min = o.poll_min, poll_max = o.poll_max,
    debug = o.debug or nil, -- kling --debug (only when asked: the option is the client's)
    -- the batch's budget: each row's machine holds its estimate there and ends the hold
    budget = self.ledger,
  }
  local key = client_key(co)
  local c = self.clients[key]
  if c == nil then
    local err
    c, err = kling.new(co)
    if not c then
      self.client_errors[key] = err
      c = false
    end
    self.clients[key] = c
  end
  if not c then
    return nil, self.client_errors[key]
  end
  return c
end

function Batch:engine_of(client)
  local e = client._engine
  if not e then
    e = client:engine {
      max_parallel = self.parallel, timeout = self.opts.timeout, deadline = self.deadline_s,
      callbacks = false, -- a row's callback_url is the provider's to call; none reaches this run
      on_create = function(t)
        self:on_create(t)
      end,
      on_created = function(t)
        self:on_created(t)
      end,
    }
    e.batch_tasks = {}
    self.engines[#self.engines + 1] = { client = client, engine = e }
  end
  return e
end

-- The budgets (one per currency) and rates: from the flags, else from the journal (a resumed
-- batch keeps its caps); the ledger replays the journal's movements, so the spend so far
-- counts. A bare amount is in --currency, else the unit of the provider the flags name.
-- A budget in a currency no provider charges in, which no rate of the user's converts, could
-- never count anything, nor could a rate for such a currency: refused by name before anything
-- is sent. -> message | nil
local function uncountable(budgets, rates)
  local cur, unrated = budget.first_unrated(rates and rates.rates, billing.default_catalogs)
  if cur then
    return "--rates: rates." .. cur .. ": " .. unrated
  end
  for _, b in ipairs(budgets) do
    local problem = budget.uncountable(b.currency, rates, billing.default_catalogs, "--rates")
    if problem then
      return "budget " .. tostring(b.limit) .. " " .. tostring(b.currency) .. ": " .. problem
    end
  end
  return nil
end

-- A currency earlier runs of this batch spent in that none of `budgets` is in, or nil: the
-- journal keeps every movement, each counted against the budget of its own currency.
local function unbudgeted(lines, budgets)
  local have = {}
  for _, b in ipairs(budgets) do
    have[b.currency] = true
  end
  for _, l in ipairs(lines or {}) do
    local c = type(l) == "table" and l.currency
    if type(c) == "string" and not have[c] then
      return c
    end
  end
end

-- The budgets and rates the flags give, checked on their own (no journal needed): syntax, the
-- rates file, a currency nothing could count against. -> budgets | false, rates | nil, message
local function flag_budgets(o)
  local budgets, rates, err = false, nil
  if o.budget then
    local currency = o.currency
    if not currency then
      local provider = o.provider or os.getenv("KLING_PROVIDER") or "kling"
      local cat = billing.catalog(provider)
      currency = cat and billing.unit(cat.currency, provider)
    end
    budgets, err = budget.parse_all(o.budget, currency)
    if not budgets then
      return nil, err
    end
  end
  if o.rates then
    rates, err = budget.read_rates(o.rates)
    if not rates then
      return nil, err
    end
  end
  local why = budgets and uncountable(budgets, rates)
  if why then
    return nil, why
  end
  return budgets, rates
end

function Batch:open_ledger(st)
  local o = self.opts
  local budgets, rates = budget.from_header(st.budget)
  if o.budget or o.rates then
    local fb, fr = flag_budgets(o)
    if fb == nil then
      return nil, fr
    end
    budgets, rates = o.budget and fb or budgets, o.rates and fr or rates
  end
  if not budgets then
    if o.rates then -- nothing for them to count against: they were dropped without a word
      return nil, "--rates counts other currencies against a budget, and this batch has none: give --budget too"
        .. " (nothing was sent)"
    end
    return true
  end
  local why = (o.budget or o.rates) and uncountable(budgets, rates)
  if why then
    return nil, why
  end
  -- The ledger's movements go to the journal, each on disk before it counts (marked as ledger
  -- records among the rows' own).
  local spent_in = unbudgeted(state.ledger_lines(st), budgets)
  if spent_in then
    return nil, "budget: earlier runs of this batch spent in " .. spent_in .. " (its journal keeps every movement):"
      .. " give a budget in " .. spent_in .. " too (one per currency)"
  end
  local store = file_store.new { journal = self.journal, tag = { t = "ledger" } }
  local ledger, err = budget.ledger(budgets, rates, state.ledger_lines(st), store)
  if not ledger then
    return nil, "budget: " .. tostring(err)
  end
  self.ledger = ledger
  self.budget = { budgets = budgets, rates = rates }
  return true
end

-- ---- the loop ----

function Batch:next_row(now)
  for i, row in ipairs(self.queue) do
    if (row.not_before or 0) <= now then
      table.remove(self.queue, i)
      return row
    end
  end
end

function Batch:feed(now)
  while self.active < self.parallel and not self.budget_blocked and not self.stopped do
    local row = self:next_row(now)
    if not row then
      return
    end
    self:launch(row)
  end
end

function Batch:counts()
  local c = { total = #self.rows, done = 0, succeeded = 0, failed = 0, refused = 0, uncertain = 0,
    running = self.active }
  for _, row in ipairs(self.rows) do
    if FINAL[row.st] then
      c.done = c.done + 1
      c[row.st] = c[row.st] + 1
    end
  end
  if self.ledger then
    c.spend = budget.spend_text(self.ledger)
  else
    local by = report.charges(self.rows)
    local parts = {}
    for cur, m in pairs(by) do
      parts[#parts + 1] = core.money_format(m) .. " " .. cur
    end
    table.sort(parts)
    c.spend = #parts > 0 and table.concat(parts, " + ") or "0"
  end
  local finished = c.done - self.done_at_start
  local left = c.total - c.done
  local elapsed = (self.now() - self.started_ms) / 1000
  c.eta_s = finished > 0 and left * elapsed / finished or nil
  return c
end

function Batch:expire()
  self.stopped = true
  for _, row in ipairs(self.queue) do
    self:park(row, "not started before the deadline")
  end
  self.queue = {}
end

function Batch:busy()
  if self.active > 0 or self.downloads:busy() > 0 then
    return true
  end
  return not self.stopped and not self.budget_blocked and #self.queue > 0
end

function Batch:loop()
  while true do
    local now = self.now()
    if self.deadline_ms and now >= self.deadline_ms and not self.stopped then
      self:expire()
    end
    self:feed(now)
    if not self:busy() then
      break
    end
    local dl = self.downloads:busy() > 0
    local slice = dl and 0.05 or 0.25
    local waited = false
    local live = {}
    for _, s in ipairs(self.engines) do
      local list = {}
      for t in pairs(s.engine.batch_tasks) do
        list[#list + 1] = t
      end
      if #list > 0 then
        live[#live + 1] = { s.engine, list }
      end
    end
    for _, l in ipairs(live) do
      l[1]:wait_all(l[2], { timeout = slice / #live, on_done = function(t, err)
        self:ended(t, err)
      end })
      waited = true
    end
    if dl then
      self.downloads:step(waited and 0 or slice * 1000)
      waited = true
    end
    if not waited then
      -- Only rows waiting out a retry delay: sleep until the first may go.
      local soonest = math.huge
      for _, row in ipairs(self.queue) do
        soonest = math.min(soonest, row.not_before or 0)
      end
      core.sleep_ms(math.max(10, math.min(250, soonest - self.now())))
    end
    self.progress:update(self:counts())
  end
  -- Rows left over (budget exhausted while nothing ran): say why.
  for _, row in ipairs(self.queue) do
    self:park(row, self.stopped and "not started before the deadline" or "budget: the limit leaves no room")
  end
  self.queue = {}
end

-- ---- the result ----

-- The provider a row runs on, as kling.new picks it: the row's, the flags', KLING_PROVIDER,
-- else the official API.
function Batch:provider_of(row)
  return row.meta.provider or self.opts.provider or os.getenv("KLING_PROVIDER") or "kling"
end

-- A poster frame for each video in place (DIR/posters/<path>.jpg, made once), so that the
-- report shows a picture instead of a black box; none when ffmpeg is missing or fails.
function Batch:posters(rows)
  if not ffmpeg.have() then
    return
  end
  local refused = {}
  for _, r in ipairs(rows) do
    for _, f in ipairs(r.files) do
      if f.kind == "video" and f.path then
        local rel = names.poster(f.path)
        local path = self.out .. "/" .. rel
        local dir = names.dirname(rel)
        local ok = refused[dir] == nil
        if ok then
          local err
          ok, err = output_path.mkdir_under(self.out, dir) -- never through a link planted at DIR/posters
          if not ok then
            refused[dir] = err
            self.progress:event("no poster frames in " .. self.out .. "/" .. dir .. ": " .. tostring(err))
          end
        end
        if ok and ((download.size_of(path) or 0) > 0 or ffmpeg.poster(self.out .. "/" .. f.path, path)) then
          f.poster = rel
        end
      end
    end
  end
end

function Batch:result()
  local rows = {}
  for _, row in ipairs(self.rows) do
    local st = row.st
    if not FINAL[st] then
      st = "unfinished"
    end
    local files = {}
    for n = 1, #(row.outputs or {}) do
      if row.files[n] then
        files[#files + 1] = row.files[n]
      end
    end
    if #files == 0 then
      for _, f in pairs(row.files) do
        files[#files + 1] = f
      end
    end
    local req = row.request
    local prompt = req.prompt
    if not prompt and type(req.multi_prompt) == "table" and type(req.multi_prompt[1]) == "table" then
      prompt = req.multi_prompt[1].prompt
    end
    rows[#rows + 1] = {
      id = row.id, state = st, reason = row.reason or (st == "unfinished" and "not run yet") or nil,
      attempts = row.attempt, task_id = row.task_id, external_task_id = row.ext,
      provider = row.client and row.client.provider.name or self:provider_of(row),
      model = req.model, prompt = prompt, error = row.error, charge = row.charge, files = files,
    }
  end
  local now = self.now()
  local r = {
    manifest = self.opts.manifest, out = self.out, journal = self.journal.path, rows = rows, runs = self.runs,
    started_s = self.started_s, finished_s = core.wall_s(), elapsed_s = (now - self.started_ms) / 1000,
  }
  if self.ledger then
    local s = self.ledger:summary()
    r.budget = { limit = s.limit, spent = s.spent, reserved = s.reserved, currency = s.currency }
    r.budgets, r.rates = {}, s.rates
    for i, b in ipairs(s.budgets) do
      r.budgets[i] = { limit = b.limit, spent = b.spent, reserved = b.reserved, currency = b.currency }
    end
  end
  local c = { failed = 0, uncertain = 0, unfinished = 0, refused = 0 }
  for _, row in ipairs(rows) do
    c[row.state] = (c[row.state] or 0) + 1
  end
  r.exit_status = M.exit_status { rows = #rows, unfinished = c.unfinished, uncertain = c.uncertain,
    refused = c.refused }
  return r
end

-- ---- entry point ----

local PROGRESS_MODES = { auto = true, bar = true, plain = true, none = true }

local function check_opts(o)
  if type(o.manifest) ~= "string" then
    return nil, "a manifest path is required"
  end
  if type(o.out) ~= "string" or o.out == "" then
    return nil, "an output directory (out) is required"
  end
  -- the times by the one rule of the clients and engines they go to (a bad one refused here,
  -- never every row refused nor an engine raising mid-run); parallel by the engine's
  for _, k in ipairs { "deadline", "timeout", "estimate", "poll_min", "poll_max" } do
    local problem = o[k] ~= nil and validate.seconds_problem(o[k])
    if problem then
      return nil, k .. " " .. problem
    end
  end
  -- and in the order every row's client takes them (kling.new's rule, its defaults): poll_min
  -- 5 beside poll_max 1 made the out directory and refused every row
  if o.poll_min ~= nil or o.poll_max ~= nil then
    local default = require("kling.client").default_seconds
    local order = validate.poll_order_problem(o.poll_min or default("poll_min"), o.poll_max or default("poll_max"))
    if order then
      return nil, order
    end
  end
  local p = o.parallel
  if p ~= nil and (type(p) ~= "number" or p ~= math.floor(p) or p < 1 or p > engine.MAX_PARALLEL) then
    return nil, "parallel must be a whole number from 1 to " .. engine.MAX_PARALLEL
      .. " (got " .. validate.got(p) .. ")"
  end
  local r = o.retries
  if r ~= nil and (type(r) ~= "number" or r ~= math.floor(r) or r < 0) then
    return nil, "retries must be a whole number >= 0 (got " .. validate.got(r) .. ")"
  end
  if o.progress ~= nil and not PROGRESS_MODES[o.progress] then
    return nil, "progress must be one of auto, bar, plain, none (got " .. validate.got(o.progress) .. ")"
  end
  if o.defaults ~= nil and type(o.defaults) ~= "table" then
    return nil, "defaults must be a table of request fields (got " .. validate.got(o.defaults) .. ")"
  end
  -- what every row's client is made with (a row may name its own): by kling.new's rules, here,
  -- where a misspelt provider or a debug = "yes" made the out directory, its journal and report,
  -- and refused every row
  if o.provider ~= nil then
    local _, perr = providers.get(o.provider)
    if perr then
      return nil, perr.message
    end
  end
  local problems = {
    base_url = o.base_url ~= nil and validate.base_url_problem(o.base_url), -- the provider's prefix: its client's
    ca_file = o.ca_file ~= nil and validate.ca_file_problem(o.ca_file),
    debug = o.debug ~= nil and validate.call_option_problem("debug", o.debug),
  }
  for _, k in ipairs { "base_url", "ca_file", "debug" } do
    if problems[k] then
      return nil, k .. " " .. problems[k]
    end
  end
  local cache = type(o.element_cache) == "string" and require("kling.element").cache_problem(o.element_cache)
  if cache then
    return nil, "element_cache (--elements): " .. cache
  end
  -- currency is the unit of a bare budget amount only: with none, it was dropped unchecked
  -- (--currency XYZ alone ran, and --currency USD beside --budget 50CNY looked like a USD cap)
  if o.currency ~= nil and (o.budget == nil or budget.parse_all(o.budget)) then
    return nil, "currency is the unit of a bare budget amount (--budget 50 --currency CNY), and no budget is"
      .. " one: leave it out, or give the amount without its currency (got " .. validate.got(o.currency) .. ")"
  end
  if o.budget ~= nil or o.rates ~= nil then
    -- refused before the out directory is made: a mistyped --budget leaves nothing behind
    local fb, err = flag_budgets(o)
    if fb == nil then
      return nil, err
    end
  end
  local refused = type(o.out) == "string" and output_path.name_refusal(o.out)
  if refused then
    return nil, "the output directory (--out) " .. refused
  end
  return names.check(o.name or names.DEFAULT)
end

-- The directory a manifest's relative file paths are read from: its own.
local function manifest_dir(path)
  local dir = path:match("^(.*)/[^/]*$")
  if dir == nil then
    return "."
  end
  return dir == "" and "/" or dir
end

-- The options batch.run takes (documented below), as a set.
M.OPTIONS = {}
for name in ([[manifest out format provider base_url ca_file access_key secret_key api_key defaults parallel
  retries deadline timeout budget currency rates name estimate poll_min poll_max progress stderr stdout
  element_cache debug]]):gmatch("%S+") do
  M.OPTIONS[name] = true
end

--- Runs a manifest as a crash-safe batch (`kling run`).
-- run(opts) -> result, nil, exit_status | nil, message, exit_status (M.EXIT). opts:
--   manifest, out                   the manifest (JSONL or CSV) and the output directory
--   provider, base_url, ca_file, access_key, secret_key, api_key   for rows that do not say
--   defaults = {field = value}      under every row (the manifest's defaults line below them)
--   parallel (4)                    rows at the provider at once (its parallel task slots)
--   retries (2)                     further attempts of a row whose task failed (server,
--                                   network, rate_limited; never content_policy)
--   deadline                        seconds for this run; rows still running then stay open
--   timeout                         seconds a task may take (default: the client's 1800)
--   budget, currency                hard caps, one per currency: "50" (in currency, else the
--                                   provider's unit), "50CNY", "300:evolink-credits", or a list
--                                   of them (kept in the journal across runs)
--   rates                           a rates file (kling.money.hold.read_rates): other currencies
--                                   counted against the budget in its `currency`
--   name ("{id}.{ext}")             the output name template (kling.batch.names)
--   estimate                        expected seconds per task (better polling)
--   poll_min, poll_max              poll intervals (s)
--   progress ("auto"|"bar"|"plain"|"none"), stderr, stdout   where progress and the table go
--   element_cache                   the element cache (kling.element) for names in element_list
--                                   (default: kling.element.default_cache())
--   debug                           the clients print each request and answer (kling --debug)
--   format ("jsonl"|"csv")          the manifest's format (default: by extension, else content)
-- An option name not above raises, naming the closest one (paralel: "did you mean parallel?").
---@param opts table the options above (`manifest` and `out` required)
---@return table|nil result `rows`, `counts`, `paths` (`summary`, `report`, `journal`), ...
---@return string|nil err what stopped it
---@return integer status the exit status of `kling run` (batch.EXIT: 0 ended, 2 usage, 3 rows remain, ...)
function M.run(opts)
  errors.check_arg("batch.run", 1, opts, "table")
  -- a misspelt name is a mistake to fix, never an option quietly left out (paralel = 1 ran 4)
  validate.options("batch.run", opts, M.OPTIONS)
  local ok, err = check_opts(opts)
  if not ok then
    return nil, err, M.EXIT.usage
  end
  -- The manifest is read before the out directory is made or locked: a manifest that cannot
  -- be read leaves nothing behind.
  local rows, info = manifest.load(opts.manifest, { defaults = opts.defaults, format = opts.format })
  if not rows then
    return nil, info, M.EXIT.usage
  end
  local out = opts.out:gsub("/+$", "")
  if out == "" then
    out = "/"
  end
  local dir_why = names.dir_refusal(out)
  if dir_why then
    return nil, dir_why, M.EXIT.usage
  end
  local refused = names.refusal(opts.name or names.DEFAULT, rows, out)
  if refused then
    return nil, opts.manifest .. ":" .. refused, M.EXIT.usage
  end
  ok, err = names.mkdir_p(out)
  if not ok then
    return nil, err, M.EXIT.error
  end
  local held, lerr, lstatus = lock(out)
  if not held then
    return nil, lerr, lstatus
  end
  local self = setmetatable({
    opts = opts, out = out, manifest_dir = manifest_dir(opts.manifest),
    parallel = opts.parallel or 4, retries = opts.retries or 2, estimate = opts.estimate,
    name_template = opts.name or names.DEFAULT, now = core.now_ms, started_ms = core.now_ms(),
    started_s = core.wall_s(), clients = {}, client_errors = {}, engines = {}, by_task = {}, active = 0, queue = {},
    claimed = {}, -- output path (relative) -> the row whose file it is
    -- element names always resolved (opts.element_cache, else the default cache kling element
    -- create writes): a name sent as an id cost a create the provider refused
    deadline_s = opts.deadline, elements = require("kling.element"), element_cache = opts.element_cache,
  }, Batch)
  local res, msg
  ok, res, msg = pcall(M.start, self, rows, info)
  held:unlock()
  if not ok then
    if errors.interrupted(res) then
      error(res, 0) -- Ctrl-C is the caller's to report (kling.cli: exit 130); the journal holds the run
    end
    return nil, "internal error: " .. tostring(res), M.EXIT.error -- a bug, as kling.cli says of one
  end
  if not res then
    return nil, msg, M.EXIT.usage
  end
  return res, nil, res.exit_status
end

--- The run under the lock (internal).
-- The run itself (M.run holds the lock around it), over the manifest's rows as
-- kling.batch.manifest.load read them: result | nil, message (nothing was sent).
-- @local
function M.start(self, rows, info)
  local opts = self.opts
  self.rows, self.by_id = rows, info.by_id
  for _, row in ipairs(rows) do
    row.attempt, row.files, row.placing, row.st, row.mode = 1, {}, {}, "pending", "fresh"
  end
  local j, records = journal.open(self.out .. "/" .. names.JOURNAL)
  if not j then
    return nil, records
  end
  self.journal = j
  local st, serr = state.replay(records)
  if not st then
    return nil, "journal " .. j.path .. ": " .. serr
  end
  local ok, lerr = self:open_ledger(st)
  if not ok then
    return nil, lerr
  end
  self.runs = st.runs + 1
  self:append { t = "batch", v = state.VERSION, manifest = opts.manifest, manifest_sha256 = info.sha256,
    rows = #rows, budget = self.budget, started_s = self.started_s, durable = journal.durable }
  local rok, rerr = self:resume(st)
  if not rok then
    return nil, rerr
  end
  for _, row in ipairs(rows) do
    for _, f in pairs(row.files or {}) do
      self.claimed[f.path] = row
    end
  end
  self.downloads = download.new { ca_file = opts.ca_file or os.getenv("KLING_CA_FILE") }
  local total = 0
  for _, row in ipairs(rows) do
    total = total + 1
    if row.st == "pending" then
      if row.mode ~= "fresh" then
        table.insert(self.queue, 1, row) -- already at the provider: first
      else
        self.queue[#self.queue + 1] = row
      end
    end
  end
  self.progress = progress.new { mode = opts.progress, stream = opts.stderr or io.stderr, total = total }
  self.done_at_start = 0
  for _, row in ipairs(rows) do
    if FINAL[row.st] then
      self.done_at_start = self.done_at_start + 1
    end
  end
  if self.deadline_s then
    self.deadline_ms = self.started_ms + validate.seconds_ms(self.deadline_s)
  end
  for _, row in ipairs(rows) do
    if row.st:match("^resume_") then
      self:carry_on(row)
    end
  end
  -- The loop waits on its engines in slices of 0.25 s: a large batch keeps the incremental collector
  -- for its whole loop (each slice's wait_all keeps the mode it finds; its engine may hold fewer
  -- than the 1,000 active tasks that pace a wait, and a large submit_many switching back to
  -- generational mode costs a full collection).
  collector.run(#rows, self.loop, self)
  self.progress:finish(self:counts())
  self.downloads:close()
  local result = self:result()
  self:posters(result.rows)
  local paths, werr = report.write(result, self.out)
  if not paths then
    error("cannot write the report: " .. tostring(werr), 0)
  end
  result.paths = paths
  if opts.stdout ~= false then
    local stdout = opts.stdout or io.stdout
    for _, line in ipairs(report.table(result, paths)) do
      stdout:write(line, "\n")
    end
  end
  return result
end

M.Batch = Batch
return M
