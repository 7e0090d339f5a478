-- Test access to the running simulator (started by ctest's sim_N_start fixtures, whose JSON
-- line is in the file named by KLING_SIM_INFO): its URLs and keys, a client for it, and
-- its admin API (faults, config, stats, reset, its ledger's charges).
local json = require "kling.json"

local M = {}

local info
function M.info()
  if info then
    return info
  end
  local path = os.getenv("KLING_SIM_INFO") or "build/sim/sim.json"
  local f = assert(io.open(path), "simulator not running: no " .. path .. " (ctest starts it; or run "
    .. "bin/kling sim start --dir build/sim --out build/sim/sim.json)")
  info = assert(json.decode(f:read("a")))
  f:close()
  return info
end

-- A client of the simulator; opts override (provider, keys, base_url, ...).
function M.client(opts)
  local i = M.info()
  local o = {
    provider = "kling", access_key = i.access_key, secret_key = i.secret_key, base_url = i.http,
    ca_file = i.ca_file, poll_min = 0.2, poll_max = 0.5, retry_base_ms = 20, retry_cap_ms = 200,
  }
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  if opts and opts.api_key then
    o.access_key, o.secret_key = nil, nil
  end
  local kling = require "kling"
  return assert(kling.new(o))
end

-- gateway(name [, opts]) -> a client of the gateway `name` of the simulator (its base URL and
-- the API key); opts override as in client.
function M.gateway(name, opts)
  local i = M.info()
  local o = { provider = name, base_url = assert(i.providers[name], "the simulator serves no " .. tostring(name)),
    api_key = i.api_key }
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  return M.client(o)
end

local http
local function admin_http()
  if not http then
    http = require("kling.core").http { timeout_ms = 10000 }
  end
  return http
end

-- admin("GET", "/_sim/stats") -> decoded JSON body
function M.admin(method, path, body)
  local res = admin_http():request {
    method = method, url = M.info().http .. path,
    headers = { ["content-type"] = "application/json" },
    body = body and assert(json.encode(body)) or nil,
  }
  assert(res.ok, "admin request failed: " .. tostring(res.message))
  assert(res.status >= 200 and res.status < 300, "admin " .. path .. " answered " .. res.status .. ": " .. res.body)
  return json.decode(res.body)
end

function M.stats()
  return M.admin("GET", "/_sim/stats")
end

function M.faults(rules, seed)
  return M.admin("POST", "/_sim/faults", { seed = seed or 1, rules = rules })
end

function M.clear_faults()
  return M.admin("DELETE", "/_sim/faults")
end

function M.config(t)
  return M.admin("POST", "/_sim/config", t)
end

function M.reset()
  return M.admin("POST", "/_sim/reset")
end

-- The simulator as a spec starts it: no faults, no tasks, 1-second tasks and no parallel limit.
function M.fresh()
  M.clear_faults()
  M.reset()
  M.config { task_seconds = 1, max_parallel = 0 }
end

-- charges(dialect) -> what the simulator billed for that dialect's tasks, in micro-units.
function M.charges(dialect)
  local core = require "kling.core"
  local total = 0
  for _, row in ipairs(M.admin("GET", "/_sim/ledger").tasks) do
    if row.dialect == dialect then
      total = total + assert(core.money_parse(row.units))
    end
  end
  return total
end

return M
