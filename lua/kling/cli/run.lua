-- kling run MANIFEST --out DIR: a manifest as a crash-safe batch (kling.batch).
local batch = require "kling.batch"
local flags = require "kling.cli.flags"
local manifest = require "kling.batch.manifest"
local report = require "kling.batch.report"

local M = {}

M.summary = "run a manifest of requests as a crash-safe batch"

-- How the command resumes after Ctrl-C (kling.cli says it with "interrupted", exit 130).
function M.interrupted(args)
  return args.out .. "/journal.jsonl keeps what was done: run the same command again to resume"
end

function M.define(cmd)
  cmd:description [[
Runs every row of MANIFEST and puts the outputs in DIR. MANIFEST is JSONL (one canonical
request per line, e.g. {"id":"cat","model":"kling-v2-6","mode":"pro","duration":5,"prompt":"..."};
a first line {"defaults":{...}} gives fields every row starts from) or CSV with a header row
(cells typed: numbers for duration/n/cfg_scale, true/false for sound, JSON for lists and
objects; element_list may be "a;b"). A row may name its own provider, base_url, ca_file and
keys (access_key, secret_key, api_key); otherwise the options, otherwise the KLING_* environment.

Crash-safe: DIR/journal.jsonl records each step before it happens (fsync'd). Killed at any
moment and started again with the same command, the batch adopts the tasks the provider
already has (never creating them twice) and finishes the rest. A create whose answer was lost
and that lookups by external id have not found is reported uncertain, its reservation kept: the
next run looks it up again (a create sent again goes under the same external id, which the
provider refuses as a duplicate: never a second task). Where a provider cannot look a task up
by external id, such a create is reported uncertain for good, never resent.]]
  cmd:epilog [[
Exit status:
  0  every row ended (succeeded or failed at the provider; see DIR/summary.json)
  1  the batch could not run (journal not writable, internal error)
  2  bad usage, manifest or journal, or every row refused as invalid
     or unpriced (nothing was sent; see DIR/summary.json)
  3  rows remain (deadline, budget, download, still running, the account refused):
     run the same command again
  4  every other row ended, some are uncertain (see summary.json; run again to look them up)
  5  another live process is running this DIR
  6  every other row ended, some were refused as invalid or unpriced (nothing
     was sent for them; see summary.json): fix those rows, run the same command again
  130  interrupted (Ctrl-C): the journal keeps the run; run the same command again]]
  cmd:argument("MANIFEST", "the requests: JSONL or CSV"):argname("MANIFEST"):target "manifest"
  cmd:option("--out", "output directory (required): outputs, journal.jsonl, summary.json,\nreport.html")
    :argname("DIR"):count(1):convert(flags.nonempty "--out")
  flags.client_options(cmd, " (rows may override)")
  cmd:option("--set", "a default for every row (repeatable; the row wins)"):argname("FIELD=VALUE"):count "*"
  cmd:option("--defaults", "defaults from a JSON object (the row wins)"):argname("FILE.json"):target "defaults_file"
  cmd:option("--format", "the manifest's format (default: by extension, else by content)")
    :choices { "jsonl", "csv" }
  cmd:option("--parallel", "tasks at the provider at once (default 4)"):argname("N")
    :convert(flags.number("--parallel", flags.range(1, require("kling.engine").MAX_PARALLEL)))
  cmd:option("--retries", "further attempts of a row whose task failed for a transient reason\n"
    .. "(server, network, rate_limited; never content_policy) (default 2);\n"
    .. "each attempt is a new task with a new external id"):argname("N")
    :convert(flags.number("--retries", flags.NATURAL))
  cmd:option("--budget", "hard cap on the spend in one currency, e.g. 50CNY, 20USD,\n"
    .. "300:evolink-credits, 1000:apiinone-credits (repeatable: one per\n"
    .. "currency; kept across resumed runs). Every provider's unit is its\n"
    .. "own currency: a row whose currency has no budget waits (exit 3)"):argname("AMOUNT[CUR]"):count("*")
    :convert(flags.budget)
  cmd:option("--currency", "the currency of a bare --budget AMOUNT (default: the unit of the\n"
    .. "provider the options name, e.g. CNY for kling)"):argname "C"
  cmd:option("--rates", "count other currencies against one budget:\n"
    .. '{"currency": "CNY", "rates": {"USD": "7.10", "evolink-credits": "0.10"}}\n'
    .. '(units of "currency" per unit of each other one)'):argname "FILE.json"
  cmd:option("--deadline", "stop this run after SECONDS; unfinished rows resume next time")
    :argname("SECONDS"):convert(flags.number("--deadline", flags.SECONDS))
  cmd:option("--timeout", "the longest a task may take (default 1800)"):argname("SECONDS")
    :convert(flags.number("--timeout", flags.SECONDS))
  cmd:option("--estimate", "expected task duration (polls near the end instead of backing off)")
    :argname("SECONDS"):convert(flags.number("--estimate", flags.SECONDS))
  flags.poll_options(cmd)
  cmd:option("--name", "output names under DIR (default {id}.{ext}); placeholders {id} {row}\n"
    .. "{n} {kind} {ext} {task_id} {model}"):argname "TEMPLATE"
  cmd:option("--elements", "element cache (kling element create) for element names in element_list\n"
    .. "(default: the one kling element create writes, $XDG_CACHE_HOME/kling/elements.json)")
    :argname("FILE"):target "element_cache"
  -- one or the other: --quiet turned the --progress asked for off without a word
  cmd:mutex(cmd:option("--progress", "auto | bar | plain | none (default auto: a bar on a terminal)")
    :argname("MODE"):choices { "auto", "bar", "plain", "none" },
  cmd:flag("--quiet", "no progress and no table, only the rows that failed or were refused\n"
    .. "(on stderr)"))
end

local fail = flags.failure("kling run")

-- defaults from --defaults FILE and --set FIELD=VALUE (typed like CSV cells).
local function defaults(opts)
  local d = {}
  if opts.defaults_file then
    local text, err = require("kling.local_file").read_text(opts.defaults_file)
    if not text then
      return nil, "cannot read --defaults: " .. err
    end
    local v, jerr, dup = require("kling.json").decode_strict(text)
    if dup then
      return nil, "--defaults " .. opts.defaults_file .. ": " .. jerr
    elseif type(v) ~= "table" or v[1] ~= nil or require("kling.json").is_array(v) then
      -- an array's items would read as fields named 1, 2, ... and every row fail on them
      return nil, "--defaults must hold a JSON object (" .. tostring(jerr or ("got " .. (type(v) == "table"
        and "an array" or require("kling.validate").type_of(v)))) .. ")"
    end
    for k, x in pairs(v) do
      d[k] = x
    end
  end
  local set = {}
  for _, kv in ipairs(opts.set or {}) do
    local k, v = kv:match("^([%w_]+)=(.*)$")
    if not k then
      return nil, "--set takes FIELD=VALUE (got " .. kv .. ")"
    elseif set[k] then -- the last one would win without a word, as a key twice in JSON
      -- (values not echoed: --set api_key=... is a secret)
      return nil, "--set " .. k .. ": given twice (give each field once)"
    end
    set[k] = true
    local x, err = manifest.cell(k, v)
    if err then
      return nil, "--set " .. k .. ": " .. err
    end
    d[k] = x
  end
  return d
end

-- The lines (kling.batch.report.row_line) of the rows in `states`, on stderr under one line
-- counting them: what --quiet still says.
local function said(result, states, what)
  local lines = {}
  for _, r in ipairs(result.rows) do
    if states[r.state] then
      lines[#lines + 1] = report.row_line(r)
    end
  end
  if #lines > 0 then
    io.stderr:write("kling run: ", #lines, " of ", #result.rows, " rows ", what, " (", result.paths.summary, "):\n",
      flags.lines(lines), "\n")
  end
end

function M.run(opts)
  opts.set = flags.list(opts.set)
  local d, err = defaults(opts)
  if not d then
    return fail(2, err)
  end
  -- kling.batch.run's options by name: it refuses a name it does not know, and argparse's
  -- result also holds the command's own (command, quiet, set, defaults_file)
  local o = { manifest = opts.manifest, out = opts.out, format = opts.format, defaults = d,
    provider = opts.provider, base_url = opts.base_url, ca_file = opts.ca_file, access_key = opts.access_key,
    secret_key = opts.secret_key, api_key = opts.api_key, parallel = opts.parallel, retries = opts.retries,
    budget = flags.list(opts.budget), currency = opts.currency, rates = opts.rates, deadline = opts.deadline,
    timeout = opts.timeout, estimate = opts.estimate, poll_min = opts.poll_min, poll_max = opts.poll_max,
    name = opts.name, element_cache = opts.element_cache, progress = opts.progress, debug = opts.debug or nil }
  if opts.quiet then
    o.progress, o.stdout = "none", false
  end
  local result, rerr, status = batch.run(o)
  if not result then
    return fail(status, rerr)
  end
  if opts.quiet then
    -- quiet hides the progress and the table, never why rows failed or were refused
    said(result, { failed = true, uncertain = true }, "failed or are uncertain")
    said(result, { refused = true }, "refused, nothing sent for them (fix them and run the same command again)")
    -- nor why rows wait for the next run (a budget, a deadline): counted by reason, not listed
    local waiting, reasons, order = 0, {}, {}
    for _, r in ipairs(result.rows) do
      if r.state == "unfinished" then
        waiting = waiting + 1
        local why = tostring(r.reason):gsub(" %(task [^)]*%)", "")
        if not reasons[why] then
          order[#order + 1] = why
        end
        reasons[why] = (reasons[why] or 0) + 1
      end
    end
    if waiting > 0 then
      local lines = {}
      for i = 1, math.min(#order, 5) do
        lines[i] = string.format("  %6d  %s", reasons[order[i]], order[i])
      end
      io.stderr:write("kling run: ", waiting, " of ", #result.rows, " rows unfinished (run the same command again):\n",
        flags.lines(lines), "\n", #order > 5 and "  ...\n" or "")
    end
  end
  return status
end

return M
