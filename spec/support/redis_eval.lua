-- A redis-server of a spec's own (a free loopback port, no persistence) and the little of
-- kling.gateway.redis the money store and the accounts call (run: a script by EVAL, with: a
-- connection's commands), over luasocket, for unit specs of the Redis scripts without nginx;
-- every reply is waited for 10 s at most.
local socket = require "socket"

local M = {}

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function command(c, args)
  local out = { "*" .. #args .. "\r\n" }
  for _, a in ipairs(args) do
    a = tostring(a)
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  assert(c:send(table.concat(out)))
end

local function reply(c)
  local line = assert(c:receive("*l"))
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then
    return rest
  elseif kind == "-" then
    return nil, rest
  elseif kind == ":" then
    return math.tointeger(tonumber(rest))
  elseif kind == "$" then
    local n = tonumber(rest)
    if n < 0 then
      return nil
    end
    local s = assert(c:receive(n + 2))
    return s:sub(1, n)
  elseif kind == "*" then
    local n = tonumber(rest)
    if n < 0 then
      return nil
    end
    local t = {}
    for i = 1, n do
      t[i] = reply(c)
    end
    return t
  end
  error("redis: unexpected reply " .. line)
end

-- start() -> {port, client() -> kling.gateway.redis's run and with, flush(), stop()}
function M.start()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local port = free_port()
  assert(os.execute(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --dir %s --daemonize yes"
    .. " --logfile %s/redis.log"):format(port, dir, dir)))
  local c
  for _ = 1, 200 do
    c = socket.connect("127.0.0.1", port)
    if c then
      break
    end
    socket.sleep(0.02)
  end
  assert(c, "redis-server did not answer")
  c:settimeout(10) -- a reply that never comes fails the spec, never hangs it
  local function call(...)
    command(c, { ... })
    return reply(c)
  end
  local s = { port = port }
  function s.client()
    call("FLUSHALL")
    local r = { prefix = "kgw:", cfg = { host = "127.0.0.1", port = port, db = 0 } }
    function r.run(_, script, ...)
      return call("EVAL", script, 0, r.prefix, ...)
    end
    -- a connection: each command a method (red:hget(k, f), red:hkeys(k), ...)
    local red = setmetatable({}, { __index = function(_, cmd)
      return function(_, ...)
        local v, err = call(cmd:upper(), ...)
        if v == nil and not err then
          return false -- no such field or key (lua-resty-redis answers ngx.null: not a string either)
        end
        return v, err
      end
    end })
    function r.with(_, fn)
      return fn(red)
    end
    return r
  end
  function s.stop()
    pcall(call, "SHUTDOWN", "NOSAVE")
    c:close()
    os.execute("rm -rf " .. dir)
  end
  return s
end

-- suite(setup, teardown [, fake]) -> a table whose server (start's) is there during a describe
-- block: started in its setup, stopped in its teardown (busted's two, passed in). With fake, the
-- stand-in ngx global (spec.support.fake_ngx) the stores read outside nginx is installed too.
function M.suite(setup, teardown, fake)
  if fake then
    require("spec.support.fake_ngx").suite(setup, teardown)
  end
  local s = {}
  setup(function()
    s.server = M.start()
  end)
  teardown(function()
    if s.server then
      s.server.stop()
    end
  end)
  return s
end

return M
