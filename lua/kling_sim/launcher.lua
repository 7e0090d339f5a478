-- Starts and stops the simulator: a certificate (openssl), small real media (ffmpeg), the
-- nginx conf, and nginx itself in its own session on free loopback ports. Runs under
-- lua5.4 (no ngx). Everything the sim writes is under its directory D.
--
-- Permissions: the nginx master runs as the starting user and loads every Lua module and
-- the media itself (see server.lua), so the source tree may live anywhere (/root included).
-- When started as root the workers run as nobody; the only files they touch are request
-- bodies spilled to D/tmp (over 16 MB), so D and its parents must be traversable (o+x):
-- start() checks this and refuses a D that is not.
local json = require "kling.json"
local conf = require "kling_sim.conf"

local M = {}

M.DEFAULTS = {
  access_key = "kling-sim-access-key",
  secret_key = "kling-sim-secret-key",
  api_key = "kling-sim-api-key",
  task_seconds = 3,
  workers = 1,
  seed = 1,
}

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs a shell command; -> true, output | nil, output
local function run(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1", "r")
  local out = p:read("a")
  local ok = p:close()
  return ok and true or nil, out
end

local have_socket, socket = pcall(require, "socket")

local function sleep(s)
  if have_socket then
    socket.sleep(s)
  else
    os.execute("sleep " .. s)
  end
end

local function now()
  return have_socket and socket.gettime() or os.time()
end

-- read(path) -> the whole file | nil when it is not there or not a regular file. Opening a
-- FIFO blocks until a writer comes (`kling sim stop --dir D` hung on a FIFO at D/nginx.pid),
-- a device may never end: the type is checked first with `test -f` (the simulator requires
-- nothing of the library's C core, and Lua's io has no stat). Files of /proc are the
-- kernel's (M.alive polls them): read directly, without a shell each time.
local function read(path)
  if not path:find("^/proc/%d+/%a+$") and not run("test -f " .. q(path)) then
    return nil
  end
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, text, mode)
  local f, err = io.open(path, "wb")
  if not f then
    return nil, err
  end
  f:write(text)
  f:close()
  return run("chmod " .. (mode or "644") .. " " .. q(path))
end

local function which(names)
  for _, n in ipairs(names) do
    local ok, out = run("command -v " .. q(n))
    if ok then
      return (out:gsub("%s+$", ""))
    end
    if n:sub(1, 1) == "/" and read(n) then
      return n
    end
  end
  return nil
end

local function tools()
  local t = {
    nginx = which { os.getenv("KLING_NGINX") or "nginx", "/usr/sbin/nginx" },
    openssl = which { "openssl" }, ffmpeg = which { "ffmpeg" }, curl = which { "curl" }, setsid = which { "setsid" },
  }
  for _, name in ipairs { "nginx", "openssl", "ffmpeg", "curl", "setsid" } do
    if not t[name] then
      return nil, "the '" .. name .. "' command is required and was not found on PATH"
    end
  end
  return t
end

-- The absolute directory (resolved) that holds `module`'s file; tail is its path inside it.
local function root_of(module, tail)
  local path = package.searchpath(module, package.path)
  if not path then
    return nil, "cannot find " .. tail .. " on package.path"
  end
  local dir = path:sub(1, #path - #tail - 1)
  local ok, out = run("cd " .. q(dir) .. " && pwd -P")
  if not ok then
    return nil, "cannot resolve " .. dir .. ": " .. out
  end
  return (out:gsub("%s+$", ""))
end

-- The lua/ directory of the simulator, and the one of the JSON module it borrows.
local function lua_roots()
  local root, err = root_of("kling_sim.server", "kling_sim/server.lua")
  if not root then
    return nil, err
  end
  local json_root
  json_root, err = root_of("kling.json", "kling/json.lua")
  if not json_root then
    return nil, err
  end
  return root, json_root
end

local function dialects(root)
  local _, out = run("ls " .. q(root .. "/kling_sim/dialects"))
  local names = {}
  for name in out:gmatch("([%w_]+)%.lua") do
    if name ~= "kling" then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  table.insert(names, 1, "kling") -- the official API is served at "/"
  return names
end

-- /proc/<pid>/stat state, or nil when there is no such process; a zombie counts as gone.
local function alive(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  if stat then
    return stat:match("^%d+ %b() (%a)") ~= "Z"
  end
  return (os.execute("kill -0 " .. pid .. " 2>/dev/null")) == true
end

local function cmdline(pid)
  return (read("/proc/" .. pid .. "/cmdline") or ""):gsub("%z", " ")
end

local function wait_gone(pid, seconds)
  local deadline = now() + seconds
  while alive(pid) do
    if now() > deadline then
      return false
    end
    sleep(0.05)
  end
  return true
end

-- The pid of the simulator running in dir, or nil and whether a pid file named one that is
-- gone. A pid file can outlive its process, and the number can be reused by another one.
local function running_pid(dir)
  local pid = tonumber((read(dir .. "/sim.pid") or read(dir .. "/nginx.pid") or ""):match("%d+"))
  if not pid then
    return nil, false
  end
  if not alive(pid) or not (cmdline(pid):find("nginx", 1, true) and cmdline(pid):find(dir, 1, true)) then
    return nil, true
  end
  return pid
end

-- A metering gateway's D (kling gateway start writes gateway.pid there, and removes it when it
-- stops): its nginx is no simulator, and `kling sim stop` or `start --replace` stopped it.
-- -> message | nil
local function gateway_dir(dir)
  if read(dir .. "/gateway.pid") and not read(dir .. "/sim.pid") then
    return dir .. " is a metering gateway's directory (its gateway.pid): kling sim neither starts nor stops"
      .. " anything there (kling gateway stop --dir " .. dir .. " stops the gateway)"
  end
  return nil
end

-- stop(dir) -> true, note | nil, message [, "usage"]. Stopping a stopped sim is not an error.
function M.stop(dir)
  local other = gateway_dir(dir)
  if other then
    return nil, other, "usage"
  end
  local pid, stale = running_pid(dir)
  local function cleanup()
    os.remove(dir .. "/sim.pid")
  end
  if not pid then
    cleanup()
    return true, stale and ("the simulator in " .. dir .. " was not running")
      or ("no simulator was running in " .. dir)
  end
  os.execute("kill -QUIT " .. pid .. " 2>/dev/null")
  if not wait_gone(pid, 5) then
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    if not wait_gone(pid, 2) then
      -- nginx runs in its own session: the group holds the master and its workers.
      os.execute("kill -KILL -- -" .. pid .. " 2>/dev/null; kill -KILL " .. pid .. " 2>/dev/null")
      if not wait_gone(pid, 2) then
        return nil, "nginx (pid " .. pid .. ") did not stop"
      end
    end
  end
  cleanup()
  return true, "stopped the simulator in " .. dir .. " (pid " .. pid .. ")"
end

-- When root starts nginx its workers are nobody: D must be reachable by others.
local function check_traversable(dir)
  local ok, uid = run("id -u")
  if not ok or tonumber(uid) ~= 0 then
    return true
  end
  local path = ""
  for part in dir:match("^(.*)/[^/]*$"):gmatch("[^/]+") do -- D itself is made 0755 by start()
    path = path .. "/" .. part
    local _, mode = run("stat -c %A " .. q(path))
    if mode:sub(10, 10) ~= "x" and mode:sub(10, 10) ~= "t" then
      return nil, path .. " is not traversable by others (mode " .. mode:gsub("%s+$", "")
        .. "); the nginx workers run as nobody: choose a --dir under /tmp or chmod o+x " .. path
    end
  end
  return true
end

local function make_cert(t, tls)
  local ext = tls .. "/server.ext"
  local ok, err = write(ext, table.concat({
    "basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid", "",
  }, "\n"))
  if not ok then
    return nil, err
  end
  local o = q(t.openssl)
  local function p(name)
    return q(tls .. "/" .. name)
  end
  return run(table.concat({
    "umask 077",
    o .. " ecparam -name prime256v1 -genkey -noout -out " .. p("ca.key"),
    o .. " req -x509 -new -key " .. p("ca.key") .. " -sha256 -days 365 -subj '/CN=kling simulator CA'"
      .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
      .. " -out " .. p("ca.pem"),
    o .. " ecparam -name prime256v1 -genkey -noout -out " .. p("server.key"),
    o .. " req -new -key " .. p("server.key") .. " -subj '/CN=127.0.0.1' -out " .. p("server.csr"),
    o .. " x509 -req -in " .. p("server.csr") .. " -CA " .. p("ca.pem") .. " -CAkey " .. p("ca.key")
      .. " -CAserial " .. p("ca.srl") .. " -CAcreateserial -days 365 -sha256 -extfile " .. p("server.ext")
      .. " -out " .. p("server.pem"),
    "chmod 644 " .. p("ca.pem") .. " " .. p("server.pem"),
  }, " && "))
end

local function make_media(t, dir)
  return run(q(t.ffmpeg) .. " -nostdin -v error -y"
    .. " -f lavfi -i testsrc2=size=160x90:rate=15:duration=3"
    .. " -f lavfi -i sine=frequency=440:sample_rate=44100:duration=3"
    .. " -f lavfi -i testsrc2=size=640x360:rate=1:duration=1"
    .. " -map 0:v -map 1:a -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -b:a 32k -shortest"
    .. " -movflags +faststart " .. q(dir .. "/sample.mp4")
    .. " -map 2:v -frames:v 1 -update 1 " .. q(dir .. "/sample.png")
    .. " -map 1:a -c:a libmp3lame -b:a 32k " .. q(dir .. "/sample.mp3")
    .. " -map 1:a -c:a pcm_s16le -ar 16000 -ac 1 " .. q(dir .. "/sample.wav")
    .. " && chmod 644 " .. q(dir .. "/sample.mp4") .. " " .. q(dir .. "/sample.png") .. " " .. q(dir .. "/sample.mp3")
    .. " " .. q(dir .. "/sample.wav"))
end

-- Two distinct free loopback ports (the kernel's choice when LuaSocket is there).
local function free_ports(fixed)
  local ports = {}
  while #ports < 2 do
    local port
    if #ports == 0 and fixed then
      port = fixed
    elseif have_socket then
      local s = socket.bind("127.0.0.1", 0)
      port = s and select(2, s:getsockname())
      if s then s:close() end
    end
    port = tonumber(port) or math.random(20000, 32000)
    if port ~= ports[1] then
      ports[#ports + 1] = port
    end
  end
  return ports[1], ports[2]
end

local function http_ok(t, url, ca)
  local ok, out = run(q(t.curl) .. " -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert " .. q(ca)
    .. " " .. q(url))
  return ok and out == "200"
end

-- What nginx said when it exited at start, as a message: the last 3 different lines of its
-- output (its error log when it printed none; blank lines left out) on one line, " | " between
-- them, with where its whole log is (nginx retries a bind five times, a line each).
local function start_failure(out, log, dir)
  local all, lines, seen = {}, {}, {}
  for line in ((out:find("%S") and out) or log):gmatch("[^\n]+") do
    all[#all + 1] = line:match("^%s*(.-)%s*$")
  end
  for i = #all, 1, -1 do
    if all[i] ~= "" and not seen[all[i]] and #lines < 3 then
      seen[all[i]] = true
      table.insert(lines, 1, all[i])
    end
  end
  return "nginx exited at start: " .. table.concat(lines, " | ") .. " (the whole log: " .. dir .. "/error.log)"
end

-- Spawns nginx and waits until both ports answer; -> pid | nil, message, bind_failed
local function spawn(t, dir, http_port, https_port, ca)
  os.remove(dir .. "/nginx.pid")
  write(dir .. "/nginx.log", "")
  write(dir .. "/error.log", "")
  local _, out = run(q(t.setsid) .. " " .. q(t.nginx) .. " -p " .. q(dir .. "/")
    .. " -c " .. q(dir .. "/nginx.conf") .. " -e " .. q(dir .. "/error.log") .. " -g 'daemon off;'"
    .. " </dev/null >" .. q(dir .. "/nginx.log") .. " 2>&1 & echo $!")
  local pid = tonumber(out:match("(%d+)%s*$"))
  if not pid then
    return nil, "could not start nginx: " .. out
  end
  local deadline = now() + 15
  while now() < deadline do
    if not alive(pid) then
      local said, log = read(dir .. "/nginx.log") or "", read(dir .. "/error.log") or ""
      local bind = (said .. log):find("Address already in use", 1, true) ~= nil
      return nil, start_failure(said, log, dir), bind
    end
    if http_ok(t, "http://127.0.0.1:" .. http_port .. "/_sim/health", ca)
      and http_ok(t, "https://127.0.0.1:" .. https_port .. "/_sim/health", ca) then
      local master = tonumber((read(dir .. "/nginx.pid") or ""):match("%d+"))
      return master or pid
    end
    sleep(0.05)
  end
  os.execute("kill -KILL -- -" .. pid .. " 2>/dev/null")
  return nil, "nginx did not answer on ports " .. http_port .. " and " .. https_port .. " within 15 s; see "
    .. dir .. "/error.log"
end

local function absolute_dir(dir)
  if not dir then
    local ok, out = run("mktemp -d /tmp/kling-sim.XXXXXX")
    if not ok then
      return nil, "cannot make a temporary directory: " .. out
    end
    dir = out:gsub("%s+$", "")
  end
  -- mkdir's own message names the path again ("mkdir: cannot create directory 'D': File
  -- exists"): the cause alone follows ours, and a file at D is said to be one.
  local ok, out = run("if [ -e " .. q(dir) .. " ] && [ ! -d " .. q(dir) .. " ]; then echo 'it exists and is not a"
    .. " directory'; exit 1; fi; mkdir -p " .. q(dir) .. " && cd " .. q(dir) .. " && pwd -P")
  out = out:gsub("%s+$", "")
  if not ok then
    return nil, "cannot create directory " .. dir .. ": " .. (out:match("^mkdir: .*: ([^:]+)$") or out)
  end
  return out
end

-- start(o) -> info | nil, message [, "running" | "usage"]. o = {dir, port, out, access_key, secret_key,
-- api_key, task_seconds, seed, workers, webhook_secret, replace}; missing values take
-- M.DEFAULTS. A simulator already running in dir is refused ("running", naming its pid)
-- unless replace is true (then stopped first).
function M.start(o)
  local opts = {}
  for k, v in pairs(M.DEFAULTS) do
    opts[k] = v
  end
  for k, v in pairs(o or {}) do
    opts[k] = v
  end
  local t, err = tools()
  if not t then
    return nil, err
  end
  local root, json_root = lua_roots()
  if not root then
    return nil, json_root
  end
  local dir
  -- a given path is checked before it is made: a refused start leaves nothing behind
  if opts.dir and not conf.safe_path(opts.dir) then
    dir = opts.dir
  else
    dir, err = absolute_dir(opts.dir)
    if not dir then
      return nil, err
    end
  end
  if not conf.safe_path(dir) then
    -- a --dir given so is bad usage (exit 2, named), as kling gateway start refuses its --dir
    return nil, (opts.dir and "--dir: " or "") .. "directory " .. dir .. " has characters nginx paths cannot hold "
      .. "here; use letters, digits and ._/-+,@=:~", opts.dir and "usage" or nil
  end
  -- --out is checked before anything starts (D made: --out may be in it): a simulator nobody
  -- is told about must not run on.
  if opts.out then
    -- only a regular file or nothing: opening a FIFO there blocked the start for good
    if run("test -e " .. q(opts.out) .. " || test -L " .. q(opts.out)) and not run("test -f " .. q(opts.out)
      .. " && ! test -L " .. q(opts.out)) then
      return nil, "--out " .. opts.out .. " is not a regular file (nothing was started)"
    end
    local existed = run("test -f " .. q(opts.out))
    local f, ferr = io.open(opts.out, "ab")
    if not f then
      return nil, "cannot write " .. opts.out .. ": " .. tostring(ferr) .. " (nothing was started)"
    end
    f:close()
    if not existed then
      os.remove(opts.out) -- made again with the line; a refused start leaves nothing behind
    end
  end
  -- A sim running in D is someone's (a test run, another shell): replaced only when asked,
  -- never moved to new ports behind its users' backs.
  local other = gateway_dir(dir)
  if other then
    return nil, other, "usage"
  end
  local running = running_pid(dir)
  if running and not opts.replace then
    local info = json.decode(read(dir .. "/sim.json") or "")
    local at = type(info) == "table" and type(info.http) == "string" and (", " .. info.http) or ""
    return nil, "a simulator is already running in " .. dir .. " (pid " .. running .. at .. "): nothing was started;"
      .. " stop it with `kling sim stop --dir " .. dir .. "`, or give --replace to restart it", "running"
  end
  local ok, msg = M.stop(dir) -- with replace: a sim left running in D is replaced, not duplicated
  if not ok then
    return nil, msg
  end
  ok, err = check_traversable(dir)
  if not ok then
    return nil, err
  end
  ok, err = run("mkdir -p " .. q(dir .. "/tls") .. " " .. q(dir .. "/media") .. " " .. q(dir .. "/tmp")
    .. " && chmod 755 " .. q(dir) .. " " .. q(dir .. "/tls") .. " " .. q(dir .. "/media") .. " " .. q(dir .. "/tmp"))
  if not ok then
    return nil, "cannot prepare " .. dir .. ": " .. err
  end
  ok, err = make_cert(t, dir .. "/tls")
  if not ok then
    return nil, "openssl could not make the certificate: " .. tostring(err)
  end
  ok, err = make_media(t, dir .. "/media")
  if not ok then
    return nil, "ffmpeg could not make the sample media: " .. tostring(err)
  end
  local config = {
    task_seconds = opts.task_seconds, max_parallel = 0, fault_seed = opts.seed,
    access_key = opts.access_key, secret_key = opts.secret_key, api_key = opts.api_key,
    webhook_secret = opts.webhook_secret,
  }
  ok, err = write(dir .. "/init.lua", conf.init_file {
    dir = dir, media_dir = dir .. "/media", dialects = dialects(root), config = config,
  })
  if not ok then
    return nil, "cannot write " .. dir .. "/init.lua: " .. tostring(err)
  end
  local ca = dir .. "/tls/ca.pem"
  local pid, http_port, https_port, bind_failed
  for _ = 1, 8 do
    http_port, https_port = free_ports(opts.port)
    local text
    text, err = conf.render { dir = dir, lua_root = root, json_root = json_root, http_port = http_port,
      https_port = https_port, workers = opts.workers }
    if not text then
      return nil, err
    end
    write(dir .. "/nginx.conf", text)
    pid, err, bind_failed = spawn(t, dir, http_port, https_port, ca)
    if pid or not bind_failed or (opts.port and err:find(":" .. opts.port .. " failed", 1, true)) then
      break
    end
  end
  if not pid then
    return nil, err
  end
  write(dir .. "/sim.pid", pid .. "\n")
  local http = "http://127.0.0.1:" .. http_port
  local info = {
    http = http, https = "https://127.0.0.1:" .. https_port, ca_file = ca, pid = pid, admin = http .. "/_sim",
    access_key = opts.access_key, secret_key = opts.secret_key, api_key = opts.api_key, dir = dir,
    webhook_secret = opts.webhook_secret,
  }
  -- A base URL per provider: the official API at the root, each gateway under /<name>.
  info.providers = {}
  for i, name in ipairs(dialects(root)) do
    info.providers[name] = i == 1 and http or (http .. "/" .. name)
  end
  local line = assert(json.encode(info))
  write(dir .. "/sim.json", line .. "\n")
  if opts.out then
    ok, err = write(opts.out, line .. "\n")
    if not ok then
      M.stop(dir) -- it became unwritable since the check: no simulator left running unannounced
      return nil, "cannot write " .. opts.out .. ": " .. tostring(err) .. " (the simulator was stopped)"
    end
  end
  return info, line
end

return M
