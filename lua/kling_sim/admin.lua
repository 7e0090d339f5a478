-- The admin API under /_sim/ (plain JSON, no auth, never counted in the stats):
--   GET /_sim/health | GET /_sim/stats | GET /_sim/requests?n=N | GET /_sim/ledger
--   GET|POST|DELETE /_sim/faults | GET|POST|DELETE /_sim/config | POST /_sim/reset
--   GET|POST /_sim/clock {"advance": seconds} | GET /_sim/tasks/{id} | GET /_sim/callbacks?n=N
local json = require "kling.json"
local callbacks = require "kling_sim.callbacks"
local clock = require "kling_sim.clock"
local faults = require "kling_sim.faults"
local registry = require "kling_sim.registry"
local reply = require "kling_sim.reply"
local settings = require "kling_sim.settings"
local stats = require "kling_sim.stats"
local store = require "kling_sim.store"
local units = require "kling_sim.units"

local M = {}

local function bad(message)
  return reply.json(400, { error = message })
end

local function body_json()
  ngx.req.read_body()
  local data = ngx.req.get_body_data()
  if not data or data == "" then
    return {}
  end
  local v, err = json.decode(data)
  if v == nil then
    return nil, "body is not valid JSON: " .. tostring(err)
  end
  return v
end

--- The money a dialect's charges are in, as one name per money: its `unit` where its
-- `currency` is not one money by itself (each gateway's "credits" are its own:
-- "apiinone-credits", "evolink-credits"), else its currency ("CNY", "USD"). Amounts of
-- different units are never added (the ledger's totals and the stats' `billed` are per unit).
function M.unit(d)
  return d.unit or d.currency
end

local function full_stats()
  local out = stats.snapshot()
  local now = clock.now_ms()
  local by, total, billed = {}, 0, {}
  store.each(function(t)
    local d = registry.by_name[t.dialect]
    local status, cost = d.task_status(t, now)
    by[status] = (by[status] or 0) + 1
    total = total + 1
    if cost and t.micros and t.micros == math.floor(t.micros) then -- per unit, never one sum (M.unit)
      local u = M.unit(d)
      billed[u] = (billed[u] or 0) + t.micros
    end
  end)
  out.tasks, out.tasks_total, out.billed = by, total, billed
  local cfg = settings.get()
  out.parallel = { live = store.live("main", now), max = cfg.max_parallel }
  out.now_ms = now
  return out
end

-- JSON numbers here carry 14 significant digits (kling.json): beyond that a sum is not exact.
local EXACT_LIMIT = 1e14

-- What the providers would bill: every finished, billed task, and the totals. A row's `units`
-- are the older thousandths (in its dialect's `ledger_unit`); `micros` is each charge in
-- integer micro-units of the dialect's `currency`, exact, and `unit` names that money
-- (M.unit). `totals` sums them per unit, never across units: apiinone and evolink both
-- call their money "credits", which are not the same money, and are kept apart as
-- "apiinone-credits" and "evolink-credits" (there was a `units_total` summing every
-- dialect's thousandths, CNY, US cents and credits together: gone). -> ledger | nil, message
local function ledger()
  local now, rows = clock.now_ms(), json.array {}
  local totals, by_dialect, problem = {}, {}, nil
  store.each(function(t)
    local d = registry.by_name[t.dialect]
    local status, cost = d.task_status(t, now)
    if cost then
      if t.micros == nil or t.micros ~= math.floor(t.micros) or not d.currency then
        problem = problem or ("task " .. t.id .. " (" .. t.dialect .. ") is billed without whole micros in a currency")
        return
      end
      local r = t.request or {}
      rows[#rows + 1] = { task_id = t.id, dialect = t.dialect, endpoint = t.endpoint, model = r.model,
        mode = r.mode, duration = r.duration, sound = r.sound, status = status, units = units.format(cost),
        micros = t.micros, currency = d.currency, unit = M.unit(d) }
      totals[M.unit(d)] = (totals[M.unit(d)] or 0) + t.micros
      local b = by_dialect[t.dialect] or { currency = d.currency, unit = M.unit(d), micros = 0, tasks = 0 }
      b.micros, b.tasks = b.micros + t.micros, b.tasks + 1
      by_dialect[t.dialect] = b
    end
  end)
  for unit, m in pairs(totals) do
    if m >= EXACT_LIMIT then
      problem = problem or ("the " .. unit .. " total (" .. m .. " micros) is past what JSON carries exactly")
    end
  end
  if problem then
    return nil, problem
  end
  return { tasks = rows, totals = totals, by_dialect = by_dialect }
end

local handlers = {}

handlers["GET /_sim/ledger"] = function()
  local l, err = ledger()
  if not l then
    return reply.json(500, { error = err })
  end
  return reply.json(200, l)
end

handlers["GET /_sim/health"] = function()
  return reply.json(200, { ok = true })
end

handlers["GET /_sim/stats"] = function()
  return reply.json(200, full_stats())
end

handlers["GET /_sim/requests"] = function()
  local n = tonumber(ngx.var.arg_n or ngx.var.arg_limit or 100)
  if not n or n < 0 then
    return bad("n: must be a number of requests >= 0")
  end
  return reply.json(200, stats.recent(math.floor(n)))
end

-- Every callback attempt (oldest first): url, attempt, status or error, headers and body sent.
handlers["GET /_sim/callbacks"] = function()
  local n = tonumber(ngx.var.arg_n or 100)
  if not n or n < 0 then
    return bad("n: must be a number of attempts >= 0")
  end
  return reply.json(200, callbacks.recent(math.floor(n)))
end

handlers["GET /_sim/faults"] = function()
  return reply.json(200, faults.get())
end

handlers["POST /_sim/faults"] = function()
  local body, err = body_json()
  if not body then
    return bad(err)
  end
  local set
  set, err = faults.validate(body, settings.get().fault_seed or 1)
  if not set then
    return bad(err)
  end
  faults.set(set)
  return reply.json(200, faults.get())
end

handlers["DELETE /_sim/faults"] = function()
  faults.clear()
  return reply.json(200, faults.get())
end

handlers["GET /_sim/config"] = function()
  return reply.json(200, settings.public())
end

handlers["POST /_sim/config"] = function()
  local body, err = body_json()
  if not body then
    return bad(err)
  end
  body, err = settings.check(body)
  if not body then
    return bad(err)
  end
  settings.update(body)
  return reply.json(200, settings.public())
end

handlers["DELETE /_sim/config"] = function()
  settings.restore()
  return reply.json(200, settings.public())
end

handlers["POST /_sim/reset"] = function()
  store.reset()
  stats.reset()
  faults.clear()
  clock.reset()
  return reply.json(200, { ok = true })
end

handlers["GET /_sim/clock"] = function()
  return reply.json(200, { now_ms = clock.now_ms(), offset_ms = clock.offset_ms() })
end

handlers["POST /_sim/clock"] = function()
  local body, err = body_json()
  if not body then
    return bad(err)
  end
  local s = body.advance
  if type(s) ~= "number" or s < 0 or s > 86400 * 365 then
    return bad("advance: must be seconds in 0..31536000 (the clock never goes back)")
  end
  clock.advance(s * 1000)
  return reply.json(200, { now_ms = clock.now_ms(), offset_ms = clock.offset_ms() })
end

function M.handle(method, uri)
  local h = handlers[method .. " " .. uri]
  if h then
    return h()
  end
  local id = uri:match("^/_sim/tasks/([^/]+)$")
  if id and method == "GET" then
    local t = store.get(id)
    if not t then
      return reply.json(404, { error = "no task " .. id })
    end
    local d = registry.by_name[t.dialect]
    t.status, t.billed = d.task_status(t, clock.now_ms())
    return reply.json(200, t)
  end
  for key in pairs(handlers) do
    if key:match("^%u+ (.*)$") == uri then
      return reply.json(405, { error = method .. " is not allowed on " .. uri })
    end
  end
  return reply.json(404, { error = "no admin endpoint " .. uri })
end

return M
