-- kling quote: the same product priced on every provider that can make it, cheapest first
-- within each currency (across currencies only with the user's --rates). Exit status: 0 when
-- at least one provider prices it, 3 when none does, 2 for a bad request or usage.
local billing = require "kling.billing"
local json = require "kling.json"
local request = require "kling.cli.request"
local estimate = require "kling.cli.estimate"
local flags = require "kling.cli.flags"

local M = {}

-- "CNY=0.14,apiinone-credits=0.01" -> {CNY = "0.14", ...} | nil, message. A currency no
-- provider charges in (a typo: CYN) could never apply and one given twice would keep one rate
-- silently: both are refused by name, as kling run's --rates file refuses them. Only the pair's
-- shape is read here: its value is rate_problem's, which says the rule (-1, 1e-7 named so).
local function parse_rates(text)
  local rates = {}
  if not text:find("[^%s,]") then
    return nil, "--rates takes CURRENCY=USD_PER_UNIT pairs separated by commas (got none)"
  end
  for item in text:gmatch("[^,]+") do
    local cur, rate = item:match("^%s*([%w%-_]+)%s*=%s*(%S+)%s*$")
    if not cur then
      return nil, "--rates takes CURRENCY=USD_PER_UNIT pairs separated by commas (got " .. item .. ")"
    elseif rates[cur] then
      return nil, "--rates: " .. cur .. " is given twice"
    end
    local unrated = require("kling.money.hold").unrated(cur, billing.default_catalogs)
    if unrated then
      return nil, "--rates: " .. unrated
    end
    local problem = require("kling.money.quote").rate_problem(cur, rate) -- kling.quote's rule
    if problem then
      return nil, "--rates: " .. cur .. ": " .. problem
    end
    rates[cur] = rate
  end
  return rates
end

M.summary = "compare a request's price across providers"

function M.define(cmd)
  cmd:description [[
Prices the same product on every provider (kling, apiinone, apimodels, evolink, compat): the
defaults that differ between providers are made explicit first (sound off, mode std or the
one the resolution implies, 5 s) and printed. Each currency is ranked on its own (each
gateway's credits are its own currency: apiinone-credits, evolink-credits); with --rates
(USD per unit of each currency, e.g. --rates CNY=0.14,apiinone-credits=0.01,
evolink-credits=0.014) they are ranked together. Then the providers that cannot honour a
field of the request or price it, with the reason. A request's "provider", "base_url" or
"ca_file" is refused, and so is a key in it ("api_key", "access_key", "secret_key"): none is
used (kling estimate --provider P prices one provider).]]
  cmd:epilog "Exit status: 0 at least one provider prices it, 3 none does, 2 bad request or usage."
  request.define(cmd, true)
  cmd:option("--rates", "USD per unit of each currency"):argname("CUR=USD,..."):convert(parse_rates)
  cmd:option("--format", "text (default) or json"):choices { "text", "json" }
end

-- One line whatever the request holds: a field's name (from --json) and the message quoting it
-- are the user's text, and a control character in them went to the terminal as it was (an
-- escape sequence, a line break): shown escaped (flags.message), as every failure is.
local function describe(u)
  local what = u.error.kind == "validation" and u.field and ("cannot honour " .. u.field) or u.error.kind
  return flags.message(string.format("-  %-10s %s: %s", u.provider, what, u.error.message)) .. "\n"
end

local fail = flags.failure("kling quote")

-- Fields a request may name that quote cannot use, each with why and what to use instead:
-- given in --json or --file, they were dropped silently (the output the same with or without);
-- a key in it is refused too (kling.cli.request.unused).
local ONE = "; remove it, or price one provider with kling estimate --provider P"
local UNUSED = {
  { "provider", "kling quote prices the request on every provider (" .. table.concat(require("kling.providers").names,
    ", ") .. "), so the one named here would be ignored" .. ONE },
  { "base_url", "kling quote sends nothing: it prices from each provider's catalog, so a base URL would change"
    .. " nothing and be ignored" .. ONE },
  { "ca_file", "kling quote sends nothing: it prices from each provider's catalog, so a CA file would change"
    .. " nothing and be ignored" .. ONE },
}

function M.run(opts)
  local req, bad = request.build(opts)
  if not req then
    return fail(2, bad .. ": nothing was priced")
  end
  local unused = request.unused(req, opts, "kling quote", UNUSED)
  if unused then
    return fail(2, unused)
  end
  local rates = opts.rates
  local list = billing.quote(req, { rates = rates })
  local assumed = {}
  for k, v in pairs(list.assumed) do
    assumed[#assumed + 1] = k .. "=" .. tostring(v)
  end
  table.sort(assumed)
  if opts.format == "json" then
    local unavailable = {}
    for i, u in ipairs(list.unavailable) do
      unavailable[i] = { provider = u.provider, field = u.field,
        error = { kind = u.error.kind, message = u.error.message } }
    end
    local groups = {}
    for i, g in ipairs(list.groups) do
      groups[i] = { currency = g.currency, quotes = json.array(g.quotes) }
    end
    local out = { quotes = json.array({ table.unpack(list) }), ranked = list.ranked, note = list.note,
      assumed = list.assumed, groups = json.array(groups), unavailable = json.array(unavailable) }
    io.stdout:write(assert(json.encode(out)), "\n")
  else
    if #assumed > 0 then
      io.stdout:write("defaults made explicit: ", table.concat(assumed, ", "), "\n")
    end
    if list.ranked then
      for i, q in ipairs(list) do
        io.stdout:write(string.format("%d. %-10s %s\n", i, q.provider, estimate.describe(q)))
      end
    else
      for _, g in ipairs(list.groups) do
        io.stdout:write(g.currency, ":\n")
        for i, q in ipairs(g.quotes) do
          io.stdout:write(string.format("%d. %-10s %s\n", i, q.provider, estimate.describe(q)))
        end
      end
      io.stdout:write("(", list.note, ")\n")
    end
    for _, u in ipairs(list.unavailable) do
      io.stdout:write(describe(u))
    end
  end
  return #list > 0 and 0 or 3
end

return M
