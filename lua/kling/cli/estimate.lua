-- kling estimate: the price of one request before it is sent, or (with --actual-*) the charge
-- for what was delivered. Exit status: 0 priced, 3 unpriced, 2 bad request or usage.
local kling = require "kling"
local json = require "kling.json"
local request = require "kling.cli.request"
local flags = require "kling.cli.flags"

local M = {}

M.summary = "price one request before sending it"

function M.define(cmd)
  cmd:description [[
Prints the price of the request on its provider (default kling) from the dated catalog in
lua/kling/prices/, evaluated in integer micro-units. With --actual-duration / --actual-count,
prices the delivered usage instead (what a finished task is charged). A request's "base_url"
or "ca_file" is refused, and so is a key in it ("api_key", "access_key", "secret_key"):
none changes a price.]]
  cmd:epilog "Exit status: 0 priced, 3 unpriced, 2 bad request or usage."
  request.define(cmd)
  cmd:option("--actual-duration", "the delivered seconds (a decimal)"):argname "S"
  cmd:option("--actual-count", "the delivered outputs"):argname("N")
    :convert(flags.number("--actual-count", flags.range(0, 2147483647)))
  cmd:option("--format", "text (default) or json"):choices { "text", "json" }
end

-- One line describing a quote: amount, currency, rule and where the price comes from.
function M.describe(q)
  local b = q.breakdown or {}
  local usd = q.usd and q.currency ~= "USD" and string.format(" (~%s USD)", q.usd.amount) or ""
  -- a tier or unit is billed whole: 7.4 s delivered of a 10 s request said "7 s billed" at the
  -- 10 s price, and a lip-sync's 10.001 s "10.001 s billed" at three 5 s units (15 s)
  local units = tonumber(b.unit_seconds) and math.type(b.units) == "integer"
    and string.format("%g", tonumber(b.unit_seconds) * b.units)
  local billed = b.tier_seconds or units or b.billed_seconds
  billed = billed and (", " .. billed .. " s billed" .. (b.seconds and b.seconds ~= billed
    and (" (" .. b.seconds .. " s delivered)") or "")) or ""
  return string.format("%s %s%s  [%s: %s%s; catalog %s]", q.amount, q.currency, usd, q.provider or "?",
    q.rule, billed, b.catalog_date or "?")
end

local fail = flags.failure("kling estimate")

-- The flag each delivered amount comes from: a refusal names what the user typed, not the
-- library's usage.duration.
local FLAG_OF = { ["usage.duration"] = "--actual-duration", ["usage.count"] = "--actual-count" }

-- Fields a request may name that estimate cannot use (a key in it is refused too:
-- kling.cli.request.unused): given in --json or --file, a base_url was dropped silently.
local UNUSED = {
  { "base_url", "kling estimate sends nothing: it prices from the provider's catalog, so a base URL would change"
    .. " nothing and be ignored; remove it" },
  { "ca_file", "kling estimate sends nothing: it prices from the provider's catalog, so a CA file would change"
    .. " nothing and be ignored; remove it" },
}

function M.run(opts)
  local req, bad = request.build(opts)
  if not req then
    return fail(2, bad .. ": nothing was priced")
  end
  -- where the provider came from, to name it as the user gave it (the flag, the environment)
  local from = opts.field_provider and "--provider"
    or not req.provider and os.getenv("KLING_PROVIDER") and "KLING_PROVIDER"
  -- a base URL, a CA file or a key in the request changes no price: refused by name, as kling
  -- quote refuses them (a base_url was dropped silently)
  local unused = request.unused(req, opts, "kling estimate", UNUSED)
  if unused then
    return fail(2, unused)
  end
  req.provider = req.provider or os.getenv("KLING_PROVIDER") or "kling"
  local q, err
  if opts.actual_duration or opts.actual_count then
    -- kling.settle: the request checked as kling.estimate checks it (a misspelt field refused)
    q, err = kling.settle(req, { duration = opts.actual_duration, count = opts.actual_count })
  else
    -- kling.estimate: what the provider would refuse (an unknown field, another provider's
    -- field name, a value out of range) is refused by name (exit 2), as `kling quote` does
    q, err = kling.estimate(req)
  end
  if not q then
    err.field = FLAG_OF[err.field] or err.field == "provider" and from or err.field
    return fail(err.kind == "unpriced" and 3 or 2, err)
  end
  if opts.actual_count and not (q.breakdown and q.breakdown.count) then
    -- a video's price counts no outputs: the count was dropped and the price printed without it
    return fail(2, "--actual-count: the price " .. tostring(q.rule) .. " counts no outputs, so the count would be "
      .. "ignored: nothing was priced")
  end
  q.provider = q.provider or req.provider
  if opts.format == "json" then
    io.stdout:write(assert(json.encode(q)), "\n")
  else
    io.stdout:write(M.describe(q), "\n")
  end
  return 0
end

return M
