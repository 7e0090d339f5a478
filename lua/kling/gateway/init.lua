-- A metering gateway in front of Kling (seed 000's service): its clients call the official
-- Kling API shape with their own keys; every create is priced with the gateway's catalog,
-- held against the client's balance before anything is forwarded, forwarded to the
-- configured provider (any of kling's providers, the simulator included), and settled from
-- the actual result (on callback or poll), released on failure; synchronous calls are
-- charged at once, queries are free and answered from the gateway's own table.
--
-- nginx.conf: include http.conf in http{} and server.conf in a server{} (see nginx.conf here).
local config = require "kling.gateway.config"
local accounts = require "kling.gateway.accounts"
local admin = require "kling.gateway.admin"
local ids = require "kling.gateway.ids"
local loopback = require "kling.gateway.loopback"
local nginx_conf = require "kling.gateway.nginx_conf"
local metrics = require "kling.gateway.metrics"
local proxy = require "kling.gateway.proxy"
local auth = require "kling.gateway.auth"
local official = require "kling.gateway.official"
local owners = require "kling.gateway.owners"
local api = require "kling.gateway.api"
local pace = require "kling.gateway.upstream_pace"
local forward = require "kling.gateway.forward"
local price_cache = require "kling.gateway.price_cache"
local track = require "kling.gateway.track"
local relook = require "kling.gateway.relook"
local deliveries = require "kling.gateway.deliveries"
local texts = require "kling.gateway.text"
local kling = require "kling"
local resty = require "kling.resty"
local journal = require "kling.resty.journal"
local tasks = require "kling.resty.tasks"
local ledgers = require "kling.money.ledger"
local shared_store = require "kling.money.stores.shared"
local redis = require "kling.gateway.redis"
local redis_store = require "kling.money.stores.redis"
local redis_tasks = require "kling.gateway.redis_tasks"
local store_id = require "kling.gateway.store_id"
local poller = require "kling.resty.poller"
local core = require "kling.core"
local callback = require "kling.resty.callback"
local compact = require "kling.gateway.compact"
local validate = require "kling.validate"

local M = {}

M.TASKS_DICT, M.LEDGER_DICT = "kling_gateway_tasks", "kling_gateway_ledger"

local G = { dicts = { tasks = M.TASKS_DICT, ledger = M.LEDGER_DICT } } -- memory's names: its dicts
M.G = G

local MAX_AGE_MS = 2147483647 -- core.sched's longest max_age_ms

-- What a start refused for a dict too small for its journal says (nothing was changed).
local function full_advice(name)
  return ": raise memory." .. name .. " in the config (README: Sizing one node) and start again; nothing was"
    .. " changed (the journal is as it was)"
end

-- A number field of this process's /proc/self/status (Linux), as text; nil where unreadable.
local function own_status(field)
  local st = io.open("/proc/self/status", "rb")
  local v = st and st:read("*a"):match("\n" .. field .. ":%s+(%d+)")
  if st then
    st:close()
  end
  return v
end

-- The user nginx's workers run as when the master is root: the `user` directive of the command
-- line's -g or of the conf, else nginx's default (nobody); nil when the master is not root
-- (workers are the master's user).
local function worker_user()
  local uid = own_status("Uid")
  if uid ~= "0" then
    return nil
  end
  local args = nginx_conf.args()
  -- nginx -g 'user www-data; daemon off;' (the conf then has none: nginx refuses it twice). It
  -- was not read: a journal nobody could write passed, and www-data's workers refused every create.
  local g = table.concat(args, " "):match("%s%-g%s+(.*)$")
  for directive in (g or ""):gmatch("[^;]+") do
    local user = directive:match("^%s*user%s+([^%s;]+)")
    if user then
      return user
    end
  end
  local read, conf = pcall(nginx_conf.read, nginx_conf.path(args))
  local text = read and conf or ""
  for line in text:gmatch("[^\n]+") do
    local user = line:gsub("#.*", ""):match("^%s*user%s+([^%s;]+)")
    if user then
      return user
    end
  end
  return "nobody"
end

-- Whether init runs in a worker: only with lua_code_cache off (ngx.process says "master" or
-- "single" at nginx's start and at a reload; ngx.worker.id() is 0 in the master as well).
local function code_cache_off()
  local ok, process = pcall(require, "ngx.process")
  return ok and process.type() == "worker"
end

M.CODE_CACHE_OFF = "lua_code_cache is off in this nginx: the gateway keeps its ledger, tasks and journal in"
  .. " each worker's one Lua VM, which nginx makes anew for every request with the code cache off; remove"
  .. " 'lua_code_cache off' (on is nginx's default) and restart nginx"

-- This worker's parent: nginx's master (Linux's /proc).
local function master_pid()
  local pid = own_status("PPid")
  return tonumber(pid)
end

-- How long either store remembers that a hold ended (so that a second end is refused): as
-- long as the task's record is kept, which is what could end it again, plus a margin; whole
-- seconds (Redis's EX).
function M.ended_ttl(cfg)
  local retention_s = cfg.retention_days * 86400
  return math.ceil(retention_s + math.min(60, retention_s))
end

-- How long either store remembers a top-up's id (a retry with it adds nothing within it): as
-- long as an ended task is kept, retention_days, the one window the operator gives for what
-- the gateway remembers; whole seconds (Redis's EX). Kept for good, the ids grew without bound.
function M.topup_id_ttl(cfg)
  return math.ceil(cfg.retention_days * 86400)
end

-- Several nodes: balances, reservations, tasks, lookups and the poller's lock in Redis (which
-- keeps them across restarts: nothing to rebuild). The accounts of the file are opened in
-- Redis by each node's first worker (cosockets are not available here), once it has checked
-- the store's identity (check_store). user: the workers' user when the master is root.
local function init_redis(ledger_dict, user)
  local s = G.cfg.store
  G.redis = redis.new(s.redis, { errors = ledger_dict, prefix = s.prefix, on_trip = function()
    metrics.inc("kling_gateway_store_round_trips_total")
  end })
  -- The id of the store this node saw, from before a restart (a reload keeps the dict's).
  G.store_state = store_id.open(s, ngx.config.prefix(), user, ledger_dict)
  ledger_dict:delete(M.STORE_REFUSED) -- a reload's config is checked afresh (check_store)
  ledger_dict:delete(accounts.FILE_TAKEN) -- and its file's names: none signs in before (check_file)
  -- G.meter: the gateway's Ledger, its accounts the gateway's clients, its balances in Redis.
  G.meter = assert(ledgers.new { store = redis_store.new { redis = G.redis, currency = G.cfg.currency,
    price_provider = G.cfg.price_provider, dict = ledger_dict, id_key = G.store_state.key,
    floor_key = G.store_state.floor_key,
    advice = "put its data back (its AOF or an RDB copy), or start afresh on purpose: stop every node, remove"
      .. " this one's " .. G.store_state.file .. " and each other's <prefix>/" .. store_id.DIR .. "/ file, and start"
      .. " them (README: Several nodes)",
    ended_ttl = M.ended_ttl(G.cfg), topup_id_ttl = M.topup_id_ttl(G.cfg) } })
  G.tasks = redis_tasks.new { redis = G.redis, dict = ngx.shared[M.TASKS_DICT],
    retention_s = G.cfg.retention_days * 86400, encode = texts.record, by_upstream = G.cfg.callbacks == true }
  G.accounts = accounts.new { cfg = G.cfg, dict = ledger_dict, redis = G.redis, seen_id = function()
    return G.meter.store:seen_id()
  end }
  G.ledger_dict = ledger_dict
end

-- One page of the Redis holds per run, from this worker's place in its walk, while it leads
-- the poll (one node at a time walks them).
M.SWEEP_S = 2
local function sweep(premature)
  if premature or not (G.poller and G.poller.holder) then
    return
  end
  local next_cursor, err = track.sweep(G, G.sweep_cursor or "0")
  if not next_cursor then
    ngx.log(ngx.WARN, "kling gateway: cannot walk the holds now: ", tostring(err))
    return
  end
  G.sweep_cursor = next_cursor
end

-- Opens the file's accounts in Redis (an account the store has keeps its credit: one warning per
-- account whose config's differs, kling.gateway.accounts) and checks Redis's settings -> true |
-- nil (Redis could not answer: the caller tries again).
local warned = {}
local function open_redis_accounts()
  -- A file account named as a created one is not opened (the store has that name's balance:
  -- the created one's) and signs nothing in (kling.gateway.accounts check_file): checked first,
  -- and again by each open, in its own step (a create that lands after the check: OPEN refuses
  -- the file's account, as WRITE refuses a create after the open). The file's accounts sign in
  -- once all are opened or found taken (file_checked).
  local created, cerr = G.accounts:in_redis()
  local taken = created and G.accounts:check_file(created)
  if not taken then
    ngx.log(ngx.ERR, "kling gateway: cannot check the config file's accounts against the Redis store's (retrying): ",
      tostring(cerr))
    return nil
  end
  for _, a in ipairs(G.cfg.accounts) do
    local ok, err = true, nil
    if not taken[a.name] then
      ok, err = G.meter:open_account(a.name, a.credit, { file = true })
      if not ok and type(err) == "table" and err.code == "name_created" then
        taken[a.name], ok, err = err.created, true, nil
      elseif ok then -- it signs in from now on, and at the next reload before the whole file is checked
        local marked, merr = G.accounts:file_opened(a.name)
        if not marked then
          ngx.log(ngx.WARN, "kling gateway: account ", a.name, " signs in once every file account is opened: ", merr)
        end
      end
    end
    if not ok then
      ngx.log(ngx.ERR, "kling gateway: cannot open account ", a.name, " in Redis (retrying): ", tostring(err))
      return nil
    elseif err and not warned[a.name] then
      warned[a.name] = true
      accounts.warn_credit(a.name, a.credit, err)
    end
  end
  local marked, merr = G.accounts:file_checked(taken)
  if not marked then
    ngx.log(ngx.ERR, "kling gateway: cannot keep the config file's accounts checked (retrying): ", merr)
    return nil
  end
  for name, other in pairs(taken) do
    ngx.log(ngx.ERR, "kling gateway: the config file's account ", name, " is not opened and signs nothing in: the",
      " admin API created account ", other, " in the Redis store, and balances and tasks are kept by name;",
      " give the file's account another name and reload")
  end
  -- A file account that takes a created account's name or key (one node refuses such a file at
  -- start and reload; a node cannot read Redis there): say so loudly, at each start and reload.
  local clash = accounts.file_clash(G.cfg, created)
  if clash then
    ngx.log(ngx.ERR, "kling gateway: the config file clashes with the Redis store's accounts: ", clash, ": on",
      " this node the file's account signs that key in, on a node whose file does not have it the created one does;",
      " fix the file and reload")
  end
  -- Balances, holds and the marks that refuse a second settlement must never be evicted: say so
  -- loudly when Redis may evict keys (a Redis that refuses CONFIG is not asked again).
  local policy = G.redis:with(function(red)
    return red:config("get", "maxmemory-policy")
  end)
  if type(policy) == "table" and policy[2] and policy[2] ~= "noeviction" then
    ngx.log(ngx.ERR, "kling gateway: Redis's maxmemory-policy is ", policy[2], ": it may evict the gateway's",
      " balances, holds or settlement marks (money could be lost or charged twice); set it to noeviction")
  end
  -- Without AOF a restart of Redis loses what it did since its last snapshot (everything, without
  -- one): the nodes then refuse the store (kling.gateway.store_id), as reset or gone back in time.
  local aof, aerr = G.redis:with(function(red)
    return red:config("get", "appendonly")
  end)
  if type(aof) == "table" and aof[2] == "no" then
    ngx.log(ngx.WARN, "kling gateway: Redis's appendonly is no: a restart of Redis loses every movement since its",
      " last snapshot (all of them without one); after such a loss the nodes refuse the store as reset or, from an",
      " RDB snapshot, as gone back in time, and meter nothing until the operator acts (nodes all restarted with",
      " their kling-store files behind would take its older balances back). Set appendonly yes (README: Several",
      " nodes)")
  elseif not (type(aof) == "table" and aof[2]) then
    ngx.log(ngx.WARN, "kling gateway: Redis's appendonly could not be checked (CONFIG GET refused or renamed: ",
      tostring(aerr or "no answer"), "): without appendonly yes a restart of Redis loses movements (README:",
      " Several nodes)")
  end
  return true
end

M.STORE_CHECK_S = 10 -- seconds between two checks of the store's identity by a node's first worker
M.STORE_REFUSED = "store:refused" -- in the ledger dict while the last check refused the store (its code)

-- The store's id and the movements seen there, written to the node's file (kling.gateway.store_id).
local function remember_store(meta)
  local ok, werr = store_id.remember(G.store_state, G.ledger_dict, meta)
  if not ok then
    ngx.log(ngx.ERR, "kling gateway: cannot keep the Redis store's id in ", G.store_state.file, ": ", werr,
      ": restarted, this node could not tell a Redis that lost its data from a new one (retrying)")
  end
end

-- The node's first worker, at its start and every STORE_CHECK_S: the store's identity
-- (kling.money.stores.redis bind: written when absent if this node saw no store before; its
-- id and the movements seen there kept in the dict and in the node's file, kling.gateway.store_id),
-- then once the file's accounts opened; and the file once more when the worker exits (its
-- movements since the last check). A store that was reset or went back in time, or whose
-- currency or catalog is not this node's config's, is said in the error log at each check
-- (every money movement refuses it anyway, in its own script), so that a node recovers once
-- its config is fixed and reloaded.
local function check_store(premature)
  if premature then
    if G.store_meta then
      remember_store(G.store_meta)
    end
    return
  end
  local meta, err, differs = G.meter.store:bind()
  local seen = meta or differs
  if seen then
    G.store_meta = seen
    remember_store(seen)
  end
  local again = M.STORE_CHECK_S
  if meta then
    G.ledger_dict:delete(M.STORE_REFUSED)
  elseif err.code then
    G.ledger_dict:set(M.STORE_REFUSED, err.code, 3 * M.STORE_CHECK_S)
  end
  if not meta then
    ngx.log(ngx.ERR, "kling gateway: ", err.code and "" or "cannot check the Redis store now (retrying): ",
      tostring(err.message))
    again = (err.code or G.store_opened) and again or 1
  elseif not G.store_opened then
    G.store_opened = open_redis_accounts()
    again = G.store_opened and again or 1
  end
  local ok, terr = ngx.timer.at(again, check_store)
  if not ok and terr ~= "process exiting" then
    ngx.log(ngx.ERR, "kling gateway: the Redis store is not checked any more: ", terr)
  end
end

-- init([path [, {worker_user =, proxy_location =, rendered =}]]) in init_by_lua (nginx's master, at start
-- and at every reload): reads the configuration (KLING_GATEWAY_CONFIG, else <prefix>/gateway.json),
-- refuses a reload whose upstream is not the one the conf's proxy_pass was written for
-- (rendered: kling.gateway.proxy rendered),
-- refuses to start when the workers could not write the journal or another gateway holds it
-- (fail closed: kling.resty.journal lock), rebuilds
-- shared memory from the journal after a restart (a reload keeps it), and opens the
-- accounts (a changed credit moves the balance by the difference).
function M.init(path, opts)
  -- lua_code_cache off: nginx runs init_by_lua again in a fresh Lua VM for every request, inside
  -- a worker, where the start's checks cannot run (the conf's user unreadable, the journal's lock
  -- the master's) and the ledger would be a new one per request. Every location answers 503
  -- naming the cause (set_up) rather than nginx's HTML 500 about the journal's user.
  if code_cache_off() then
    G.code_cache_off = true
    return
  end
  -- At nginx's start (or a reload) the conf says it, where nginx read it: refused then, so that
  -- nginx does not start at all (with master_process off the requests' own VMs could not tell).
  local read, off_at = pcall(nginx_conf.code_cache_off)
  if not read then -- a conf this reader cannot follow: the requests' refusal (set_up) stays
    ngx.log(ngx.WARN, "kling gateway: the nginx conf was not read for lua_code_cache: ", off_at)
  elseif off_at then
    error("kling gateway: " .. M.CODE_CACHE_OFF .. " (lua_code_cache off at " .. off_at .. ")", 0)
  end
  path = path or os.getenv("KLING_GATEWAY_CONFIG") or (ngx.config.prefix() .. "gateway.json")
  G.cfg = config.load(path)
  -- Upstream calls from request handlers through nginx's proxy (kling.gateway.proxy's
  -- location, which the conf must have), else over cosockets.
  G.capture = opts and opts.proxy_location and { location = opts.proxy_location,
    origin = proxy.origin(G.cfg.upstream.base_url) } or nil
  local stale = opts and opts.rendered and proxy.stale(G.cfg, opts.rendered)
  if stale then -- at a reload: refused, the running gateway goes on as it was
    error("kling gateway: " .. path .. ": " .. stale, 0)
  end
  for _, name in ipairs { M.TASKS_DICT, M.LEDGER_DICT, metrics.DICT } do
    if not ngx.shared[name] then
      error("kling gateway: no lua_shared_dict " .. name .. " in the nginx conf (include http.conf)", 0)
    end
  end
  -- The dicts' sizes are the conf's (fixed at nginx's start): say when the config asks otherwise.
  for name, dict in pairs(G.dicts) do
    local want, has = G.cfg.memory[name], ngx.shared[dict]:capacity()
    if want.bytes ~= has then
      ngx.log(ngx.WARN, "kling gateway: memory.", name, " is ", want.text, " but lua_shared_dict ", dict, " has ",
        has, " bytes: the nginx conf sets it, at nginx's start (kling gateway start writes memory's)")
    end
  end
  local ledger_dict = ngx.shared[M.LEDGER_DICT]
  local user = opts and opts.worker_user or worker_user()
  if G.cfg.store then
    return init_redis(ledger_dict, user)
  end
  -- A start (shared memory empty), not a reload (whose old workers still append).
  local fresh = ledger_dict:get("seq") == nil
  -- A reload whose file takes a created account's name or key: refused, before the journal's
  -- lock is taken again (the running gateway goes on as it was). A start checks the journal's.
  local clash = not fresh and accounts.file_clash(G.cfg, accounts.in_dict(ledger_dict))
  if clash then
    error("kling gateway: " .. path .. ": " .. clash, 0)
  end
  local moved = not fresh and journal.moved(ledger_dict, G.cfg.journal)
  if moved then -- before anything is made at the new path: the running gateway goes on as it was
    error("kling gateway: " .. path .. ": " .. moved, 0)
  end
  local gone, ran = journal.lost(G.cfg.journal)
  if gone then
    error("kling gateway: " .. gone, 0)
  end
  local wok, werr = journal.writable(G.cfg.journal, user)
  if not wok then
    error("kling gateway: " .. werr, 0)
  end
  -- One node per journal (fail closed): kept for this Lua VM's life, and by the workers it forks.
  local lock, lerr = journal.lock(G.cfg.journal)
  if not lock then
    error("kling gateway: " .. lerr, 0)
  end
  G.journal_lock = lock
  G.journal = journal.open(G.cfg.journal, { reopen = ledger_dict, sync = G.cfg.journal_sync })
  local retention_s = G.cfg.retention_days * 86400
  -- Upstream ids are looked up only by callbacks: with them off, no index (a write and a key a task).
  G.tasks = tasks.new { dict = M.TASKS_DICT, journal = G.journal, retention_s = retention_s,
    encode = texts.record, by_upstream = G.cfg.callbacks == true }
  -- G.meter: the gateway's Ledger, its accounts the gateway's clients, its balances in shared memory.
  -- A hold's end is remembered while its task is: retention after its end, and a margin for the
  -- moment between the end's claim and the task's final record (a minute, or the retention when
  -- shorter). Nothing can end it again after that, and a node that runs for months keeps room.
  G.meter = assert(ledgers.new { store = shared_store.new { dict = M.LEDGER_DICT, currency = G.cfg.currency,
    price_provider = G.cfg.price_provider, journal = G.journal, ended_ttl = M.ended_ttl(G.cfg),
    topup_id_ttl = M.topup_id_ttl(G.cfg) } })
  G.accounts = accounts.new { cfg = G.cfg, dict = ledger_dict, journal = G.journal, kept = function(name)
    return G.meter.store:kept(name)
  end }
  G.ledger_dict = ledger_dict
  local t0 = core.wall_ms()
  local entries, skipped = journal.read(G.cfg.journal)
  if not entries then
    error("kling gateway: " .. skipped, 0)
  end
  local read_ms = core.wall_ms() - t0
  if #entries == 0 and (ran or skipped > 0) then
    -- not empty, yet no line reads (a blank line, a compressed copy): no start from nothing
    error("kling gateway: the journal " .. G.cfg.journal .. " holds no line it can read (" .. skipped
      .. " unreadable)" .. (ran and (", and " .. G.cfg.journal .. ".lock shows a gateway ran with it") or "")
      .. ": started from nothing, every account would have its spent credit back. Put the journal back, or "
      .. "remove it and " .. G.cfg.journal .. ".lock to start afresh on purpose", 0)
  end
  local whole, werr2 = journal.whole(G.cfg.journal, entries)
  if not whole then
    error("kling gateway: " .. werr2, 0)
  end
  -- A last line cut short (a crash, a full disk): the workers' lines start after a newline.
  if fresh then
    local mended, merr = journal.mend(G.cfg.journal)
    if not mended then
      error("kling gateway: " .. merr, 0)
    end
  end
  if #entries == 0 and skipped == 0 then
    -- its unit too: a start with another currency or catalog is refused (kling.money.stores.shared)
    local ok, err = G.journal:append { op = journal.FIRST.op, version = journal.FIRST.version,
      currency = G.cfg.currency, price_provider = G.cfg.price_provider }
    if not ok then
      error("kling gateway: " .. err, 0)
    end
  end
  clash = fresh and accounts.file_clash(G.cfg, accounts.latest(entries))
  if clash then
    error("kling gateway: " .. path .. ": " .. clash, 0)
  end
  local moves, rerr = G.meter.store:restore(entries)
  if not moves then
    local full = type(rerr) == "table" and rerr.field == "memory"
    error("kling gateway: cannot rebuild the ledger from " .. G.cfg.journal .. ": "
      .. (full and (rerr.message .. full_advice("ledger")) or tostring(rerr)), 0)
  end
  local t_ledger = core.wall_ms()
  local restored, terr = G.tasks:restore(entries)
  if not restored then
    error("kling gateway: cannot rebuild the tasks from " .. G.cfg.journal .. ": " .. terr .. full_advice("tasks"), 0)
  end
  local t_tasks = core.wall_ms()
  local owned, oerr = owners.restore(G, entries)
  if not owned then
    error("kling gateway: cannot rebuild from " .. G.cfg.journal .. ": " .. oerr .. full_advice("tasks"), 0)
  end
  local t_owners = core.wall_ms()
  local created = fresh and G.accounts:restore(entries) or 0
  -- (a reload checks its file against the created accounts again here, with the opens: a create
  -- made since the check above would otherwise share a balance with the file's account)
  local opened, aerr = accounts.open_all(G, not fresh)
  if not opened then
    error("kling gateway: " .. (fresh and "" or (path .. ": ")) .. aerr, 0)
  end
  accounts.warn_overdrawn(G)
  -- (a journal of refused creates alone, as a compaction leaves one, still has the day's
  -- refusals to count: kling.gateway.capacity restore)
  if moves > 0 or restored > 0 or #entries > 1 then
    local t_track = core.wall_ms()
    track.restore(G, entries)
    local t_end = core.wall_ms()
    ngx.log(ngx.NOTICE, "kling gateway: rebuilt ", moves, " ledger movements, ", restored, " tasks and ", created,
      " created accounts from ", G.cfg.journal, skipped > 0 and (" (" .. skipped .. " unreadable lines skipped)")
      or "", " in ", t_end - t0, " ms (reading ", read_ms, ", ledger ", t_ledger - t0 - read_ms, ", tasks ",
      t_tasks - t_ledger, ", owners ", t_owners - t_tasks, ", settling what the journal owed ", t_end - t_track,
      ")")
  end
  G.journal:close()
  if fresh and #entries + skipped > 0 then
    compact.run(G, entries, { user = user, read_lines = #entries + skipped, replay_ms = core.wall_ms() - t0,
      read_ms = read_ms })
  end
  -- The file the workers write from here (compacted or not): one reopens its path only while
  -- the path names it (kling.resty.journal).
  local adopted, jerr = journal.adopt(ledger_dict, G.cfg.journal)
  if not adopted then
    error("kling gateway: " .. jerr, 0)
  end
  entries = nil -- luacheck: ignore 311 (the replayed journal: not inherited by the workers nginx forks next)
  collectgarbage()
  if G.cfg.callback_url and not G.cfg.callbacks then
    ngx.log(ngx.WARN, "kling gateway: callback_url is ignored without webhook_secret (or insecure_callbacks):"
      .. " polling alone ends tasks")
  end
  G.journal:close() -- each worker opens its own
end

-- init_worker() in init_worker_by_lua: the upstream client (made on first use, per worker)
-- and the poller's timer.
function M.init_worker()
  ids.reset() -- the ids' random bytes are this worker's own, never a buffer its master drew
  G.views, G.views_n = {}, 0 -- this worker's encoded task views (kling.gateway.api query)
  G.failed_seen = {} -- this worker's copy of each account's free failures today (kling.gateway.capacity)
  G.pending, G.flush_scheduled = {}, false -- creates to record in the store (kling.gateway.forward)
  G.prices = price_cache.new() -- this worker's quotes (kling.gateway.price_cache)
  metrics.start() -- this worker's counts into the shared dict, every second
  deliveries.start(G) -- client callbacks a stopped worker handed off, sent by this one
  G.jwt_cache = auth.cache() -- the JWTs this worker verified, until they expire (kling.gateway.auth)
  local client
  G.client = function()
    if not client then
      local u = G.cfg.upstream
      G.driver = resty.driver { timeout_ms = math.floor(u.timeout * 1000),
        connect_timeout_ms = math.floor(u.connect_timeout * 1000), reuse_posts = u.reuse_posts,
        capture = G.capture }
      client = assert(kling.new { provider = u.provider, base_url = u.base_url, access_key = u.access_key,
        secret_key = u.secret_key, api_key = u.api_key, timeout = u.timeout, connect_timeout = u.connect_timeout,
        driver = G.driver, retry_base_ms = 200, retry_cap_ms = 5000, call_budget = u.timeout * 2,
        local_files = false }) -- requests come from the network: never read a path they name
    end
    return client
  end
  local p = G.cfg.poll
  -- The longest a create can be in flight: its retries' budget, then the last attempt, whose
  -- connect is bounded apart (proxy_connect_timeout: up to 300 s, more than the rest may be).
  local u = G.cfg.upstream
  G.creating_grace_ms = math.floor((u.timeout * 3 + u.connect_timeout + 10) * 1000)
  -- What its lookups take at most once it can be looked up: each answer within the timeout, the
  -- waits between them 1, 2, 4, ... s (kling.lifecycle.machine on_lookup), and a poll's slack.
  G.lookups_ms = math.floor((p.lookups * u.timeout + 2 ^ (p.lookups - 1) - 1 + 5) * 1000)
  local pid = G.journal_lock and ngx.worker.id() == 0 and master_pid()
  if pid then
    -- The journal's lock file names nginx's master: a daemonized nginx took the lock (in
    -- init) before it forked into the background, under a pid that is gone now.
    local ok, werr = G.journal_lock:write_pid(pid)
    if not ok then
      ngx.log(ngx.WARN, "kling gateway: ", werr)
    end
  end
  local lock, unlock
  if G.redis then
    if ngx.worker.id() == 0 then
      ngx.timer.at(0, check_store)
      -- the upstream's slots as every node learned them (kling.gateway.upstream_pace)
      local ok, terr = ngx.timer.every(pace.SLOTS_SYNC_S, function(premature)
        if not premature then
          pace.sync_slots(G)
        end
      end)
      if not ok then
        ngx.log(ngx.ERR, "kling gateway: the upstream's slots other nodes learn are not seen here: ", terr)
      end
    end
    -- One poller across every node: this worker's own name in the Redis lock.
    local owner = core.random_hex(8) .. ":" .. ngx.worker.pid()
    lock = function(ttl_s)
      -- A node that moves no money in the store (reset, another unit) does not lead the poll:
      -- the ends it found would wait for the next leader's sweep of the holds anyway.
      if G.ledger_dict:get(M.STORE_REFUSED) then
        G.redis:unlock(owner) -- taken before the check said so: let it go now, not at its TTL
        return false
      end
      return G.redis:lock(owner, ttl_s)
    end
    unlock = function()
      return G.redis:unlock(owner)
    end
  end
  local err
  G.poller, err = poller.start {
    lock = lock, unlock = unlock,
    tasks = G.tasks, poll = function(id, sched, h)
      return track.poll(G, id, sched, h)
    end,
    min_interval_ms = math.floor(p.min_interval * 1000), max_interval_ms = math.floor(p.max_interval * 1000),
    -- A task's deadline is its machine's (from the record's creation); the scheduler's own
    -- limit must not come first.
    max_age_ms = math.min(MAX_AGE_MS, math.floor(p.deadline * 1000) + 60000),
    silence_ms = math.floor(p.silence * 1000),
    -- With callbacks coming, a new task is first polled only after a silence, or halfway to
    -- its deadline should that come first: a deadline shorter than the silence passed unseen
    -- until the silence's first poll (64 s for a 4 s deadline), and a first poll at the deadline
    -- itself came too late (the machine ends a task there without polling it).
    first_poll_ms = G.cfg.callback_url and G.cfg.callbacks and math.floor(math.min(p.silence, p.deadline / 2) * 1000)
      or nil,
  }
  if not G.poller then
    ngx.log(ngx.ERR, "kling gateway: ", err)
    return
  end
  relook.start(G) -- the poll leader looks the kept holds' tasks up again, now and then
  if G.redis then
    -- The poll leader also walks the holds for ends whose money never moved (track.sweep).
    local ok, terr = ngx.timer.every(M.SWEEP_S, sweep)
    if not ok then
      ngx.log(ngx.ERR, "kling gateway: ends whose money was lost are not swept: ", terr)
    end
  end
end

-- A gateway location reached in an nginx whose http {} lacks the gateway's part (http.conf:
-- its lua_shared_dicts, init_by_lua and init_worker_by_lua): nothing is configured, so nothing is
-- metered or forwarded; the operator is told what to include (each handler raised "attempt to
-- index local 'accounts'", a 500 in nginx's HTML).
M.NOT_SET_UP = "the kling gateway is not set up in this nginx: include examples/nginx/http.conf in http {}"
  .. " (its lua_shared_dicts, init_by_lua_block and init_worker_by_lua_block), and server.conf in a server {}"
local function set_up(admin_form)
  if G.code_cache_off then -- this request's own Lua VM (M.init): nothing here may meter or forward
    ngx.log(ngx.ERR, "kling gateway: ", M.CODE_CACHE_OFF)
    if admin_form then
      return admin.refused(503, M.CODE_CACHE_OFF)
    end
    return official.fail { status = 503, code = 5001, message = M.CODE_CACHE_OFF }
  end
  if G.client then -- made by init_worker, which runs only after init
    return true
  end
  ngx.log(ngx.ERR, "kling gateway: ", M.NOT_SET_UP)
  if admin_form then
    return admin.refused(503, M.NOT_SET_UP)
  end
  return official.fail { status = 503, code = 5001, message = "the gateway is not set up (see its error log)" }
end

local function caller(creating)
  local account, err = auth.account(G.accounts, ngx.var.http_authorization, ngx.time(), G.jwt_cache)
  if not account then
    if creating then -- counted as a create refused: its store unreadable (down, reset, another unit) or its caller
      return api.refuse(err.status == 503 and "store" or "auth", err) -- not signed in (401: a key unknown, ...)
    end
    return official.fail(err)
  end
  return account
end

-- location /v1/ { content_by_lua_block { require("kling.gateway").api() } }, or (creates
-- forwarded by the location's own proxy_pass: kling.gateway.forward, as kling gateway start
-- renders it) access_by_lua_block { require("kling.gateway").api(true) }.
function M.api(direct)
  if not set_up() then
    return
  end
  local method = ngx.req.get_method()
  local endpoint, id = api.route(ngx.var.uri)
  local account = caller(method == "POST" and endpoint ~= nil and not id)
  if not endpoint then
    return official.fail { status = 404, code = 1202, message = "no such endpoint: "
      .. validate.brief(ngx.var.uri, 128) }
  end
  if method == "POST" and not id then
    local def = direct and G.client().provider.endpoints[endpoint]
    if def and not def.sync then
      return forward.access(G, account, endpoint) -- answers only a refusal; proxy_pass sends the rest
    end
    return api.create(G, account, endpoint)
  elseif method == "GET" and id then
    return api.query(G, account, endpoint, id)
  elseif method == "GET" then
    return api.list(G, account, endpoint)
  end
  return official.fail { status = 405, code = 1202, message = validate.brief(method) .. " is not allowed on "
    .. validate.brief(ngx.var.uri, 128) }
end

-- header_filter_by_lua and body_filter_by_lua of the /v1/ location that forwards creates by
-- its own proxy_pass: the upstream's answer becomes the gateway's.
function M.header_filter()
  return forward.header_filter()
end

function M.body_filter()
  return forward.body_filter(G)
end

-- location = /gateway/balance
function M.balance()
  if not set_up() then
    return
  end
  local method = ngx.req.get_method()
  if method ~= "GET" and method ~= "HEAD" then
    -- a POST here would read as a change of balance that did not happen
    return official.fail { status = 405, code = 1202, message = method .. " is not allowed on /gateway/balance" }
  end
  return api.balance(G, caller())
end

-- The callback location's refusals in the official envelope, with the codes the gateway's
-- other refusals of each status have (a signature refused is Kling's 1000, authentication
-- failed; 400, 403 and 413 are 1200, as nginx's own refusals are; 503, its records unreadable
-- now, is 5001 as a create refused for it).
local CALLBACK_CODES = { [401] = 1000, [404] = 1203, [405] = 1202, [503] = 5001 }
local function callback_refused(status, message)
  return official.fail { status = status, code = CALLBACK_CODES[status] or 1200, message = message }
end

-- location = /kling/callback: the upstream's callbacks, verified with webhook_secret; off
-- without it (polling ends tasks) unless the config says insecure_callbacks = true.
function M.callback()
  if not set_up() then
    return
  end
  if not G.cfg.callbacks then
    return callback_refused(403, "callbacks are off: this gateway has no webhook_secret to verify them")
  end
  return callback.handle { provider = G.cfg.upstream.provider, secret = G.cfg.webhook_secret,
    insecure_callbacks = G.cfg.insecure_callbacks, refuse = callback_refused,
    on_task = function(t)
      return track.on_callback(G, t)
    end }
end

-- What nginx itself refuses before any Lua runs (a body over client_max_body_size, a header
-- or request line over its buffers, a request that is not HTTP) is answered in the official
-- envelope like every other refusal, not with nginx's HTML page: clients parse JSON.
local NGINX_REFUSALS = {
  [400] = "the request is not valid HTTP, or a header is larger than this gateway takes",
  [403] = loopback.REFUSAL,
  [404] = "no such route on this gateway (the API is under /v1/)",
  [405] = "this method is not allowed here",
  [413] = "the request body is larger than this location takes",
  [414] = "the request line is longer than this gateway takes",
  [505] = "this HTTP version is not one this gateway takes (HTTP/1.0 and HTTP/1.1 are)",
}

-- error_page 400 403 404 405 413 414 494 505 ... /_kling/refused/<status> (kling.gateway.launcher renders them)
function M.refused_by_nginx(status)
  local message = NGINX_REFUSALS[status] or "refused"
  -- A request line nginx could not take (a bad escape, over its buffers) has no request_uri:
  -- its target is read from the line as it came (or its start, when too long).
  local uri = ngx.var.request_uri or (ngx.var.request or ""):match("^%S+%s+(%S+)")
  if admin.path(uri) then -- the admin API answers in its own form, these too
    return admin.refused(status, message)
  end
  return official.fail { status = status, code = 1200, message = message }
end

M.NGINX_REFUSALS = NGINX_REFUSALS

-- location = /gateway/ready: 200 once this node takes creates, 503 with why until then. With
-- a Redis store a node signs its config file's accounts in only once they are opened there
-- (retried each second while Redis cannot answer): /gateway/health said 200 before, and the
-- creates sent at once were 503s. `kling gateway start` and a load balancer wait for this.
-- Whether the node can take creates now, looked at by the probes at most once a second, every
-- worker's (the create path does nothing for it): with Redis a PING; on one node its journal
-- opened by an append's rules, and no journal write failed since the last look (a full disk).
-- A check of the start only stayed 200 with Redis away, every create a 503.
local LOOKED, DOWN, ERRORS_SEEN = "ready:looked", "ready:down", "ready:journal_errors"
local function cannot_take()
  local d = G.ledger_dict
  if not d:safe_add(LOOKED, true, 1) then -- looked at within the second (or no room: as it was)
    return d:get(DOWN)
  end
  local why
  if G.redis then
    local ok, err = G.redis:with(function(red)
      return red:ping()
    end)
    why = not ok and "the Redis store cannot be reached now: " .. tostring(err)
  else
    local errors = G.meter.store:journal_errors() + G.tasks:journal_errors()
    local seen = d:get(ERRORS_SEEN)
    d:safe_set(ERRORS_SEEN, errors)
    local ok, err = G.journal:writable()
    why = not ok and err or seen and errors > seen and "a journal write failed within the last second (creates are"
      .. " refused while it cannot be written: see the error log)"
  end
  if why then
    d:safe_set(DOWN, why)
  else
    d:delete(DOWN)
  end
  return why or nil
end

function M.ready()
  if not set_up() then
    return
  end
  local why = G.redis and G.ledger_dict:get(accounts.FILE_TAKEN) == nil
    and "the config file's accounts are not yet opened in the Redis store (retried each second: see the error log)"
    or cannot_take()
  if why then
    return official.fail { status = 503, code = 5001, message = why }
  end
  return official.reply(200, 0, "ready")
end

-- location = /metrics: Prometheus text (kling.gateway.metrics)
-- location = /metrics (loopback callers: kling.gateway.loopback, the admin API's rule)
function M.metrics()
  if not set_up() then
    return
  end
  if not loopback.caller() then
    return official.fail { status = 403, code = 1200, message = loopback.REFUSAL }
  end
  return metrics.handle(G)
end

-- log_by_lua in the gateway's server: requests by route and status.
function M.log()
  return metrics.log()
end

-- location /gateway/admin (loopback callers with the admin_key: kling.gateway.admin)
function M.admin()
  if not set_up(true) then
    return
  end
  return admin.handle(G)
end

return M
