-- kling sim start|stop: the offline simulator of the Kling API (nginx + its Lua module).
local M = {}

local USAGE = [[
usage: kling sim start [--dir D] [--port N] [--out FILE] [--access-key K] [--secret-key S]
                       [--api-key K] [--task-seconds N] [--seed N] [--workers N]
                       [--webhook-secret whsec_...]
       kling sim stop --dir D

start  makes D (default: a fresh /tmp/kling-sim.XXXXXX), a certificate for 127.0.0.1 and
       localhost (CA in D/tls/ca.pem), small sample media, and starts nginx on free loopback
       ports (--port fixes the HTTP one). Prints one JSON line (also written to --out and to
       D/sim.json): {"http","https","ca_file","pid","access_key","secret_key","api_key","admin","dir"}.
       Test keys by default: access key kling-sim-access-key, secret key kling-sim-secret-key,
       API key kling-sim-api-key. --task-seconds: time a task takes (default 3); --seed: the
       default fault seed (default 1); --workers: nginx worker processes (default 1);
       --webhook-secret: sign the official API's callbacks (Standard Webhooks headers).
       A simulator already running in D is stopped first.
stop   stops the simulator in D (QUIT, then KILL after a timeout); a stopped one is not an error.

Admin API (no auth) under <http>/_sim/: health, stats, requests, faults, config, reset, clock,
tasks/{id}, callbacks. Prompt markers: [sim:fail], [sim:fail=message], [sim:status=NAME], [sim:seconds=N].
]]

local OPTIONS = {
  ["--dir"] = { "dir", "path" }, ["--out"] = { "out", "path" }, ["--port"] = { "port", "port" },
  ["--access-key"] = { "access_key", "key" }, ["--secret-key"] = { "secret_key", "key" },
  ["--api-key"] = { "api_key", "key" }, ["--task-seconds"] = { "task_seconds", "seconds" },
  ["--seed"] = { "seed", "integer" }, ["--workers"] = { "workers", "workers" },
  ["--webhook-secret"] = { "webhook_secret", "key" },
}

local function convert(kind, name, v)
  if kind == "path" or kind == "key" then
    if v == "" then
      return nil, name .. " must not be empty"
    end
    return v
  end
  local n = tonumber(v)
  if kind == "seconds" then
    if not n or n < 0 or n > 86400 then
      return nil, name .. " must be a number of seconds in 0..86400 (got " .. v .. ")"
    end
    return n
  end
  n = math.tointeger(n)
  if kind == "port" and not (n and n >= 1 and n <= 65535) then
    return nil, name .. " must be a port number in 1..65535 (got " .. v .. ")"
  elseif kind == "workers" and not (n and n >= 1 and n <= 64) then
    return nil, name .. " must be an integer in 1..64 (got " .. v .. ")"
  elseif not n then
    return nil, name .. " must be an integer (got " .. v .. ")"
  end
  return n
end

-- -> command, options | nil, message
local function parse(args)
  local cmd = args[1]
  if cmd ~= "start" and cmd ~= "stop" then
    return nil, cmd and ("unknown sim command '" .. cmd .. "'") or "missing command: start or stop"
  end
  local o, i = {}, 2
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    name = name or a
    local spec = OPTIONS[name]
    if not spec then
      return nil, "unknown option " .. a
    end
    local v = inline
    if v == nil then
      i = i + 1
      v = args[i]
      if v == nil then
        return nil, name .. " needs a value"
      end
    end
    local value, err = convert(spec[2], name, v)
    if value == nil then
      return nil, err
    end
    o[spec[1]] = value
    i = i + 1
  end
  if cmd == "stop" then
    if not o.dir then
      return nil, "stop needs --dir D"
    end
    for k in pairs(o) do
      if k ~= "dir" then
        return nil, "stop takes only --dir"
      end
    end
  end
  return cmd, o
end

function M.main(args)
  if args[1] == nil or args[1] == "--help" or args[1] == "-h" or args[2] == "--help" then
    io.stdout:write(USAGE)
    return args[1] == nil and 2 or 0
  end
  local cmd, o = parse(args)
  if not cmd then
    io.stderr:write("kling sim: ", o, "\n", USAGE)
    return 2
  end
  -- The simulator is not part of the library: bin/kling finds it in the source tree beside
  -- itself, an installed copy comes from rockspec/kling-sim-scm-1.rockspec.
  if not package.searchpath("kling_sim.launcher", package.path) then
    io.stderr:write("kling sim: the simulator is not installed (run bin/kling from the source tree, or "
      .. "luarocks make rockspec/kling-sim-scm-1.rockspec)\n")
    return 1
  end
  local launcher = require "kling_sim.launcher"
  if cmd == "stop" then
    local ok, msg = launcher.stop(o.dir)
    if not ok then
      io.stderr:write("kling sim: ", msg, "\n")
      return 1
    end
    io.stderr:write("kling sim: ", msg, "\n")
    return 0
  end
  local info, line = launcher.start(o)
  if not info then
    io.stderr:write("kling sim: ", line, "\n")
    return 1
  end
  io.stdout:write(line, "\n")
  io.stdout:flush()
  return 0
end

return M
