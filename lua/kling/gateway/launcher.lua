-- kling gateway start|stop: the metering gateway as a service of its own. Checks the config
-- first (a bad file never starts nginx), writes D/nginx.conf (the same parts as
-- examples/nginx/http.conf and server.conf, which embed the gateway in an existing nginx),
-- and runs nginx in its own session with `daemon off;` (kling.nginx_run). Runs under lua5.4.
--
-- Permissions: the master runs as the starting user and loads the Lua modules; started as
-- root, the workers run as nobody, so the journal's directory must be writable by nobody
-- (the gateway refuses to start otherwise, naming the path and the user).
local body_limits = require "kling.gateway.body_limits"
local config = require "kling.gateway.config"
local json = require "kling.json"
local run = require "kling.nginx_run"
local proxy = require "kling.gateway.proxy"
local validate = require "kling.validate"

local M = {}

local q = run.q

-- Where this module's lua/ tree and the LuaJIT build of kling.core are.
local function roots()
  local path = package.searchpath("kling.gateway.launcher", package.path)
  if not path then
    return nil, "cannot find kling/gateway/launcher.lua on package.path"
  end
  local ok, out = run.run("cd " .. q(path:gsub("/kling/gateway/launcher%.lua$", "")) .. " && pwd -P")
  if not ok then
    return nil, "cannot resolve the lua/ directory: " .. out
  end
  local lua_root = out:gsub("%s+$", "")
  local jit = os.getenv("KLING_JIT_BUILD_DIR") or (lua_root:gsub("/lua$", "") .. "/build/jit")
  return lua_root, jit
end

local function resolvers()
  return require("kling.resty.resolver").nameservers(run.read("/etc/resolv.conf"))
end

local function is_root()
  local status = run.read("/proc/self/status") or ""
  return status:match("\nUid:%s+(%d+)") == "0"
end

-- conf_path_problem(name, path) -> message | nil: a path the conf writes as a bare word
-- (pid, error_log, temp paths, CA files, Lua paths) must not carry nginx's syntax: a --dir
-- of "/tmp/g;include /etc/x" would add a directive, a space or a newline would end the word.
local CONF_UNSAFE = "[%c%s;{}\"'\\$#]"
function M.conf_path_problem(name, path)
  local bad = path:match(CONF_UNSAFE)
  if bad then
    -- quoted as JSON (a control character shows as \uXXXX), slashes left as written
    return name .. ": " .. json.encode(path):gsub("\\/", "/") .. " cannot be written into nginx.conf (it has "
      .. (bad:match("%c") and ("byte " .. bad:byte()) or ("'" .. bad .. "'"))
      .. "; spaces, control characters and ; { } \" ' \\ $ # are refused)"
  end
  return nil
end

-- The nginx conf of one gateway node.
function M.render(o)
  local temp = {}
  for _, k in ipairs { "client_body", "proxy", "fastcgi", "uwsgi", "scgi" } do
    temp[#temp + 1] = ("  %s_temp_path %s/tmp/%s;"):format(k, o.dir, k)
  end
  local ns = resolvers()
  local rendered = proxy.rendered(o.cfg) -- init checks at every reload that the config still says so
  local lines = {
    o.user and ("user " .. o.user .. ";") or "",
    "load_module /usr/lib/nginx/modules/ndk_http_module.so;",
    "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;",
    "worker_processes " .. o.workers .. ";",
    "pid " .. o.dir .. "/nginx.pid;",
    "error_log " .. o.dir .. "/error.log notice;",
    -- Room for clients that hold connections open (each proxied create takes two), and a
    -- request's header and body bounded in time: 4,200 connections that never finished their
    -- header took every connection of a 4,096 worker (an attacker review). A limit per client
    -- address belongs in front of the gateway (the load balancer, a firewall), where addresses
    -- are clients'.
    "worker_rlimit_nofile " .. o.files .. ";",
    "events { worker_connections " .. o.connections .. "; }",
    "http {",
    "  access_log off;",
    "  client_header_timeout 10s;",
    "  client_body_timeout 10s;",
    "  server_tokens off;", -- the nginx version is nobody's business
    ('  lua_package_path "%s/?.lua;%s/?/init.lua;/usr/share/lua/5.1/?.lua;;";'):format(o.lua_root, o.lua_root),
    ('  lua_package_cpath "%s/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";'):format(o.jit),
    table.concat(temp, "\n"),
    "  lua_ssl_trusted_certificate " .. o.ca_file .. ";",
    "  lua_ssl_verify_depth 5;",
    #ns > 0 and ("  resolver " .. table.concat(ns, " ") .. " valid=300s ipv6=off;") or "",
    "  keepalive_requests 100000;",
    "  lua_shared_dict kling_gateway_tasks " .. o.cfg.memory.tasks.text .. ";",
    "  lua_shared_dict kling_gateway_ledger " .. o.cfg.memory.ledger.text .. ";",
    "  lua_shared_dict kling_gateway_metrics 4m;",
    "  lua_socket_log_errors off;",
    -- a create's body: its most, and past its buffer it waits in a file, not in memory
    -- (kling.gateway.body_limits says why)
    "  " .. body_limits.directives(body_limits.CREATE_MAX, body_limits.CREATE_BUFFER),
    ("  init_by_lua_block { require(\"kling.gateway\").init(%q, { worker_user = %s, proxy_location = %q,"
      .. " rendered = { origin = %q, timeout = %d, connect_timeout = %d } }) }")
      :format(o.config, o.user and ("%q"):format(o.user:match("^%S+")) or "nil", proxy.LOCATION, rendered.origin,
        rendered.timeout, rendered.connect_timeout),
    proxy.http_block(o.cfg),
    "  init_worker_by_lua_block { require(\"kling.gateway\").init_worker() }",
    "  server {",
    "    listen " .. o.listen .. ";",
    "    log_by_lua_block { require(\"kling.gateway\").log() }",
    "    location = /metrics { content_by_lua_block { require(\"kling.gateway\").metrics() } }",
    proxy.api_location(o.cfg, o.ca_file),
    "    location = /gateway/balance { content_by_lua_block { require(\"kling.gateway\").balance() } }",
    -- A callback is read whole before its signature can be checked: small bodies only (a task
    -- object), so that anyone cannot fill the worker's memory with 20 MB posts; and one past a
    -- task object's size waits in a temporary file while it comes, not in memory (1 MB buffers
    -- let 300 unsigned posts that never ended hold a worker at 325 MB: anyone may post here).
    "    location = /kling/callback { " .. body_limits.directives(body_limits.CALLBACK_MAX, body_limits.CALLBACK_BUFFER)
      .. " content_by_lua_block { require(\"kling.gateway\").callback() } }",
    "    location /gateway/admin { content_by_lua_block { require(\"kling.gateway\").admin() } }",
    "    location = /gateway/health { "
      .. (o.instance and ("add_header X-Kling-Gateway-Instance " .. o.instance .. "; ") or "")
      .. "return 200 \"ok\\n\"; }",
    "    location = /gateway/ready { content_by_lua_block { require(\"kling.gateway\").ready() } }",
    proxy.server_block(o.cfg, o.ca_file),
    M.refusal_pages(),
    "  }",
    "}",
  }
  return table.concat(lines, "\n") .. "\n"
end

-- The server's error pages for what nginx refuses before any Lua runs, a caller its allow/deny
-- turns away, and a path or method it serves nothing at:
-- kling.gateway refused_by_nginx answers them in the official envelope (the API's own 404s and
-- 405s are written by Lua and pass unchanged). 494 is nginx's own code for a header over its
-- buffers: the client gets 400. The pages are internal URIs, not named locations: a request
-- refused while its request line was read has no URI, and nginx cannot redirect such a
-- request to a named location.
function M.refusal_pages()
  return table.concat({
    "    error_page 400 494 =400 /_kling/refused/400;",
    "    error_page 413 /_kling/refused/413;",
    "    error_page 414 /_kling/refused/414;",
    "    error_page 403 /_kling/refused/403;",
    "    error_page 404 /_kling/refused/404;",
    "    error_page 405 /_kling/refused/405;",
    "    error_page 505 /_kling/refused/505;",
    "    location ~ ^/_kling/refused/(400|403|404|405|413|414|505)$ { internal;",
    "      content_by_lua_block { require(\"kling.gateway\").refused_by_nginx(tonumber(ngx.var[1])) } }",
  }, "\n")
end

--- "ADDR:PORT" (an IPv4 address, a name, or an IPv6 address in brackets; PORT 1..65535) ->
-- addr, port | nil, message: what nginx's listen is given, checked before it is written there.
function M.parse_listen(s)
  local addr, port = tostring(s):match("^([%w.:%[%]-]+):(%d+)$")
  local n = tonumber(port)
  if not addr or not (n and n >= 1 and n <= 65535) then
    return nil, "--listen must be ADDR:PORT with PORT in 1..65535 (got " .. validate.shown(s) .. ")"
  end
  return addr, port
end

-- "127.0.0.1:8080" | "8080" -> listen, url host:port
local function listen_of(o)
  if o.listen then
    local addr, port = M.parse_listen(o.listen)
    if not addr then
      return nil, port
    end
    local host = (addr == "0.0.0.0" or addr == "*") and "127.0.0.1" or addr
    return o.listen, host .. ":" .. port
  end
  local port = o.port or run.free_port()
  return "127.0.0.1:" .. port, "127.0.0.1:" .. port
end

M.FILES, M.CONNECTIONS = 40000, 16384 -- a worker's open files and connections, where the limits allow
M.READY_WAIT_S = 15 -- how long a start waits for the node to take creates (GET /gateway/ready)

-- wait_ready(url) -> nil once GET url/gateway/ready answers 200 | why not, after READY_WAIT_S
function M.wait_ready(url)
  local by, why = run.now() + M.READY_WAIT_S
  repeat
    local ok, out = run.run("curl -s --max-time 2 -w '\\n%{http_code}' " .. q(url .. "/gateway/ready"))
    local body, code = (out or ""):match("^(.*)\n(%d%d%d)$")
    if ok and code == "200" then
      return nil
    end
    local answer = body and json.decode(body)
    why = type(answer) == "table" and type(answer.message) == "string" and answer.message
      or "GET /gateway/ready answered " .. tostring(code or out)
    run.sleep(0.1)
  until run.now() > by
  return why
end

M.FEW = 4096 -- connections a worker under which a start warns

-- files_and_connections() -> the open files a worker may have (the hard limit nginx is started
-- under, at most FILES: past it nginx's setrlimit fails and the workers keep the soft limit,
-- with only an alert in the error log: an attacker review held a gateway down with 1,100 idle
-- connections so), the connections that fit them (a proxied create takes two), and a warning
-- when they are fewer than FEW.
function M.files_and_connections()
  -- as high as this process may raise it (root may, past the hard limit, where it has the right)
  local ok, out = run.run("ulimit -Hn " .. M.FILES .. " 2>/dev/null; ulimit -Hn")
  local hard = ok and (out:match("unlimited") and M.FILES or tonumber(out:match("(%d+)%s*$"))) or M.FILES
  local files = math.max(256, math.min(M.FILES, hard))
  local connections = math.min(M.CONNECTIONS, math.floor((files - 64) / 2))
  local warning = connections < M.FEW and ("the open files limit (ulimit -Hn " .. hard .. ") gives each worker "
    .. connections .. " connections: clients that hold connections open take them all sooner (raise the limit)")
    or nil
  return files, connections, warning
end

-- A simulator's D (kling sim start writes sim.pid there, and removes it when it stops): its
-- nginx is no gateway, and `kling gateway stop` stopped it. -> message | nil
local function sim_dir(dir)
  if run.read(dir .. "/sim.pid") and not run.read(dir .. "/gateway.pid") then
    return dir .. " is a simulator's directory (its sim.pid): kling gateway neither starts nor stops anything"
      .. " there (kling sim stop --dir " .. dir .. " stops the simulator)"
  end
  return nil
end

-- stop(dir) -> true, note | nil, message [, "usage"]
function M.stop(dir)
  local other = sim_dir(dir)
  if other then
    return nil, other, "usage"
  end
  return run.stop(dir, "gateway.pid", "gateway")
end

-- start{config =, dir =, port =, listen =, workers =, ca_file =} -> info, line | nil, message
-- [, "usage": the command line or the config is at fault, nothing was started]
function M.start(o)
  local ok, cfg = pcall(config.load, o.config)
  if not ok then
    -- one prefix on the command line ("kling gateway: --config FILE: journal: ...")
    local why = tostring(cfg):gsub("^kling gateway config: ", "")
    local at = why:find(o.config, 1, true)
    if at then -- "cannot read --config FILE: ...", "--config FILE: journal: ..."
      why = why:sub(1, at - 1) .. "--config " .. why:sub(at)
    else
      why = "--config " .. o.config .. ": " .. why
    end
    return nil, why, "usage"
  end
  -- A node of a Redis store keeps in D/kling-store the id of the store it saw, so that after a
  -- restart it refuses a store that lost its data (spent credit back): a fresh temporary D each
  -- start would forget it (an attacker review).
  if cfg.store and not o.dir then
    return nil, "--config " .. o.config .. ": store: a Redis store needs --dir D, a directory that lasts: the node"
      .. " keeps there the id of the store it saw (D/kling-store), so that after a restart it refuses a store"
      .. " that lost its data", "usage"
  end
  -- A journal in a directory that is not there is the config's mistake: said before nginx runs
  -- (whether its workers may write there is nginx's master's to find out, at start).
  local jdir = cfg.journal and cfg.journal:match("^(.*)/[^/]*$")
  if jdir and jdir ~= "" and not run.run("test -d " .. q(jdir)) then
    return nil, "--config " .. o.config .. ": journal: its directory " .. jdir .. " does not exist", "usage"
  end
  local nginx = run.which { os.getenv("KLING_NGINX") or "nginx", "/usr/sbin/nginx" }
  if not nginx then
    return nil, "the 'nginx' command is required and was not found on PATH"
  end
  local lua_root, jit = roots()
  if not lua_root then
    return nil, jit
  end
  local ca_file = o.ca_file or "/etc/ssl/certs/ca-certificates.crt"
  local unsafe = (o.dir and M.conf_path_problem("--dir", o.dir)) or M.conf_path_problem("--ca-file", ca_file)
    or M.conf_path_problem("the lua/ directory", lua_root) or M.conf_path_problem("the LuaJIT build", jit)
  if unsafe then
    return nil, unsafe, "usage"
  end
  -- nginx reads it only as it starts: a missing one was an nginx start error (exit 1)
  local ca_problem = require("kling.validate").ca_file_problem(ca_file)
  if ca_problem then
    return nil, "--ca-file: " .. ca_file .. " " .. ca_problem .. (o.ca_file and "" or " (the system's bundle: give "
      .. "--ca-file PEM)"), "usage"
  end
  local listen, hostport = listen_of(o)
  if not listen then
    return nil, hostport, "usage"
  end
  local dir, derr = run.absolute_dir(o.dir, "kling-gateway")
  if not dir then
    return nil, derr, "usage"
  end
  unsafe = M.conf_path_problem("--dir", dir) -- as resolved (symbolic links followed)
  if unsafe then
    return nil, unsafe, "usage"
  end
  -- A gateway running in D is its operator's to stop: replacing it would cut its clients off
  -- mid-request and move it to another port. What a killed one left behind is cleared.
  local other = sim_dir(dir)
  if other then
    return nil, other, "usage"
  end
  local live = run.running(dir, "gateway.pid")
  if live then
    return nil, "a gateway already runs in " .. dir .. " (pid " .. live .. "): stop it first (kling gateway stop"
      .. " --dir " .. dir .. ")"
  end
  local stopped, serr = M.stop(dir)
  if not stopped then
    return nil, serr
  end
  local user = is_root() and "nobody nogroup" or nil
  local made, merr = run.run("mkdir -p " .. q(dir .. "/tmp") .. " && chmod 755 " .. q(dir)
    .. (user and (" && chown nobody:nogroup " .. q(dir .. "/tmp")) or ""))
  if not made then
    return nil, "cannot prepare " .. dir .. ": " .. merr
  end
  local config_path = o.config
  if config_path:sub(1, 1) ~= "/" then
    config_path = (os.getenv("PWD") or ".") .. "/" .. config_path
  end
  -- this start's own mark on its health answer: another server already on the port (another
  -- gateway) answers too, and its answer must not be taken for this nginx being ready
  local instance = require("kling.core").random_hex(16)
  local files, connections, limit_note = M.files_and_connections()
  if limit_note then
    io.stderr:write("kling gateway: warning: ", limit_note, "\n")
  end
  local text = M.render { dir = dir, lua_root = lua_root, jit = jit, user = user, workers = o.workers or 1,
    config = config_path, listen = listen, ca_file = ca_file, cfg = cfg, instance = instance, files = files,
    connections = connections }
  run.write(dir .. "/nginx.conf", text)
  local url = "http://" .. hostport
  -- umask 077: a journal the workers make (at start or after a rotation) holds account keys.
  -- Before it answers, nginx's master replays the journal and compacts it (kling.gateway.compact):
  -- seconds for a large one. Killed while it does, the next start does it again.
  local function ready()
    local up, head = run.run("curl -s -D - -o /dev/null --max-time 2 " .. q(url .. "/gateway/health"))
    return up and head:match("^HTTP/%S+ 200") ~= nil
      and head:lower():find("x-kling-gateway-instance: " .. instance, 1, true) ~= nil
  end
  local pid, err = run.spawn { nginx = nginx, dir = dir, conf = dir .. "/nginx.conf", umask = "077", seconds = 300,
    ready = ready }
  if not pid then
    return nil, err
  end
  run.write(dir .. "/gateway.pid", pid .. "\n")
  -- Answering is not taking creates: with a Redis store the node opens its file's accounts there
  -- first (a create before then is a 503). Waited for a while; a node that cannot yet (Redis
  -- away) keeps trying, and the start says so rather than hang.
  local why = M.wait_ready(url)
  if why then
    io.stderr:write("kling gateway: warning: started, but not taking creates yet: ", why,
      " (it keeps trying; GET /gateway/ready says when it does)\n")
  end
  local info = { http = url, pid = pid, dir = dir }
  local line = assert(json.encode(info))
  run.write(dir .. "/gateway.info.json", line .. "\n")
  return info, line
end

return M
