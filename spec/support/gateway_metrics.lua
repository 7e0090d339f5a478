-- kling.gateway.metrics's GET /metrics text without nginx: metrics.render over fakes of the
-- shared dicts and of the gateway's state (for the metrics spec and the docs spec, which checks
-- that every metric it writes is documented).
local metrics = require "kling.gateway.metrics"

local M = {}

-- GET /metrics's text, rendered by metrics.render over fakes of nginx's shared dicts and of the
-- gateway's state (G): one account, the counters in `counted` (key -> amount) already in the
-- metrics dict. opts.store_errors: what the meter's store says of its errors (a Redis store's).
function M.rendered(counted, opts)
  opts = opts or {}
  local store = {}
  for k, v in pairs(counted or {}) do
    store[k] = v
  end
  local function dict(extra)
    local d = { get = function(_, k) return store[k] end,
      incr = function(_, k, n, init)
        store[k] = (store[k] or init or 0) + n
        return store[k]
      end,
      get_keys = function()
        local keys = {}
        for k in pairs(store) do
          keys[#keys + 1] = k
        end
        return keys
      end,
      capacity = function() return 1048576 end, free_space = function() return 524288 end }
    for k, v in pairs(extra or {}) do
      d[k] = v
    end
    return d
  end
  local meter_store = { journal_errors = function() return opts.journal_errors or 0 end,
    open_holds = function() return 1 end, store_errors = opts.store_errors }
  local G = {
    dicts = { tasks = "t", ledger = "l" },
    meter = { store = meter_store, account = function(_, name)
      return { currency = "CNY", spent_micros = name == "alice" and 2500000 or 0, reserved_micros = 400000,
        balance_micros = 97100000, open = 1 }
    end },
    tasks = { journal_errors = function() return opts.task_journal_errors or 0 end,
      dict = { get = function() return nil end } },
    accounts = { names = function() return { "alice" } end },
  }
  local saved = rawget(_G, "ngx")
  rawset(_G, "ngx", { shared = { [metrics.DICT] = dict(), t = dict(), l = dict() }, update_time = function() end,
    now = function() return 1000 end })
  local ok, text = pcall(metrics.render, G)
  rawset(_G, "ngx", saved)
  assert(ok, text)
  return text
end


-- with_ngx(fake_ngx_fields, fn) -> fn's results, with _G.ngx the fake meanwhile (put back after).
function M.with_ngx(fake, fn)
  local saved = rawget(_G, "ngx")
  rawset(_G, "ngx", fake)
  local res = table.pack(pcall(fn))
  rawset(_G, "ngx", saved)
  assert(res[1], res[2])
  return table.unpack(res, 2, res.n)
end

return M
