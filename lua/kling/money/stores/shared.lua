--- The ledger's store in shared memory (the gateway on one node): a hard cap across workers.
-- Per-account balances in an ngx.shared dict: every worker reserves, settles and releases
-- against the same balances, atomically (ngx.shared.DICT incr), so a balance is a hard cap
-- however many requests run at once in however many workers. kling.money.ledger decides the
-- movements (ledger{store = this}); this store carries them out and answers with the refusal
-- codes of kling.money.stores.memory. Amounts are integer micro-units (exact in the dict's
-- doubles below 2^53, i.e. 9 billion units). Every movement is a ledger line with the account
-- added; appended to a journal, those lines rebuild the balances after a restart, and
-- replayed into a memory ledger per account they give the same totals.
--
-- Keys: seq, a:<account>:{base,topup,limit,avail,spent,reserved,open} (limit = base, the
-- credit it was opened with, + topup), a:<account in lower case>:name (the name it is kept by:
-- kept, in any case), h:<task_key> (the hold: account and
-- micros), d:<task_key> (settled or released: the one movement that ends a hold; kept `ended_ttl`
-- seconds when given, else for the dict's life).
-- @module kling.money.stores.shared
local core = require "kling.core"
local errors = require "kling.errors"
local json = require "kling.json"
local memory = require "kling.money.stores.memory"
local validate = require "kling.validate"
local rjournal = require "kling.resty.journal"
local shm = require "kling.resty.shm"

local Meter = {}
Meter.__index = Meter
Meter.__name = "kling.money.stores.shared"

local M = {}

local function validation(field, message)
  return errors.new { kind = "validation", field = field, message = message }
end

-- A journal metered in another unit than this store's (its first line's currency and
-- price_provider, or a movement's currency): its amounts are other money (each currency, and
-- each catalog's credits, is its own unit), refused with what to do about it.
local function unit(currency, price_provider)
  return tostring(currency) .. (price_provider ~= nil and (" priced by " .. tostring(price_provider)) or "")
end

local function other_unit(field, was, now)
  return validation(field, "the journal was metered in " .. was .. ", but this gateway meters in " .. now
    .. ": its amounts are another money. Give the config the currency and price_provider the journal was"
    .. " metered in, or give it a new journal path to start afresh")
end

-- same_unit(self, e, i) -> true | nil, err: the journal's first line (op = journal) against
-- this store's unit. A first line written before it named its unit passes (its movements'
-- currencies are still checked).
local function same_unit(self, e, i)
  local pp = self.price_provider and e.price_provider
  local cur_differs = e.currency ~= nil and e.currency ~= self.currency
  if cur_differs or (pp ~= nil and pp ~= self.price_provider) then
    return nil, other_unit("journal[" .. i .. "]." .. (cur_differs and "currency" or "price_provider"),
      unit(e.currency or self.currency, e.price_provider), unit(self.currency, self.price_provider))
  end
  return true
end

--- same_unit(first) -> true | nil, err: whether a journal whose first line is `first` was
-- metered in this store's unit (a replacement reopened while running: admin journal/reopen).
function Meter:same_unit(first)
  return same_unit(self, first, 1)
end

local function whole(v)
  return type(v) == "number" and v >= 0 and v == math.floor(v) and v < 2 ^ 53
end

-- What new{} takes; another key is refused by name (a misspelt journal was ignored: no line of
-- any movement written, no balance back after a restart).
local NEW_OPTIONS = { dict = true, currency = true, price_provider = true, journal = true, clock = true,
  ended_ttl = true, topup_id_ttl = true }

--- Makes the store.
-- new{dict = shared dict or its name, currency =, price_provider = the catalog that prices
-- its amounts | nil (a journal's first line naming another is refused), journal = kling.resty.journal | nil,
-- clock = fn -> ms, ended_ttl = seconds | nil, topup_id_ttl = seconds | nil} -> store (every
-- account is in `currency`). topup_id_ttl: how long a top-up's id is remembered (the same id
-- adds nothing within it); without it, for the dict's life.
-- ended_ttl: how long the mark that a hold ended is kept, so that a second end of it is refused.
-- Without it the marks stay as long as the dict, one for every task ever held, and a node that
-- runs long enough fills its dict and refuses every create; give it the time after which nothing
-- can end the task again (the gateway's: retention, for which the task's record is kept).
---@param opts {dict: string, currency: string, price_provider: string|nil, journal: string, ended_ttl: number}
---@return table|nil meter
---@return string|nil err
function M.new(opts)
  if type(opts) ~= "table" then
    error("kling.money.stores.shared: options table expected", 2)
  end
  validate.options("money.stores.shared", opts, NEW_OPTIONS)
  local dict = opts.dict
  if type(dict) == "string" then
    dict = ngx.shared[dict]
    if not dict then
      error("kling.money.stores.shared: no lua_shared_dict " .. opts.dict .. " in the nginx conf", 2)
    end
  end
  if type(opts.currency) ~= "string" or opts.currency == "" then
    error("kling.money.stores.shared: currency is required", 2)
  end
  local ttl, id_ttl = opts.ended_ttl, opts.topup_id_ttl
  for name, v in pairs { ended_ttl = ttl, topup_id_ttl = id_ttl } do
    local bad = shm.ttl_problem(v)
    if v ~= nil and bad then
      error("kling.money.stores.shared: " .. name .. " " .. bad, 2)
    end
  end
  if opts.price_provider ~= nil and type(opts.price_provider) ~= "string" then
    error("kling.money.stores.shared: price_provider must be a string", 2)
  end
  rjournal.check("kling.money.stores.shared", opts.journal)
  return setmetatable({ dict = dict, shm = shm.new(dict), currency = opts.currency,
    price_provider = opts.price_provider, journal = opts.journal,
    clock = opts.clock or core.wall_ms, ended_ttl = ttl or 0, topup_id_ttl = id_ttl or 0, keys = {} }, Meter)
end

local function akey(account, what)
  return "a:" .. account .. ":" .. what
end

-- The key of the name an account is kept by, found by that name in any case: a:<lower>:name
-- (written by open_account and the replay: Meter:kept).
local function name_key(account)
  return "a:" .. memory.name_fold(account) .. ":name"
end

-- The keys of an account's balance counters, made once per account and store: every reserve,
-- settle and release moves three or four of them. Kept only for an account the dict has (the
-- accounts opened: a bounded set).
local COUNTERS = { "avail", "spent", "reserved", "open" }
local function keys_of(self, account)
  local k = self.keys[account]
  if not k then
    k = {}
    for _, what in ipairs(COUNTERS) do
      k[what] = akey(account, what)
    end
    if self:known(account) then
      self.keys[account] = k
    end
  end
  return k
end

local function num(dict, key)
  return dict:get(key) or 0
end

-- The movement's fields a journal line has (each written by kling.json.value), in this order.
local LINE_KEYS = { "op", "amount", "currency", "account", "reserved_amount", "forgotten", "by", "task_id",
  "task_key" }
-- Each key's text before its value (',"op":'), made once.
local KEY_TEXT = {}
for _, k in ipairs(LINE_KEYS) do
  KEY_TEXT[k] = ',"' .. k .. '":'
end
local new_tab = require("kling.tables").new

--- The journal line of a movement, in one piece.
-- journal_line(e, record [, eol]) -> the JSON line of movement e (and the record's JSON text) |
-- nil, err: written in one piece, the task's key and record last, so that two lines differ in
-- their last bytes (the ones LuaJIT always hashes: kling.gateway.text says why). eol: a text
-- that ends the line ("\n" for the journal's append, which then writes it as it is).
---@param e table a ledger entry (seq, time_ms, op, amount, currency, account, task_id, task_key ...)
---@param record? string the task record's JSON text
---@param eol? string
---@return string|nil line
---@return string|nil err
function M.journal_line(e, record, eol)
  if type(e.seq) ~= "number" or type(e.time_ms) ~= "number" then
    return nil, "a journal line needs a numeric seq and time_ms"
  end
  local parts = new_tab(2 * #LINE_KEYS + 8, 0) -- its whole size at once: no regrowth a line
  parts[1], parts[2], parts[3], parts[4] = '{"seq":', json.value(e.seq), ',"time_ms":', json.value(e.time_ms)
  local n = 4
  for _, k in ipairs(LINE_KEYS) do
    local v = e[k]
    if v ~= nil then
      local s, err = json.value(v)
      if not s then
        return nil, err
      end
      parts[n + 1], parts[n + 2] = KEY_TEXT[k], s
      n = n + 2
    end
  end
  if record then
    parts[n + 1], parts[n + 2] = ',"record":', record
    n = n + 2
  end
  parts[n + 1] = "}"
  if eol then
    parts[n + 2] = eol
  end
  return table.concat(parts)
end

-- Writes one movement to the journal -> entry, or entry, journal error. A settle or release
-- that cannot be written stands in shared memory (it happened) and is logged loudly; the
-- callers of reserve and topup undo theirs (fail closed: no money moves unrecorded).
-- extra.record (JSON text: the task the movement is for) rides on the same line, so a create
-- costs one journal write, not two.
function Meter:record(op, account, key, micros, extra)
  local e = {
    seq = self.dict:incr("seq", 1, 0), time_ms = self.clock(), op = op, task_key = key,
    task_id = extra and extra.task_id or key, amount = core.money_format(micros), currency = self.currency,
    account = account, reserved_amount = extra and extra.reserved_amount,
    forgotten = extra and extra.forgotten or nil, by = extra and extra.by,
  }
  local jerr
  if self.journal then
    local line, eerr = M.journal_line(e, extra and extra.record, "\n")
    local ok, err = line, eerr
    if line then
      ok, err = rjournal.append(self.journal, line)
    end
    if not ok then
      jerr = err
      self.dict:incr("journal_errors", 1, 0)
      ngx.log(ngx.ERR, "kling meter: ", err)
    end
  end
  e.micros = micros
  return e, jerr
end

-- Journal write failures so far (every worker's).
function Meter:journal_errors()
  return self.dict:get("journal_errors") or 0
end

-- A top-up holds its account's lock while it checks the cap, journals and adds: the check and
-- the credit are one step for every worker (and for a reload that reads them: open_account).
-- Nothing in between yields; the lock expires should its worker die holding it. A phase that
-- cannot sleep is refused at once (kling.resty.shm lock).
local LOCK_SECONDS, LOCK_TRIES = 5, 200
-- nginx's master waits for it (a blocking sleep) until a lock its holder left must have expired.
local MASTER_TRIES = LOCK_SECONDS * 200 + 100

-- open_account(name, limit) sets an account's limit (a decimal string: the credit it may
-- spend). A changed limit moves the available balance by the difference (a top-up is a new
-- limit and a reload). Returns the account's summary or nil, err.
function Meter:open_account(name, limit)
  local bad = memory.name_problem(name)
  if bad then
    return nil, bad
  end
  local m, err = core.money_parse(tostring(limit))
  if not m then
    return nil, validation("accounts." .. name .. ".credit", err)
  end
  if m < 0 then
    return nil, validation("accounts." .. name .. ".credit", "must not be negative")
  end
  local d = self.dict
  local clash = memory.name_kept(name, d:get(name_key(name)))
  if clash then
    return nil, clash
  end
  for _, k in ipairs { "spent", "reserved" } do
    local ok, aerr = d:safe_add(akey(name, k), 0)
    if not ok and aerr ~= "exists" then
      return nil, validation("dict", "shared memory: " .. tostring(aerr))
    end
  end
  -- The limit is the file's credit (base) plus the admin API's top-ups. A changed credit moves
  -- the limit and the balance by its difference, each an atomic incr, as a top-up moves them
  -- (topup, limit, avail): a reload in nginx's master while a worker tops up interleaves
  -- freely. Recomputed as credit + topup and set, it counted a top-up twice when the reload
  -- read topup between the worker's incr of it and of limit (and avail).
  local old, base = d:get(akey(name, "limit")), d:get(akey(name, "base"))
  if old == nil then
    local total = m + num(d, akey(name, "topup"))
    local ok, aerr = d:safe_add(akey(name, "avail"), total - num(d, akey(name, "spent"))
      - num(d, akey(name, "reserved")))
    if not ok and aerr ~= "exists" then
      return nil, validation("dict", "shared memory: " .. tostring(aerr))
    end
    ok, aerr = d:safe_set(akey(name, "limit"), total)
    if not ok then
      return nil, validation("dict", "shared memory: " .. tostring(aerr))
    end
  elseif base == nil then
    -- An account opened before the base was kept (the first reload after an upgrade): its
    -- credit is its limit less its top-ups, read under its top-up lock, since a top-up moves
    -- topup, then limit: read between the two, a top-up was counted twice.
    local key = akey(name, "topup_lock")
    local locked, lerr = shm.lock(d, key, LOCK_SECONDS, MASTER_TRIES, true)
    if not locked then
      return nil, errors.new { kind = "server", field = "account", message = "account " .. name .. "'s credit"
        .. " cannot be read now: a top-up of it holds its lock (" .. tostring(lerr) .. "); try again" }
    end
    base = d:get(akey(name, "limit")) - num(d, akey(name, "topup"))
    if m ~= base then
      d:incr(akey(name, "limit"), m - base)
      d:incr(akey(name, "avail"), m - base)
    end
    d:delete(key)
  elseif m ~= base then
    d:incr(akey(name, "limit"), m - base)
    d:incr(akey(name, "avail"), m - base)
  end
  local ok, serr = d:safe_set(akey(name, "base"), m)
  if ok and d:get(name_key(name)) ~= name then
    ok, serr = d:safe_set(name_key(name), name)
  end
  if not ok then
    return nil, validation("dict", "shared memory: " .. tostring(serr))
  end
  return self:account(name)
end

function Meter:known(account)
  return self.dict:get(akey(account, "limit")) ~= nil
end

--- kept(name) -> whether the dict keeps anything of an account of that name in any case
-- (opened, or only its spend, holds or top-ups: a file account dropped from the config, put
-- back by a restart's replay), and the name it keeps it by (the Redis store's rule: names are
-- one account's in any case, as the config's and the gateway's sign-in take them, so a created
-- ZED beside a dropped zed would make the file refused at the next start that puts zed back).
---@param name string
---@return boolean kept
---@return string|nil name the name the dict keeps it by
function Meter:kept(name)
  local d = self.dict
  for _, what in ipairs { "limit", "spent", "topup" } do
    if d:get(akey(name, what)) ~= nil then
      return true, name
    end
  end
  local other = d:get(name_key(name))
  return other ~= nil, other
end

-- What a refused reserve gives back: the hold it counted open and the balance it took (a
-- function of the module's, not a closure made on every create).
local function unreserve(d, k, micros)
  d:incr(k.open, -1)
  d:incr(k.avail, micros)
end

-- reserve(account, task_key, micros [, {task_id, record, open_max}]) -> entry | nil, code,
-- detail: code "over" when the account's balance cannot hold it, "busy" when open_max of its
-- holds are open (nothing changes then). record: the JSON text of the task held for,
-- journaled on the reservation's own line.
function Meter:reserve(account, key, micros, info)
  if not whole(micros) then
    error("kling.money.stores.shared:reserve: micros must be a whole number >= 0", 2)
  end
  local d = self.dict
  local k = keys_of(self, account)
  -- An account is known by its balance (open_account adds it): no lookup of its own.
  local avail = d:incr(k.avail, -micros)
  if avail == nil then
    return nil, "unknown_account"
  elseif avail < 0 then
    d:incr(k.avail, micros)
    return nil, "over", avail + micros
  end
  -- Its holds open, counted whether or not a most is given (one may be set at a reload).
  local open = d:incr(k.open, 1, 0)
  local most = info and info.open_max
  if most and open > most then
    unreserve(d, k, micros)
    return nil, "busy", open - 1
  end
  local ok, err = self.shm:write("safe_add", "h:" .. key, account .. "|" .. string.format("%d", micros))
  if not ok then
    unreserve(d, k, micros)
    if err == "exists" then
      return nil, "exists"
    end
    return nil, "store", "shared memory: " .. tostring(err)
  end
  d:incr(k.reserved, micros)
  local e, jerr = self:record("reserve", account, key, micros, info)
  if jerr then
    -- Not recorded, not held: a restart could not know of it.
    d:delete("h:" .. key)
    d:incr(k.reserved, -micros)
    unreserve(d, k, micros)
    return nil, "journal", jerr
  end
  d:incr("holds_open", 1, 0)
  return e
end

-- How many reservations are held now.
function Meter:open_holds()
  return self.dict:get("holds_open") or 0
end

-- topup(account, micros, cap [, id]) -> account summary [, true: id was applied before, nothing
-- added] | false (its limit would pass cap) | nil, err: more credit, without a reload; journaled
-- first, so a top-up that could not be written never counts. An id is remembered for
-- topup_id_ttl from its top-up (tu:<account>:<id>; on its journal line, and kept by compaction
-- with when it expires): a retry within it adds nothing, and the dict does not grow for good.
function Meter:topup(account, micros, cap, id)
  if not whole(micros) or micros == 0 then
    return nil, validation("amount", "must be a positive amount")
  end
  if not self:known(account) then
    return nil, validation("account", "unknown account '" .. tostring(account) .. "'")
  end
  local d = self.dict
  local key = akey(account, "topup_lock")
  if not shm.lock(d, key, LOCK_SECONDS, LOCK_TRIES) then
    return nil, errors.new { kind = "server", field = "amount",
      message = "another top-up of this account is being recorded; try again" }
  end
  local ok, res, err = pcall(self.topup_locked, self, account, micros, cap, id)
  d:delete(key)
  if not ok then
    error(res, 0)
  end
  return res, err
end

-- The key of a top-up's id: "tu:<account>:<id>" (an account's name has no colon).
local function topup_key(account, id)
  return "tu:" .. account .. ":" .. id
end

--- The account and id a key of the ledger dict names when it is a top-up's id (kling.gateway
-- .compact writes them back), or nil.
---@param key string
---@return string|nil account
---@return string|nil id
function M.topup_of(key)
  return key:match("^tu:([^:]+):(.+)$")
end

-- A top-up's id taken and not yet applied is marked in the dict by a string (an applied one is
-- its micros): "pending <micros> <owner> <since_ms> <file> <from> <to>", owner the worker writing
-- its line (kling.resty.shm owner: pid and start time), since_ms when it began, file and from
-- the journal's identity and size before the line was appended (the line, if written, lands
-- past from; "-" when the journal cannot tell), to the journal's size once the owner was found
-- gone (0 before). "landed ..." once the line is written, before the credit's three incrs.
local LEASE_MS = LOCK_SECONDS * 1000 -- a mark's owner is asked whether it is gone only after this
local SCAN_BYTES = 1048576 -- of the journal read by one retry of a top-up left pending
local MARK = "^(%a+) (%d+) (%S+) (%d+) (%S+) (%d+) (%d+)$"

local function mark(state, micros, owner, since, file, from, to)
  return string.format("%s %d %s %d %s %d %d", state, micros, owner, math.floor(since), file, from, to)
end

local function recording(account, id, why)
  return errors.new { kind = "server", field = "id", message = "top-up " .. id .. " of account " .. account
    .. " is being recorded (" .. why .. "); try again" }
end

-- A top-up of id left pending by a worker that died writing its line, resolved by a retry of it
-- (under the account's lock) from the journal's own record: its line, looked for only in the
-- bytes appended from when it began to when its worker was found gone, SCAN_BYTES a retry (never
-- the whole journal in a request). -> "free" (no line: the id is given back, nothing was added) |
-- micros (its line is there: now counted, as a restart's replay would) | nil, err (not yet).
function Meter:resolve(account, id, idkey, was)
  local state, m, owner, since, file, from, to = was:match(MARK)
  m, since, from, to = tonumber(m), tonumber(since), tonumber(from), tonumber(to)
  if state ~= "pending" or file == "-" or not (self.journal and self.journal.scan) then
    -- its line written and its credit maybe half added, or no journal that can be read back:
    -- never applied twice, a restart reads the journal
    return nil, recording(account, id, "its worker left it so; a restart of nginx, which reads the journal,"
      .. " resolves it")
  elseif self.clock() - since < LEASE_MS or not shm.gone(owner) then
    return nil, recording(account, id, "by worker " .. owner:match("^%d+") .. ", since " .. string.format("%.1f",
      (self.clock() - since) / 1000) .. " s")
  end
  local d = self.dict
  if to == 0 then
    -- its owner is gone: its line, if it was written, is before the journal's end now
    local now, size = self.journal:position()
    if now ~= file then
      return nil, recording(account, id, "its worker died, and the journal was replaced since; a restart of nginx"
        .. " resolves it")
    end
    to = size
  end
  local at, found = self.journal:scan(file, from, to, SCAN_BYTES, json.value(id), function(e)
    return e.op == "topup" and e.topup_account == account and e.topup_id == id
  end)
  if not at then
    return nil, recording(account, id, "its worker died; " .. tostring(found))
  elseif found then
    d:incr(akey(account, "topup"), m, 0)
    d:incr(akey(account, "limit"), m)
    d:incr(akey(account, "avail"), m)
    local set, serr = d:safe_set(idkey, m, self.topup_id_ttl)
    if not set then
      ngx.log(ngx.ERR, "kling meter: top-up ", id, " of ", account, " applied, its id left pending: ", tostring(serr))
    end
    ngx.log(ngx.WARN, "kling meter: top-up ", id, " of ", account, " left pending by worker ", owner,
      " is in the journal: counted now")
    return m
  elseif at < to then
    local ok, serr = d:safe_set(idkey, mark("pending", m, owner, since, file, at, to))
    return nil, recording(account, id, "its worker died; the journal is read back to byte " .. at .. " of " .. to
      .. (ok and "" or (" (" .. tostring(serr) .. ")")))
  end
  d:delete(idkey)
  ngx.log(ngx.WARN, "kling meter: top-up ", id, " of ", account, " left pending by worker ", owner,
    " is not in the journal: nothing was added")
  return "free"
end

-- @local
function Meter:topup_locked(account, micros, cap, id)
  local d = self.dict
  local idkey = id and topup_key(account, id)
  local before = idkey and d:get(idkey)
  if type(before) == "string" then
    -- another worker is writing it (the lock outlived: a journal write past LOCK_SECONDS), or
    -- that worker died with its line written or not: resolved from the journal once it is gone
    local err
    before, err = self:resolve(account, id, idkey, before)
    if not before then
      return nil, err
    elseif before == "free" then
      before = nil
    end
  end
  if before then
    if before ~= micros then
      return nil, memory.topup_id_clash(account, id, before)
    end
    return self:account(account), true
  end
  if cap and micros > cap - (d:get(akey(account, "limit")) or 0) then
    return false
  end
  -- The id is taken before the line is written, marked pending (a string) until the top-up
  -- counts: a retry that comes while the line is written (its lock expired) must be told
  -- neither "applied" (it may yet fail: given back) nor free; a line that cannot be written
  -- gives it back. The mark has no life of its own: one of the id's (retention_days, seconds
  -- in a short one) expired under a slow line, and a retry then found the id free and added it
  -- again; the id's life starts once the top-up counts.
  local pending
  if idkey then
    local file, from
    if self.journal and self.journal.position then
      file, from = self.journal:position()
    end
    pending = mark("pending", micros, shm.owner(), self.clock(), file or "-", from or 0, 0)
    local taken, terr = self.shm:write("safe_set", idkey, pending)
    if not taken then
      return nil, errors.new { kind = "server", field = "id", message = "the ledger's shared dict cannot keep the"
        .. " top-up's id (" .. tostring(terr) .. "): nothing added; raise memory.ledger" }
    end
  end
  if self.journal then
    local ok, err = rjournal.append(self.journal, { seq = d:incr("seq", 1, 0), time_ms = self.clock(), op = "topup",
      topup_account = account, amount = core.money_format(micros), currency = self.currency, topup_id = id })
    if not ok then
      d:incr("journal_errors", 1, 0)
      if idkey then
        d:delete(idkey)
      end
      return nil, errors.new { kind = "server", field = "journal", message = err }
    end
    if idkey then
      d:safe_set(idkey, "landed" .. pending:sub(8)) -- the same size: its slot
    end
  end
  d:incr(akey(account, "topup"), micros, 0)
  d:incr(akey(account, "limit"), micros)
  d:incr(akey(account, "avail"), micros)
  if idkey then
    -- applied: its amount (the pending mark's slot, so the dict has room; should it not, the id
    -- stays pending, answered "being recorded" until a restart: never applied twice)
    local set, serr = d:safe_set(idkey, micros, self.topup_id_ttl)
    if not set then
      ngx.log(ngx.ERR, "kling meter: top-up ", id, " of ", account, " applied, its id left pending: ", tostring(serr))
    end
  end
  return self:account(account)
end

local function hold_of(d, key)
  local h = d:get("h:" .. key)
  if not h then
    return nil
  end
  local account, m = h:match("^(.*)|(%d+)$")
  return account, tonumber(m)
end

-- How long the end of key's hold is kept (seconds; 0: for the dict's life).
local function ended_life(self, forgotten)
  if forgotten then -- removed once its release is done (Meter:release says why)
    return 1
  end
  return self.ended_ttl
end

-- Ends key's hold once: the first of settle/release wins (the mark's add is the arbiter). The
-- hold's entry goes first, so that its slot is the one the mark takes (they are the same size):
-- an end never needs room a full dict lacks (a full dict stranded ends: tasks the provider
-- billed stayed held). Should the mark still not be written (another worker took the slot
-- meanwhile), the hold is put back and the end fails, to be tried again.
local function claim(self, key, op, account, held, forgotten)
  local d = self.dict
  if held then
    d:delete("h:" .. key)
  end
  local ok, err = self.shm:write("safe_add", "d:" .. key, op, ended_life(self, forgotten))
  if ok then
    return true
  elseif err == "exists" then -- another end came first: its own hold's entry went with it
    return nil, "ended", d:get("d:" .. key) or "ended"
  end
  if held then
    local back, berr = d:safe_set("h:" .. key, account .. "|" .. string.format("%d", held))
    if not back then -- the journal still has it open: a restart settles it from its record
      ngx.log(ngx.ERR, "kling meter: the hold of ", key, " cannot be put back: ", tostring(berr))
    end
  end
  return nil, "store", "shared memory: " .. tostring(err)
end

-- One hold of the account's fewer open; never below 0 (holds made before the count was kept,
-- by code older than a reload, end uncounted).
local function closed(d, k)
  if (d:incr(k.open, -1, 0) or 0) < 0 then
    d:incr(k.open, 1)
  end
end

-- settle(task_key, micros [, {task_id, account, at_most_held}]) -> entry | nil, code, detail.
-- Replaces the hold by the actual charge, which stands even past the balance (it was
-- incurred); with at_most_held, by memory.charge_of's (never past the hold; micros nil: the
-- hold), decided here where the hold is read and ended. Without a hold the charge needs
-- info.account.
function Meter:settle(key, micros, info)
  local at_most = info and info.at_most_held
  if not (whole(micros) or at_most and micros == nil) then
    error("kling.money.stores.shared:settle: micros must be a whole number >= 0", 2)
  end
  local d = self.dict
  local account, held = hold_of(d, key)
  account = account or (info and info.account)
  if not account or not self:known(account) then
    return nil, "unknown_account"
  end
  local price, capped = micros, false
  if at_most then
    micros, capped = memory.charge_of(micros, held)
  end
  local ok, code, detail = claim(self, key, "settled", account, held)
  if not ok then
    return nil, code, detail
  end
  local k = keys_of(self, account)
  if held then
    d:incr("holds_open", -1, 0)
    closed(d, k)
  end
  held = held or 0
  d:incr(k.avail, held - micros)
  d:incr(k.reserved, -held)
  d:incr(k.spent, micros)
  local e, jerr = self:record("settle", account, key, micros, { task_id = info and info.task_id,
    reserved_amount = core.money_format(held), by = info and info.by })
  e.priced = capped and price or nil
  return e, jerr
end

-- release(task_key [, {task_id}]) -> entry | nil, code, detail: nothing is charged.
function Meter:release(key, info)
  local d = self.dict
  local account, held = hold_of(d, key)
  if not account then
    return nil, "no_hold"
  end
  local forgotten = info and info.forgotten
  local ok, code, detail = claim(self, key, "released", account, held, forgotten)
  if not ok then
    return nil, code, detail
  end
  local k = keys_of(self, account)
  d:incr("holds_open", -1, 0)
  closed(d, k)
  d:incr(k.avail, held)
  d:incr(k.reserved, -held)
  local e, jerr = self:record("release", account, key, held, info)
  if forgotten then
    -- The task went with its hold (refused at its create, in its own request), so
    -- nothing can end it again: its mark was only the arbiter of ends made at that moment. A
    -- client whose creates were all refused upstream left one mark each, kept for retention:
    -- for nothing, it filled the dict within seconds and every client's creates were refused.
    d:delete("d:" .. key)
  end
  return e, jerr
end

-- Every account is in the store's one currency (an unknown one is refused when it moves).
function Meter:currency()
  return self.currency
end

-- The hold of a task key: account, micros (or nil).
function Meter:hold(key)
  return hold_of(self.dict, key)
end

-- Charges by key are not kept here (the journal has them).
function Meter.charge()
  return nil
end

-- The movements are in the journal, not in the process.
function Meter.entries()
  return {}
end

-- account(name) -> {name, currency, limit, spent, reserved, balance (decimal strings), and
-- *_micros; open: its holds} | nil
function Meter:account(name)
  local d = self.dict
  local limit = d:get(akey(name, "limit"))
  if limit == nil then
    return nil
  end
  local spent, reserved, avail = num(d, akey(name, "spent")), num(d, akey(name, "reserved")),
    num(d, akey(name, "avail"))
  local f = core.money_format
  return { name = name, currency = self.currency, limit = f(limit), spent = f(spent), reserved = f(reserved),
    balance = f(avail), limit_micros = limit, spent_micros = spent, reserved_micros = reserved,
    balance_micros = avail, open = num(d, akey(name, "open")) }
end

function Meter:entries_count()
  return self.dict:get("seq") or 0
end

-- One line of a compacted journal into the replay's tables -> true | nil, err.
local function compacted(self, e, i, spent, reserved, topups, ended, topup_ids)
  if e.op == "journal" then
    return same_unit(self, e, i)
  elseif e.op == "topup_id" then -- a top-up's id (its amount is in its account's totals)
    local m = type(e.amount) == "string" and core.money_parse(e.amount)
    if not (m and m > 0 and type(e.account) == "string" and type(e.id) == "string") then
      return nil, validation("journal[" .. i .. "]", "a top-up's id {op = topup_id, account, id, amount} is required")
    end
    -- its expiry (a compaction's of this version; one before it kept ids for good: from now)
    topup_ids[topup_key(e.account, e.id)] = { m, type(e.expires_ms) == "number" and e.expires_ms or nil }
    return true
  elseif e.op == "ended" then
    if type(e.task_key) ~= "string" or (e.how ~= "settled" and e.how ~= "released") then
      return nil, validation("journal[" .. i .. "]",
        "an end {op = ended, task_key, how = settled | released} is required")
    end
    ended[e.task_key] = e.how
    return true
  end
  local s = type(e.spent) == "string" and core.money_parse(e.spent)
  local t = type(e.topup) == "string" and core.money_parse(e.topup)
  if not (s and t and type(e.account) == "string") then
    return nil, validation("journal[" .. i .. "]",
      "an account's totals {op = balance, account, spent, topup} are required")
  end
  if s < 0 or t < 0 then
    -- what was spent or topped up never goes below zero: such a line is forged or corrupt
    return nil, validation("journal[" .. i .. "]", "an account's spent and topup are never negative (got spent "
      .. e.spent .. ", topup " .. e.topup .. ")")
  end
  if e.currency ~= self.currency then
    return nil, other_unit("journal[" .. i .. "].currency", unit(e.currency), unit(self.currency))
  end
  local a = e.account
  spent[a], reserved[a] = (spent[a] or 0) + s, reserved[a] or 0
  topups[a] = (topups[a] or 0) + t
  return true
end

-- restore(entries) rebuilds the balances from journal entries when shared memory is empty
-- (a restart; after a reload the dict still holds them and nothing is done). Limits come
-- from open_account afterwards. Returns the number of movements replayed, or nil, err.
function Meter:restore(entries)
  local d = self.dict
  if d:get("seq") ~= nil then
    -- a reload: the accounts kept since before their names were (a code upgrade by a reload)
    -- get theirs, so that kept finds them in any case from now on
    local named = {}
    for _, e in ipairs(entries) do
      local a = e.account or e.topup_account
      if type(a) == "string" and not named[a] then
        named[a] = true
        local ok, err = d:safe_add(name_key(a), a)
        if not ok and err ~= "exists" then
          return nil, errors.new { kind = "server", field = "memory", message = "the shared dict cannot hold what"
            .. " the journal holds (" .. name_key(a) .. ": " .. tostring(err) .. ")" }
        end
      end
    end
    return 0
  end
  local spent, reserved, holds, ended, seq, n = {}, {}, {}, {}, 0, 0
  local ended_at = {} -- task key -> {time_ms of its end, forgotten}
  local topups, topup_ids = {}, {}
  for i, e in ipairs(entries) do
    if e.op == "balance" or e.op == "ended" or e.op == "journal" or e.op == "topup_id" then
      -- A compacted journal's (kling.gateway.compact): an account's totals, a kept task's end,
      -- the movement counter, a top-up's id.
      local ok, err = compacted(self, e, i, spent, reserved, topups, ended, topup_ids)
      if not ok then
        return nil, err
      end
      if type(e.seq) == "number" and e.seq > seq then
        seq = e.seq
      end
      n = n + (e.op == "journal" and 0 or 1)
    elseif e.op == "topup" and type(e.topup_account) == "string" then
      local m = type(e.amount) == "string" and core.money_parse(e.amount)
      if e.currency ~= self.currency then -- skipped, it left the top-up out and a compaction dropped it
        return nil, other_unit("journal[" .. i .. "].currency", unit(e.currency), unit(self.currency))
      elseif m and m < 0 then
        return nil, validation("journal[" .. i .. "]", "a top-up is never negative (got " .. e.amount .. ")")
      elseif m then
        topups[e.topup_account] = (topups[e.topup_account] or 0) + m
        if type(e.seq) == "number" and e.seq > seq then -- numbered like every movement
          seq = e.seq
        end
        if type(e.topup_id) == "string" then
          local ttl = self.topup_id_ttl
          topup_ids[topup_key(e.topup_account, e.topup_id)] = { m, ttl > 0 and type(e.time_ms) == "number"
            and e.time_ms + ttl * 1000 or nil }
        end
      end
    elseif e.op == "reserve" or e.op == "settle" or e.op == "release" then
      local m = type(e.amount) == "string" and core.money_parse(e.amount)
      if not m or m < 0 or type(e.task_key) ~= "string" or type(e.account) ~= "string" then
        return nil, validation("journal[" .. i .. "]", "a ledger line {op, task_key, amount, account} is required, "
          .. "its amount never negative")
      end
      if e.currency ~= self.currency then
        return nil, other_unit("journal[" .. i .. "].currency", unit(e.currency), unit(self.currency))
      end
      local a = e.account
      spent[a], reserved[a] = spent[a] or 0, reserved[a] or 0
      local held = holds[e.task_key]
      if e.op == "reserve" then
        holds[e.task_key] = { a, m }
        reserved[a] = reserved[a] + m
      elseif not ended[e.task_key] then
        ended[e.task_key] = e.op == "settle" and "settled" or "released"
        ended_at[e.task_key] = type(e.time_ms) == "number" and { e.time_ms, e.forgotten == true } or nil
        if held then
          reserved[held[1]] = reserved[held[1]] - held[2]
          holds[e.task_key] = nil
        end
        if e.op == "settle" then
          spent[a] = spent[a] + m
        end
      end
      if type(e.seq) == "number" and e.seq > seq then
        seq = e.seq
      end
      n = n + 1
    end
  end
  -- Every write must land: a dict too small for what the journal holds would start with holds
  -- or ends missing (and a compaction would then drop them for good): refused instead.
  local failed
  local function put(key, value, ttl)
    local ok, err = d:safe_set(key, value, ttl)
    failed = failed or (not ok and (key .. ": " .. tostring(err)))
  end
  local open, open_of = 0, {}
  for key, h in pairs(holds) do
    put("h:" .. key, h[1] .. "|" .. string.format("%d", h[2]))
    open = open + 1
    open_of[h[1]] = (open_of[h[1]] or 0) + 1
  end
  for a in pairs(spent) do
    put(akey(a, "spent"), spent[a])
    put(akey(a, "reserved"), reserved[a])
    put(akey(a, "open"), open_of[a] or 0)
    put(name_key(a), a)
  end
  for a, m in pairs(topups) do
    put(akey(a, "topup"), m)
    put(name_key(a), a)
  end
  -- A top-up's id for what is left of its life; one past it is not put back (a retry of it now
  -- adds again, as it would have without the restart).
  local now = self.clock()
  for key, t in pairs(topup_ids) do
    local left = t[2] and (t[2] - now) / 1000 or self.topup_id_ttl
    if not t[2] or left > 0 then
      put(key, t[1], left)
    end
  end
  put("holds_open", open)
  -- An end is kept for what is left of its life from its line's time; one past it is not put
  -- back (a node that ran longer than its retention would not start again). A compacted
  -- journal's ends have no time: kept whole (compaction kept only those of tasks it kept).
  for key, how in pairs(ended) do
    local at = ended_at[key]
    local life = self.ended_ttl
    local left = (life > 0 and at) and life - (now - at[1]) / 1000 or life
    if not (at and at[2]) and (life == 0 or left > 0) then -- a forgotten task's end keeps no mark
      put("d:" .. key, how, left)
    end
  end
  put("seq", seq)
  if failed then
    return nil, errors.new { kind = "server", field = "memory", message = "the shared dict cannot hold what the"
      .. " journal holds (" .. failed .. ")" }
  end
  return n
end

--- Every open hold: {task_key = {account, micros}} (a walk of the dict: restarts only).
function Meter:holds()
  local out = {}
  for _, key in ipairs(self.dict:get_keys(0)) do
    local k = key:match("^h:(.+)$")
    if k then
      local account, m = hold_of(self.dict, k)
      if account then
        out[k] = { account, m }
      end
    end
  end
  return out
end

--- One ledger entry as a JSON line (kling.money.stores.memory's, with the account).
---@param e table
---@return string
function M.line(e)
  return memory.line(e)
end

return M
