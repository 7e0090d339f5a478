-- The gateway's client accounts: those of the config file (read by every worker from the
-- master) and those the admin API creates while nginx runs. Created accounts live in shared
-- memory (every worker sees them at once) and in the journal (a restart brings them back),
-- or in Redis (several nodes: each keeps a copy for CACHE_S); the file's accounts win a name
-- or key clash (on one node a file that clashes is refused at start and reload: file_clash;
-- with Redis, where nginx's master cannot read the created ones, a created account the file
-- contradicts signs nothing in: contradicted, and neither does a file account of its name:
-- file_signs_in), and a reload never drops a created one. A
-- created account is changed by the
-- admin API (its keys, limits, suspension); a file's, in the file.
local config = require "kling.gateway.config"
local core = require "kling.core"
local json = require "kling.json"
local shm = require "kling.resty.shm"
-- An account name's case: the stores' one rule (name_fold), read at each call.
local memory_store = require "kling.money.stores.memory"

local unpack = table.unpack or unpack -- luacheck: ignore 143 (LuaJIT's global unpack)

local Accounts = {}
Accounts.__index = Accounts

local M = {}

-- Seconds a node uses its copy of an account read from Redis before reading it again: how long
-- a key another node replaced (a leaked one) may still be taken here.
M.CACHE_S = 1

-- new{cfg =, dict = shared dict, journal = | redis = kling.gateway.redis (several nodes), kept =}
-- seen_id: with Redis, fn() -> the id of the store this node saw ("" for none: the store's
-- seen_id), so that a key Redis lost (a store reset) is not told "unknown". kept: fn(name) ->
-- the balance store's kept (whether it keeps an account of that name in any case, and the name
-- it has | nil, why it cannot say), asked of a new account's name.
function M.new(opts)
  return setmetatable({ cfg = opts.cfg, dict = opts.dict, journal = opts.journal, redis = opts.redis,
    seen_id = opts.seen_id, kept = opts.kept }, Accounts)
end

-- When a node's copy was read from Redis, in its flags: tenths of a second, modulo 2^32.
local function tenths()
  return math.floor(ngx.now() * 10) % 4294967296
end

-- An account by one of its keys -> account | nil [, message: the store cannot say now]: from
-- shared memory (one node), or from this node's copy while it is fresh, else from Redis
-- (several nodes). A Redis that cannot answer leaves the copy in use (its clients are not told
-- their key is unknown; creates need the store anyway), one that has no such key any more
-- (replaced on another node) removes it.
local function stored(self, key)
  local s, at = self.dict:get(key)
  local r = self.redis
  if r and not (s and (tenths() - at) % 4294967296 < M.CACHE_S * 10) then
    local seen = self.seen_id and self.seen_id() or ""
    local fresh, err = r:with(function(red)
      local v, e = red:hget(r.prefix .. "accounts", key)
      if v == ngx.null and seen ~= "" then
        -- not there: unknown, unless the store lost its data (its meta gone or another's)
        local id = red:hget(r.prefix .. "meta", "id")
        if id ~= seen then
          return nil, "the store was reset (it is not the one this node saw): its accounts cannot be read"
        end
      end
      return v, e
    end)
    if type(fresh) == "string" then
      s = fresh
      self.dict:set(key, s, 0, tenths())
    elseif not err then -- ngx.null: not in Redis
      s = nil
      self.dict:delete(key)
    elseif not s then
      return nil, err
    end
  end
  return s and json.decode(s) or nil
end

-- The config file's account of that name, or nil.
local function of_file(self, name)
  for _, a in ipairs(self.cfg.accounts) do
    if a.name == name then
      return a
    end
  end
end

-- A created account the config file contradicts (read again at each reload, which checks
-- the file against itself only): a file account of its name, or one of its keys or secrets
-- that the config uses (a file account's, the upstream's, admin_key, a webhook secret). The
-- file's wins: such a created account signs nothing in. Balances are kept by name, so its key
-- signed in as the file's account and spent that client's credit (an account "erin" created
-- by the admin API, then a new client "erin" in the file: the old key spent the new credit).
-- -> field, why | nil
local function contradicted(self, acct)
  -- the file's names in lower case, as a set (a sign-in asks this, not a walk of the file): any
  -- case, as one node's file_clash and check_file (a file's Erin refuses a created erin)
  local names = self.file_names
  if not names then
    names = {}
    for _, a in ipairs(self.cfg.accounts) do
      names[memory_store.name_fold(a.name)] = true
    end
    self.file_names = names
  end
  if type(acct.name) == "string" and names[memory_store.name_fold(acct.name)] then
    return "name", "the config file has an account of its name"
  end
  for _, f in ipairs(config.KEY_FIELDS) do
    local v = acct[f]
    if v ~= nil and self.cfg.key_owner[v] then
      return f, "its " .. f .. " is used by the config file as " .. self.cfg.key_owner[v]
    end
  end
end

-- A created account found by a key, unless the config file contradicts it (said once per
-- worker and account in the error log).
local function signs_in(self, acct, err)
  local field, why = nil, nil
  if acct then
    field, why = contradicted(self, acct)
  end
  if not field then
    return acct, err
  end
  self.warned = self.warned or {}
  if not self.warned[acct.name] then
    self.warned[acct.name] = true
    ngx.log(ngx.WARN, "kling gateway: the keys of the account ", acct.name, " created by the admin API are refused: ",
      why, " (", field, "; the file's account wins: give the created one other keys, or the file's another name)")
  end
  return nil
end

-- With Redis: the file's accounts whose names (in any case) the admin API gave to an account of
-- the store, as "\n<name>\n<name>\n" ("" for none), kept in the dict by the first worker at each
-- start and reload once the file's accounts are opened (check_file, file_checked). Balances and
-- tasks are kept by name: the file's "erin" would see the created erin's tasks and balance
-- history, and spend that credit (the store's stands once an account is opened). Neither signs
-- in then (the created one is contradicted), as one node refuses such a file at start.
M.FILE_TAKEN = "file_taken"

-- With Redis: a file account the store opened as the file's (its OPEN refuses a name a created
-- account has, and a create refuses a name the store has since): one key each in the dict,
-- kept across reloads, so that such an account signs in while this start's or reload's check
-- of the whole file (FILE_TAKEN) is not done yet. Only the accounts waited for all of theirs:
-- every file account answered 503 at each reload until the first worker had opened them all.
M.FILE_OPENED = "file_opened:"

--- file_opened(name) -> true | nil, message: the file's account of that name was opened in the
-- Redis store as the file's (kling.gateway init, once its open is done).
function Accounts:file_opened(name)
  local ok, err = self.dict:safe_set(M.FILE_OPENED .. name, true)
  if not ok then
    return nil, "shared memory: " .. tostring(err)
  end
  return true
end

-- A file account, unless its name is a created account's in the store (said once per worker
-- and account) -> account | nil [, message: not checked yet at this start: refused (503) rather
-- than let it sign in first].
local function file_signs_in(self, a)
  if not self.redis then
    return a
  end
  local taken = self.dict:get(M.FILE_TAKEN)
  if taken == nil then
    if self.dict:get(M.FILE_OPENED .. a.name) == true then -- opened as the file's before
      return a
    end
    return nil, "the config file's account " .. a.name .. " is not yet checked against the Redis store's accounts"
      .. " and opened (each start and reload)"
  elseif taken == "" or not taken:find("\n" .. a.name .. "\n", 1, true) then
    return a
  end
  self.warned = self.warned or {}
  if not self.warned["file:" .. a.name] then
    self.warned["file:" .. a.name] = true
    ngx.log(ngx.ERR, "kling gateway: the config file's account ", a.name, " signs nothing in: the admin API created",
      " an account of its name in the Redis store before, whose balance and tasks are kept by that name (the file's",
      " would see them and spend its credit); give the file's account another name and reload")
  end
  return nil
end

--- Whether the config file's account of that name is one file_checked keeps taken (with Redis:
-- the name is a created account's too, so money sent to it would go to that one's balance) |
-- nil, message: the file is not yet checked at this start or reload (a reload forgets the last
-- check; Redis may not answer it), so it cannot be said, as a sign-in of it cannot.
function Accounts:file_taken(name)
  if not self.redis or of_file(self, name) == nil then
    return false
  end
  local taken = self.dict:get(M.FILE_TAKEN)
  if type(taken) ~= "string" then
    if self.dict:get(M.FILE_OPENED .. name) == true then -- opened as the file's before: no created one's
      return false
    end
    return nil, "the config file's accounts are not yet checked against the Redis store's (each start and reload)"
  end
  return taken:find("\n" .. name .. "\n", 1, true) ~= nil
end

--- check_file(created) -> {file account name = the created account's name}: the file's accounts
-- whose names (in any case) created accounts of the Redis store have, which sign nothing in
-- (file_checked keeps them, with those whose opens the store refused).
function Accounts:check_file(created)
  local by_lower, taken = {}, {}
  for _, a in ipairs(created) do
    if type(a.name) == "string" then
      by_lower[memory_store.name_fold(a.name)] = a.name
    end
  end
  for _, f in ipairs(self.cfg.accounts) do
    local other = by_lower[memory_store.name_fold(f.name)]
    if other then
      taken[f.name] = other
    end
  end
  return taken
end

--- file_checked(taken) -> true | nil, message: the file's accounts whose names created accounts
-- of the Redis store have ({file account name = ...}: check_file's, and those whose opens the
-- store refused), kept in the dict for every worker once the file's accounts are opened: they
-- sign nothing in, the others sign in from now on (a reload checks its file again).
function Accounts:file_checked(taken)
  local names = {}
  for name in pairs(taken) do
    names[#names + 1] = name
  end
  table.sort(names)
  local ok, err = self.dict:safe_set(M.FILE_TAKEN, #names > 0 and ("\n" .. table.concat(names, "\n") .. "\n") or "")
  if not ok then
    return nil, "shared memory: " .. tostring(err)
  end
  return true
end

--- The account an api_key signs in | nil [, message: the store cannot be read now].
function Accounts:by_key(api_key)
  local a = self.cfg.by_key[api_key]
  if a then
    return file_signs_in(self, a)
  end
  return signs_in(self, stored(self, "ck:" .. api_key))
end

--- The account an access_key's tokens sign in | nil [, message: the store cannot be read now].
function Accounts:by_access(access_key)
  local a = self.cfg.by_access[access_key]
  if a then
    return file_signs_in(self, a)
  end
  return signs_in(self, stored(self, "ca:" .. access_key))
end

-- -> account | nil [, message: the store cannot say now] (both of stored's values: an `or`
-- kept one, and Redis away read as "no account")
function Accounts:get(name)
  local a = of_file(self, name)
  if a then
    return a
  end
  return stored(self, "cn:" .. name)
end

-- Names of every account: the file's, then the created ones.
function Accounts:names()
  local out, seen = {}, {}
  for _, a in ipairs(self.cfg.accounts) do
    out[#out + 1], seen[a.name] = a.name, true
  end
  local keys = self.dict:get_keys(0)
  if self.redis then
    local r = self.redis
    local all = r:with(function(red)
      return red:hkeys(r.prefix .. "accounts")
    end)
    keys = type(all) == "table" and all or keys
  end
  for _, key in ipairs(keys) do
    local name = key:match("^cn:(.+)$")
    if name and not seen[name] then
      out[#out + 1], seen[name] = name, true
    end
  end
  return out
end

-- The keys an account is found by in the dict (and in Redis's hash): by name, by api_key,
-- by access_key.
local function fields(acct)
  local out = { "cn:" .. acct.name }
  if acct.api_key then
    out[#out + 1] = "ck:" .. acct.api_key
  end
  if acct.access_key then
    out[#out + 1] = "ca:" .. acct.access_key
  end
  return out
end

-- Writes acct under each of its keys (with Redis, which holds the account, a copy as read now).
local function index(self, acct)
  local s, at = json.encode(acct), self.redis and tenths() or 0
  local ok, err = true, nil
  for _, k in ipairs(fields(acct)) do
    ok, err = self.dict:safe_set(k, s, 0, at)
    if not ok then
      break
    end
  end
  return ok, err
end

--- key_owners([except]) -> {key or secret = its role}: each key and secret is one role's
-- (config.key_clash says why): the config's, and every account's made since but `except`'s (an
-- account being changed may keep its own).
function Accounts:key_owners(except)
  local owners = setmetatable({}, { __index = self.cfg.key_owner })
  for _, name in ipairs(self:names()) do
    local other = name ~= except and self:get(name)
    for _, f in ipairs(config.KEY_FIELDS) do
      if other and other[f] ~= nil then
        owners[other[f]] = owners[other[f]] or ("account " .. name .. "'s " .. f)
      end
    end
  end
  return owners
end

-- The Redis side of a new account or a change: its fields written at once, only if the account
-- is still as read ('' for a new one: its name free, also in case) and every key it takes is
-- free or already its own; a field it drops is removed only where it is its own. Nodes check
-- against copies up to accounts.CACHE_S old: two nodes could otherwise give one key to two
-- accounts (a client served as, and spending, another). A new account's name is also one the
-- balance store does not keep (kling.money.stores.redis: a balance of that name, or <p>names in
-- any case: a file account's, on any node), and is named there in the same step: a node's open
-- of its file account of that name (OPEN) is refused from then on, and an open before this
-- refuses the create here (checked apart, a create landing between a node's check of its file
-- and its open gave both one balance). ARGV: the keys' prefix, the name's field, the text read
-- or '', the new text, the count of fields to drop, those, then the fields to set to the new
-- text. -> {1} | {0, "changed"} | {0, "name", the name taken} | {0, "kept", the name the store
-- keeps} | {0, "key", the field taken}.
local WRITE = [[
local hash = ARGV[1] .. 'accounts'
local name_field, read, text = ARGV[2], ARGV[3], ARGV[4]
local cur = redis.call('HGET', hash, name_field)
local names, lower = ARGV[1] .. 'names', string.lower(string.sub(name_field, 4))
if read == '' then
  if cur then return {0, 'name', string.sub(name_field, 4)} end
  for _, f in ipairs(redis.call('HKEYS', hash)) do
    if string.sub(f, 1, 3) == 'cn:' and string.lower(string.sub(f, 4)) == lower then
      return {0, 'name', string.sub(f, 4)}
    end
  end
  if redis.call('EXISTS', ARGV[1] .. 'a:' .. string.sub(name_field, 4)) == 1 then
    return {0, 'kept', string.sub(name_field, 4)}
  end
  local kept = redis.call('HGET', names, lower)
  if kept then return {0, 'kept', kept} end
elseif cur ~= read then
  return {0, 'changed'}
end
local name = cjson.decode(text).name
local function owner(f)
  local v = redis.call('HGET', hash, f)
  if not v then return nil end
  local ok, doc = pcall(cjson.decode, v)
  return ok and type(doc) == 'table' and doc.name or ''
end
local n = tonumber(ARGV[5])
for i = 6 + n, #ARGV do
  local who = owner(ARGV[i])
  if who and who ~= name then return {0, 'key', ARGV[i]} end
end
for i = 6, 5 + n do
  if owner(ARGV[i]) == name then redis.call('HDEL', hash, ARGV[i]) end
end
if read == '' then redis.call('HSET', names, lower, name) end
for i = 6 + n, #ARGV do redis.call('HSET', hash, ARGV[i], text) end
return {1}
]]

-- The refusal of a new account's name the balance store keeps (`other`: the name it keeps it
-- by) -> {status, field, message}. Balances and tasks are kept by name: the new account would
-- get that balance and those tasks, and spend that credit; a name another's in all but case
-- would have the file that has it refused at its next start (one node) or found taken there
-- (Redis).
local function kept_message(name, other)
  if other ~= name then
    return { status = 409, field = "name", message = "the store keeps an account " .. other .. " (names differ in"
      .. " case only; a config file's, on this node or another, would sign nothing in beside a created "
      .. name .. "); choose another name" }
  end
  return { status = 409, field = "name", message = "account " .. name .. " was an account of this gateway"
    .. " (a config file's, on this node or another): its balance and tasks are kept by name, and would be the"
    .. " new account's; choose another name" }
end

-- write_redis(self, name, read, new, drop) -> true | nil, {status, message [, field]}: WRITE run,
-- its answer read.
local function write_redis(self, name, read, new, drop)
  local args = { "cn:" .. name, read or "", json.encode(new), #drop }
  for _, list in ipairs { drop, fields(new) } do
    for _, k in ipairs(list) do
      args[#args + 1] = k
    end
  end
  local res, err = self.redis:run(WRITE, unpack(args))
  if type(res) ~= "table" then
    return nil, { status = 503, message = "the store cannot be written now (nothing was changed): " .. tostring(err) }
  elseif res[1] == 1 then
    return true
  elseif res[2] == "name" then
    return nil, { status = 409, field = "name", message = "account " .. tostring(res[3]) .. " exists"
      .. (res[3] ~= name and " (names differ in case only)" or "") }
  elseif res[2] == "kept" then
    return nil, kept_message(name, tostring(res[3]))
  elseif res[2] == "key" then
    local field = tostring(res[3]):sub(1, 3) == "ck:" and "api_key" or "access_key"
    return nil, { status = 409, field = field, message = field .. ": is already another account's" }
  end
  return nil, { status = 409, message = "account " .. name .. " is being changed by another request: try again" }
end

-- The fields old has and new has not (a key replaced or dropped).
local function dropped(old, new)
  local keep, out = {}, {}
  for _, k in ipairs(fields(new)) do
    keep[k] = true
  end
  for _, k in ipairs(fields(old)) do
    if not keep[k] then
      out[#out + 1] = k
    end
  end
  return out
end

-- One node: one account write (a creation, a change) at a time across its workers, its checks
-- made inside: two workers could otherwise give one key to two accounts. With Redis, WRITE
-- refuses what changed meanwhile instead. fn() -> results.
-- nginx's master takes the lock too while it checks a reloaded file against the created accounts
-- and opens the accounts (M.open_all).
local LOCK, LOCK_S = "cl", 10
local function locked(self, fn)
  if self.redis then
    return fn()
  end
  local ok, lerr = shm.lock(self.dict, LOCK, LOCK_S)
  if not ok then
    return nil, lerr == "exists" and { status = 409, message = "another account is being created or changed: try"
      .. " again" } or { status = 503, message = "shared memory: " .. tostring(lerr) }
  end
  local res = { pcall(fn) } -- fn's results, at most two, read by index (a nil among them kept)
  self.dict:delete(LOCK)
  if not res[1] then
    error(res[2], 0)
  end
  return res[2], res[3]
end

-- The checks a new account or a change passes against what this node knows (the config, and
-- the other accounts: with Redis, copies; WRITE checks there again): -> nil | {status, field,
-- message}. name: the account being changed (its own keys are its), or nil for a new one; cur:
-- the changed account as it was.
local function clashes(self, acct, name, cur)
  if not name then
    if self:get(acct.name) then
      return { status = 409, field = "name", message = "account " .. acct.name .. " exists" }
    end
    -- A name another's in all but case is a typo, or a second account the operator will take
    -- for the first (the config refuses it too).
    local lower = memory_store.name_fold(acct.name)
    for _, other in ipairs(self:names()) do
      if memory_store.name_fold(other) == lower then
        return { status = 409, field = "name", message = "account " .. other .. " exists (names differ in case only)" }
      end
    end
  end
  local changed -- a change's keys that differ from the account's before (a clash is named at them)
  if cur then
    changed = {}
    for _, f in ipairs(config.KEY_FIELDS) do
      changed[f] = acct[f] ~= cur[f] or nil
    end
  end
  local field, why = config.key_clash(self:key_owners(name), acct, changed)
  if field then
    return { status = 409, field = field, message = field .. ": " .. why }
  end
end

-- Writes a new account (read nil) or a change (read: the account's text in Redis as it was
-- read; cur: the account before) where it is kept, and into this node's memory. The keys it
-- drops leave memory once it is kept (a leaked key is refused at once).
-- One node: memory first, then the journal; either refusing leaves the account as it was
-- (a key over what shared memory takes had been journaled, then refused: a change half made,
-- an account without a balance). With Redis, Redis first: this node's copies follow (one it
-- cannot write is read again from Redis within CACHE_S).
local function commit(self, new, cur, read)
  local drop = cur and dropped(cur, new) or {}
  if self.redis then
    local ok, err = write_redis(self, new.name, read, new, drop)
    if not ok then
      return nil, err
    end
  else
    local function undo()
      for _, k in ipairs(fields(new)) do
        self.dict:delete(k)
      end
      if cur then
        index(self, cur)
      end
    end
    local iok, ierr = index(self, new)
    if not iok then
      undo()
      return nil, { status = 503, message = "shared memory: " .. tostring(ierr) .. " (nothing was changed)" }
    end
    local ok, err = self.journal:append { op = "account", [cur and "changed" or "created"] = new }
    if not ok then
      undo()
      return nil, { status = 503, journal = true, message = "the journal cannot be written now (nothing was"
        .. " changed): " .. tostring(err) }
    end
  end
  for _, k in ipairs(drop) do
    self.dict:delete(k)
  end
  if self.redis then
    index(self, new)
  end
  return true
end

-- Why a new account may not have its name on one node: the store keeps an account of that name
-- (one dropped from the config file), in any case -> nil | {status, field, message}. With Redis
-- WRITE refuses it, in the step that writes the account.
local function kept_refusal(self, acct)
  if self.redis or not self.kept then
    return nil
  end
  local kept, other = self.kept(acct.name)
  if kept then
    return kept_message(acct.name, other or acct.name)
  end
end

-- add(acct) -> true | nil, {status, field, message}: a new account (checked by config.account);
-- written first (the journal, or Redis), so an account that could not be written is never usable.
-- On one node its checks and its write are one step under the lock of account writes, which
-- nginx's master holds too while it checks a reloaded file and opens its accounts (open_all): a
-- create that landed between a reload's check and its opens gave a file account and a created
-- one of one name one balance.
function Accounts:add(acct)
  local function run()
    local clash = clashes(self, acct) or kept_refusal(self, acct)
    if clash then
      return nil, clash
    end
    return commit(self, acct)
  end
  return locked(self, run)
end

-- How long nginx's master waits for the lock of account writes: until one its holder left must
-- have expired (a blocking sleep: no request waits on the master). It holds it for up to
-- MASTER_S (it lets it go once the accounts are opened, or refused; the life is for a master
-- killed meanwhile, whose workers go on): a walk of a large dict may pass a worker's LOCK_S.
local MASTER_TRIES, MASTER_S = LOCK_S * 200 + 200, 300

--- open_all(G, reload) -> true | nil, message: every account of the one-node store (the file's,
-- then the created ones) opened with its credit (kling.money.stores.shared open_account), by
-- nginx's master at a start or reload. At a reload the file is checked against the created
-- accounts again first (file_clash), the check and the opens one step under the lock of account
-- writes, as a worker's create is (add): a create between the two took a name the reloaded file
-- has, and the file's account and the created one shared one balance.
function M.open_all(G, reload)
  local dict = G.ledger_dict
  local ok, lerr = shm.lock(dict, LOCK, MASTER_S, MASTER_TRIES, true)
  if not ok then
    return nil, "the accounts cannot be opened now: an account is being created or changed through the admin API"
      .. " (" .. tostring(lerr) .. "); reload again"
  end
  local res = { pcall(function()
    local clash = reload and M.file_clash(G.cfg, M.in_dict(dict))
    if clash then
      return nil, clash
    end
    for _, name in ipairs(G.accounts:names()) do
      local opened, err = G.meter:open_account(name, G.accounts:get(name).credit)
      if not opened then
        return nil, tostring(err)
      end
    end
    return true
  end) }
  dict:delete(LOCK)
  if not res[1] then
    error(res[2], 0)
  end
  return res[2], res[3]
end

--- The created accounts of a journal's entries, each as it was last written (created, then
-- changed), in the order they were created -> {account, ...}.
function M.latest(entries)
  local out, at = {}, {}
  for _, e in ipairs(entries) do
    local a = e.op == "account" and (e.created or e.changed)
    if type(a) == "table" and type(a.name) == "string" then
      local i = at[a.name]
      if e.created and not i then
        out[#out + 1], at[a.name] = a, #out + 1
      elseif e.changed and i then
        out[i] = a
      end
    end
  end
  return out
end

-- restore(entries): the created accounts of the journal, after a restart.
function Accounts:restore(entries)
  local n = 0
  for _, a in ipairs(M.latest(entries)) do
    if not self.cfg.by_key[a.api_key or ""] and not self.cfg.by_access[a.access_key or ""] and not self:get(a.name) then
      index(self, a)
      n = n + 1
    end
  end
  return n
end

--- The created accounts one node's shared memory holds (a reload's: the running gateway's),
-- each as last written -> {account, ...}.
function M.in_dict(dict)
  local out = {}
  for _, key in ipairs(dict:get_keys(0)) do
    local s = key:find("^cn:") and dict:get(key)
    local ok, a = pcall(json.decode, s or "")
    if s and ok and type(a) == "table" then
      out[#out + 1] = a
    end
  end
  return out
end

--- The created accounts a Redis store holds -> {account, ...} | nil, message (Redis cannot answer).
function Accounts:in_redis()
  local r = self.redis
  local all, err = r:with(function(red)
    return red:hgetall(r.prefix .. "accounts")
  end)
  if type(all) ~= "table" then
    return nil, err
  end
  local out = {}
  for i = 1, #all - 1, 2 do
    local ok, a = pcall(json.decode, all[i + 1])
    if tostring(all[i]):find("^cn:") and ok and type(a) == "table" then
      out[#out + 1] = a
    end
  end
  return out
end

--- file_clash(cfg, created) -> nil | message: why the config file's accounts cannot stand beside
-- the accounts the admin API created. A file account named as a created one (in any case), or
-- holding one of its keys or secrets (as any role of the config), took it over silently and two
-- ways at once: after a reload the created copy still signed its old keys in (suspended, say)
-- beside the file's, and after a restart the created account was gone, its key another's.
function M.file_clash(cfg, created)
  local by_lower = {}
  for i, f in ipairs(cfg.accounts) do
    by_lower[memory_store.name_fold(f.name)] = i
  end
  local tail = " (a key or a name is one account's: give the file's account another, or leave the created"
    .. " account to the admin API, PATCH /gateway/admin/accounts/<name>)"
  for _, a in ipairs(created) do
    local i = type(a.name) == "string" and by_lower[memory_store.name_fold(a.name)]
    if i then
      return "accounts[" .. i .. "].name: " .. cfg.accounts[i].name .. " is the name of account " .. a.name
        .. ", which the admin API created" .. tail
    end
    for _, f in ipairs(config.KEY_FIELDS) do
      local role = a[f] ~= nil and cfg.key_owner[a[f]]
      if role then
        return role .. ": is account " .. tostring(a.name) .. "'s " .. f .. ", which the admin API created" .. tail
      end
    end
  end
end

--- Whether the account of that name is the config file's (changed there, not by the admin API).
function Accounts:from_file(name)
  return of_file(self, name) ~= nil
end

--- change(name, fn) -> the account as changed | nil, {status, message [, field]}: a created
-- account replaced by fn(account) -> new account | nil, {status, message, field}, checked
-- against the others, written (the journal, or Redis) before it is used. One account write at a
-- time: on one node a lock, with Redis the write made only if the account is still as read (a
-- change made meanwhile on another node is refused, 409, never merged).
function Accounts:change(name, fn)
  local had, gerr = self:get(name)
  if not had then -- with Redis away, an account another node created is not "no account"
    return nil, gerr and { status = 503, message = "the account cannot be read now (is the store up?): " .. gerr }
      or { status = 404, message = "no account " .. name }
  elseif self:from_file(name) then
    return nil, { status = 409, message = "account " .. name .. " is the config file's: change it there and"
      .. " reload (kill -HUP the gateway's nginx master)" }
  end
  local function run()
    local cur, read = self:get(name), nil
    if self.redis then
      -- as Redis has it now, not this node's copy: the change is made only if it still is
      local r = self.redis
      read = r:with(function(red)
        return red:hget(r.prefix .. "accounts", "cn:" .. name)
      end)
      cur = type(read) == "string" and json.decode(read)
      if type(cur) ~= "table" then
        return nil, { status = 503, message = "the store cannot be read now (nothing was changed)" }
      end
    end
    local new, err = fn(cur)
    if not new then
      return nil, err
    end
    err = clashes(self, new, name, cur)
    if err then
      return nil, err
    end
    local ok, werr = commit(self, new, cur, read)
    if not ok then
      return nil, werr
    end
    return new
  end
  return locked(self, run)
end

-- overdrawn(G) -> the accounts whose spend and holds pass their credit (a credit lowered in
-- the config below what was already spent): [{name, credit, spent, reserved, balance}], the
-- balance negative. Their creates are refused (429, 1101: the balance cannot hold any
-- estimate) until a top-up or a higher credit brings the balance back above zero; what was
-- spent stays spent.
function M.overdrawn(G)
  local out = {}
  for _, name in ipairs(G.accounts:names()) do
    local a = G.meter:account(name)
    if a and a.balance_micros < 0 then
      out[#out + 1] = { name = name, credit = a.limit, spent = a.spent, reserved = a.reserved, balance = a.balance }
    end
  end
  return out
end

-- At start and at each reload: one warning per overdrawn account, naming it.
function M.warn_overdrawn(G)
  for _, a in ipairs(M.overdrawn(G)) do
    ngx.log(ngx.WARN, "kling gateway: account ", a.name, " has spent ", a.spent, " (", a.reserved,
      " held) of a credit of ", a.credit, ": its balance is ", a.balance, " and its creates are refused (429, 1101)",
      " until its credit is raised above what it spent (a top-up, or a higher credit in the config)")
  end
end

-- warn_credit(name, credit, the store's own (micros) [, source]): a Redis store takes a
-- config's (or a created account's) credit only when it first opens the account
-- (kling.money.stores.redis OPEN); a node whose config says otherwise changes nothing, and
-- says so, naming both and the way to change it. source: what gave `credit` ("this node's config").
function M.warn_credit(name, credit, kept, source)
  local theirs = core.money_format(kept)
  ngx.log(ngx.WARN, "kling gateway: account ", name, "'s credit in the Redis store is ", theirs, ", not the ",
    credit, " ", source or "this node's config", " gives it: the store's stands (a credit is taken from a config only",
    " when the store first opens the account, so that nodes whose configs disagree do not set it back and forth)."
    .. " To make it ", credit, " on every node: POST /gateway/admin/accounts/", name, "/credit {\"credit\": \"",
    credit, "\"}; else write ", theirs, " in this node's config")
end

return M
