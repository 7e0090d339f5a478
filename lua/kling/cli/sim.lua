-- kling sim start|stop: the offline simulator of the Kling API (nginx + its Lua module).
local flags = require "kling.cli.flags"

local M = {}

M.summary = "start or stop the offline simulator of all five APIs"

-- The library's rule (kling.webhook.secret_problem): whsec_ and base64, or any other non-empty
-- key. A bad one stopped nginx at start ("init_by_lua_file error: ..."), exit 1, not a usage error.
local function webhook_secret(s)
  local problem = require("kling.webhook").secret_problem(s)
  if problem then
    return nil, "--webhook-secret " .. problem .. " (the value is not shown)"
  end
  return s
end

function M.define(cmd)
  cmd:description [[
Admin API (no auth) under <http>/_sim/: health, stats, requests, faults, config, reset, clock,
tasks/{id}, callbacks. Prompt markers: [sim:fail], [sim:fail=message], [sim:status=NAME], [sim:seconds=N].]]
  cmd:command_target "action"
  cmd:epilog [[
Exit status: 0 done (stop: also when no simulator was running), 1 it failed (why on stderr;
start: also when a simulator already runs in D, as kling gateway start), 2 usage.]]
  local start = flags.command(cmd, "start", "start a simulator (nginx) and print its JSON line")
  start:description [[
Makes D (default: a fresh /tmp/kling-sim.XXXXXX), a certificate for 127.0.0.1 and
localhost (CA in D/tls/ca.pem), small sample media, and starts nginx on free loopback
ports (--port fixes the HTTP one). Prints one JSON line (also written to --out and to
D/sim.json): {"http","https","ca_file","pid","access_key","secret_key","api_key","admin","dir",
"providers"} ("providers": each provider's base URL), and "webhook_secret" when given.
Test keys by default: access key kling-sim-access-key, secret key kling-sim-secret-key,
API key kling-sim-api-key. A simulator already running in D is left as it is and the start
refused, naming its pid (exit 1, as for a gateway): stop it with kling sim stop --dir D, or give --replace to
stop it and start afresh (new ports).]]
  start:option("--dir", "the simulator's directory"):argname("D"):convert(flags.nonempty "--dir")
  start:option("--port", "the HTTP port (default: a free one)"):argname("N")
    :convert(flags.number("--port", flags.range(1, 65535)))
  start:option("--out", "also write the JSON line to FILE"):argname("FILE"):convert(flags.nonempty "--out")
  -- keys no client could send (a space, a control character) are refused, as kling.new refuses them
  start:option("--access-key", "the official API's access key"):argname("K")
    :convert(flags.key("--access-key", "access_key"))
  start:option("--secret-key", "the official API's secret key"):argname("S")
    :convert(flags.key("--secret-key", "secret_key"))
  start:option("--api-key", "the gateways' API key"):argname("K"):convert(flags.key("--api-key", "api_key"))
  start:option("--task-seconds", "time a task takes (default 3)"):argname("N")
    :convert(flags.number("--task-seconds", { "a number of seconds in 0..86400", function(n)
      return n >= 0 and n <= 86400
    end }))
  start:option("--seed", "the default fault seed (default 1)"):argname("N"):convert(flags.number("--seed", flags.WHOLE))
  start:option("--workers", "nginx worker processes (default 1)"):argname("N")
    :convert(flags.number("--workers", flags.range(1, 64)))
  start:option("--webhook-secret", "sign the official API's callbacks (Standard Webhooks headers)")
    :argname("whsec_..."):convert(webhook_secret)
  start:flag("--replace", "stop a simulator already running in D first (else the start is refused)")
  local stop = flags.command(cmd, "stop", "stop the simulator in D (QUIT, then KILL after a timeout)")
  stop:description "A simulator that is not running is not an error."
  stop:option("--dir", "the simulator's directory"):argname("D"):count(1):convert(flags.nonempty "--dir")
end

-- The options launcher.start takes, from the parsed arguments.
local START = { "dir", "port", "out", "access_key", "secret_key", "api_key", "task_seconds", "seed", "workers",
  "webhook_secret", "replace" }

function M.run(args)
  -- The simulator is not part of the library: bin/kling finds it in the source tree beside
  -- itself, an installed copy comes from rockspec/kling-sim-scm-1.rockspec.
  if not package.searchpath("kling_sim.launcher", package.path) then
    io.stderr:write("kling sim: the simulator is not installed (run bin/kling from the source tree, or "
      .. "luarocks make rockspec/kling-sim-scm-1.rockspec)\n")
    return 1
  end
  return flags.launch("kling sim", require "kling_sim.launcher", args, START)
end

return M
