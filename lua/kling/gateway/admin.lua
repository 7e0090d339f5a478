-- The operators' API, under /gateway/admin: loopback callers only, and only with the
-- config's admin_key as a Bearer token (compared in constant time); without admin_key the
-- API is off. No reload is needed to add an account or credit.
--   GET  /gateway/admin                          every account, the totals, overdrawn accounts, the journal's
--                                                last compaction, this worker's poller
--   POST /gateway/admin/accounts                 {name, api_key | access_key + secret_key, credit, max_open,
--                                                max_failed_daily, suspended}: a config account's fields
--   PATCH /gateway/admin/accounts/<name>         {api_key, access_key, secret_key, max_open, max_failed_daily,
--                                                suspended: any of them; null drops one}: a created account changed
--   POST /gateway/admin/accounts/<name>/topup    {amount [, id]}: more credit (with an id: once)
--   POST /gateway/admin/accounts/<name>/credit   {credit}: with Redis, the account's credit set for every node (409
--                                                on one node: its credits are the config's)
--   POST /gateway/admin/journal/reopen           {} or no body: every worker reopens the journal's path (a whole
--                                                copy; refused, 409, when the path holds no whole journal)
--   GET  /gateway/admin/ledger?limit=N           with Redis: the oldest N (1000) lines of its ledger list, NDJSON
--                                                (X-Kling-Ledger-Lines, X-Kling-Ledger-Offset: the first's place)
--   POST /gateway/admin/ledger/trim              {lines, sha1}: those lines removed once archived (SHA-1 of the
--                                                text GET gave; refused, 409, when the list's head differs)
--   GET  /gateway/admin/holds?cursor=C&count=N   the kept holds (ended tasks' holds the gateway cannot end), N (100)
--                                                a page, and the next page's cursor
--   POST /gateway/admin/tasks/<id>/settle        {amount}: an ended task's kept hold charged that (kling.gateway.holds)
--   POST /gateway/admin/tasks/<id>/release       {}: ... charged nothing
-- luacheck: ignore 122 (ngx.status and ngx.header are meant to be written)
local api = require "kling.gateway.api"
local callback = require "kling.resty.callback"
local capacity = require "kling.gateway.capacity"
local query_args = require "kling.gateway.args"
local accounts_mod = require "kling.gateway.accounts"
local compact = require "kling.gateway.compact"
local config = require "kling.gateway.config"
local holds = require "kling.gateway.holds"
local core = require "kling.core"
local json = require "kling.json"
local loopback = require "kling.gateway.loopback"
local journal = require "kling.resty.journal"
local poller = require "kling.resty.poller"
local validate = require "kling.validate"

local M = {}

local function reply(status, t)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(json.encode(t))
  return ngx.exit(status)
end

local function refuse(status, message, field)
  return reply(status, { error = message, field = field })
end

--- refused(status, message): an answer of the admin API's form ({"error": message}) for what
-- nginx refused before its Lua ran (a body over client_max_body_size): kling.gateway's
-- refused_by_nginx answers the official API's form elsewhere.
function M.refused(status, message)
  return refuse(status, message)
end

-- A request target as nginx routes it: an absolute form's scheme and host and its query left
-- out, each segment's %XX decoded, empty and "." segments dropped, ".." taking the one before
-- (//gateway/./%61dmin and http://host/gateway/admin are /gateway/admin).
local function routed(target)
  local out = {}
  for seg in target:gsub("^%a[%w+.-]*://[^/]*", ""):gsub("[?#].*$", ""):gmatch("[^/]+") do
    seg = seg:gsub("%%(%x%x)", function(hex)
      return string.char(tonumber(hex, 16))
    end)
    if seg == ".." then
      out[#out] = nil
    elseif seg ~= "." then
      out[#out + 1] = seg
    end
  end
  return "/" .. table.concat(out, "/")
end

--- Whether a request's target (as it came: request_uri, or read from the request line) is the
-- admin API's, /gateway/admin and its routes, however it is spelt.
function M.path(target)
  if type(target) ~= "string" then
    return false
  end
  local uri = routed(target)
  return uri == "/gateway/admin" or uri:find("^/gateway/admin/") ~= nil
end

-- allowed(G) -> true | nil, status, message
function M.allowed(G)
  if not loopback.caller() then
    return nil, 403, "the admin API answers loopback callers only"
  end
  local key = G.cfg.admin_key
  if not key then
    return nil, 403, "the admin API is off: set admin_key in the gateway config"
  end
  local given = (ngx.var.http_authorization or ""):match("^[Bb]earer%s+(%S+)%s*$")
  if not given or not core.ct_equal(given, key) then
    return nil, 401, "the admin API needs 'Authorization: Bearer <admin_key>'"
  end
  return true
end

-- An account as the admin API shows it: its decimal strings, exact; not the store's micro-unit
-- integers, which cjson cannot write exactly past 10^14 (it wrote 9.0000000201235e+15).
-- Its max_open beside its open tasks (s.open), and its max_failed_daily (the default when the
-- config gives none), in every answer that shows an account.
local function shown(G, s)
  s.limit_micros, s.spent_micros, s.reserved_micros, s.balance_micros = nil, nil, nil, nil
  local acct = G.accounts:get(s.name)
  s.max_open = acct and acct.max_open
  s.max_failed_daily = acct and (acct.max_failed_daily or capacity.MAX_FAILED_DAILY)
  s.suspended = acct and acct.suspended or false
  return s
end

local function summary(G)
  local accounts, spent, reserved = json.array {}, 0, 0
  for i, name in ipairs(G.accounts:names()) do
    local s, why = G.meter:account(name)
    if not s then
      -- a store that cannot be read now (Redis down), or is refused (reset, another unit): not
      -- an empty list of accounts, nor balances in the wrong unit
      return nil, "the balance of account " .. name .. " cannot be read now: " .. (why or "is the store up?")
    end
    spent, reserved = spent + s.spent_micros, reserved + s.reserved_micros
    accounts[i] = shown(G, s)
  end
  local over = json.array(accounts_mod.overdrawn(G))
  return {
    accounts = accounts, currency = G.cfg.currency, spent = core.money_format(spent),
    reserved = core.money_format(reserved), entries = G.meter.store:entries_count(),
    journal_errors = not G.redis and G.meter.store:journal_errors() + G.tasks:journal_errors() or nil,
    store_errors = G.redis and G.meter.store:store_errors() or nil, -- by stage: connect, call
    overdrawn = #over > 0 and over or nil,
    journal = not G.redis and { path = G.cfg.journal, compaction = compact.status(G.ledger_dict) } or nil,
    worker = ngx.worker.pid(), poller = G.poller and { holder = G.poller.holder, tracked = poller.count(G.poller),
      ticks = G.poller.stats.ticks, polls = G.poller.stats.polls, takeovers = G.poller.stats.takeovers } or nil,
    connections = G.driver and G.driver.stats or nil,
  }
end

-- body() -> doc | nil, message and field of a key given twice (nil: not a JSON object)
local function body()
  -- in memory or, past client_body_buffer_size, in its temporary file (a create's rule: api)
  local raw, rerr = callback.raw_body(api.BODY_MAX)
  if not raw then
    return nil, rerr
  end
  local doc, err, dup = json.decode_strict(raw)
  if dup then
    return nil, err, dup
  end
  -- [] decodes to the table {} decodes to: the text says which it was
  if type(doc) ~= "table" or json.is_array(doc) or not raw:find("^%s*{") then
    return nil, err -- why it is not JSON, when it is not
  end
  return doc
end

-- object_body(what, known) -> the body as a JSON object | nil (refused and answered: not an
-- object, a key given twice, or, with `known`, a key not in it, named with the closest one).
local function object_body(what, known, elsewhere)
  local doc, derr, dup = body()
  if dup then
    refuse(400, derr, dup)
    return nil
  elseif not doc then
    refuse(400, "the body of " .. what .. " must be a JSON object {" .. table.concat(known or { "name",
      "api_key | access_key + secret_key", "credit" }, ", ") .. "}" .. (derr and (" (" .. derr .. ")") or ""))
    return nil
  end
  for k in pairs(known and doc or {}) do
    local listed = false
    for _, name in ipairs(known) do
      listed = listed or k == name
    end
    if not listed and elsewhere and elsewhere[k] then
      refuse(400, k .. ": " .. elsewhere[k], k)
      return nil
    elseif not listed then
      -- a misspelt field is named, not reported as a missing one
      local best = validate.closest(k, known)
      refuse(400, tostring(k) .. ": is not a known field of " .. what
        .. (best and (" (did you mean " .. best .. "?)") or #known == 0 and " (it takes none: send {})"
          or (" (known: " .. table.concat(known, ", ") .. ")")), tostring(k))
      return nil
    end
  end
  return doc
end

-- no_fields(what) -> true | nil (refused and answered): a route that takes no fields, its body
-- empty (as curl -X POST sends it) or {}; a field is refused by name, as every route's unknown
-- one.
local function no_fields(what)
  ngx.req.read_body()
  local raw = ngx.req.get_body_data()
  if not ngx.req.get_body_file() and (raw == nil or not raw:find("%S")) then
    return true
  end
  return object_body(what, {}) ~= nil
end

-- known(G, name) -> true | nil (answered: 404 for no such account, 503 when the store cannot say:
-- an account created on another node, with Redis away, is not "no account", and for a file
-- account before the file's check at this start or reload; 409 for a file account whose name
-- a created one has, accounts file_taken).
local function known(G, name)
  local acct, err = G.accounts:get(name)
  local taken, terr = false, nil
  if acct then
    taken, terr = G.accounts:file_taken(name)
  end
  if taken == nil then
    -- not yet checked at this start or reload: it may be a created account's balance. A store
    -- this node refuses (reset, another unit) is never checked: its reason is the one to give.
    local _, why = G.meter:account(name)
    return nil, refuse(503, "nothing was moved: " .. (why and ("the balance of account " .. name
      .. " cannot be read now: " .. why) or (tostring(terr) .. "; try again")))
  elseif taken then
    -- the store's balance of that name is the created account's: money sent here would be its
    return nil, refuse(409, "account " .. name .. " is the config file's and, in the Redis store, an account the"
      .. " admin API created: neither signs in until the file's is renamed (the error log says so); nothing was"
      .. " moved", "name")
  elseif acct then
    return true
  end
  return nil, err and refuse(503, "the account cannot be read now (is the store up?): " .. tostring(err))
    or refuse(404, "no account " .. name)
end

local function create_account(G)
  local doc = object_body("a new account")
  if not doc then
    return
  end
  local ok, acct = pcall(config.account, doc, "account")
  if not ok then
    local msg = tostring(acct):gsub("^kling gateway config: ", "")
    return refuse(400, msg, msg:match("^account%.([%w_]+)"))
  end
  if G.redis then
    -- A store this node must not meter in (reset, another unit) is said before the account is
    -- written: else it would be a name taken with no balance to open later.
    local meta, berr = G.meter.store:bind()
    if not meta then
      return refuse(503, "nothing was created: " .. tostring(berr.message))
    end
  end
  -- (a name the store keeps, in any case, is refused by the add: on one node under the lock of
  -- account writes, with Redis by its WRITE, in the step that writes the account)
  local added, err = G.accounts:add(acct)
  if not added then
    return refuse(err.status or 409, err.message, err.field)
  end
  local s, oerr = G.meter:open_account(acct.name, acct.credit)
  if not s then
    return refuse(oerr.kind == "server" and 503 or 500, tostring(oerr.message or oerr))
  elseif oerr then -- a Redis store had an account of that name: its credit stands
    accounts_mod.warn_credit(acct.name, acct.credit, oerr, "its creation here")
  end
  return reply(201, shown(G, s))
end

-- What a change of an account may set; a field given null is dropped (a limit back to none or
-- the default, a way to sign in given up: the pair's halves together).
local CHANGEABLE = { "api_key", "access_key", "secret_key", "max_open", "max_failed_daily", "suspended" }

-- A created account changed: a leaked key replaced (the old one is refused at once on this
-- node, within accounts.CACHE_S on the others), its limits, its suspension. Checked as a new
-- account is, whole, before anything is written.
-- Fields a change refuses with where they do go (a credit was told "not a known field", the
-- closest one guessed, and the operator left to find the credit routes).
local function moved(name)
  local at = "POST /gateway/admin/accounts/" .. name
  return { credit = "is not changed by a PATCH: add credit with " .. at .. "/topup {\"amount\": \"10.00\"}, or set"
    .. " it with " .. at .. "/credit {\"credit\": \"50.00\"} (a Redis store; on one node the credit is the config"
    .. " file's: change it there and reload)" }
end

local function change_account(G, name)
  local doc = object_body("a change of an account", CHANGEABLE, moved(name))
  if not doc then
    return
  elseif next(doc) == nil then
    return refuse(400, "a change of an account sets at least one of " .. table.concat(CHANGEABLE, ", "))
  end
  local changed, err = G.accounts:change(name, function(cur)
    local t = {}
    for k, v in pairs(cur) do
      t[k] = v
    end
    for k, v in pairs(doc) do
      if v == json.null then
        t[k] = nil
      else
        t[k] = v
      end
    end
    local ok, acct = pcall(config.account, t, "account")
    if not ok then
      local msg = tostring(acct):gsub("^kling gateway config: ", "")
      return nil, { status = 400, message = msg, field = msg:match("^account%.([%w_]+)") }
    end
    return acct -- checked against the other accounts by the change itself
  end)
  if not changed then
    return refuse(err.status, err.message, err.field)
  end
  local s = G.meter:account(name)
  if not s then
    return refuse(503, "the account was changed; its balance cannot be read now (is the store up?)")
  end
  return reply(200, shown(G, s))
end

-- An amount of the admin API (a top-up, a credit) -> micro-units | nil, why it is not one: what
-- was sent when it is no string (missing, a JSON number), else config.amount's reason. A number
-- or a missing credit was told "is required, not negative".
local function amount_of(v)
  if v == nil or v == json.null then
    return nil, "missing"
  elseif type(v) == "number" then
    return nil, "got the number " .. tostring(v) .. ": write it as a string, \"" .. tostring(v) .. "\""
  elseif type(v) ~= "string" then
    return nil, "got " .. (type(v) == "table" and "a JSON object or array" or "a " .. type(v))
  end
  return config.amount(v)
end
M.amount_of = amount_of

-- A top-up adds its amount; with an id (the operator's name for it: an invoice, a payment) only
-- once: the same id again is answered as applied before, nothing added (a retry after a lost
-- answer must not credit twice), and refused (409) with another amount.
local function topup(G, name)
  local doc = object_body("a top-up", { "amount", "id" })
  if not doc then
    return
  end
  local m, why = amount_of(doc.amount)
  if not m or m <= 0 then
    -- why it is not an amount (an exponent, too many decimals, out of range), as a new
    -- account's credit says
    return refuse(400, "amount: a positive decimal string such as \"25.00\" is required"
      .. (why and (" (" .. tostring(why) .. ")") or ""), "amount")
  end
  if not known(G, name) then
    return
  end
  local s, err = G.meter:topup(name, m, doc.id)
  if not s then
    return refuse(err.kind == "server" and 503 or err.code == "id_used" and 409 or 400, tostring(err.message),
      err.field)
  end
  local out = shown(G, s)
  if doc.id ~= nil then
    out.topup = { id = doc.id, amount = core.money_format(m), applied = err ~= true }
  end
  return reply(200, out)
end

-- An account's credit, set for every node of a Redis store, which takes a config's credit only
-- when it first opens an account (a stale node's config must not set it back at its start):
-- its top-ups kept, its balance moved by the difference, a ledger line ("credit"). On one node
-- the config file is where a credit lives: each reload opens the accounts with it again.
local function set_credit(G, name)
  if not G.redis then
    return refuse(409, "this gateway runs on one node: it takes its accounts' credits from the config file (a"
      .. " created account's from its creation) at each reload, which would move a credit set here again; change"
      .. " it in the config file and reload (kill -HUP the gateway's nginx master), or add credit by a top-up",
      "credit")
  end
  local doc = object_body("a change of credit", { "credit" })
  if not doc then
    return
  end
  local m, why = amount_of(doc.credit)
  if not m then
    return refuse(400, "credit: a decimal string such as \"50.00\" (not negative) is required"
      .. (why and (" (" .. tostring(why) .. ")") or ""), "credit")
  end
  if not known(G, name) then
    return
  end
  local s, err = G.meter:set_credit(name, m)
  if not s then
    local status = err.kind == "server" and 503 or err.field == "account" and 404 or 400
    return refuse(status, tostring(err.message), err.field ~= "account" and err.field or nil)
  end
  return reply(200, shown(G, s))
end

-- An ended task's kept hold, settled at {amount} or released ({}): kling.gateway.holds.
local function end_hold(G, id, how)
  local doc = object_body(how == "settle" and "a settle" or "a release", how == "settle" and { "amount" } or {})
  if not doc then
    return
  end
  local m, why
  if how == "settle" then
    m, why = amount_of(doc.amount)
    if not m then
      return refuse(400, "amount: a decimal string such as \"1.50\" is required (what the upstream billed; \"0\""
        .. " charges nothing)" .. (why and (" (" .. tostring(why) .. ")") or ""), "amount")
    end
  end
  local status, out, field = holds.end_hold(G, id, how, m)
  if status ~= 200 then
    return refuse(status, out, field)
  end
  return reply(200, out)
end

-- With Redis the ledger list grows by a line a movement in Redis's memory: an archiver reads
-- its oldest lines, keeps them, and trims them. On one node the journal is the record.
local LEDGER_MAX = 5000

local function no_ledger_list(G)
  return refuse(409, "this gateway's record is its journal " .. G.cfg.journal
    .. " (compacted at each start: copy it before a restart to keep every movement)", "journal")
end

local LEDGER_ARGS, HOLDS_ARGS = { "limit" }, { "cursor", "count" }

-- The kept holds, a page at a time (kling.gateway.holds).
local function kept_holds(G)
  local args = ngx.req.get_uri_args(8)
  local count, cerr = query_args.whole(args, "count", holds.PAGE, holds.PAGE_MAX)
  if not count then
    return refuse(400, cerr, "count")
  end
  local cursor = args.cursor == nil and "0" or (type(args.cursor) == "string" and args.cursor:match("^%d+$"))
  if not cursor or #cursor > 19 then -- a Redis cursor is below 2^64; a longer one is no page's
    return refuse(400, "cursor: the cursor a page gave (digits), given once, is required"
      .. (type(args.cursor) == "table" and " (given more than once)" or ""), "cursor")
  end
  local status, out = holds.page(G, cursor, count)
  if status ~= 200 then
    return refuse(status, out)
  end
  return reply(200, out)
end

local function ledger_head(G)
  if not G.redis then
    return no_ledger_list(G)
  end
  local args = ngx.req.get_uri_args(8)
  local limit, lerr = query_args.whole(args, "limit", 1000, LEDGER_MAX)
  if not limit then
    return refuse(400, lerr, "limit")
  end
  local lines, first = G.meter.store:ledger_head(limit)
  if not lines then
    ngx.log(ngx.ERR, "kling gateway: ledger head: ", tostring(first))
    return refuse(503, "the ledger cannot be read now: " .. tostring(first), "store")
  end
  ngx.header["Content-Type"] = "application/x-ndjson"
  ngx.header["X-Kling-Ledger-Lines"] = #lines
  -- the first line's place in the whole record: an archive named by it is written again, never
  -- twice, when a read is repeated (a trim that failed)
  ngx.header["X-Kling-Ledger-Offset"] = string.format("%d", first)
  ngx.print(#lines > 0 and (table.concat(lines, "\n") .. "\n") or "")
  return ngx.exit(200)
end

local function ledger_trim(G)
  if not G.redis then
    return no_ledger_list(G)
  end
  local doc = object_body("a trim", { "lines", "sha1" })
  if not doc then
    return
  end
  local n = doc.lines
  if type(n) ~= "number" or n % 1 ~= 0 or n < 1 or n > LEDGER_MAX then
    return refuse(400, "lines: a whole number from 1 to " .. LEDGER_MAX .. " is required (how many lines were"
      .. " archived)", "lines")
  end
  if type(doc.sha1) ~= "string" or not doc.sha1:match("^%x+$") or #doc.sha1 ~= 40 then
    return refuse(400, "sha1: the SHA-1 (40 hex digits) of the archived text is required (sha1sum of what"
      .. " GET /gateway/admin/ledger gave)", "sha1")
  end
  local left, code, detail = G.meter.store:ledger_trim(n, doc.sha1:lower())
  if left then
    return reply(200, { trimmed = n, remaining = left })
  elseif code == "short" then
    return refuse(409, "the ledger has " .. tostring(detail) .. " lines, not " .. n .. ": nothing was trimmed",
      "lines")
  elseif code == "differs" then
    return refuse(409, "the ledger's oldest " .. n .. " lines are not the ones whose SHA-1 is " .. doc.sha1
      .. ": nothing was trimmed (read them again)", "sha1")
  end
  ngx.log(ngx.ERR, "kling gateway: ledger trim: ", tostring(detail))
  return refuse(503, "the ledger cannot be trimmed now (nothing was trimmed): " .. tostring(detail), "store")
end

function M.handle(G)
  local ok, status, message = M.allowed(G)
  if not ok then
    return refuse(status, message)
  end
  local uri, method = ngx.var.uri, ngx.req.get_method()
  -- Only the ledger's head and the kept holds take parameters: one given elsewhere (a top-up's
  -- ?amount=) is not read.
  local unknown, uwhy = query_args.unknown(uri == "/gateway/admin/ledger" and LEDGER_ARGS
    or uri == "/gateway/admin/holds" and HOLDS_ARGS or {})
  if unknown then
    return refuse(400, uwhy, unknown)
  end
  if uri == "/gateway/admin" and method == "GET" then
    local s, err = summary(G)
    if not s then
      return refuse(503, err)
    end
    return reply(200, s)
  elseif uri == "/gateway/admin/accounts" and method == "POST" then
    return create_account(G)
  elseif uri == "/gateway/admin/journal/reopen" and method == "POST" then
    if not no_fields("a reopen of the journal") then
      return
    elseif G.redis then
      return refuse(409, "this gateway has no journal: its store is Redis")
    end
    local first, why = journal.replacement(G.cfg.journal) -- why: the copy's identity when it is whole
    if first then
      local same, uerr = G.meter.store:same_unit(first)
      if not same then -- the next start would refuse it: its amounts are another money
        first, why = nil, "the journal " .. G.cfg.journal .. " cannot be reopened: " .. tostring(uerr.message)
      end
    end
    if not first then
      ngx.log(ngx.ERR, "kling gateway: journal/reopen refused: ", why)
      return refuse(409, why, "journal")
    end
    local generation, gerr = journal.reopen_all(G.ledger_dict, why)
    if not generation then
      ngx.log(ngx.ERR, "kling gateway: journal/reopen refused: ", gerr)
      return refuse(503, "the workers cannot be told to reopen the journal now (nothing changed): " .. tostring(gerr))
    end
    return reply(200, { generation = generation })
  elseif uri == "/gateway/admin/ledger" and method == "GET" then
    return ledger_head(G)
  elseif uri == "/gateway/admin/holds" and method == "GET" then
    return kept_holds(G)
  elseif uri == "/gateway/admin/ledger/trim" and method == "POST" then
    return ledger_trim(G)
  end
  local name, what = uri:match("^/gateway/admin/accounts/([%w._-]+)/(%a+)$")
  if name and what == "topup" and method == "POST" then
    return topup(G, name)
  elseif name and what == "credit" and method == "POST" then
    return set_credit(G, name)
  end
  name = uri:match("^/gateway/admin/accounts/([%w._-]+)$")
  if name and method == "PATCH" then
    return change_account(G, name)
  end
  local id, how = uri:match("^/gateway/admin/tasks/([%w._-]+)/(%a+)$")
  if id and (how == "settle" or how == "release") and method == "POST" then
    return end_hold(G, id, how)
  end
  return refuse(404, method .. " " .. uri .. " is not an admin route")
end

return M
