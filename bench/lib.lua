-- Shared by the benchmarks: the simulator's JSON line (BENCH_SIM, default /tmp/kling-bench/sim.json),
-- its admin API, a client of it, the offset between its clock and ours, results as JSON.
local core = require "kling.core"
local json = require "kling.json"

local M = {}

local info
function M.info()
  if not info then
    local path = os.getenv("BENCH_SIM") or "/tmp/kling-bench/sim.json"
    local f = assert(io.open(path), "no simulator: " .. path .. " (bench/run.sh starts one)")
    info = assert(json.decode(f:read("a")))
    f:close()
  end
  return info
end

local admin_http
function M.admin(method, path, body)
  admin_http = admin_http or core.http { timeout_ms = 60000 }
  local res = admin_http:request { method = method, url = M.info().http .. path,
    headers = { ["content-type"] = "application/json" }, body = body and assert(json.encode(body)) or nil }
  assert(res.ok and res.status < 300, "admin " .. path .. ": " .. tostring(res.message or res.status))
  return json.decode(res.body)
end

function M.client(opts)
  local i = M.info()
  local o = { provider = "kling", access_key = i.access_key, secret_key = i.secret_key, base_url = i.http }
  if os.getenv("BENCH_HTTPS") == "1" then -- TLS, as kling-api must use
    o.base_url, o.ca_file = i.https, i.ca_file
  end
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  return assert(require("kling").new(o))
end

-- Simulator clock minus our wall clock, in ms (the simulator may have been advanced).
function M.clock_offset()
  local before = core.wall_ms()
  local now = M.admin("GET", "/_sim/stats").now_ms
  local after = core.wall_ms()
  return now - (before + after) // 2
end

function M.write(path, t)
  local f = assert(io.open(path, "w"))
  f:write(assert(json.encode(t)), "\n")
  f:close()
end

function M.read(path)
  local f = io.open(path)
  if not f then
    return nil
  end
  local t = json.decode(f:read("a"))
  f:close()
  return t
end

-- /proc/self: peak RSS (VmHWM) in KiB and CPU seconds (user + system) of this process.
function M.self_usage()
  local hwm
  for line in io.lines("/proc/self/status") do
    hwm = hwm or tonumber(line:match("^VmHWM:%s+(%d+)"))
  end
  local f = assert(io.open("/proc/self/stat"))
  local stat = f:read("a")
  f:close()
  local rest = stat:match("%) (.*)$")
  local fields = {}
  for v in rest:gmatch("%S+") do
    fields[#fields + 1] = v
  end
  -- after "(comm)": state is 1, utime 12, stime 13 (clock ticks, 100 per second on Linux)
  return hwm, (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

function M.stats(xs)
  table.sort(xs)
  local n, sum = #xs, 0
  for _, x in ipairs(xs) do
    sum = sum + x
  end
  return { n = n, mean = n > 0 and sum / n or nil, median = xs[(n + 1) // 2], p90 = xs[math.ceil(n * 0.9)],
    max = xs[n], min = xs[1] }
end

return M
