-- The task table of kling.resty.tasks with its records in Redis, for several gateway nodes:
-- the same methods. A record ends once (SET NX of its final form); the external-id and
-- upstream-id lookups, the per-account lists and the poller's queues are Redis keys, so any
-- node answers any task and the poll leader (whichever node holds the lock) sees every task.
-- A record is on the active set and the poller's queue from its create on, so a task whose
-- node died mid-create is still found (looked up by its external id) and ended.
--
-- Keys (<p> the prefix): t:<id> (live record), f:<id> (final record), x:<account>:<ext>,
-- u:<upstream id>, l:<account>:<endpoint> (counter) and l:...:<n> (ids) and ln:<id> (its n), active (set),
-- q:new and q:news (lists), kept (set: ended tasks whose hold is kept, kling.resty.tasks keep),
-- and what claim() claims (kling.gateway.track's gone_found:<id>).
local json = require "kling.json"
local tasks_q = require "kling.resty.tasks"

local unpack = table.unpack or unpack -- luacheck: ignore 143 (LuaJIT's global unpack)

local Tasks = {}
Tasks.__index = Tasks
Tasks.durable_create = true -- create() already keeps the record (no save before forwarding)

local M = {}

M.Q_NEW, M.Q_NEWS = "q:new", "q:news"
M.RETENTION_S = 30 * 86400

-- new{redis =, dict = local shared dict (the poller's tick, error counters), retention_s =,
-- encode = fn(rec [, hint]) -> JSON text | nil, err (default kling.json's; the gateway's is
-- kling.gateway.text's record), by_upstream = false (no u: index: kling.resty.tasks says when)}
function M.new(opts)
  return setmetatable({ redis = opts.redis, dict = opts.dict, retention_s = opts.retention_s or M.RETENTION_S,
    encode_with = opts.encode or json.encode, index_upstream = opts.by_upstream ~= false }, Tasks)
end

-- The upstream id a script indexes (u:), or '' for none.
local function up(self, rec)
  return self.index_upstream and rec.upstream_id or ""
end

local CREATE = [[
local p, id, s, xkey = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if xkey ~= '' and not redis.call('SET', p .. xkey, id, 'NX') then return -1 end
if not redis.call('SET', p .. 't:' .. id, s, 'NX') then
  if xkey ~= '' then redis.call('DEL', p .. xkey) end
  return -2
end
redis.call('SADD', p .. 'active', id)
redis.call('RPUSH', p .. 'q:new', id)
return 1
]]

local SAVE = [[
local p, id, s, up = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', p .. 'f:' .. id) == 1 then return 0 end
redis.call('SET', p .. 't:' .. id, s)
if up ~= '' then redis.call('SET', p .. 'u:' .. up, id, 'NX') end
return 1
]]

-- A listed task's index keys, the one place their writes are spelt (PUBLISH, PUBLISH_MANY's
-- ended ones, ENLIST): its list entry <list>:<n>, ln:<id> (its n) and u:<up> when given. A task
-- a callback or the poller ended before its create's publish (finish found no list entry, ln:
-- nor u: to give an expiry) has them written with the time its final record has left (left,
-- ms: PTTL's), or they would never be freed; left <= 0: no expiry (a live task's).
local INDEX = [[
local function index(p, list, n, id, up, left)
  local px = left > 0 and { 'PX', left } or {}
  redis.call('SET', p .. list .. ':' .. n, id, unpack(px))
  redis.call('SET', p .. 'ln:' .. id, n, unpack(px))
  if up ~= '' then redis.call('SET', p .. 'u:' .. up, id, unpack(px)) end
end
]]

local PUBLISH = INDEX .. [[
local p, id, s, up, list, poll = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local n = redis.call('INCR', p .. list)
local left = redis.call('PTTL', p .. 'f:' .. id)
if left ~= -2 then
  index(p, list, n, id, up, left)
  return n
end
index(p, list, n, id, up, 0)
redis.call('SET', p .. 't:' .. id, s)
if poll == '1' then redis.call('RPUSH', p .. 'q:new', id) end
return n
]]

-- PUBLISH for a batch of created records in one script (one invocation, not one per record):
-- ARGV: p, then (id, s, up, list) per record; never queued again (see publish_many). PUBLISH's
-- writes for the whole batch in three commands, whatever its size: one INCRBY per list (the
-- records of a list numbered in their order), one MGET of the final records, one MSET of the
-- list entries, the `ln:`s and the upstream ids and the records of the tasks not ended yet. A
-- callback or the poller may have ended one: that end stands, and its keys are written as
-- PUBLISH writes them, with the time its final record has left. A batch is at most
-- kling.gateway.forward's BATCH (200) records: unpack's limit in Redis's Lua is about 8,000.
local PUBLISH_MANY = INDEX .. [[
local p = ARGV[1]
local count, lists = {}, {}
for i = 5, #ARGV, 4 do
  local list = ARGV[i]
  if not count[list] then count[list] = 0 lists[#lists + 1] = list end
  count[list] = count[list] + 1
end
local n = {}
for _, list in ipairs(lists) do n[list] = redis.call('INCRBY', p .. list, count[list]) - count[list] end
local f = {}
for i = 2, #ARGV, 4 do f[#f + 1] = p .. 'f:' .. ARGV[i] end
local ended = redis.call('MGET', unpack(f))
local kv = {}
for j = 1, #f do
  local i = j * 4 - 2
  local id, up, list = ARGV[i], ARGV[i + 2], ARGV[i + 3]
  local k = n[list] + 1
  n[list] = k
  if ended[j] then
    index(p, list, k, id, up, redis.call('PTTL', f[j]))
  else
    kv[#kv + 1] = p .. list .. ':' .. k
    kv[#kv + 1] = id
    kv[#kv + 1] = p .. 'ln:' .. id
    kv[#kv + 1] = k
    if up ~= '' then
      kv[#kv + 1] = p .. 'u:' .. up
      kv[#kv + 1] = id
    end
    kv[#kv + 1] = p .. 't:' .. id
    kv[#kv + 1] = ARGV[i + 1]
  end
end
if #kv > 0 then redis.call('MSET', unpack(kv)) end
return 1
]]

local FINISH = [[
local p, id, s, ttl, up, xkey, list = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if not redis.call('SET', p .. 'f:' .. id, s, 'NX', 'EX', ttl) then return 0 end
redis.call('DEL', p .. 't:' .. id)
redis.call('SREM', p .. 'active', id)
if up ~= '' then redis.call('SET', p .. 'u:' .. up, id, 'EX', ttl) end
if xkey ~= '' then redis.call('EXPIRE', p .. xkey, ttl) end
local n = redis.call('GET', p .. 'ln:' .. id)
if n then
  redis.call('EXPIRE', p .. list .. ':' .. n, ttl)
  redis.call('EXPIRE', p .. 'ln:' .. id, ttl)
end
return 1
]]

-- A record its create's publish never listed (kling.resty.tasks enlist): numbered at the end of
-- its list, once (ln: says it is listed), unless it has ended meanwhile.
local ENLIST = INDEX .. [[
local p, id, list = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', p .. 'ln:' .. id) == 1 or redis.call('EXISTS', p .. 'f:' .. id) == 1 then return 0 end
local n = redis.call('INCR', p .. list)
index(p, list, n, id, '', 0)
return n
]]

-- A page of a list, newest first: the records' texts (final, else live).
local LIST = [[
local p, list, page, size = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local first = (tonumber(redis.call('GET', p .. list)) or 0) - (page - 1) * size
local out = {}
for i = first, math.max(1, first - size + 1), -1 do
  local id = redis.call('GET', p .. list .. ':' .. i)
  local s = id and (redis.call('GET', p .. 'f:' .. id) or redis.call('GET', p .. 't:' .. id))
  if s then out[#out + 1] = s end
end
return out
]]

local POP = [[
local k, n = ARGV[1] .. ARGV[2], tonumber(ARGV[3])
local items = redis.call('LRANGE', k, 0, n - 1)
if #items > 0 then redis.call('LTRIM', k, #items, -1) end
return items
]]

local function encode(self, rec, hint)
  local s, err = self.encode_with(rec, hint)
  if not s then
    return nil, "task record cannot be encoded: " .. tostring(err)
  end
  return s
end

local function xkey(rec)
  return rec.external_task_id and ("x:" .. rec.account .. ":" .. rec.external_task_id) or ""
end

local function list_key(rec)
  return "l:" .. rec.account .. ":" .. tostring(rec.endpoint)
end

-- create(rec [, s]) (s: rec already encoded)
function Tasks:create(rec, s)
  local err
  if not s then
    s, err = encode(self, rec)
    if not s then
      return nil, err
    end
  end
  local res, rerr = self.redis:run(CREATE, rec.id, s, xkey(rec))
  if not res then
    return nil, rerr
  elseif res == -1 then
    return nil, "external_task_id exists"
  elseif res == -2 then
    return nil, "exists"
  end
  return true
end

-- held_writes(rec, s) -> writes: the record's writes (CREATE's) for a store call that also
-- holds its estimate (kling.gateway.track makes the call through kling.lifecycle.effects:
-- kling.money.stores.redis reserve_call), so that the create is one script, one round trip.
function Tasks.held_writes(_, rec, s)
  local set = { { "t:" .. rec.id, s } }
  if rec.external_task_id then
    table.insert(set, 1, { xkey(rec), rec.id })
  end
  return { set = set, add = { { "active", rec.id } }, push = { { M.Q_NEW, rec.id } } }
end

-- create_held(rec, call, read) -> entry | nil, err, stage ("task" or "hold"): runs that call
-- (the record and its hold in one script): a refused hold leaves no record behind. The
-- script goes in a round trip shared with the other creates of this worker meanwhile
-- (kling.gateway.redis run_shared): still one script per create, sent once.
function Tasks:create_held(rec, call, read)
  local res, err = self.redis:run_shared(call)
  if not res then
    return nil, { kind = "server", field = "store", message = tostring(err) }, "hold"
  end
  local e, herr = read(res)
  if not e then
    if herr.key_index then
      return nil, (rec.external_task_id and herr.key_index == 1) and "external_task_id exists" or "exists", "task"
    end
    return nil, herr, "hold"
  end
  return e
end

function Tasks:publish(rec, poll)
  local s = encode(self, rec)
  local n, err = self.redis:run(PUBLISH, rec.id, s or "{}", up(self, rec), list_key(rec), poll and "1" or "0")
  if not n then
    ngx.log(ngx.ERR, "kling tasks (redis): cannot publish ", rec.id, ": ", err)
  end
end

function Tasks:enlist(rec)
  local n, err = self.redis:run(ENLIST, rec.id, list_key(rec))
  if not n then
    return nil, err
  end
  return true
end

-- publish_many(recs, from, to [, hints]): publish(rec) of created records recs[from..to], in one
-- round trip and one script (a script invocation is most of what Redis spends on a create).
-- Not queued for the poller again: their create queued them already, and the poller keeps a
-- task it was given until it ends (a second entry was a Redis write and a pop per create for
-- nothing). hints[i]: handed to the encoder with recs[i] (kling.gateway.text's record: the
-- part of the record its create already encoded).
function Tasks:publish_many(recs, from, to, hints)
  local args, n = {}, 0
  for i = from, to do
    local rec = recs[i]
    args[n + 1], args[n + 2], args[n + 3], args[n + 4] = rec.id, encode(self, rec, hints and hints[i]) or "{}",
      up(self, rec), list_key(rec)
    n = n + 4
  end
  local res, err = self.redis:run(PUBLISH_MANY, unpack(args, 1, n))
  if not res then
    ngx.log(ngx.ERR, "kling tasks (redis): cannot publish ", n / 4, " tasks (they are looked up later): ", err)
  end
end

function Tasks:drop(rec)
  local r = self.redis
  r:with(function(red)
    red:init_pipeline()
    red:del(r.prefix .. "t:" .. rec.id)
    red:srem(r.prefix .. "active", rec.id)
    if rec.external_task_id then
      red:del(r.prefix .. xkey(rec))
    end
    return red:commit_pipeline()
  end)
end

-- text(id) -> the record as stored (JSON), final | nil (no such task) | false, message (Redis
-- cannot be read now: a client must not be told that its task does not exist)
function Tasks:text(id)
  local r = self.redis
  local v, err = r:with(function(red)
    return red:mget(r.prefix .. "f:" .. id, r.prefix .. "t:" .. id)
  end)
  if v == nil and err then
    return false, err
  end
  if type(v) ~= "table" then
    return nil
  end
  local final = type(v[1]) == "string"
  local s = final and v[1] or v[2]
  if type(s) ~= "string" then
    return nil
  end
  return s, final
end

function Tasks:get(id)
  local s, final = self:text(id)
  if not s then
    return s, final -- nil, or false and the store's message
  end
  return json.decode(s), final
end

-- save(rec) -> true | nil, message (a store error: the caller refuses what depends on it).
function Tasks:save(rec)
  local s, err = encode(self, rec)
  if not s then
    return nil, err
  end
  local res, rerr = self.redis:run(SAVE, rec.id, s, up(self, rec))
  if not res then
    return nil, rerr
  end
  return true
end

function Tasks:finish(rec)
  rec.final = true
  local s, err = encode(self, rec)
  if not s then
    return nil, err
  end
  local res, rerr = self.redis:run(FINISH, rec.id, s, tostring(math.floor(self.retention_s)), up(self, rec),
    xkey(rec), list_key(rec))
  if not res then
    return nil, rerr
  end
  return res == 1
end

function Tasks:amend(rec)
  local s, err = encode(self, rec)
  if not s then
    return nil, err
  end
  local r = self.redis
  return r:with(function(red)
    return red:set(r.prefix .. "f:" .. rec.id, s, "XX", "KEEPTTL")
  end)
end

-- claim(key): kling.resty.tasks's, one claimant across nodes: a SET NX under the prefix, kept
-- retention_s (in ms: a retention under a second is not 0, which Redis refuses).
function Tasks:claim(key)
  local r, ms = self.redis, math.max(1, math.floor(self.retention_s * 1000))
  local v, err = r:with(function(red)
    return red:set(r.prefix .. key, "1", "NX", "PX", ms)
  end)
  if v == nil and err then
    return nil, err
  end
  return v == "OK"
end

-- get1(key) -> value | nil (none) | false, message (Redis cannot be read now)
local function get1(self, key)
  local r = self.redis
  local v, err = r:with(function(red)
    return red:get(r.prefix .. key)
  end)
  if v == nil and err then
    return false, err
  end
  return type(v) == "string" and v or nil
end

-- finals(ids) -> list of the final records' texts (nil where the task has not ended) | nil,
-- message: one round trip.
function Tasks:finals(ids)
  if #ids == 0 then
    return {}
  end
  local r, keys = self.redis, {}
  for i, id in ipairs(ids) do
    keys[i] = r.prefix .. "f:" .. id
  end
  local v, err = r:with(function(red)
    return red:mget(unpack(keys))
  end)
  if type(v) ~= "table" then
    return nil, err or "no answer"
  end
  local out = {}
  for i = 1, #ids do
    out[i] = type(v[i]) == "string" and v[i] or nil
  end
  return out
end

function Tasks:by_upstream(upstream_id)
  return get1(self, "u:" .. tostring(upstream_id))
end

function Tasks:by_external(account, external_id)
  return get1(self, "x:" .. account .. ":" .. tostring(external_id))
end

-- list(...) -> records, newest first | nil, message (Redis cannot be read now)
-- One page of a list in one round trip (a page of 500 was 1,000 of them, one after another,
-- for a query that costs its client nothing).
function Tasks:list(account, endpoint, page, size)
  local texts, err = self.redis:run(LIST, "l:" .. account .. ":" .. tostring(endpoint), tostring(page),
    tostring(size))
  if type(texts) ~= "table" then
    return nil, err or "no answer"
  end
  local out = {}
  for _, s in ipairs(texts) do
    local rec = json.decode(s)
    if type(rec) == "table" then
      out[#out + 1] = rec
    end
  end
  return out
end

function Tasks:pop(queue, max)
  local items = self.redis:run(POP, queue, tostring(max or 1000))
  return type(items) == "table" and items or {}
end

-- news(id, at): kling.resty.tasks's, the same entries (tasks.news_item) on a Redis list.
function Tasks:news(id, at)
  local r = self.redis
  local ok, err = r:with(function(red)
    return red:rpush(r.prefix .. M.Q_NEWS, tasks_q.news_item(id, at))
  end)
  if not ok then
    ngx.log(ngx.ERR, "kling tasks (redis): cannot queue news of ", id, ": ", err)
  end
end

function Tasks:active_ids()
  local r = self.redis
  local ids = r:with(function(red)
    return red:smembers(r.prefix .. "active")
  end)
  if type(ids) ~= "table" then
    return nil, "the active tasks cannot be read from Redis now"
  end
  return ids
end

-- keep(ids), unkeep(id), kept_page(cursor, count): kling.resty.tasks's, the set kept in Redis.
-- A Redis that cannot be written now returns nil, message (the sweep keeps them again later).
function Tasks:keep(ids)
  if #ids == 0 then
    return true
  end
  local r = self.redis
  return r:with(function(red)
    return red:sadd(r.prefix .. "kept", unpack(ids))
  end)
end

function Tasks:unkeep(id)
  local r = self.redis
  return r:with(function(red)
    return red:srem(r.prefix .. "kept", id)
  end)
end

-- -> the next cursor ("0": the last page), ids | nil, message
function Tasks:kept_page(cursor, count)
  local r = self.redis
  local res, err = r:with(function(red)
    return red:sscan(r.prefix .. "kept", cursor or "0", "COUNT", count)
  end)
  if type(res) ~= "table" or type(res[2]) ~= "table" then
    return nil, err or "no answer"
  end
  return tostring(res[1]), res[2]
end

function Tasks.journal_errors()
  return 0 -- counted once, by the meter (the same Redis)
end

function Tasks.restore()
  return 0
end

return M
