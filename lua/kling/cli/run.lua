-- kling run MANIFEST --out DIR: a manifest as a crash-safe batch (kling.batch).
local batch = require "kling.batch"
local flags = require "kling.batch.flags"
local manifest = require "kling.batch.manifest"

local M = {}

local USAGE = [[
usage: kling run MANIFEST --out DIR [options]

Runs every row of MANIFEST and puts the outputs in DIR. MANIFEST is JSONL (one canonical
request per line, e.g. {"id":"cat","model":"kling-v2-6","mode":"pro","duration":5,"prompt":"..."};
a first line {"defaults":{...}} gives fields every row starts from) or CSV with a header row
(cells typed: numbers for duration/n/cfg_scale, true/false for sound, JSON for lists and
objects; element_list may be "a;b"). A row may name its own provider, base_url, ca_file and
keys (access_key, secret_key, api_key); otherwise the flags below, otherwise KLING_PROVIDER,
KLING_BASE_URL, KLING_ACCESS_KEY + KLING_SECRET_KEY or KLING_API_KEY, KLING_CA_FILE.

Crash-safe: DIR/journal.jsonl records each step before it happens (fsync'd). Killed at any
moment and started again with the same command, the batch adopts the tasks the provider
already has (never creating them twice) and finishes the rest. Where a provider cannot look
a task up by external id, a create whose answer was lost is reported uncertain, never resent.

options:
  --out DIR              output directory (required): outputs, journal.jsonl, summary.json, report.html
  --provider P           kling | apiinone | apimodels | evolink | compat (rows may override)
  --base-url URL         the provider's base URL
  --ca-file PEM          CA bundle for HTTPS, for the API and the downloads (e.g. the simulator's)
  --access-key K, --secret-key S, --api-key K
                         credentials (prefer the KLING_* environment: flags show in ps)
  --set FIELD=VALUE      a default for every row (repeatable; the row wins)
  --defaults FILE.json   defaults from a JSON object (the row wins)
  --format jsonl|csv     the manifest's format (default: by extension, else by content)
  --parallel N           tasks at the provider at once (default 4)
  --retries N            further attempts of a row whose task failed for a transient reason
                         (server, network, rate_limited; never content_policy) (default 2);
                         each attempt is a new task with a new external id
  --budget AMOUNT[CUR]   hard cap on the spend in one currency, e.g. 50CNY, 20USD,
                         300:evolink-credits, 1000:apiinone-credits (repeatable: one per
                         currency; kept across resumed runs). Every provider's unit is its
                         own currency: a row whose currency has no budget waits (exit 3)
  --currency C           the currency of a bare --budget AMOUNT (default: the unit of the
                         provider the flags name, e.g. CNY for kling)
  --rates FILE.json      count other currencies against one budget:
                         {"currency": "CNY", "rates": {"USD": "7.10", "evolink-credits": "0.10"}}
                         (units of "currency" per unit of each other one)
  --deadline SECONDS     stop this run after SECONDS; unfinished rows resume next time
  --timeout SECONDS      the longest a task may take (default 1800)
  --estimate SECONDS     expected task duration (polls near the end instead of backing off)
  --poll-min S, --poll-max S   poll intervals
  --name TEMPLATE        output names under DIR (default {id}.{ext}); placeholders {id} {row}
                         {n} {kind} {ext} {task_id} {model}
  --elements FILE        element cache (kling element create) for element names in element_list
  --progress MODE        auto | bar | plain | none (default auto: a bar on a terminal)
  --quiet                no progress and no table (summary.json and report.html still written)

exit status:
  0  every row ended (succeeded or failed; see DIR/summary.json)
  1  the batch could not run (journal not writable, internal error)
  2  bad usage, manifest or journal (nothing was sent)
  3  rows remain (deadline, budget, download, still running, the account refused):
     run the same command again
  4  every other row ended, some are uncertain (see summary.json: never resent)
  5  another live process is running this DIR
]]

local SPEC = {
  ["--out"] = { "out" }, ["--provider"] = { "provider" }, ["--base-url"] = { "base_url" },
  ["--ca-file"] = { "ca_file" }, ["--access-key"] = { "access_key" }, ["--secret-key"] = { "secret_key" },
  ["--api-key"] = { "api_key" }, ["--set"] = { "set", "list" }, ["--defaults"] = { "defaults_file" },
  ["--format"] = { "format" }, ["--parallel"] = { "parallel", "number" }, ["--retries"] = { "retries", "number" },
  ["--budget"] = { "budget", "list" }, ["--currency"] = { "currency" }, ["--rates"] = { "rates" },
  ["--deadline"] = { "deadline", "number" },
  ["--timeout"] = { "timeout", "number" }, ["--estimate"] = { "estimate", "number" },
  ["--poll-min"] = { "poll_min", "number" }, ["--poll-max"] = { "poll_max", "number" }, ["--name"] = { "name" },
  ["--elements"] = { "element_cache" }, ["--progress"] = { "progress" }, ["--quiet"] = { "quiet", "bool" },
  ["--help"] = { "help", "bool" }, ["-h"] = { "help", "bool" },
}

local PROGRESS = { auto = true, bar = true, plain = true, none = true }

local fail = flags.failure("kling run")

-- defaults from --defaults FILE and --set FIELD=VALUE (typed like CSV cells).
local function defaults(opts)
  local d = {}
  if opts.defaults_file then
    local f, err = io.open(opts.defaults_file, "rb")
    if not f then
      return nil, "cannot read --defaults: " .. tostring(err)
    end
    local v, jerr = require("kling.json").decode(f:read("a"))
    f:close()
    if type(v) ~= "table" then
      return nil, "--defaults must hold a JSON object (" .. tostring(jerr or type(v)) .. ")"
    end
    for k, x in pairs(v) do
      d[k] = x
    end
  end
  for _, kv in ipairs(opts.set or {}) do
    local k, v = kv:match("^([%w_]+)=(.*)$")
    if not k then
      return nil, "--set takes FIELD=VALUE (got " .. kv .. ")"
    end
    local x, err = manifest.cell(k, v)
    if err then
      return nil, "--set " .. k .. ": " .. err
    end
    d[k] = x
  end
  return d
end

function M.main(args)
  local opts, pos = flags.command(args, SPEC, USAGE, fail, function(n)
    return n == 0 and "a MANIFEST is required" or "one MANIFEST only (got " .. n .. ")"
  end)
  if not opts then
    return pos
  end
  if not opts.out then
    return fail(2, "--out DIR is required")
  end
  if opts.progress and not PROGRESS[opts.progress] then
    return fail(2, "--progress must be auto, bar, plain or none")
  end
  local err = flags.positive(opts, "parallel", "--parallel", true)
  if err then
    return fail(2, err)
  end
  local d
  d, err = defaults(opts)
  if not d then
    return fail(2, err)
  end
  opts.manifest, opts.defaults = pos[1], d
  if opts.quiet then
    opts.progress, opts.stdout = "none", false
  end
  local result, rerr, status = batch.run(opts)
  if not result then
    return fail(status, rerr)
  end
  return status
end

return M
