-- kling gateway start|stop: the metering gateway (kling.gateway) as a service of its own.
local M = {}

local USAGE = [[
usage: kling gateway start --config FILE [--dir D] [--port N | --listen ADDR:PORT] [--workers N]
                           [--ca-file PEM]
       kling gateway stop --dir D

start  checks FILE (the gateway config: upstream, accounts, journal, admin_key, ...; unknown
       fields are refused by name), makes D (default: a fresh /tmp/kling-gateway.XXXXXX), and
       runs nginx on 127.0.0.1:N (a free port by default) or ADDR:PORT. Prints one JSON line
       (also in D/gateway.info.json): {"http","pid","dir"}. Started as root, nginx's workers
       run as nobody: the journal's directory must be writable by nobody (start refuses
       otherwise and says why). --ca-file: the CAs upstream TLS is verified against (default
       the system bundle). A gateway already running in D is stopped first.
stop   stops the gateway in D (QUIT, then KILL after a timeout); a stopped one is not an error.
]]

local OPTIONS = {
  ["--config"] = "config", ["--dir"] = "dir", ["--port"] = "port", ["--listen"] = "listen",
  ["--workers"] = "workers", ["--ca-file"] = "ca_file",
}

-- -> command, options | nil, message
local function parse(args)
  local cmd = args[1]
  if cmd ~= "start" and cmd ~= "stop" then
    return nil, cmd and ("unknown gateway command '" .. cmd .. "'") or "missing command: start or stop"
  end
  local o, i = {}, 2
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    name = name or a
    local key = OPTIONS[name]
    if not key then
      return nil, "unknown option " .. a
    end
    local v = inline
    if v == nil then
      i = i + 1
      v = args[i]
    end
    if v == nil or v == "" then
      return nil, name .. " needs a value"
    end
    if key == "port" or key == "workers" then
      local n = math.tointeger(tonumber(v))
      local max = key == "port" and 65535 or 64
      if not n or n < 1 or n > max then
        return nil, name .. " must be an integer in 1.." .. max .. " (got " .. v .. ")"
      end
      v = n
    end
    o[key] = v
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
  elseif not o.config then
    return nil, "start needs --config FILE"
  elseif o.port and o.listen then
    return nil, "--port and --listen are exclusive"
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
    io.stderr:write("kling gateway: ", o, "\n", USAGE)
    return 2
  end
  local launcher = require "kling.gateway.launcher"
  if cmd == "stop" then
    local ok, msg = launcher.stop(o.dir)
    io.stderr:write("kling gateway: ", msg, "\n")
    return ok and 0 or 1
  end
  local info, line = launcher.start(o)
  if not info then
    io.stderr:write("kling gateway: ", line, "\n")
    return 1
  end
  io.stdout:write(line, "\n")
  io.stdout:flush()
  return 0
end

return M
