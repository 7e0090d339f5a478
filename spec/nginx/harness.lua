-- What the nginx tests (spec/sh/nginx_*.sh) share, under plain Lua 5.4 in the test process:
-- checks counted as "N passed, N failed", a simulator of their own (bin/kling sim start),
-- nginx in a prefix directory started, reloaded (HUP) and stopped by its PID (never by
-- name: other nginx instances run on this machine), and HTTP through kling.core (libcurl,
-- here in the test process, never inside nginx).
local core = require "kling.core"
local json = require "kling.json"
local nginx_run = require "kling.nginx_run"
local socket = require "socket"

local M = {}

M.src = os.getenv("PWD") or "."
M.jit_dir = os.getenv("KLING_JIT_BUILD_DIR") or (M.src .. "/build/jit")
M.passed, M.failed = 0, 0

-- Shell quoting, reading a file that may be missing, a free port and whether a process
-- lives (not a zombie) are nginx_run's, which kling gateway start uses.
local q = nginx_run.q
M.q = q
M.read = nginx_run.read
M.free_port = nginx_run.free_port

function M.sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1", "r"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
  M.sh("chmod 644 " .. q(path))
end

function M.check(name, cond, detail)
  if cond then
    M.passed = M.passed + 1
    print("ok - " .. name)
  else
    M.failed = M.failed + 1
    print("not ok - " .. name .. (detail ~= nil and (": " .. tostring(detail)) or ""))
  end
  return cond
end

function M.now()
  return core.now_ms() / 1000
end

function M.sleep(s)
  socket.sleep(s)
end

function M.tempdir(tag)
  local out = M.sh("mktemp -d /tmp/kling-" .. tag .. ".XXXXXX")
  local dir = assert(out:match("^(%S+)"), out)
  M.sh("chmod 755 " .. q(dir))
  return dir
end

-- ---- HTTP (libcurl in this process) ----

local http
function M.request(method, url, o)
  o = o or {}
  http = http or core.http { timeout_ms = 30000 }
  local headers = {}
  for k, v in pairs(o.headers or {}) do
    headers[k] = v
  end
  local body = o.body
  if type(body) == "table" then
    body = assert(json.encode(body))
    headers["content-type"] = "application/json"
  end
  local started = M.now()
  local res = http:request { method = method, url = url, headers = headers, body = body,
    timeout_ms = o.timeout_ms or 30000 }
  res.seconds = M.now() - started
  if res.ok and res.body and (res.headers["content-type"] or ""):find("json", 1, true) then
    res.json = json.decode(res.body)
  end
  return res
end

-- ---- the simulator ----

-- sim_start(dir, {task_seconds =, webhook_secret =}) -> info (http, https, ca_file, keys, ...)
function M.sim_start(dir, o)
  o = o or {}
  local args = { "lua5.4", q(M.src .. "/bin/kling"), "sim", "start", "--dir", q(dir), "--out", q(dir .. "/sim.json") }
  if o.task_seconds then
    args[#args + 1] = "--task-seconds " .. o.task_seconds
  end
  if o.webhook_secret then
    args[#args + 1] = "--webhook-secret " .. q(o.webhook_secret)
  end
  local out, ok = M.sh(table.concat(args, " "))
  assert(ok, "sim start failed: " .. out)
  local info = assert(json.decode(assert(M.read(dir .. "/sim.json"))))
  info.dir = dir
  return info
end

function M.sim_stop(dir)
  M.sh("lua5.4 " .. q(M.src .. "/bin/kling") .. " sim stop --dir " .. q(dir))
end

function M.sim_admin(info, method, path, body)
  local res = M.request(method, info.http .. path, { body = body })
  assert(res.ok and res.status < 300, "sim admin " .. path .. ": " .. tostring(res.message or res.body))
  return json.decode(res.body)
end

-- What a simulator's ledger (GET /_sim/ledger) bills in one unit ("CNY", "evolink-credits"), in
-- micro-units, 0 when nothing: its totals are per unit, never one sum across moneys.
function M.sim_total(ledger, unit)
  return ledger.totals[unit] or 0
end

-- The gateway's admin summary (GET /gateway/admin at base_url), its accounts also by name
-- (`.by`); raises unless the gateway answers 200.
function M.gateway_admin(base_url, admin_key)
  local res = M.request("GET", base_url .. "/gateway/admin", { headers = { authorization = "Bearer " .. admin_key } })
  assert(res.ok and res.status == 200, "gateway admin: " .. tostring(res.message or res.body))
  local a = json.decode(res.body)
  a.by = {}
  for _, acct in ipairs(a.accounts or {}) do
    a.by[acct.name] = acct
  end
  return a
end

-- The size of the file at path in bytes (0 when there is none).
function M.file_size(path)
  local f = io.open(path, "rb")
  local n = f and f:seek("end") or 0
  if f then
    f:close()
  end
  return n
end

-- ---- nginx ----

local alive = nginx_run.alive
M.alive = alive

local function accepts(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

function M.is_root()
  return (M.sh("id -u")):match("^0%s") ~= nil
end

-- The lines every test conf starts with: workers as root when started as root (a checkout
-- under /root stays readable), the Lua module, one worker (blocking would show).
function M.conf_head(prefix)
  return table.concat {
    M.is_root() and "user root root;\n" or "",
    "load_module /usr/lib/nginx/modules/ndk_http_module.so;\n",
    "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n",
    -- One worker, so that blocking would show; KLING_TEST_WORKERS=N runs the same checks on N.
    "worker_processes ", os.getenv("KLING_TEST_WORKERS") or "1", ";\n",
    "pid ", prefix, "/nginx.pid;\n",
    "error_log ", prefix, "/error.log info;\n",
    "events { worker_connections 1024; }\n",
  }
end

function M.lua_paths(extra)
  return table.concat {
    '  lua_package_path "', M.src, "/lua/?.lua;", M.src, "/lua/?/init.lua;", extra or "",
    '/usr/share/lua/5.1/?.lua;;";\n',
    '  lua_package_cpath "', M.jit_dir, '/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";\n',
  }
end

-- Temp paths in the prefix (Debian's defaults live under /var/lib/nginx).
function M.temp_paths(prefix)
  local out = {}
  for _, k in ipairs { "client_body", "proxy", "fastcgi", "uwsgi", "scgi" } do
    out[#out + 1] = "  " .. k .. "_temp_path " .. prefix .. "/" .. k .. ";\n"
  end
  return table.concat(out)
end

-- nginx_start(prefix, conf_text, port [, env]) -> srv {pid, stop(), hup(), error_log()}
-- The PIDs of an nginx master's workers (numbers).
function M.workers(pid)
  local pids = {}
  for w in M.sh("pgrep -P " .. pid):gmatch("%d+") do
    pids[#pids + 1] = tonumber(w)
  end
  return pids
end

-- kill -HUP of an nginx master -> whether, within `seconds` (10), its old workers are gone and
-- new ones run (a reload's new workers with the re-read conf; shared memory stays).
function M.hup(pid, seconds)
  local old = {}
  for _, w in ipairs(M.workers(pid)) do
    old[w] = true
  end
  M.sh("kill -HUP " .. pid)
  local limit = M.now() + (seconds or 10)
  while M.now() < limit do
    local fresh, stale = false, false
    for _, w in ipairs(M.workers(pid)) do
      fresh = fresh or not old[w]
      stale = stale or old[w] == true
    end
    if fresh and not stale then
      return true
    end
    M.sleep(0.05)
  end
  return false
end

function M.nginx_start(prefix, conf, port, env)
  M.write(prefix .. "/nginx.conf", conf)
  local cmd = ("%s setsid nginx -p %s -c %s -g 'daemon off;' >>%s 2>&1 </dev/null & echo $!"):format(
    env or "", q(prefix), q(prefix .. "/nginx.conf"), q(prefix .. "/stdout"))
  local out = M.sh(cmd)
  local pid = assert(tonumber(out:match("%d+")), out)
  local deadline = M.now() + 10
  while not accepts(port) do
    if not alive(pid) or M.now() > deadline then
      error("nginx did not start:\n" .. (M.read(prefix .. "/stdout") or "") .. (M.read(prefix .. "/error.log") or ""))
    end
    M.sleep(0.02)
  end
  local srv = { pid = pid, prefix = prefix, port = port }
  function srv.stop()
    if not alive(pid) then
      return
    end
    local workers = srv.workers()
    M.sh("kill -QUIT " .. pid)
    local limit = M.now() + 5
    while alive(pid) and M.now() < limit do
      M.sleep(0.02)
    end
    if alive(pid) then
      -- its workers too: one still finishing a slow request would keep the journal's lock
      M.sh("kill -KILL " .. pid .. (#workers > 0 and (" " .. table.concat(workers, " ")) or "") .. " 2>/dev/null")
      for _, w in ipairs(workers) do
        while alive(w) do
          M.sleep(0.02)
        end
      end
    end
  end
  -- The PIDs of the master's workers.
  function srv.workers()
    return M.workers(pid)
  end
  -- Reload: new workers with the re-read conf; shared memory stays. Waits until the old
  -- workers are gone and a new one answers.
  function srv.hup()
    return M.hup(pid)
  end
  function srv.error_log()
    return M.read(prefix .. "/error.log") or ""
  end
  return srv
end

-- ---- a client's callback receiver ----

-- The locations of a gateway client's callback receiver: what is POSTed to /receiver (its body
-- and Standard Webhooks headers) is kept, answered 200, and listed by GET /received. The http
-- block needs `lua_shared_dict receiver 1m;`.
function M.receiver_locations()
  return [[
    location = /receiver {
      content_by_lua_block {
        ngx.req.read_body()
        local n = ngx.shared.receiver:incr("n", 1, 0)
        local h = ngx.req.get_headers()
        ngx.shared.receiver:set(n, require("kling.json").encode { body = ngx.req.get_body_data(),
          id = h["webhook-id"], timestamp = h["webhook-timestamp"], signature = h["webhook-signature"] })
        ngx.say("ok")
      }
    }
    location = /received {
      content_by_lua_block {
        local out = {}
        for i = 1, ngx.shared.receiver:get("n") or 0 do out[i] = ngx.shared.receiver:get(i) end
        ngx.header["Content-Type"] = "application/json"
        ngx.say("[" .. table.concat(out, ",") .. "]")
      }
    }
]]
end

-- receiver_start(prefix) -> {url (its /receiver), received() -> [{body, id, timestamp,
-- signature}] in the order they came, stop()}: a receiver in an nginx of its own.
function M.receiver_start(prefix)
  M.sh("mkdir -p " .. q(prefix))
  local port = M.free_port()
  local conf = M.conf_head(prefix) .. "http {\n  access_log off;\n" .. M.lua_paths() .. M.temp_paths(prefix)
    .. "  lua_shared_dict receiver 1m;\n  server {\n    listen 127.0.0.1:" .. port .. ";\n"
    .. M.receiver_locations() .. "  }\n}\n"
  local srv = M.nginx_start(prefix, conf, port)
  local base = "http://127.0.0.1:" .. port
  return { url = base .. "/receiver", stop = srv.stop, received = function()
    local out = {}
    for i, r in ipairs(json.decode(M.request("GET", base .. "/received").body or "") or {}) do
      out[i] = r
    end
    return out
  end }
end

-- ---- load: many concurrent requests by curl, in the background ----

-- posts(dir, urls, body, key, parallel): POSTs body to each of urls (an array), `parallel` at
-- a time, in the background; each answer goes to a file of its own, dir/<n>, ended by a
-- newline once complete (one file per request: answers never interleave).
function M.posts(dir, urls, body, key, parallel)
  M.sh("mkdir -p " .. q(dir))
  local lines = {}
  for n, url in ipairs(urls) do
    lines[n] = url .. " " .. n
  end
  M.write(dir .. ".args", table.concat(lines, "\n") .. "\n")
  M.write(dir .. ".body", body)
  M.sh(("xargs -P %d -n 2 sh -c 'curl -s -m 60 -H \"Authorization: Bearer %s\" -H \"Content-Type: application/json\""
    .. " -d @%s -o %s/$1 $0; echo >> %s/$1' < %s >/dev/null 2>&1 &"):format(parallel, key, dir .. ".body", dir, dir,
    dir .. ".args"))
end

-- racing_posts(dir, urls, body, key) -> the decoded answers of one POST to each url, all sent at
-- once (curl in parallel) and waited for.
function M.racing_posts(dir, urls, body, key)
  M.posts(dir, urls, body, key, #urls)
  local deadline = M.now() + 60
  local out, done = {}, 0
  while done < #urls and M.now() < deadline do
    M.sleep(0.05)
    out, done = M.answers(dir)
  end
  return out
end

-- answers(dir) -> the decoded answers so far (nil for one cut off), and how many are complete
function M.answers(dir)
  local out, done = {}, 0
  for name in (M.sh("ls " .. q(dir))):gmatch("%d+") do
    local text = M.read(dir .. "/" .. name) or ""
    if text:sub(-1) == "\n" then
      done = done + 1
      out[#out + 1] = json.decode(text) or false
    end
  end
  return out, done
end

-- seed() -> the test's random seed (KLING_TEST_SEED repeats a run; else the time), math.random
-- seeded with it; tidy prints it when a check failed.
function M.seed()
  M.seed_value = tonumber(os.getenv("KLING_TEST_SEED") or "") or os.time()
  math.randomseed(M.seed_value)
  return M.seed_value
end

-- An amount's micro-units (raises on what is not an amount).
function M.micros(s)
  return assert(core.money_parse(tostring(s)), "not an amount: " .. tostring(s))
end

-- Stops the gateway `kling gateway start` runs in dir.
function M.gateway_stop(dir)
  M.sh(("lua5.4 %s/bin/kling gateway stop --dir %s"):format(q(M.src), q(dir)))
end

-- The common end of a test's cleanup: stops its nginx srv and the simulator in sim_dir (each if
-- any) and removes the test's base directory, unless a check failed (then it stays for a
-- post-mortem, with the seed if the test has one).
function M.tidy(base, sim_dir, srv)
  if srv then
    srv.stop()
  end
  if sim_dir then
    M.sim_stop(sim_dir)
  end
  if M.failed == 0 then
    M.sh("rm -rf " .. q(base))
  else
    if M.seed_value then
      print("# seed " .. M.seed_value .. " (KLING_TEST_SEED repeats the run)")
    end
    print("# kept " .. base .. " for a post-mortem")
  end
end

-- A test's directories: base (fresh), base/sim for its simulator and base/nginx, the nginx
-- prefix (755: workers that run as nobody read it).
function M.dirs(tag)
  local base = M.tempdir(tag)
  local sim_dir, prefix = base .. "/sim", base .. "/nginx"
  M.sh("mkdir -p " .. q(sim_dir) .. " " .. q(prefix) .. " && chmod 755 " .. q(prefix))
  return base, sim_dir, prefix
end

-- launched(tag) -> a gateway as its operators run it (`kling gateway start`) in a directory of
-- the test's own: {base, sim_dir, dir, journal (a path in a directory nginx's workers may write),
-- config (its path), write_config(doc), start(config doc) -> its start line, decoded (raises if
-- it did not start), stop(), srv() (its error log, as check_no_lua_error and main read it),
-- cleanup()}.
function M.launched(tag)
  local g = { base = M.tempdir(tag) }
  g.sim_dir, g.dir, g.journal = g.base .. "/sim", g.base .. "/gw", g.base .. "/journal/ledger.jsonl"
  M.sh("mkdir -p " .. q(g.sim_dir) .. " " .. q(g.base .. "/journal") .. " && chmod 777 " .. q(g.base .. "/journal"))
  g.config = g.base .. "/gateway.json"
  function g.write_config(doc)
    M.write(g.config, json.encode(doc))
  end
  function g.start(doc)
    g.write_config(doc)
    local out, ok = M.sh(("lua5.4 %s/bin/kling gateway start --config %s --dir %s"):format(q(M.src),
      q(g.base .. "/gateway.json"), q(g.dir)))
    assert(ok, "kling gateway start: " .. out)
    return assert(json.decode(out:match("{.*}")), out)
  end
  function g.stop()
    M.gateway_stop(g.dir)
  end
  function g.srv()
    return { error_log = function()
      return M.read(g.dir .. "/error.log") or ""
    end }
  end
  function g.cleanup()
    g.stop()
    M.tidy(g.base, g.sim_dir)
  end
  return g
end

-- fleet(tag) -> several gateways as their operators run them (`kling gateway start`), each in a
-- directory of its own under one base: {base, sim_dir, start(name, doc [, store]) -> its URL and
-- directory (doc(url) -> its config, written as base/<name>.json, its journal
-- base/journal/<name>.jsonl in a directory nginx's workers may write unless store is given),
-- redis_store() -> a store of a redis-server of its own (started; base/redis), cleanup() (stops
-- every gateway, then that redis)}.
function M.fleet(tag)
  local f, dirs, redis = { base = M.tempdir(tag) }, {}, nil
  f.sim_dir = f.base .. "/sim"
  M.sh("mkdir -p " .. q(f.sim_dir) .. " " .. q(f.base .. "/journal") .. " && chmod 777 " .. q(f.base .. "/journal"))
  function f.start(name, doc, store)
    local dir, port = f.base .. "/gw-" .. name, M.free_port()
    dirs[#dirs + 1] = dir
    local url = "http://127.0.0.1:" .. port
    local config = doc(url)
    if store then
      config.store = store
    else
      config.journal = f.base .. "/journal/" .. name .. ".jsonl"
    end
    M.write(f.base .. "/" .. name .. ".json", json.encode(config))
    local out, ok = M.sh(("lua5.4 %s/bin/kling gateway start --config %s --dir %s --port %d"):format(q(M.src),
      q(f.base .. "/" .. name .. ".json"), q(dir), port))
    assert(ok, "kling gateway start: " .. out)
    return url, dir
  end
  function f.redis_store()
    redis = M.redis(f.base .. "/redis")
    redis.start()
    return { redis = "redis://127.0.0.1:" .. redis.port .. "/0" }
  end
  function f.cleanup()
    for _, dir in ipairs(dirs) do
      M.gateway_stop(dir)
    end
    if redis then
      redis.stop()
    end
    M.tidy(f.base, f.sim_dir)
  end
  return f
end

-- redis(dir) -> a redis-server of the test's own on a free loopback port, AOF with appendfsync
-- always, its files in dir: {port, cli(args...) -> its output, start() (waits for PONG), stop()
-- (shutdown nosave: a Redis that cannot save refuses SIGTERM)}.
function M.redis(dir)
  local r = { port = M.free_port() }
  function r.cli(...)
    return (M.sh("redis-cli -p " .. r.port .. " " .. table.concat({ ... }, " ")))
  end
  function r.start()
    M.sh("mkdir -p " .. q(dir))
    local out, ok = M.sh(("redis-server --port %d --bind 127.0.0.1 --appendonly yes --appendfsync always --save ''"
      .. " --dir %s --daemonize yes --logfile %s"):format(r.port, q(dir), q(dir .. "/redis.log")))
    assert(ok, "redis-server: " .. out)
    local limit = M.now() + 10
    while not r.cli("ping"):find("PONG", 1, true) do
      assert(M.now() < limit, "redis did not answer")
      M.sleep(0.05)
    end
  end
  function r.stop()
    r.cli("shutdown nosave")
  end
  return r
end

-- The check that ends a test of nginx: no Lua error reached srv's error log.
function M.check_no_lua_error(srv, what)
  local log = srv.error_log()
  M.check(what or "no Lua error in the error log", not log:find("runtime error", 1, true)
    and not log:find("lua entry thread aborted", 1, true), log:match("[^\n]*runtime error[^\n]*")
    or log:match("[^\n]*entry thread aborted[^\n]*"))
end

-- Runs the test's checks, then finish(cleanup): a raise in run is a failed check, printed with
-- the tail of the error log of the nginx that current_srv() returns (if any).
function M.main(run, current_srv, cleanup)
  local ok, err = pcall(run)
  if not ok then
    M.check("the test ran to its end", false, err)
    local srv = current_srv()
    if srv then
      print(srv.error_log():sub(-4000))
    end
  end
  M.finish(cleanup)
end

-- Prints the summary line and exits (non-zero on any failure).
function M.finish(cleanup)
  if cleanup then
    pcall(cleanup)
  end
  print(("%d passed, %d failed"):format(M.passed, M.failed))
  os.exit(M.failed == 0 and M.passed > 0 and 0 or 1)
end

return M
