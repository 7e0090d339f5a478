-- What the simulator saw: counters (requests by method, route and status, creates, faults,
-- auth failures) and a ring of the last requests. Kept in shared dicts so every worker adds
-- to the same numbers. The Authorization header is never recorded.
local json = require "kling.json"

local M = {}

M.LOG_SIZE = 1000

local function counters()
  return ngx.shared.kling_sim_stats
end

local function ring()
  return ngx.shared.kling_sim_log
end

function M.incr(name, n)
  counters():incr(name, n or 1, 0)
end

-- Counted when a request arrives, not when it ends: a stalled request is already in the
-- numbers while its client waits.
function M.arrive(method, route)
  M.incr("requests")
  M.incr("m:" .. method)
  M.incr("r:" .. route)
end

function M.fault(kind)
  M.incr("faults")
  M.incr("f:" .. kind)
end

-- Called from the log phase with what the request did (see server.log).
function M.record(e)
  M.incr("s:" .. e.status)
  local n = ring():incr("seq", 1, 0)
  e.seq = n
  ring():set("e:" .. (n % M.LOG_SIZE), json.encode(e))
end

local GROUPS = { m = "by_method", r = "by_route", s = "by_status", f = "faults_by_kind" }

-- The counters as one table: requests, creates, faults_injected, auth_failures, by_method,
-- by_route, by_status, faults_by_kind.
function M.snapshot()
  local out = { requests = 0, creates = 0, faults_injected = 0, auth_failures = 0 }
  for _, g in pairs(GROUPS) do
    out[g] = {}
  end
  local dict = counters()
  for _, key in ipairs(dict:get_keys(0)) do
    local v = dict:get(key)
    local prefix, name = key:match("^(%a):(.*)$")
    if prefix and GROUPS[prefix] then
      out[GROUPS[prefix]][name] = v
    elseif key == "faults" then
      out.faults_injected = v
    elseif v then
      out[key] = v
    end
  end
  return out
end

-- The last n requests, oldest first.
function M.recent(n)
  local last = ring():get("seq") or 0
  n = math.min(n, M.LOG_SIZE, last)
  local out = json.array {}
  for i = last - n + 1, last do
    local e = ring():get("e:" .. (i % M.LOG_SIZE))
    out[#out + 1] = e and json.decode(e) or nil
  end
  return out
end

function M.reset()
  counters():flush_all()
  counters():flush_expired(0)
  ring():flush_all()
  ring():flush_expired(0)
end

return M
