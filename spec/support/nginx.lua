-- A throwaway nginx for specs: writes a conf around a server block into a temp prefix
-- dir, listens on a free loopback port, runs in the foreground of its own session and
-- is stopped by its PID (never by name: other nginx instances run on this machine).
--
--   local nginx = require "support.nginx"
--   local srv = nginx.start([[ location / { return 200 "hi"; } ]], { ssl = { cert = c, key = k } })
--   ... srv.url, srv.port ...
--   srv.stop()
local files = require "support.files"
local nginx_run = require "kling.nginx_run"
local socket = require "socket"

local M = {}

local LUA_MODULES = [[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
]]

-- Shell quoting, reading a file that may be missing, a free port and whether a process lives
-- (not a zombie) are nginx_run's, which kling gateway start uses.
local sh_quote, read_file, alive = nginx_run.q, nginx_run.read, nginx_run.alive
M.free_port = nginx_run.free_port

local function run(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local ok, how, code = p:close()
  return out, ok, how, code
end

-- A fresh temp directory, readable by nginx's workers (they run as `nobody`).
function M.tempdir()
  local out, ok = run("mktemp -d /tmp/kling-spec.XXXXXX && echo")
  local dir = out:match("^(%S+)")
  assert(ok and dir, "mktemp -d failed")
  assert(run("chmod 755 " .. sh_quote(dir)))
  return dir
end

local function accepts(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

local function is_root()
  local out = run("id -u")
  return out:match("^0%s") ~= nil
end

local function conf_text(dir, port, server, opts)
  local repo = opts.repo or run("pwd"):match("^(.-)%s*$")
  local listen = "listen 127.0.0.1:" .. port
  local tls = ""
  if opts.ssl then
    listen = listen .. (opts.ssl.http2 and " ssl http2" or " ssl")
    tls = ("ssl_certificate %s;\n    ssl_certificate_key %s;\n"):format(opts.ssl.cert, opts.ssl.key)
  end
  return table.concat {
    -- As root, workers would run as nobody and could not read a checkout under /root.
    is_root() and "user root root;\n" or "",
    opts.lua == false and "" or LUA_MODULES,
    "worker_processes 1;\n",
    "error_log ", dir, "/error.log info;\n",
    "pid ", dir, "/nginx.pid;\n",
    "events { worker_connections 1024; }\n",
    "http {\n",
    "  access_log off;\n",
    "  keepalive_requests 100000;\n",
    "  keepalive_timeout 60s;\n",
    "  client_body_temp_path ", dir, "/client_body;\n",
    "  proxy_temp_path ", dir, "/proxy;\n",
    "  fastcgi_temp_path ", dir, "/fastcgi;\n",
    "  uwsgi_temp_path ", dir, "/uwsgi;\n",
    "  scgi_temp_path ", dir, "/scgi;\n",
    opts.lua == false and "" or table.concat {
      '  lua_package_path "', repo, "/lua/?.lua;", repo, '/lua/?/init.lua;/usr/share/lua/5.1/?.lua;;";\n',
      '  lua_package_cpath "', opts.cpath or "", '/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";\n',
    },
    opts.http or "",
    "  server {\n    ", listen, ";\n    ", tls, server, "\n  }\n",
    "}\n",
  }
end

-- jit_cpath() -> the cpath entry of the LuaJIT build (for start's opts.cpath), or nil and why
-- there is none (a spec then reports itself pending).
function M.jit_cpath()
  local jit_dir = os.getenv("KLING_JIT_BUILD_DIR") or "build/jit"
  if not read_file(jit_dir .. "/kling/core.so") then
    return nil, "no LuaJIT build at " .. jit_dir .. "/kling/core.so (set KLING_JIT_BUILD_DIR)"
  end
  return jit_dir .. "/?.so;"
end

-- start(server_block [, opts]) -> {port, url, dir, pid, stop = function}
-- opts: ssl = {cert, key [, http2 = true]} (serve HTTPS, offering HTTP/2 by ALPN), http = extra http-level directives,
-- lua = false (no Lua module), cpath = "dir/?.so;" entries before the system ones,
-- repo = repository root (default: the working directory), timeout (s, 10),
-- keep = true (leave the prefix dir behind for post-mortems).
function M.start(server, opts)
  opts = opts or {}
  local dir = M.tempdir()
  local port = M.free_port()
  local conf = dir .. "/nginx.conf"
  files.write(conf, conf_text(dir, port, server, opts))
  local cmd = ("setsid nginx -p %s -c %s -g 'daemon off;' >%s 2>&1 </dev/null & echo $!"):format(
    sh_quote(dir), sh_quote(conf), sh_quote(dir .. "/stdout"))
  local out = run(cmd)
  local pid = assert(tonumber(out:match("%d+")), "could not start nginx: " .. out)

  local deadline = socket.gettime() + (opts.timeout or 10)
  while not accepts(port) do
    if not alive(pid) or socket.gettime() > deadline then
      local log = (read_file(dir .. "/stdout") or "") .. (read_file(dir .. "/error.log") or "")
      if alive(pid) then
        run("kill -KILL " .. pid)
      end
      error("nginx did not start on port " .. port .. ":\n" .. log, 2)
    end
    socket.sleep(0.02)
  end

  local srv = {
    port = port, dir = dir, pid = pid,
    url = (opts.ssl and "https" or "http") .. "://127.0.0.1:" .. port,
  }
  local stopped = false
  -- Graceful QUIT first (lets workers finish), KILL when it takes longer than `grace` s.
  function srv.stop(grace)
    if stopped then
      return
    end
    stopped = true
    run("kill -QUIT " .. pid .. " 2>/dev/null")
    local limit = socket.gettime() + (grace or 5)
    while alive(pid) and socket.gettime() < limit do
      socket.sleep(0.02)
    end
    if alive(pid) then
      run("kill -KILL -" .. pid .. " 2>/dev/null; kill -KILL " .. pid .. " 2>/dev/null")
    end
    if not opts.keep then
      run("rm -rf " .. sh_quote(dir))
    end
  end
  function srv.error_log()
    return read_file(dir .. "/error.log") or ""
  end
  return srv
end

return M
