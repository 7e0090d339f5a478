--- The ledger's store in Redis (the gateway on several nodes).
-- kling.money.stores.shared's balances in Redis: the same methods and refusal codes, each
-- movement one Lua script (atomic in Redis: a reservation is one script), so a balance is a
-- hard cap across every node and worker. kling.money.ledger decides the movements
-- (ledger{store = this}). Each script also appends the movement's ledger line (with the
-- account) to the list <prefix>ledger in the same step: money never moves without its record.
-- Amounts are integer micro-units (exact in Redis's Lua doubles below 2^53).
--
-- Keys: <p>a:<account> (hash: base, topup, limit, avail, spent, reserved, open: its holds), <p>holds (hash
-- task_key -> "account|micros"), <p>e:<task_key> (settled|released: the one end of a hold, kept
-- `ended_ttl` seconds, so that a second end is refused; <p>ended, a hash of them that never
-- shed a field, is still read for the ends written before them), <p>tu:<account>:<id> (a
-- top-up's id -> its micros, kept `topup_id_ttl`: the same id adds nothing again within it; the
-- hash <p>tu:<account> of an earlier version's ids, kept for good, is still read), <p>seq,
-- <p>ledger (list of JSON lines: the record of every movement, oldest first, in Redis's memory
-- until archived and trimmed: ledger_head, ledger_trim), <p>ledger_trimmed (how many were),
-- <p>meta (hash: id, currency, price_provider, created_ms: the store's identity, written once
-- by bind when absent), <p>names (hash: an opened or created account's name in lower case -> its
-- name), <p>accounts (the gateway's accounts the admin API created: kling.gateway.accounts).
--
-- Every script that moves or shows money checks <p>meta first (GUARD), in the same script, so
-- the check costs no round trip: a store whose meta is gone, or names another id than the one
-- this node saw, lost its data (FLUSHALL, a failover to an empty replica, a restart without
-- AOF) and is refused rather than taken as new (spent credit would be back, holds gone); a node
-- whose config meters in another currency or catalog is refused rather than moving these
-- balances in its own unit. The id this node saw is kept in its shared dict (`id_key`): a
-- reload keeps it, and the gateway keeps it in a file across restarts (kling.gateway.store_id).
local core = require "kling.core"
local errors = require "kling.errors"
local json = require "kling.json"
local memory = require "kling.money.stores.memory"

local Meter = {}
Meter.__index = Meter

local M = {}

local function validation(field, message)
  return errors.new { kind = "validation", field = field, message = message }
end

local function whole(v)
  return type(v) == "number" and v >= 0 and v == math.floor(v) and v < 2 ^ 53
end

local function fmt(m)
  return string.format("%d", m)
end

-- The store's identity, checked first by every script that moves or shows money: ARGV[2] this
-- node's view of the store, "<id>@<seq>": the store id it saw ('' when it never saw one: then
-- any id is taken, the meta must exist) and the highest movement number (<p>seq) it saw ('' for
-- none), ARGV[3] its currency, ARGV[4] its price provider. -> nil (go on), {-7, the id there or
-- ''} (reset, or started afresh since), {-9, why} (it went back in time: fewer movements than a
-- node saw, marked in the meta for every node), {-8, currency, price provider} (another unit).
local GUARD = [[
local function guard(p, view, currency, provider)
  local id, floor = string.match(view, '^(%x*)@?(%d*)$')
  local m = redis.call('HMGET', p .. 'meta', 'id', 'currency', 'price_provider', 'rolled_back')
  if not m[1] or (id ~= '' and m[1] ~= id) then return {-7, m[1] or ''} end
  if m[4] then return {-9, m[4]} end
  if id ~= '' and floor ~= '' then
    local now = tonumber(redis.call('GET', p .. 'seq') or '0')
    if now < tonumber(floor) then
      local why = string.format('%d %s', now, floor)
      redis.call('HSET', p .. 'meta', 'rolled_back', why)
      return {-9, why}
    end
  end
  if m[2] ~= currency or m[3] ~= provider then return {-8, m[2] or '', m[3] or ''} end
  return nil
end
]]

-- One ledger line, written by the scripts (cjson is Redis's own).
local LINE = [[
local function line(p, op, account, key, task_id, micros, currency, reserved, topup_account, by, topup_id)
  local seq = redis.call('INCR', p .. 'seq')
  local function amount(m)
    local whole, frac = math.floor(m / 1000000), m % 1000000
    if frac == 0 then return string.format('%d', whole) end
    local f = string.format('%06d', frac):gsub('0+$', '')
    return string.format('%d', whole) .. '.' .. f
  end
  local t = redis.call('TIME')
  local e = { seq = seq, time_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), op = op,
    task_key = key, task_id = task_id, amount = amount(micros), currency = currency, account = account }
  if reserved then e.reserved_amount = amount(reserved) end
  e.topup_account = topup_account
  if by and by ~= '' then e.by = by end
  if topup_id and topup_id ~= '' then e.topup_id = topup_id end
  redis.call('RPUSH', p .. 'ledger', cjson.encode(e))
  return seq
end
]]

-- reserve(p, account, key, m, most, fields) -> the reservation's reply: {1, seq}, or a refusal
-- {-1, avail} (over the balance), {-2, 0} (unknown account), {-3, 0} (held or ended), {-6,
-- open} (most holds of the account are open; most: a number, or '' for none). fields:
-- the rest of its ledger line as JSON text, made by the caller (Meter's line_fields): the
-- script adds only the seq and the time (cjson and the amount's formatting were most of a
-- reservation's Lua in Redis). The account is read in one HMGET and written in one HSET (the
-- script is atomic: the same as two HINCRBYs), and the holds open are counted by HLEN of
-- <p>holds: each redis.call is a command Redis runs, converts and appends to its AOF.
local RESERVE_FN = [[
local function reserve(p, account, key, m, most, fields)
  local a = p .. 'a:' .. account
  local v = redis.call('HMGET', a, 'limit', 'avail', 'reserved', 'open')
  if not v[1] then return {-2, 0} end
  if redis.call('HEXISTS', p .. 'holds', key) == 1 or redis.call('EXISTS', p .. 'e:' .. key) == 1
    or redis.call('HEXISTS', p .. 'ended', key) == 1 then
    return {-3, 0}
  end
  local avail = tonumber(v[2])
  if avail < m then return {-1, string.format('%d', avail)} end
  local open = tonumber(v[4]) or 0
  if most ~= '' and open >= tonumber(most) then return {-6, open} end
  redis.call('HSET', a, 'avail', string.format('%d', avail - m), 'reserved',
    string.format('%d', (tonumber(v[3]) or 0) + m), 'open', string.format('%d', open + 1))
  redis.call('HSET', p .. 'holds', key, account .. '|' .. string.format('%d', m))
  local seq = redis.call('INCR', p .. 'seq')
  local t = redis.call('TIME')
  redis.call('RPUSH', p .. 'ledger', '{"seq":' .. string.format('%d', seq) .. ',"time_ms":'
    .. string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. ',' .. fields)
  return {1, seq}
end
]]

-- ARGV: p, the guard's three (GUARD), account, key, micros, most open (reserve's), the line's
-- fields (reserve's), the key that must exist (a task record made in the same round trip:
-- money is held only for a recorded task) or ''
local RESERVE = GUARD .. RESERVE_FN .. [[
local refused = guard(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if refused then return refused end
if ARGV[10] ~= '' and redis.call('EXISTS', ARGV[1] .. ARGV[10]) == 0 then return {-4, 0} end
return reserve(ARGV[1], ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9])
]]

-- The hold and the record it is for in one script (one call per create): ARGV as RESERVE's
-- up to the line's fields, then the writes: n_set, (key, value) x n_set: set only where
-- absent, in order (the first that exists refuses everything: {-5, its index}); n_add, (key,
-- member) x n_add: SADD; n_push, (key, value) x n_push: RPUSH. The keys set are removed again
-- when the hold is refused; the members and values are added only when it is made. The guard
-- comes first: a store refused records nothing either.
local RESERVE_WITH = GUARD .. RESERVE_FN .. [[
local p = ARGV[1]
local refused = guard(p, ARGV[2], ARGV[3], ARGV[4])
if refused then return refused end
local n_set = tonumber(ARGV[10])
local i = 11
for j = 1, n_set do
  if not redis.call('SET', p .. ARGV[i], ARGV[i + 1], 'NX') then
    for k = 1, j - 1 do redis.call('DEL', p .. ARGV[11 + (k - 1) * 2]) end
    return {-5, j}
  end
  i = i + 2
end
local r = reserve(p, ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9])
if r[1] ~= 1 then
  for k = 1, n_set do redis.call('DEL', p .. ARGV[11 + (k - 1) * 2]) end
  return r
end
local n_add = tonumber(ARGV[i])
i = i + 1
for _ = 1, n_add do redis.call('SADD', p .. ARGV[i], ARGV[i + 1]) i = i + 2 end
local n_push = tonumber(ARGV[i])
i = i + 1
for _ = 1, n_push do redis.call('RPUSH', p .. ARGV[i], ARGV[i + 1]) i = i + 2 end
return r
]]

-- The one statement of a capped settle's charge (kling.money.stores.memory's), run here as
-- every store runs it: in the step that reads and ends the hold.
local CHARGE = memory.CHARGE_RULE

-- ARGV: p, the guard's three (GUARD), key, op (settled|released), micros (settle; '' with
-- at_most_held: the hold), task_id, currency, account (settle without a hold), the end's life
-- (s), by, at_most_held ('1': charge_of's charge, never past the hold). -> {1, seq, account,
-- held, charged, 1 when the price passed the hold}
local END = CHARGE .. GUARD .. LINE .. [[
local p = ARGV[1]
local refused = guard(p, ARGV[2], ARGV[3], ARGV[4])
if refused then return refused end
local key, op, m, task_id, currency, fallback, life, by = ARGV[5], ARGV[6], tonumber(ARGV[7]), ARGV[8], ARGV[9],
  ARGV[10], ARGV[11], ARGV[12]
local h = redis.call('HGET', p .. 'holds', key)
local account, held = nil, 0
if h then
  local a, n = string.match(h, '^(.*)|(%d+)$')
  account, held = a, tonumber(n)
elseif op == 'settled' and fallback ~= '' then
  account = fallback
end
local capped = false
if op == 'settled' and ARGV[13] == '1' then
  m, capped = charge_of(m, h and held or nil)
end
if not account then return {-2, 0} end
if redis.call('HEXISTS', p .. 'a:' .. account, 'limit') == 0 then return {-2, 0} end
local before = redis.call('HGET', p .. 'ended', key)
if before then return {-3, before} end
if not redis.call('SET', p .. 'e:' .. key, op, 'NX', 'EX', life) then
  return {-3, redis.call('GET', p .. 'e:' .. key)}
end
local a = p .. 'a:' .. account
if h then
  redis.call('HDEL', p .. 'holds', key)
  -- never below 0: the holds made before accounts counted them end uncounted
  if (tonumber(redis.call('HGET', a, 'open')) or 0) > 0 then redis.call('HINCRBY', a, 'open', -1) end
end
if op == 'settled' then
  redis.call('HINCRBY', a, 'avail', held - m)
  redis.call('HINCRBY', a, 'reserved', -held)
  redis.call('HINCRBY', a, 'spent', m)
  return {1, line(p, 'settle', account, key, task_id, m, currency, held, nil, by), account,
    string.format('%d', held), string.format('%d', m), capped and 1 or 0}
end
redis.call('HINCRBY', a, 'avail', held)
redis.call('HINCRBY', a, 'reserved', -held)
return {1, line(p, 'release', account, key, task_id, held, currency, nil, nil, by), account,
  string.format('%d', held)}
]]

-- ARGV: p, the guard's three (GUARD), account, base credit, currency, '1' for an account of a
-- config file ('' else). Each open names the account in <p>names (its name in lower case -> its
-- name: a new account's WRITE, kling.gateway.accounts, refuses a name there in any case), and an
-- open of a name kept there by another spelling is refused ({-11, that spelling}: the rule of
-- every store, kling.money.stores.memory name_kept: Dave beside dave were two balances). A
-- config file's account is not opened where the gateway's admin API created one of its name, in
-- any case (<p>accounts has cn:<name>: {-10, that name}): a create that landed between a node's
-- check of its file and its open of the file's account gave both one balance. An
-- account is opened once: the credit it is first opened with (the config's, or the admin API's
-- at its creation) is its base credit, written with a ledger line of its own ("credit", its
-- amount); an account
-- the store has already keeps its own ({0, its base credit}): nodes whose configs disagree
-- set it back and forth otherwise, each start of a stale node restoring a credit the operator
-- had lowered. CREDIT changes it, on purpose. The limit is the base plus the top-ups.
local OPEN = GUARD .. LINE .. [[
local p = ARGV[1]
local refused = guard(p, ARGV[2], ARGV[3], ARGV[4])
if refused then return refused end
local account, base = ARGV[5], tonumber(ARGV[6])
local a = p .. 'a:' .. account
local named = redis.call('HGET', p .. 'names', string.lower(account))
if ARGV[8] == '1' then
  for _, n in ipairs({account, named}) do
    if n and redis.call('HEXISTS', p .. 'accounts', 'cn:' .. n) == 1 then return {-10, n} end
  end
end
if named and named ~= account then return {-11, named} end
if not named then
  redis.call('HSET', p .. 'names', string.lower(account), account) -- (no write once named: a full Redis opens)
end
if redis.call('HEXISTS', a, 'limit') == 1 then return {0, redis.call('HGET', a, 'base') or ''} end
local v = redis.call('HMGET', a, 'topup', 'spent', 'reserved')
local limit = base + (tonumber(v[1]) or 0)
local spent, reserved = tonumber(v[2]) or 0, tonumber(v[3]) or 0
redis.call('HSET', a, 'base', string.format('%d', base), 'limit', string.format('%d', limit), 'avail',
  string.format('%d', limit - spent - reserved), 'spent', string.format('%d', spent), 'reserved',
  string.format('%d', reserved))
line(p, 'credit', account, nil, nil, base, ARGV[7])
return {1}
]]

-- ARGV: p, the guard's three (GUARD), account, base credit, currency, cap. The operator's
-- change of an account's credit (the admin API, through any node, for every node): the base
-- replaced, the limit (base plus top-ups) and the available balance moved by the difference,
-- and a ledger line ("credit", the new base) when it changed. {0}: no such account; {2}: the
-- limit would pass the cap; {1, the line's seq, or 0 when the credit was already that}.
local CREDIT = GUARD .. LINE .. [[
local p = ARGV[1]
local refused = guard(p, ARGV[2], ARGV[3], ARGV[4])
if refused then return refused end
local account, base, cap = ARGV[5], tonumber(ARGV[6]), ARGV[8]
local a = p .. 'a:' .. account
local v = redis.call('HMGET', a, 'limit', 'base', 'topup')
if not v[1] then return {0} end
if tonumber(v[2]) == base then return {1, 0} end
local limit = base + (tonumber(v[3]) or 0)
if cap ~= '' and limit > tonumber(cap) then return {2} end
redis.call('HSET', a, 'base', string.format('%d', base), 'limit', string.format('%d', limit))
redis.call('HINCRBY', a, 'avail', limit - tonumber(v[1]))
return {1, line(p, 'credit', account, nil, nil, base, ARGV[7])}
]]

-- ARGV: p, this node's view of the store (GUARD's "<id>@<seq>"), currency, price provider, a new
-- id. The store's identity: its meta, written when absent and this node saw no store before
-- ({1, id, currency, price provider, created_ms, the movements' number}: what the store
-- records, the caller compares); absent while this node saw one: {-7, ''} (reset: written
-- again, it would take the lost data for a new store); another id than the one seen: {-7, that
-- id} (started afresh since, by a node that saw nothing before); fewer movements than this node
-- saw, or marked so by a node that found it: {-9, why} (GUARD's). A node that saw no store
-- finding one marked starts it afresh (a new id: README, Several nodes, says when to do that).
local BIND = [[
local p = ARGV[1]
local known, floor = string.match(ARGV[2], '^(%x*)@?(%d*)$')
local k = p .. 'meta'
local m = redis.call('HMGET', k, 'id', 'currency', 'price_provider', 'created_ms', 'rolled_back')
local seq = tonumber(redis.call('GET', p .. 'seq') or '0')
if not m[1] or (m[5] and known == '') then
  if known ~= '' then return {-7, ''} end
  local t = redis.call('TIME')
  local created = string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  redis.call('HDEL', k, 'rolled_back')
  redis.call('HSET', k, 'id', ARGV[5], 'currency', ARGV[3], 'price_provider', ARGV[4], 'created_ms', created)
  return {1, ARGV[5], ARGV[3], ARGV[4], created, seq}
end
if known ~= '' and m[1] ~= known then return {-7, m[1]} end
if m[5] then return {-9, m[5]} end
if floor ~= '' and seq < tonumber(floor) then
  local why = string.format('%d %s', seq, floor)
  redis.call('HSET', k, 'rolled_back', why)
  return {-9, why}
end
return {1, m[1], m[2] or '', m[3] or '', m[4] or '', seq}
]]

-- ARGV: p, the guard's three (GUARD), account: {1, its fields as HMGET gives them}, or the
-- guard's refusal (a balance read from a reset store, or shown in another unit, is no balance).
local ACCOUNT = GUARD .. [[
local refused = guard(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if refused then return refused end
return {1, redis.call('HMGET', ARGV[1] .. 'a:' .. ARGV[5], 'limit', 'spent', 'reserved', 'avail', 'open')}
]]

-- ARGV: p, the guard's three (GUARD), account, micros, amount, currency, cap, id, the id's life
-- (s, '' for good). The cap is checked in the script that adds the credit, so top-ups racing on
-- several nodes cannot both pass it (2: refused). An id ('' for none) is remembered in
-- <p>tu:<account>:<id> (its micros) for its life, in the same script: the same id again adds
-- nothing ({3}: applied before) or is refused ({4, micros}: another amount). The ids of an
-- earlier version, in the hash <p>tu:<account> for good, are still read. Its ledger line is
-- like every other (seq, time, account), with topup_account and topup_id as the journal's.
local TOPUP = GUARD .. LINE .. [[
local p = ARGV[1]
local refused = guard(p, ARGV[2], ARGV[3], ARGV[4])
if refused then return refused end
local account, m, id = ARGV[5], tonumber(ARGV[6]), ARGV[10]
local a = p .. 'a:' .. account
local limit = redis.call('HGET', a, 'limit')
if not limit then return {0} end
local idkey = p .. 'tu:' .. account .. ':' .. id
if id ~= '' then
  local before = redis.call('GET', idkey) or redis.call('HGET', p .. 'tu:' .. account, id)
  if before then return tonumber(before) == m and {3} or {4, before} end
end
if ARGV[9] ~= '' and m > tonumber(ARGV[9]) - tonumber(limit) then return {2} end
redis.call('HINCRBY', a, 'topup', m)
redis.call('HINCRBY', a, 'limit', m)
redis.call('HINCRBY', a, 'avail', m)
if id ~= '' and ARGV[11] ~= '' then
  redis.call('SET', idkey, ARGV[6], 'EX', ARGV[11])
elseif id ~= '' then
  redis.call('SET', idkey, ARGV[6])
end
return {1, line(p, 'topup', account, nil, nil, m, ARGV[8], nil, account, nil, id)}
]]

-- new{redis = kling.gateway.redis, currency =, price_provider = the catalog that prices its
-- amounts, dict = shared dict (the store id this node saw, under id_key, and the highest
-- movement number it saw, under floor_key: a reload keeps them), id_key = its key ("store:id"),
-- floor_key = its key ("store:seq"), advice = what the operator can do about a reset store
-- (added to the refusal's message), ended_ttl = seconds the end of a hold is remembered
-- (refusing a second end of it), topup_id_ttl = seconds a top-up's id is remembered (nil: for
-- good)} -> meter
function M.new(opts)
  local ttl, id_ttl = opts.ended_ttl, opts.topup_id_ttl
  if not (type(ttl) == "number" and ttl >= 1 and ttl == math.floor(ttl)) then
    error("kling.money.stores.redis: ended_ttl must be a whole number of seconds, at least 1", 2)
  end
  if id_ttl ~= nil and not (type(id_ttl) == "number" and id_ttl >= 1 and id_ttl == math.floor(id_ttl)) then
    error("kling.money.stores.redis: topup_id_ttl must be a whole number of seconds, at least 1", 2)
  end
  return setmetatable({ redis = opts.redis, currency = opts.currency, price_provider = opts.price_provider or "",
    dict = opts.dict, id_key = opts.id_key or "store:id", floor_key = opts.floor_key or "store:seq",
    advice = opts.advice, clock = core.wall_ms, ended_ttl = ttl, topup_id_ttl = id_ttl }, Meter)
end

local function store_error(err, code)
  return errors.new { kind = "server", field = "store", code = code, message = tostring(err) }
end

--- The store id this node saw ('' for none): what GUARD compares with the store's meta.
function Meter:seen_id()
  return self.dict and self.dict:get(self.id_key) or ""
end

--- The highest movement number (<p>seq) this node saw in the store (0 for none).
function Meter:floor()
  return self.dict and self.dict:get(self.floor_key) or 0
end

-- A movement numbered seq was seen: the floor rises to it. Two workers may race here and keep
-- the lower of their two numbers: the floor then trails by a movement or two, never passes
-- what the store had.
local function saw(self, seq)
  seq = tonumber(seq)
  local d = self.dict
  if d and seq and seq > (d:get(self.floor_key) or 0) then
    d:set(self.floor_key, seq)
  end
end

-- This node's view of the store as GUARD reads it: "<id>@<floor>", or the id alone.
local function view_of(self)
  local id, floor = self:seen_id(), self:floor()
  if id == "" or floor == 0 then
    return id
  end
  return id .. "@" .. string.format("%d", floor)
end

-- The id in a view.
local function id_of(view)
  return (view:match("^[^@]*"))
end

-- The guard's three arguments (GUARD): this node's view of the store, its currency, its price
-- provider.
local function guard_args(self)
  return view_of(self), self.currency, self.price_provider
end

-- Where the store is, for the operator (its password left out).
local function where(self)
  local c = self.redis.cfg or {}
  return "the Redis store " .. tostring(self.redis.prefix) .. " at " .. tostring(c.host) .. ":" .. tostring(c.port)
    .. "/" .. tostring(c.db)
end

-- Why GUARD (or BIND) refused, named for the operator ({-7, id}, {-9, why} or {-8, currency,
-- provider}; view: what this node gave it) -> message, code | nil (not a refusal of the guard).
local function refusal(self, res, view)
  local seen = view and id_of(view)
  if type(res) ~= "table" then
    return nil
  elseif res[1] == -9 then
    local now, floor = tostring(res[2]):match("^(%d+) (%d+)$")
    return "the store went back in time: " .. where(self) .. " has " .. tostring(now) .. " movements now, but a"
      .. " gateway node saw " .. tostring(floor) .. " there: Redis lost its last writes (a power loss under"
      .. " appendfsync everysec, a failover to a replica that lagged, an older AOF or RDB copy put back), and"
      .. " with them spent credit, holds and tasks; no node moves money in it (fail closed; marked in "
      .. self.redis.prefix .. "meta for every node)" .. (self.advice and ("; " .. self.advice) or ""),
      "store_rolled_back"
  elseif res[1] == -7 and seen == "" then
    return where(self) .. " has no meta hash " .. self.redis.prefix .. "meta yet: no gateway node has opened it"
      .. " (the first worker of a node opens it at its start; try again)", "store_unopened"
  elseif res[1] == -7 then
    local now = res[2] ~= "" and ("is store " .. tostring(res[2]) .. " now, but this node saw store " .. seen
      .. " there (started afresh by a node that had not seen it)") or ("has lost its meta hash "
      .. self.redis.prefix .. "meta, yet this node saw store " .. seen .. " there")
    return "the store was reset: " .. where(self) .. " " .. now .. ": its data was lost (FLUSHALL, a failover to"
      .. " an empty replica, a restart without its AOF), and with it spent credit, holds and tasks; this node moves"
      .. " no money in it (fail closed)" .. (self.advice and ("; " .. self.advice) or ""), "store_reset"
  elseif res[1] == -8 then
    return "this node meters in currency " .. tostring(self.currency) .. " priced by " .. self.price_provider
      .. ", but " .. where(self) .. " holds its balances in " .. tostring(res[2]) .. " priced by "
      .. tostring(res[3]) .. ": this node moves no money in it (another unit) until its config says currency "
      .. tostring(res[2]) .. " and price_provider " .. tostring(res[3]) .. " (then reload it)", "store_differs"
  end
  return nil
end

-- A script's answer -> the answer | nil, err (Redis could not answer, or GUARD refused).
local function guarded(self, view, res, err)
  if type(res) ~= "table" then
    return nil, store_error(err or "unexpected answer")
  end
  local why, code = refusal(self, res, view)
  if why then
    return nil, store_error(why, code)
  end
  return res
end

--- bind() -> meta {id, currency, price_provider, created_ms} | nil, err [, meta]: the store's
-- identity, written when absent if this node saw no store before, and the id kept in the
-- node's dict (kept where the currency or catalog differ too: this node saw that store), with
-- the store's movements' number as the floor this node saw (a store found below it went back
-- in time). err (kind server) has code "store_reset" (the meta is gone or another id: never
-- written again here), "store_rolled_back" (fewer movements than a node saw), "store_differs"
-- (its currency or price provider is not this node's; the meta is the third value) or none
-- (Redis could not answer). One round trip: the gateway's first worker calls it at start and
-- every few seconds, never per movement.
function Meter:bind()
  local seen = self:seen_id()
  local view = view_of(self)
  local res, err = guarded(self, view, self.redis:run(BIND, view, self.currency, self.price_provider,
    core.random_hex(16)))
  if not res then
    return nil, err
  end
  local meta = { id = res[2], currency = res[3], price_provider = res[4], created_ms = tonumber(res[5]) }
  if meta.id ~= seen and self.dict then
    -- another store (or the first): its own movements are the floor from now on
    local ok, derr = self.dict:safe_set(self.id_key, meta.id)
    if ok then
      ok, derr = self.dict:safe_set(self.floor_key, tonumber(res[6]) or 0)
    end
    if not ok then
      return nil, store_error("shared memory: cannot keep the store's id: " .. tostring(derr))
    end
  else
    saw(self, res[6])
  end
  if meta.currency ~= self.currency or meta.price_provider ~= self.price_provider then
    return nil, store_error(refusal(self, { -8, meta.currency, meta.price_provider })), meta
  end
  return meta
end

--- open_account(name, credit [, {file = true}]) -> figures [, the store's own credit (micros)] |
-- nil, err: an account opened with that credit, the first time the store sees it. An account
-- the store has already keeps its credit (set_credit changes it): its figures, and its credit
-- when it is not this one, so that the caller can say so. file: an account of a config file,
-- refused where the gateway's admin API created an account of its name in any case (err: kind
-- validation, field name, code "name_created", created = that account's name), in the step that
-- opens it.
function Meter:open_account(name, limit, opts)
  local bad = memory.name_problem(name)
  if bad then
    return nil, bad
  end
  local m = core.money_parse(tostring(limit))
  if not m or m < 0 then
    return nil, validation("accounts." .. name .. ".credit", "must be a decimal amount, not negative")
  end
  local view, cur, pp = guard_args(self)
  local res, err = guarded(self, view, self.redis:run(OPEN, view, cur, pp, name, fmt(m), self.currency,
    opts and opts.file and "1" or ""))
  if not res then
    return nil, err
  elseif res[1] == -10 then
    return nil, errors.new { kind = "validation", field = "name", code = "name_created", created = tostring(res[2]),
      message = "account " .. name .. " is not opened: the admin API created account " .. tostring(res[2])
        .. " in the store, and balances and tasks are kept by name" }
  elseif res[1] == -11 then
    return nil, memory.name_kept(name, tostring(res[2]))
  end
  local a, aerr = self:account(name)
  if not a then
    return nil, store_error(aerr or "the account cannot be read")
  end
  local kept = res[1] == 0 and tonumber(res[2]) or nil
  return a, kept ~= m and kept or nil
end

--- set_credit(name, micros, cap) -> figures | false (the limit would pass cap) | nil, err: the
-- account's credit replaced (its top-ups kept; the balance moved by the difference).
function Meter:set_credit(name, micros, cap)
  if not whole(micros) then
    return nil, validation("credit", "must be a decimal amount, not negative")
  end
  local view, cur, pp = guard_args(self)
  local res, err = guarded(self, view, self.redis:run(CREDIT, view, cur, pp, name, fmt(micros), self.currency,
    cap and fmt(cap) or ""))
  if not res then
    return nil, err
  elseif res[1] == 0 then
    return nil, validation("account", "unknown account '" .. tostring(name) .. "'")
  elseif res[1] == 2 then
    return false
  end
  saw(self, res[2])
  local a, aerr = self:account(name)
  if not a then
    return nil, store_error(aerr or "the account cannot be read")
  end
  return a
end

function Meter:known(account)
  return self:account(account) ~= nil
end

-- What a reservation's script answered -> entry | nil, code, detail (the refusal codes of
-- kling.money.stores.memory, and "no_record": the task record it was to be held for is missing)
local function reserve_answer(self, res, err, account, key, micros, view)
  if not res then
    return nil, "store", tostring(err)
  end
  if type(res) == "table" and res[1] == false then
    return nil, "store", tostring(res[2])
  end
  local why = refusal(self, res, view)
  if why then
    return nil, "store", why
  elseif res[1] == -5 then
    return nil, "exists_key", tonumber(res[2])
  elseif res[1] == -2 then
    return nil, "unknown_account"
  elseif res[1] == -3 then
    return nil, "exists"
  elseif res[1] == -4 then
    return nil, "no_record"
  elseif res[1] == -1 then
    return nil, "over", tonumber(res[2])
  elseif res[1] == -6 then
    return nil, "busy", tonumber(res[2])
  end
  saw(self, res[2])
  return { seq = res[2], op = "reserve", task_key = key, account = account, micros = micros,
    amount = core.money_format(micros), currency = self.currency }
end

-- The fields of a reservation's ledger line but its seq and time, as JSON text ending the
-- object (RESERVE_FN adds the rest).
local function line_fields(self, account, key, micros, info)
  return '"op":"reserve","task_key":' .. json.encode(key) .. ',"task_id":' .. json.encode(info and info.task_id or key)
    .. ',"amount":"' .. core.money_format(micros) .. '","currency":' .. json.encode(self.currency) .. ',"account":'
    .. json.encode(account) .. "}"
end

-- The most holds open the account may have, as the reservation scripts take it ('': none).
local function most_of(info)
  return info and info.open_max and fmt(info.open_max) or ""
end

function Meter:reserve(account, key, micros, info)
  if not whole(micros) then
    error("kling.money.stores.redis:reserve: micros must be a whole number >= 0", 2)
  end
  local view, cur, pp = guard_args(self)
  local res, err = self.redis:run(RESERVE, view, cur, pp, account, key, fmt(micros), most_of(info),
    line_fields(self, account, key, micros, info), "")
  return reserve_answer(self, res, err, account, key, micros, view)
end

-- reserve_call(account, key, micros, {task_id}, record) -> call, read: the reservation as a
-- script call for kling.gateway.redis (run, or run_many with others), and read(result) ->
-- what reserve answers. record: the key of a task record made before it in the same round
-- trip (held only if that record exists), or the record's own writes, made in the same
-- script as the hold (one call per create): {set = {{key, value}, ...} (set where absent;
-- the first that exists refuses: code "exists_key", detail its index), add = {{set key,
-- member}, ...}, push = {{list key, value}, ...}} (RESERVE_WITH says when each is made).
function Meter:reserve_call(account, key, micros, info, record)
  if not whole(micros) then
    error("kling.money.stores.redis:reserve_call: micros must be a whole number >= 0", 2)
  end
  local view, cur, pp = guard_args(self)
  local call
  if type(record) == "table" then
    call = { RESERVE_WITH, view, cur, pp, account, key, fmt(micros), most_of(info),
      line_fields(self, account, key, micros, info) }
    for _, part in ipairs { "set", "add", "push" } do
      local list = record[part] or {}
      call[#call + 1] = tostring(#list)
      for _, kv in ipairs(list) do
        call[#call + 1] = kv[1]
        call[#call + 1] = kv[2]
      end
    end
    call.n = #call
  else
    call = { RESERVE, view, cur, pp, account, key, fmt(micros), most_of(info),
      line_fields(self, account, key, micros, info), record or "", n = 10 }
  end
  return call, function(res)
    return reserve_answer(self, res, nil, account, key, micros, view)
  end
end

local function finish(self, key, op, micros, info)
  -- A create refused upstream goes with its task (kling.money.ledger's forgotten): its end is
  -- kept only while a second end could still race it.
  local life = info and info.forgotten and 1 or self.ended_ttl
  local view, cur, pp = guard_args(self)
  local at_most = op == "settled" and info and info.at_most_held
  local res, err = self.redis:run(END, view, cur, pp, key, op, micros and fmt(micros) or (at_most and "" or "0"),
    info and info.task_id or key, self.currency, info and info.account or "", fmt(life), info and info.by or "",
    at_most and "1" or "")
  if not res then
    return nil, "store", tostring(err)
  end
  local why = refusal(self, res, view)
  if why then
    return nil, "store", why
  elseif res[1] == -2 then
    return nil, op == "settled" and "unknown_account" or "no_hold"
  elseif res[1] == -3 then
    return nil, "ended", tostring(res[2])
  end
  saw(self, res[2])
  local held = tonumber(res[4])
  local m = op == "settled" and tonumber(res[5]) or held
  return { seq = res[2], op = op == "settled" and "settle" or "release", task_key = key, account = res[3],
    micros = m, amount = core.money_format(m), currency = self.currency,
    priced = res[6] == 1 and micros or nil } -- the price past the hold, not charged
end

-- settle(key, micros, info) as kling.money.stores.shared's: with info.at_most_held the charge is
-- memory.charge_of's (micros nil: the hold), decided in the script that ends the hold.
function Meter:settle(key, micros, info)
  if not (whole(micros) or micros == nil and info and info.at_most_held) then
    error("kling.money.stores.redis:settle: micros must be a whole number >= 0", 2)
  end
  return finish(self, key, "settled", micros, info)
end

function Meter:release(key, info)
  return finish(self, key, "released", 0, info)
end

function Meter:topup(account, micros, cap, id)
  if not whole(micros) or micros == 0 then
    return nil, validation("amount", "must be a positive amount")
  end
  local view, cur, pp = guard_args(self)
  local res, err = guarded(self, view, self.redis:run(TOPUP, view, cur, pp, account, fmt(micros),
    core.money_format(micros), self.currency, cap and fmt(cap) or "", id or "",
    self.topup_id_ttl and fmt(self.topup_id_ttl) or ""))
  if not res then
    return nil, err
  end
  local code = res[1]
  if code == 0 then
    return nil, validation("account", "unknown account '" .. tostring(account) .. "'")
  elseif code == 2 then
    return false
  elseif code == 4 then
    return nil, memory.topup_id_clash(account, id, tonumber(res[2]))
  elseif code == 1 then
    saw(self, res[2])
  end
  local a, aerr = self:account(account)
  if not a then
    return nil, store_error(aerr or "the account cannot be read")
  end
  if code == 3 then
    return a, true
  end
  return a
end

-- Every account is in the store's one currency (an unknown one is refused when it moves).
function Meter:currency()
  return self.currency
end

-- The hold of a task key: account, micros (or nil).
function Meter:hold(key)
  local h, err = self.redis:with(function(red)
    return red:hget(self.redis.prefix .. "holds", key)
  end)
  if type(h) ~= "string" then
    return nil, nil, h == nil and err or nil -- a third value: Redis could not say
  end
  local account, m = h:match("^(.*)|(%d+)$")
  return account, tonumber(m)
end

-- ARGV: p, the guard's three (GUARD): {1}, or the guard's refusal.
local CHECK = GUARD .. [[
local refused = guard(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if refused then return refused end
return {1}
]]

--- check() -> true | nil, message: whether this node may read the store now (Redis answers, and
-- the guard takes it: not reset, not gone back in time, this node's unit), for a read that shows
-- what the store holds without a script of its own (the kept holds).
function Meter:check()
  local view, cur, pp = guard_args(self)
  local res, err = guarded(self, view, self.redis:run(CHECK, view, cur, pp))
  if not res then
    return nil, err.message
  end
  return true
end

--- account(name) -> figures | nil [, why: Redis could not answer, or the store is refused
-- (reset, another unit): a balance shown from it would be wrong]; nil alone: no such account.
function Meter:account(name)
  local view, cur, pp = guard_args(self)
  local res, err = guarded(self, view, self.redis:run(ACCOUNT, view, cur, pp, name))
  if not res then
    return nil, err.message
  end
  local v = res[2]
  if type(v) ~= "table" or tonumber(v[1]) == nil then
    return nil
  end
  local limit, spent, reserved, avail = tonumber(v[1]), tonumber(v[2]) or 0, tonumber(v[3]) or 0, tonumber(v[4]) or 0
  local f = core.money_format
  return { name = name, currency = self.currency, limit = f(limit), spent = f(spent), reserved = f(reserved),
    balance = f(avail), limit_micros = limit, spent_micros = spent, reserved_micros = reserved,
    balance_micros = avail, open = tonumber(v[5]) or 0 }
end

-- hold_page(cursor, count) -> next cursor ("0": the walk is over), task keys | nil, message: a
-- page of the holds open (HSCAN of <p>holds: a walk over pages sees every hold open through
-- it, whatever changes meanwhile, and perhaps some twice).
function Meter:hold_page(cursor, count)
  local r = self.redis
  local res, err = r:with(function(red)
    return red:hscan(r.prefix .. "holds", cursor or "0", "COUNT", count or 200)
  end)
  if type(res) ~= "table" or type(res[2]) ~= "table" then
    return nil, err or "no answer"
  end
  local keys = {}
  for i = 1, #res[2], 2 do
    keys[#keys + 1] = res[2][i]
  end
  return tostring(res[1]), keys
end

-- The holds open: the fields of <p>holds (a hold is a field from its reservation to its end).
function Meter:open_holds()
  local r = self.redis
  return tonumber((r:with(function(red)
    return red:hlen(r.prefix .. "holds")
  end))) or 0
end

function Meter:entries_count()
  local r = self.redis
  return tonumber((r:with(function(red)
    return red:get(r.prefix .. "seq")
  end))) or 0
end

-- The record grows by a line a movement, in Redis's memory; balances never read it. An operator
-- archives it from the oldest line and trims what is archived.

-- Both go through the guard: a node must not read or trim the record of a store it refuses
-- (reset, gone back in time, another unit). A reset store numbers its lines from 0 again, and an
-- archiver reading it through a node that saw the old one wrote its lines over the old store's
-- archived parts of the same offsets (the record of every movement before the loss).

-- ARGV: p, the guard's three (GUARD), limit. {1, the number of lines trimmed before them
-- (<p>ledger_trimmed: the first line's place in the whole record), the oldest lines}, read
-- together, or the guard's refusal.
local HEAD = GUARD .. [[
local refused = guard(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if refused then return refused end
return {1, tonumber(redis.call('GET', ARGV[1] .. 'ledger_trimmed') or '0'),
  redis.call('LRANGE', ARGV[1] .. 'ledger', 0, tonumber(ARGV[5]) - 1)}
]]

--- The oldest lines of the ledger list, exactly as stored, at most `limit` -> lines, the place
-- of the first in the whole record (0 for the first line ever) | nil, message (Redis away, or
-- the store refused: why, and what to do)
function Meter:ledger_head(limit)
  local view, cur, pp = guard_args(self)
  local res, err = guarded(self, view, self.redis:run(HEAD, view, cur, pp, limit))
  if not res then
    return nil, err.message
  elseif type(res[3]) ~= "table" then
    return nil, "unexpected answer"
  end
  return res[3], res[2]
end

-- ARGV: p, the guard's three (GUARD), n, sha1. The oldest n lines go only when they are those
-- archived: the SHA-1 of their text (each line and a newline, as ledger_head's lines are written
-- out) proves it. Lines are only ever added at the tail, so a trim never takes one that was not
-- read.
local TRIM = GUARD .. [[
local refused = guard(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if refused then return refused end
local k, n = ARGV[1] .. 'ledger', tonumber(ARGV[5])
local lines = redis.call('LRANGE', k, 0, n - 1)
if #lines < n then return {-1, #lines} end
if redis.sha1hex(table.concat(lines, '\n') .. '\n') ~= ARGV[6] then return {-2, 0} end
redis.call('LTRIM', k, n, -1)
redis.call('INCRBY', ARGV[1] .. 'ledger_trimmed', n)
return {1, redis.call('LLEN', k)}
]]

--- Removes the oldest n lines of the ledger list once archived -> lines left | nil, code
-- ("short": fewer than n, detail how many; "differs": not the lines whose SHA-1 is sha1;
-- "store": Redis away or the store refused, detail why), detail.
function Meter:ledger_trim(n, sha1)
  local view, cur, pp = guard_args(self)
  local res, err = guarded(self, view, self.redis:run(TRIM, view, cur, pp, n, sha1))
  if not res then
    return nil, "store", err.message
  elseif res[1] == -1 then
    return nil, "short", res[2]
  elseif res[1] == -2 then
    return nil, "differs"
  end
  return res[2]
end

-- No journal here (Redis is the record): no journal write ever fails.
function Meter.journal_errors()
  return 0
end

-- store_errors() -> {connect = n, call = n}: the Redis calls (reads and writes) failed so far,
-- by stage (kling.gateway.redis error_counts).
function Meter:store_errors()
  return self.redis:error_counts()
end

-- Charges by key are not kept here (the ledger list has them).
function Meter.charge()
  return nil
end

-- The movements are in the Redis list <prefix>ledger, not in the process.
function Meter.entries()
  return {}
end

-- Redis keeps everything across restarts of nginx: nothing to rebuild.
function Meter.restore()
  return 0
end

function Meter.holds()
  return {}
end

return M
