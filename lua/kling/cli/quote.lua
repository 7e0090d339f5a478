-- kling quote: one request priced on every provider that can serve it, cheapest first (by
-- USD equivalent where a rate is known). Exit status: 0 when at least one provider prices it,
-- 3 when none does, 2 for a bad request or usage.
local billing = require "kling.billing"
local json = require "kling.json"
local request = require "kling.cli.request"
local estimate = require "kling.cli.estimate"

local M = {}

local USAGE = [[
usage: kling quote [request] [--format text|json]

Prices the request on every provider (kling, apiinone, apimodels, evolink, compat) and lists
them cheapest first, then the providers that cannot price or serve it, with the reason.
]] .. request.USAGE .. "\n"

function M.main(args)
  if args[1] == "--help" or args[1] == "-h" then
    io.stdout:write(USAGE)
    return 0
  end
  local req, opts = request.parse(args, { ["--format"] = "format" })
  if not req then
    io.stderr:write(USAGE, "kling quote: ", opts, "\n")
    return 2
  end
  req.provider = nil
  local list, err = billing.quote(req)
  if not list then
    io.stderr:write("kling quote: ", tostring(err), "\n")
    return err.kind == "validation" and 2 or 3
  end
  if opts.format == "json" then
    local unavailable = list.unavailable or {}
    for _, u in ipairs(unavailable) do
      u.error = { kind = u.error.kind, message = u.error.message }
    end
    local out = { quotes = json.array({ table.unpack(list) }), unavailable = json.array(unavailable) }
    io.stdout:write(assert(json.encode(out)), "\n")
  else
    for i, q in ipairs(list) do
      io.stdout:write(string.format("%d. %-10s %s\n", i, q.provider, estimate.describe(q)))
    end
    for _, u in ipairs(list.unavailable or {}) do
      io.stdout:write(string.format("-  %-10s %s: %s\n", u.provider, u.error.kind, u.error.message))
    end
  end
  return #list > 0 and 0 or 3
end

return M
