-- nginx as a child of a command (kling gateway start): started in its own session with
-- `daemon off;`, waited for until it answers, stopped by the PID it wrote (QUIT, then TERM,
-- then KILL of its process group). Runs under lua5.4 (no ngx). The simulator keeps a launcher
-- of its own: it stands apart from the library (issue 10).
local core = require "kling.core"

local M = {}

local have_socket, socket = pcall(require, "socket")

function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local q = M.q

-- run(cmd) -> true, output | nil, output
function M.run(cmd)
  local p = io.popen("(" .. cmd .. ") 2>&1", "r")
  local out = p:read("a")
  local ok = p:close()
  return ok and true or nil, out
end

function M.sleep(s)
  if have_socket then
    socket.sleep(s)
  else
    os.execute("sleep " .. s)
  end
end

function M.now()
  return have_socket and socket.gettime() or os.time()
end

-- read(path) -> the whole file | nil when it is not there or not a regular file: a pid file
-- or a log is read through kling.core.read_regular (the type checked before any open), so a
-- FIFO at D/nginx.pid no longer hangs `kling gateway stop` (io.open blocked on it for ever).
function M.read(path)
  return (core.read_regular(path, math.maxinteger or 2 ^ 53))
end

function M.write(path, text, mode)
  local f, err = require("kling.output_path").create(path) -- new, never through a link
  if not f then
    return nil, err
  end
  f:write(text)
  f:close()
  return M.run("chmod " .. (mode or "644") .. " " .. q(path))
end

-- The first of names found on PATH (or an absolute path that exists).
function M.which(names)
  for _, n in ipairs(names) do
    local ok, out = M.run("command -v " .. q(n))
    if ok then
      return (out:gsub("%s+$", ""))
    end
    if n:sub(1, 1) == "/" and M.read(n) then
      return n
    end
  end
  return nil
end

-- A zombie counts as gone.
function M.alive(pid)
  local stat = M.read("/proc/" .. pid .. "/stat")
  if stat then
    return stat:match("^%d+ %b() (%a)") ~= "Z"
  end
  return (os.execute("kill -0 " .. pid .. " 2>/dev/null")) == true
end

function M.cmdline(pid)
  return (M.read("/proc/" .. pid .. "/cmdline") or ""):gsub("%z", " ")
end

function M.wait_gone(pid, seconds)
  local deadline = M.now() + seconds
  while M.alive(pid) do
    if M.now() > deadline then
      return false
    end
    M.sleep(0.05)
  end
  return true
end

-- A free loopback port (the kernel's choice when LuaSocket is there).
function M.free_port()
  if have_socket then
    local s = socket.bind("127.0.0.1", 0)
    local port = s and select(2, s:getsockname())
    if s then
      s:close()
    end
    if tonumber(port) then
      return tonumber(port)
    end
  end
  return math.random(20000, 32000)
end

-- An absolute directory, made if missing (default: a fresh mktemp -d /tmp/<prefix>.XXXXXX).
function M.absolute_dir(dir, prefix)
  if not dir then
    local ok, out = M.run("mktemp -d /tmp/" .. prefix .. ".XXXXXX")
    if not ok then
      return nil, "cannot make a temporary directory: " .. out
    end
    dir = out:gsub("%s+$", "")
  end
  local made, merr = core.mkdir_p(dir)
  if not made then
    return nil, merr
  end
  local ok, out = M.run("cd " .. q(dir) .. " && pwd -P")
  if not ok then
    return nil, "cannot use directory " .. dir .. ": " .. out:gsub("%s+$", "")
  end
  return (out:gsub("%s+$", ""))
end

-- The last `n` different lines of a log (blank ones left out), oldest first, on one line with
-- " | " between them: what a message quotes of a log whose whole stays in its file (nginx
-- retries a bind five times, a line each, in its output and again in its error log).
local function log_tail(log, n)
  local all, lines, seen = {}, {}, {}
  for line in log:gmatch("[^\n]+") do
    all[#all + 1] = line:match("^%s*(.-)%s*$")
  end
  for i = #all, 1, -1 do
    local line = all[i]
    if line ~= "" and not seen[line] then
      seen[line] = true
      table.insert(lines, 1, line)
      if #lines == n then
        break
      end
    end
  end
  return table.concat(lines, " | ")
end

-- What nginx said when it exited at start, as a message for the user: a Lua error of
-- init_by_lua (the gateway's journal in use, a config it refuses) is its message alone, without
-- the traceback nginx adds and the error log's second copy (both stay in DIR/error.log); any
-- other failure is the last lines of nginx's own output (log_tail), with where the whole is.
function M.start_failure(log, dir)
  local msg = log:match("init_by_lua error: (.-)\nstack traceback:") or log:match("init_by_lua error: ([^\n]*)")
  if msg then
    return (msg:gsub("^kling %a+: ", ""))
  end
  -- nginx retries a bind five times, each a line in its output and its log: said once
  local addr = log:match("bind%(%) to (%S+) failed %(98: Address already in use%)")
  if addr then
    return addr .. " is in use by another server: choose another --port or --listen"
  end
  local emerg = log:match("%[emerg%] ([^\n]*)")
  if emerg then
    return "nginx exited at start: " .. emerg:gsub("^%d+#%d+: ", "")
  end
  return "nginx exited at start: " .. log_tail(log, 3) .. " (the whole log: " .. dir .. "/error.log)"
end

-- spawn{nginx =, dir =, conf =, ready = fn() -> bool, seconds = 15, umask = "077"} -> master pid |
-- nil, message, bind_failed (umask: the files nginx and its workers make). nginx logs to
-- dir/error.log and dir/nginx.log; its pid file is dir/nginx.pid.
function M.spawn(o)
  local setsid = M.which { "setsid" }
  if not setsid then
    return nil, "the 'setsid' command is required and was not found on PATH"
  end
  local dir = o.dir
  os.remove(dir .. "/nginx.pid")
  M.write(dir .. "/nginx.log", "")
  M.write(dir .. "/error.log", "")
  local _, out = M.run((o.umask and ("umask " .. o.umask .. "; ") or "") .. q(setsid) .. " " .. q(o.nginx)
    .. " -p " .. q(dir .. "/") .. " -c " .. q(o.conf)
    .. " -e " .. q(dir .. "/error.log") .. " -g 'daemon off;' </dev/null >" .. q(dir .. "/nginx.log")
    .. " 2>&1 & echo $!")
  local pid = tonumber(out:match("(%d+)%s*$"))
  if not pid then
    return nil, "could not start nginx: " .. out
  end
  local deadline = M.now() + (o.seconds or 15)
  while M.now() < deadline do
    if not M.alive(pid) then
      local log = (M.read(dir .. "/nginx.log") or "") .. (M.read(dir .. "/error.log") or "")
      return nil, M.start_failure(log, dir), log:find("Address already in use", 1, true) ~= nil
    end
    if o.ready() then
      return tonumber((M.read(dir .. "/nginx.pid") or ""):match("%d+")) or pid
    end
    M.sleep(0.05)
  end
  os.execute("kill -KILL -- -" .. pid .. " 2>/dev/null")
  return nil, "nginx did not answer within " .. (o.seconds or 15) .. " s; see " .. dir .. "/error.log"
end

-- The workers a master killed with SIGKILL left behind: they stay in its process group (nginx
-- runs in a session of its own, its group numbered by the master's pid) and keep its ports and
-- locks (the gateway's journal). Ours only if an nginx process of that group holds a file of
-- dir open (its error log): a group number can be reused.
local function orphans(pgid, dir)
  local out = {}
  local ok, list = M.run("ls /proc")
  for pid in (ok and list or ""):gmatch("%d+") do
    local stat = M.read("/proc/" .. pid .. "/stat")
    local group = stat and stat:match("^%d+ %b() %a %d+ (%d+)")
    if tonumber(group) == pgid and tonumber(pid) ~= pgid and M.cmdline(pid):find("^nginx: ") then
      local _, fds = M.run("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
      if fds:find(" " .. dir .. "/", 1, true) then
        out[#out + 1] = tonumber(pid)
      end
    end
  end
  return out
end

-- stop(dir, pidfile, what) -> true, note | nil, message. Stopping a stopped one is not an error;
-- a pid file can outlive its process and the number be reused: only an nginx naming dir is
-- signalled (or, its master gone, the workers it left that still hold dir's files).
-- running(dir, pidfile) -> pid of the nginx master running in dir (its pid file names a live
-- nginx started on dir), or nil and the pid the file names (gone, or another program's).
function M.running(dir, pidfile)
  local pid = tonumber((M.read(dir .. "/" .. pidfile) or M.read(dir .. "/nginx.pid") or ""):match("%d+"))
  if pid and M.alive(pid) and M.cmdline(pid):find("nginx", 1, true) and M.cmdline(pid):find(dir, 1, true) then
    return pid
  end
  return nil, pid
end

function M.stop(dir, pidfile, what)
  local path = dir .. "/" .. pidfile
  local live, pid = M.running(dir, pidfile)
  pid = live or pid
  if not pid then
    return true, "no " .. what .. " was running in " .. dir
  end
  if not live then
    local left = orphans(pid, dir)
    if #left > 0 then
      local pids = table.concat(left, " ")
      os.execute("kill -QUIT " .. pids .. " 2>/dev/null") -- each ends the requests it has
      for _, w in ipairs(left) do
        if not M.wait_gone(w, 5) then
          os.execute("kill -KILL " .. w .. " 2>/dev/null")
          if not M.wait_gone(w, 2) then
            return nil, "the workers its killed master left (pids " .. pids .. ") did not stop"
          end
        end
      end
      os.remove(path)
      return true, "the " .. what .. "'s master in " .. dir .. " was gone; stopped the workers it left (pids "
        .. pids .. ")"
    end
    os.remove(path)
    return true, "the " .. what .. " in " .. dir .. " was not running"
  end
  os.execute("kill -QUIT " .. pid .. " 2>/dev/null")
  if not M.wait_gone(pid, 5) then
    os.execute("kill -TERM " .. pid .. " 2>/dev/null")
    if not M.wait_gone(pid, 2) then
      -- nginx runs in its own session: the group holds the master and its workers.
      os.execute("kill -KILL -- -" .. pid .. " 2>/dev/null; kill -KILL " .. pid .. " 2>/dev/null")
      if not M.wait_gone(pid, 2) then
        return nil, "nginx (pid " .. pid .. ") did not stop"
      end
    end
  end
  os.remove(path)
  return true, "stopped the " .. what .. " in " .. dir .. " (pid " .. pid .. ")"
end

return M
