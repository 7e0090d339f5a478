-- The gateway's Redis connection (store = {"redis": "redis://[:password@]host:port[/db]"}, an
-- IPv6 host in brackets):
-- Debian's lua-nginx-redis cosocket client, one pooled connection per call, scripts run by
-- EVALSHA (loaded once per Redis, EVAL again after a Redis restart forgot them). Every
-- failure is nil, message (a Redis that is down or restarting is an error the caller turns
-- into a refusal, never an exception), and is counted for the metrics.
local M = {}

local unpack = table.unpack or unpack -- luacheck: ignore 143 (LuaJIT's global unpack)

local function pack(...)
  return { n = select("#", ...), ... }
end

M.TIMEOUT_MS, M.POOL_SIZE, M.KEEPALIVE_MS = 2000, 64, 30000

-- parse(url) -> {host, port, db, password} | nil, message
function M.parse(url)
  if type(url) ~= "string" then
    return nil, "must be a redis:// URL"
  end
  local rest = url:match("^redis://(.+)$")
  local password
  if rest and rest:find("@", 1, true) then
    password, rest = rest:match("^:?([^@]*)@(.*)$")
  end
  local hostport, db = (rest or ""):match("^([^/@]+)/?(%d*)$")
  -- A port past 65535 (or 0, or not digits: "host:abc" was a host of that name) was taken here and
  -- only failed at each connect, the node started and never ready: refused with the config.
  local host, port = (hostport or ""):match("^([^:%[%]]+):?(%d*)$")
  if not host then
    -- An IPv6 address in brackets, kept in them: nginx's connect reads a bare one's last part
    -- as a port. A bare one was taken for host:port and refused as not a URL.
    host, port = (hostport or ""):match("^(%[[%x:.]+%]):?(%d*)$")
  end
  if not host and (hostport or ""):find(":.*:") then
    return nil, "an IPv6 host is written in brackets: redis://[:password@][::1][:port][/db]"
  elseif not host then
    return nil, "must be redis://[:password@]host[:port][/db] (an IPv6 host in brackets: [::1])"
  end
  port = tonumber(port) or 6379
  if port < 1 or port > 65535 then
    return nil, "the port must be a whole number from 1 to 65535 (got " .. port .. ")"
  end
  return { host = host, port = port, db = tonumber(db) or 0, password = password ~= "" and password or nil }
end

local Redis = {}
Redis.__index = Redis

-- new(url_or_parsed, {errors = shared dict (a counter), prefix = "kgw:", on_trip = fn(calls):
-- told of each shared round trip (run_shared) and how many calls it carries}) -> redis
function M.new(where, opts)
  local cfg = type(where) == "table" and where or assert(M.parse(where))
  return setmetatable({ cfg = cfg, errors = opts and opts.errors, prefix = opts and opts.prefix or "kgw:",
    on_trip = opts and opts.on_trip, shas = {},
    pool = { pool = "kgw:" .. cfg.host .. ":" .. cfg.port .. ":" .. cfg.db } }, Redis)
end

-- What the operator does about a Redis that answers but refuses (how its reply begins): said
-- with the reply, in the error log and the admin API's answers, where Redis's own words do not.
M.ADVICE = {
  { "OOM ", "Redis is at its maxmemory and refuses writes: every movement and create is refused until it has"
    .. " room. Raise its maxmemory (CONFIG SET maxmemory, and in redis.conf), or archive and trim the ledger"
    .. " list (GET /gateway/admin/ledger, POST /gateway/admin/ledger/trim: README, Several nodes)" },
  { "READONLY ", "store.redis names a read-only replica: point it at the primary and reload" },
  { "NOAUTH ", "Redis wants a password: give it in store.redis (redis://:password@host:port/db) and reload" },
  { "WRONGPASS ", "Redis refused the password: give the right one in store.redis (redis://:password@host:port/db)"
    .. " and reload" },
  { "ERR DB index is out of range", "store.redis names a database Redis does not have (its `databases`, 16 by"
    .. " default, numbered from 0): name one below it and reload" },
}

local function advice(text)
  for _, a in ipairs(M.ADVICE) do
    if text:sub(1, #a[1]) == a[1] then
      return a[2]
    end
  end
end

-- The stages a Redis call fails at, each counted apart (kling_gateway_store_errors_total{stage}):
-- "connect" (Redis not reached: the connection, AUTH or SELECT failed), "call" (a command or
-- script, read or write, refused or its answer lost). The counters' keys in the errors dict.
M.STAGES = { connect = "store_errors:connect", call = "store_errors:call" }

-- failed(err [, stage]) -> nil, message: counts a failed call (stage "call" unless told) and
-- words it for the error log and the admin API.
function Redis:failed(err, stage)
  if self.errors then
    self.errors:incr(M.STAGES[stage] or M.STAGES.call, 1, 0)
  end
  local text = tostring(err)
  local why = advice(text)
  return nil, "redis " .. self.cfg.host .. ":" .. self.cfg.port .. ": " .. text .. (why and (" (" .. why .. ")") or "")
end

-- error_counts() -> {connect = n, call = n}: the calls failed so far, every worker's, by stage.
function Redis:error_counts()
  local out = {}
  for stage, k in pairs(M.STAGES) do
    out[stage] = self.errors and self.errors:get(k) or 0
  end
  return out
end

-- with(fn(red) -> results...) -> results | nil, message: one pooled connection for fn.
function Redis:with(fn)
  local client = require "nginx.redis"
  local red = client:new()
  red:set_timeout(M.TIMEOUT_MS)
  local c = self.cfg
  local ok, err = red:connect(c.host, c.port, self.pool) -- the pool's name made once, not per call
  if not ok then
    return self:failed(err, "connect")
  end
  if (red:get_reused_times() or 0) == 0 then
    if c.password then
      ok, err = red:auth(c.password)
      if not ok then
        red:close()
        return self:failed(err, "connect")
      end
    end
    if c.db ~= 0 then
      ok, err = red:select(c.db)
      if not ok then
        red:close()
        return self:failed(err, "connect")
      end
    end
  end
  local res = pack(pcall(fn, red))
  if not res[1] then
    red:close()
    return self:failed(res[2])
  end
  if not res[2] and res[3] ~= nil then
    red:close()
    return self:failed(res[3])
  end
  red:set_keepalive(M.KEEPALIVE_MS, M.POOL_SIZE)
  return unpack(res, 2, res.n)
end

-- eval(red, script, ...) -> result | nil, err: EVALSHA, loading the script when Redis does
-- not know it (first use, or a restart).
function Redis:eval(red, script, ...)
  local sha = self.shas[script]
  if sha then
    local res, err = red:evalsha(sha, 0, self.prefix, ...)
    if res or not tostring(err):find("NOSCRIPT", 1, true) then -- an error reply is false, err
      return res, err
    end
  end
  local loaded, lerr = red:script("load", script)
  if not loaded then
    return nil, lerr
  end
  self.shas[script] = loaded
  return red:evalsha(loaded, 0, self.prefix, ...)
end

-- run(script, ...) -> result | nil, message: one script on its own connection.
function Redis:run(script, ...)
  local args = pack(...)
  return self:with(function(red)
    return self:eval(red, script, unpack(args, 1, args.n))
  end)
end

-- run_many({script, args..., n = count}, ...) -> {result | {false, err}, ...} | nil, message:
-- several scripts in one round trip (a pipeline), run one after the other by Redis. A Redis
-- that forgot the scripts (restarted) ran none of them: they are loaded again and sent once more.
function Redis:run_many(...)
  local calls = pack(...)
  return self:with(function(red)
    for attempt = 1, 2 do
      for i = 1, calls.n do
        local script = calls[i][1]
        if not self.shas[script] then
          local sha, err = red:script("load", script)
          if not sha then
            return nil, err
          end
          self.shas[script] = sha
        end
      end
      red:init_pipeline()
      for i = 1, calls.n do
        local c = calls[i]
        red:evalsha(self.shas[c[1]], 0, self.prefix, unpack(c, 2, c.n))
      end
      local res, err = red:commit_pipeline()
      if not res then
        return nil, err
      end
      local forgot = 0
      for i = 1, calls.n do
        local r = res[i]
        if type(r) == "table" and r[1] == false and tostring(r[2]):find("NOSCRIPT", 1, true) then
          forgot = forgot + 1
        end
      end
      if forgot == 0 then
        return res
      elseif forgot < calls.n or attempt == 2 then
        return nil, "scripts forgotten by Redis in the middle of a pipeline"
      end
      self.shas = {}
    end
  end)
end

-- run_shared(call) -> result | nil, message: one script call ({script, args..., n = count},
-- as run_many's) sent with the calls other requests of this worker make meanwhile, in one
-- round trip (a pipeline: each script still runs alone and whole in Redis, the pipeline only
-- shares the trip). The first caller sends at once; calls made while a pipeline is on its way
-- wait, and go together in the next one, sent by the first of them when the answers of the
-- one before are in: at most one pipeline of these calls in flight per worker, so under load
-- a round trip carries several creates (its syscalls in the worker and in Redis, and Redis's
-- AOF write, paid once for them), and an idle gateway waits for no one. A call is sent once:
-- run_many sends a pipeline again only when Redis forgot the scripts of every call in it
-- (none ran). A pipeline that fails is every call's failure; a call whose pipeline never came
-- back within twice the timeout fails (nil, message) and is not sent afterwards.
M.SHARED_MAX = 200 -- calls per shared round trip at most (the others go in the next)

-- The calls waiting, and the one that will send them (the first still waiting), told so.
local function hand_on(self)
  for _, it in ipairs(self.waiting) do
    if not it.gone then
      it.lead = true
      it.sema:post(1)
      return
    end
  end
  self.waiting = {}
  self.sending = false
end

local function deliver(self, batch, res, err)
  for _, it in ipairs(batch) do
    if not it.done then
      local r = res and res[it.index]
      if not res then
        it.res, it.err = nil, err
      elseif type(r) == "table" and r[1] == false then -- this script's error reply
        it.res, it.err = self:failed(r[2])
      else
        it.res = r
      end
      it.done = true
      if it.sema then
        it.sema:post(1)
      end
    end
  end
end

local function lead(self)
  local batch, calls, rest = {}, {}, {}
  for _, it in ipairs(self.waiting) do
    if not it.gone then
      if #calls < M.SHARED_MAX then
        batch[#batch + 1] = it
        calls[#calls + 1] = it.call
        it.index = #calls
      else
        rest[#rest + 1] = it
      end
    end
  end
  self.waiting, self.batch = rest, batch
  if self.on_trip then
    self.on_trip(#calls)
  end
  local res, err = self:run_many(unpack(calls, 1, #calls))
  deliver(self, batch, res, err)
  self.batch = nil
end

function Redis:run_shared(call)
  local item = { call = call }
  local waiting = self.waiting
  if not waiting then
    waiting = {}
    self.waiting = waiting
  end
  waiting[#waiting + 1] = item
  if self.sending then
    item.sema = require("ngx.semaphore").new(0)
    local ok, err = item.sema:wait(2 * M.TIMEOUT_MS / 1000)
    -- A call told to lead sends, even where its wait timed out after it was told (the post
    -- and the timeout in one turn of the event loop): else no one would send the calls after it.
    if not ok and not item.done and not item.lead then
      item.gone = true -- not sent now (it may have been sent already: then as a lost answer)
      return self:failed("no answer from a shared round trip: " .. tostring(err))
    end
    if not item.lead then
      return item.res, item.err
    end
  end
  self.sending = true
  item.lead = nil
  local ok, err = pcall(lead, self)
  if not ok then -- a bug, not Redis: the calls taken fail, the others are not left waiting
    deliver(self, self.batch or {}, nil, tostring(err))
    self.batch = nil
  end
  hand_on(self)
  return item.res, item.err
end

-- The poller's leadership across nodes: a key with a TTL, renewed by its holder.
local LOCK = [[
local key, me, ttl = ARGV[1] .. 'poller', ARGV[2], ARGV[3]
if redis.call('SET', key, me, 'NX', 'PX', ttl) then return 2 end
if redis.call('GET', key) == me then redis.call('PEXPIRE', key, ttl) return 1 end
return 0
]]

-- lock(owner, ttl_s) -> held, fresh
function Redis:lock(owner, ttl_s)
  local res = self:run(LOCK, owner, tostring(math.floor(ttl_s * 1000)))
  return res == 1 or res == 2, res == 2
end

function Redis:unlock(owner)
  return self:run("if redis.call('GET', ARGV[1] .. 'poller') == ARGV[2] then redis.call('DEL', ARGV[1] .. 'poller')"
    .. " end return 1", owner)
end

return M
