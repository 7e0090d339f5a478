-- kling gateway start|stop: the metering gateway (kling.gateway) as a service of its own.
local flags = require "kling.cli.flags"

local M = {}

M.summary = "start or stop the metering gateway (nginx)"

function M.define(cmd)
  cmd:command_target "action"
  cmd:epilog "Exit status: 0 done (stop: also when no gateway was running), 1 it failed (why on stderr), 2 usage."
  local start = flags.command(cmd, "start", "check a gateway config and run the gateway in nginx")
  start:description [[
Checks FILE (the gateway config: upstream, accounts, journal, admin_key, ...; unknown
fields are refused by name), makes D (default: a fresh /tmp/kling-gateway.XXXXXX; with a
Redis store D is required, one that lasts: the node keeps the store's id there), and
runs nginx on 127.0.0.1:N (a free port by default) or ADDR:PORT alone (the admin API and
/metrics answer loopback callers only: 0.0.0.0:PORT takes loopback too). Prints one JSON line
(also in D/gateway.info.json): {"http","pid","dir"}. Started as root, nginx's workers
run as nobody: the journal's directory must be writable by nobody (start refuses
otherwise and says why). A gateway already running in D is not replaced: start refuses
(stop it first).]]
  start:option("--config", "the gateway config (required)"):argname("FILE"):count(1):convert(flags.nonempty "--config")
  start:option("--dir", "the gateway's directory"):argname("D"):convert(flags.nonempty "--dir")
  start:mutex(
    start:option("--port", "listen on 127.0.0.1:N"):argname("N"):convert(flags.number("--port", flags.range(1, 65535))),
    start:option("--listen", "listen on ADDR:PORT"):argname("ADDR:PORT"):convert(function(v)
      local addr, err = require("kling.gateway.launcher").parse_listen(v)
      if not addr then
        return nil, err
      end
      return v
    end))
  start:option("--workers", "nginx worker processes (default 1)"):argname("N")
    :convert(flags.number("--workers", flags.range(1, 64)))
  start:option("--ca-file", "the CAs upstream TLS is verified against (default the system bundle)")
    :argname("PEM"):convert(flags.nonempty "--ca-file")
  local stop = flags.command(cmd, "stop", "stop the gateway in D (QUIT, then KILL after a timeout)")
  stop:description "A gateway that is not running is not an error."
  stop:option("--dir", "the gateway's directory"):argname("D"):count(1):convert(flags.nonempty "--dir")
end

-- The options launcher.start takes, from the parsed arguments.
local START = { "config", "dir", "port", "listen", "workers", "ca_file" }

function M.run(args)
  return flags.launch("kling gateway", require "kling.gateway.launcher", args, START)
end

return M
