-- The gateway's configuration: a JSON file read in nginx's master (init_by_lua) at start
-- and at every reload, so a new key, a top-up (a higher credit) or a new upstream takes effect
-- with `nginx -s reload`. Checked field by field: a bad file stops nginx with the field named.
--
-- {
--   "price_provider": "kling", "currency": "CNY",  (the currency of that provider's price catalog)
--   "upstream": {"provider": "kling", "base_url": "https://api-singapore.klingai.com",
--                "access_key": "...", "secret_key": "..." | "api_key": "...",
--                "timeout": 60, "connect_timeout": 10, "reuse_posts": false},
--   "callback_url": "https://gateway.example/kling/callback",   (what the upstream calls back)
--   "webhook_secret": "whsec_...",           (verify the upstream's callbacks; optional)
--   "client_webhook_secret": "whsec_...",    (sign callbacks forwarded to clients; optional)
--   "journal": "/var/lib/kling-gateway/ledger.jsonl",
--   "journal_sync": false,                   (fsync each journal line: survives a machine crash,
--                                             at a disk wait per money movement inside the worker)
--   "retention_days": 30,                    (how long ended tasks stay queryable)
--   "memory": {"tasks": "128m", "ledger": "16m"},  (one node's shared memory, fixed at its start)
--   "poll": {"min_interval": 1, "max_interval": 15, "silence": 60, "deadline": 86400, "lookups": 3},
--   "accounts": [{"name": "alice", "api_key": "...", "access_key": "...", "secret_key": "...",
--                 "credit": "100.00", "max_open": 10, "max_failed_daily": 1000}],
--                 (max_open: its tasks open at once; max_failed_daily: its tasks that may fail at no
--                 charge a day; both optional)
--   "admin_key": "...",                      (the admin API's Bearer key; without it the API is off)
--   "allow_private_callbacks": false,        (clients' callback_urls may be private addresses)
--   "callback_queue": 10000,                 (callbacks to clients a worker holds; past it dropped, counted)
--   "allow_private_media": false,            (clients' media URLs may be private addresses)
--   "insecure_callbacks": false,             (take the upstream's callbacks without webhook_secret)
--   "store": {"redis": "redis://127.0.0.1:6379/0", "prefix": "kgw:"}  (several nodes; no journal then)
--   "resolver": ["192.0.2.53", "192.0.2.54:53"]   (asked where callback hosts point; default resolv.conf's)
-- }
-- Unknown fields are refused by name (with the closest known one).
local json = require "kling.json"
local core = require "kling.core"
local validate = require "kling.validate"
local auth = require "kling.gateway.auth"
local webhook = require "kling.webhook"
local memory_store = require "kling.money.stores.memory"

local M = {}

local function fail(field, rule)
  error("kling gateway config: " .. field .. ": " .. rule, 0)
end

-- A field's value (nil: absent); a JSON null is refused naming the field, one rule for every
-- field of the file and of a new account, as for a client's request. It was read two ways: a
-- null key taken as absent, a null max_open, max_failed_daily or suspended refused. (The admin
-- API's change of an account reads null as "drop the field" before the account is checked.)
local function given(t, k, where)
  local v = t[k]
  if v == json.null then
    fail(where .. k, "must not be null (leave the field out for none or its default)")
  end
  return v
end

local function str(t, k, where, required)
  local v = given(t, k, where)
  if v == nil then
    if required then
      fail(where .. k, "is required (a string)")
    end
    return nil
  end
  if type(v) ~= "string" or v == "" then
    fail(where .. k, "must be a non-empty string")
  end
  return v
end

-- A key or secret: printable ASCII without spaces (it goes into headers and the journal), at
-- least `min` characters where the gateway trusts it alone (a client's key, the admin's, a
-- signing secret): "x" would be guessed; at most KEY_MAX: a longer one could never be sent in a
-- header nginx takes (8 KB), and past 64 KB shared memory refused it after it was journaled.
M.KEY_MAX = 256
local function key(t, k, where, required, min)
  local v = str(t, k, where, required)
  if v ~= nil then
    if not v:match("^[\33-\126]+$") then
      fail(where .. k, "must be printable ASCII without spaces or control characters")
    end
    if min and #v < min then
      fail(where .. k, "must be at least " .. min .. " characters")
    end
    if #v > M.KEY_MAX then
      fail(where .. k, "must be at most " .. M.KEY_MAX .. " characters (got " .. #v .. ")")
    end
  end
  return v
end

local KNOWN = {
  [""] = { "price_provider", "currency", "upstream", "callback_url", "webhook_secret", "client_webhook_secret",
    "journal", "journal_sync", "retention_days", "poll", "accounts", "admin_key", "allow_private_callbacks",
    "allow_private_media", "insecure_callbacks", "store", "resolver", "memory", "callback_queue" },
  ["store."] = { "redis", "prefix" },
  ["memory."] = { "tasks", "ledger" },
  ["upstream."] = { "provider", "base_url", "access_key", "secret_key", "api_key", "timeout", "connect_timeout",
    "reuse_posts" },
  ["poll."] = { "min_interval", "max_interval", "silence", "deadline", "lookups" },
  ["accounts[]."] = { "name", "api_key", "access_key", "secret_key", "credit", "max_open", "max_failed_daily",
    "suspended" },
}
M.FIELDS = KNOWN -- every field the configuration takes, by where ("" the top level, "poll.", ...): its docs' check


-- Refuses a field this configuration does not have, naming the closest known one.
local function only_known(t, where, kind)
  local known = KNOWN[kind or where]
  local set = {}
  for _, k in ipairs(known) do
    set[k] = true
  end
  for k in pairs(t) do
    if type(k) ~= "string" then
      fail(where:gsub("%.$", ""), "must be an object")
    end
    if not set[k] then
      local best = validate.closest(k, known)
      fail(where .. k, "is not a known field" .. (best and (" (did you mean " .. best .. "?)")
        or ("; known: " .. table.concat(known, ", "))))
    end
  end
end

local function flag(t, k, where)
  local v = given(t, k, where)
  if v == nil then
    return false
  end
  if type(v) ~= "boolean" then
    fail(where .. k, "must be true or false")
  end
  return v
end

-- The fields of an account (and of the upstream) that hold a key or a secret.
M.KEY_FIELDS = { "api_key", "access_key", "secret_key" }

-- Why a key or secret used where it is already used (prior) is refused (M.key_clash says why).
local function clash(prior)
  return "is already used as " .. prior .. " (each key and secret is one role's: they must all differ)"
end

-- claim(owners, value, where): value is used at where (raises naming both when it is used already).
local function claim(owners, value, where)
  if value == nil then
    return
  end
  if owners[value] then
    fail(where, clash(owners[value]))
  end
  owners[value] = where
end

-- seconds(t, k, where, default, {unit =, min =, max =, whole =}) -> t[k] or default: a number
-- within [min, max] (what the part that uses it can take: nginx's timeouts, the scheduler's
-- intervals and ages), whole when asked; refused naming the field and the range.
-- A bound as a message writes it: in digits (0.00001, not tostring's 1e-05), no trailing zeros.
local function bound(x)
  return (("%.6f"):format(x):gsub("%.?0+$", ""))
end

local function seconds(t, k, where, default, o)
  local v = given(t, k, where)
  if v == nil then
    return default
  end
  local unit, min, max = o.unit or "seconds", o.min, o.max
  if type(v) ~= "number" or v ~= v or v < min or v > max or (o.whole and v % 1 ~= 0) then
    fail(where .. k, ("must be a %snumber of %s from %s to %s (got %s)"):format(o.whole and "whole " or "", unit,
      bound(min), bound(max), validate.got(v)))
  end
  return v
end

-- A shared dict's size ("128m", "1g", "65536k", bytes) -> {text = as nginx reads it in
-- lua_shared_dict (`kling gateway start` writes it there), bytes =}.
local UNITS = { [""] = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3 }
local function size(t, k, where, default)
  local v = given(t, k, where)
  if v == nil then
    v = default
  end
  local n, unit = nil, nil
  if type(v) == "string" then
    n, unit = v:match("^(%d+)([kKmMgG]?)$")
  end
  local bytes = n and #n <= 12 and tonumber(n) * UNITS[unit:lower()]
  if not bytes or bytes < 256 * 1024 or bytes > 64 * 1024 ^ 3 then
    fail(where .. k, "must be a size from 256k to 64g as nginx writes it (\"128m\", \"1g\")")
  end
  -- nginx reads k and m in a lua_shared_dict's size, not g (1.22 refuses "1g"): written in m.
  local text = unit:lower() == "g" and string.format("%dm", math.floor(bytes / UNITS.m)) or v:lower()
  return { text = text, bytes = bytes }
end

-- The upstream's host and port are written into nginx.conf (kling.gateway.proxy: upstream
-- server, Host, TLS name): a host name or IPv4 address, a port, a plain path; nothing nginx
-- would read as syntax (a host of "h;}server{..." added a server), no user info or query.
local function base_url_problem(u, prefix)
  -- the library's rule first: user info, query, spaces, the provider's own route prefix
  local problem = validate.base_url_problem(u, prefix)
  if problem then
    return problem
  end
  local host, port, path = u:match("^https?://([%w.-]+)(:?%d*)(.*)$")
  if not host or host:match("^[.-]") then
    return "must be http(s)://HOST[:PORT][/PATH], HOST a name or an IPv4 address"
  end
  local n = port ~= "" and tonumber(port:sub(2))
  if port ~= "" and not (n and n >= 1 and n <= 65535) then
    return "the port must be a number from 1 to 65535"
  end
  if path ~= "" and not path:match("^/[%w%-._~/%%]*$") then
    return "the path may have letters, digits and - . _ ~ / % only (no query, fragment, user info or spaces)"
  end
  return nil
end

-- check(doc) -> config (raises naming the field)
function M.check(doc)
  if type(doc) ~= "table" or doc[1] ~= nil or json.is_array(doc) then
    fail("(file)", "must be a JSON object")
  end
  only_known(doc, "", "")
  local c = {
    admin_key = key(doc, "admin_key", "", false, 16),
    allow_private_callbacks = flag(doc, "allow_private_callbacks", ""),
    allow_private_media = flag(doc, "allow_private_media", ""),
    insecure_callbacks = flag(doc, "insecure_callbacks", ""),
    currency = str(doc, "currency", "", false),
    price_provider = str(doc, "price_provider", "", false) or "kling",
    callback_url = str(doc, "callback_url", "", false),
    webhook_secret = key(doc, "webhook_secret", "", false, 16),
    client_webhook_secret = key(doc, "client_webhook_secret", "", false, 16),
    journal = str(doc, "journal", "", doc.store == nil),
    journal_sync = flag(doc, "journal_sync", ""),
    retention_days = seconds(doc, "retention_days", "", 30, { unit = "days", min = 1e-5, max = 3650 }),
    callback_queue = seconds(doc, "callback_queue", "", 10000, { unit = "callbacks", min = 1, max = 1000000,
      whole = true }),
  }
  -- nginx's master and the launcher run in other directories: a relative path would name
  -- another file for each (the journal is the ledger).
  if c.journal and c.journal:sub(1, 1) ~= "/" then
    fail("journal", "must be an absolute path (got " .. c.journal .. ")")
  end
  local mem = doc.memory or {}
  if type(mem) ~= "table" or json.is_array(mem) then
    fail("memory", "must be an object {\"tasks\": \"128m\", \"ledger\": \"16m\"}")
  end
  only_known(mem, "memory.")
  c.memory = { tasks = size(mem, "tasks", "memory.", "128m"), ledger = size(mem, "ledger", "memory.", "16m") }
  -- The gateway charges in its price catalog's currency.
  local cat, cerr = require("kling.billing").catalog(c.price_provider)
  if not cat then
    fail("price_provider", tostring(cerr and cerr.message or cerr))
  end
  if type(cat.currency) ~= "string" then
    fail("price_provider", "the " .. c.price_provider .. " catalog has no currency (it prices nothing)")
  end
  if c.currency and c.currency ~= cat.currency then
    fail("currency", "the " .. c.price_provider .. " catalog is in " .. cat.currency .. ", not " .. c.currency)
  end
  c.currency = cat.currency
  if c.callback_url and not c.callback_url:match("^https?://[^/%s]+[^%s]*$") then
    fail("callback_url", "must be an http(s) URL")
  end
  if doc.resolver ~= nil then
    -- The name servers the gateway asks where a callback host points (default: resolv.conf's).
    local n = 0
    for _ in pairs(type(doc.resolver) == "table" and doc.resolver or {}) do
      n = n + 1
    end
    if type(doc.resolver) ~= "table" or n == 0 or n ~= #doc.resolver then
      fail("resolver", "must be a non-empty list of name server addresses (\"a.b.c.d\" or \"a.b.c.d:port\")")
    end
    for i, s in ipairs(doc.resolver) do
      if not require("kling.dns").server_address(s) then
        fail("resolver[" .. i .. "]", "must be an IPv4 name server address (\"a.b.c.d\" or \"a.b.c.d:port\")")
      end
    end
    c.resolver = doc.resolver
  end
  if doc.store ~= nil then
    if type(doc.store) ~= "table" or json.is_array(doc.store) then
      fail("store", "must be an object {\"redis\": \"redis://host:port/db\"}")
    end
    only_known(doc.store, "store.")
    local url = str(doc.store, "redis", "store.", true)
    local parsed, perr = require("kling.gateway.redis").parse(url)
    if not parsed then
      fail("store.redis", perr)
    end
    c.store = { redis = parsed, prefix = str(doc.store, "prefix", "store.", false) or "kgw:" }
  end
  -- The secret the upstream's callbacks are verified with: a whsec_ one whose rest is no base64
  -- was taken here and then made every callback raise in C.
  local secret_problem = c.webhook_secret and webhook.secret_problem(c.webhook_secret)
  if secret_problem then
    fail("webhook_secret", secret_problem)
  end
  -- The upstream's callbacks are taken only when they can be verified (or when the operator
  -- says in writing that they need not be); without them polling alone ends tasks.
  c.callbacks = webhook.takes(c.webhook_secret, c.insecure_callbacks)
  local u = doc.upstream
  if type(u) ~= "table" or json.is_array(u) then
    fail("upstream", "is required: {provider, base_url, access_key + secret_key | api_key}")
  end
  only_known(u, "upstream.")
  c.upstream = {
    provider = str(u, "provider", "upstream.", false) or "kling",
    base_url = str(u, "base_url", "upstream.", true),
    access_key = key(u, "access_key", "upstream.", false),
    secret_key = key(u, "secret_key", "upstream.", false),
    api_key = key(u, "api_key", "upstream.", false),
    timeout = seconds(u, "timeout", "upstream.", 60, { min = 1, max = 3600 }),
    connect_timeout = seconds(u, "connect_timeout", "upstream.", 10, { min = 0.1, max = 300 }),
    reuse_posts = flag(u, "reuse_posts", "upstream."),
  }
  -- An unknown provider would start and then fail every create (500): refuse it here, named.
  local names = require("kling.providers").names
  local known = false
  for _, n in ipairs(names) do
    known = known or n == c.upstream.provider
  end
  if not known then
    local near = validate.closest(c.upstream.provider, names)
    fail("upstream.provider", "must be one of " .. table.concat(names, ", ") .. " (got " .. c.upstream.provider
      .. (near and ("; did you mean " .. near .. "?") or "") .. ")")
  end
  local upstream_provider = require("kling.providers").get(c.upstream.provider)
  local bad = base_url_problem(c.upstream.base_url, upstream_provider and upstream_provider.route_prefix)
  if bad then
    fail("upstream.base_url", bad)
  end
  if not c.upstream.api_key and not (c.upstream.access_key and c.upstream.secret_key) then
    fail("upstream", "needs access_key and secret_key, or api_key")
  end
  local p = doc.poll or {}
  if type(p) ~= "table" or json.is_array(p) or p[1] ~= nil then
    fail("poll", "must be an object")
  end
  only_known(p, "poll.")
  c.poll = {
    -- The scheduler takes intervals up to a day and a task's life up to 24.8 days (2^31 ms).
    min_interval = seconds(p, "min_interval", "poll.", 1, { min = 0.01, max = 86400 }),
    max_interval = seconds(p, "max_interval", "poll.", 15, { min = 0.01, max = 86400 }),
    silence = seconds(p, "silence", "poll.", 60, { min = 0.01, max = 86400 }),
    deadline = seconds(p, "deadline", "poll.", 86400, { min = 1, max = 2000000 }),
    lookups = seconds(p, "lookups", "poll.", 3, { unit = "lookups", min = 1, max = 100, whole = true }),
  }
  if c.poll.max_interval < c.poll.min_interval then
    fail("poll.max_interval", "must be at least poll.min_interval")
  end
  if type(doc.accounts) ~= "table" or #doc.accounts == 0 then
    fail("accounts", "is required: a non-empty array of {name, api_key | access_key + secret_key, credit}")
  end
  c.accounts, c.by_key, c.by_access = {}, {}, {}
  local named = {}
  -- Every key and secret of the config is used once: see M.key_clash.
  c.key_owner = {}
  for _, f in ipairs(M.KEY_FIELDS) do
    claim(c.key_owner, c.upstream[f], "upstream." .. f)
  end
  claim(c.key_owner, c.admin_key, "admin_key")
  -- A client whose key were the webhook secret could sign the upstream's callbacks (end any
  -- task, its charge released) or derive every account's callback key: so is its bare part.
  for _, f in ipairs { "webhook_secret", "client_webhook_secret" } do
    claim(c.key_owner, c[f], f)
    local bare = c[f] and c[f]:match("^whsec_(.+)$")
    if bare and c.key_owner[bare] ~= f then
      claim(c.key_owner, bare, f)
    end
  end
  for i, a in ipairs(doc.accounts) do
    local acct = M.account(a, "accounts[" .. i .. "]")
    -- Balances are kept by name: two accounts of one name would share one balance and the
    -- second's credit would vanish. Names that differ in case only are refused too: a typo, or
    -- two accounts an operator takes for one.
    local lower = memory_store.name_fold(acct.name) -- the stores' rule of a name's case
    if named[lower] then
      local first = doc.accounts[named[lower]].name
      fail("accounts[" .. i .. "].name", "'" .. acct.name .. "' is already accounts[" .. named[lower] .. "]'s"
        .. (first ~= acct.name and (" ('" .. first .. "': names differ in case only)") or ""))
    end
    named[lower] = i
    for _, f in ipairs(M.KEY_FIELDS) do
      claim(c.key_owner, acct[f], "accounts[" .. i .. "]." .. f)
    end
    if acct.api_key then
      c.by_key[acct.api_key] = acct
    end
    if acct.access_key then
      c.by_access[acct.access_key] = acct
    end
    c.accounts[#c.accounts + 1] = acct
  end
  return c
end

-- key_clash(owners, acct) -> field, message | nil: whether one of a new account's keys is a
-- value the config or another account already uses. Every key and secret names one role: a
-- client's api_key that is another's secret_key would let it sign that one's tokens, an access
-- key (public: every JWT names it) that is a secret or the admin_key gives it away, and a
-- client key that is the upstream's lets the client skip the gateway. owners: value -> where
-- it is used (the config's key_owner, plus what the caller adds). The values are never said.
-- changed (optional): the fields a change sets ({api_key = true}): a clash within the account
-- is named at the field changed, not at the one it kept (an api_key set to the account's own
-- access_key was refused naming access_key).
function M.key_clash(owners, acct, changed)
  local mine, order = {}, {}
  for _, f in ipairs(M.KEY_FIELDS) do
    if not (changed and changed[f]) then
      order[#order + 1] = f
    end
  end
  for _, f in ipairs(M.KEY_FIELDS) do
    if changed and changed[f] then
      order[#order + 1] = f
    end
  end
  for _, f in ipairs(order) do
    local v = acct[f]
    if v ~= nil then
      local prior = owners[v] or mine[v]
      if prior then
        return f, clash(prior)
      end
      mine[v] = f
    end
  end
end

-- The most tasks open at once an account's max_open may name.
M.MAX_OPEN = 1000000

--- An amount as the config and the admin API take it (a credit, a top-up, a settle) -> micro-units
-- | nil, why: a decimal string of digits ("25.00"), not signed (negative credits are refused by
-- their callers, "-0" as any sign), without an exponent, more than 6 decimals or a leading zero
-- ("01" and "007.50" are read as 1 and 7.5: written otherwise).
---@param s any
---@return integer|nil micros
---@return string|nil why
function M.amount(s)
  if type(s) ~= "string" then
    return nil
  elseif s:find("^%-%d") then
    return nil, "negative"
  elseif not s:find("^%d") then
    return nil, "not a decimal number"
  elseif s:find("^0%d") then
    return nil, "a leading zero"
  end
  return core.money_parse(s)
end

--- account(doc, where) -> {name, api_key, access_key, secret_key, credit, max_open, max_failed_daily,
-- suspended} (raises naming the field): one client account, from the file or from the admin API.
function M.account(a, where)
  if type(a) ~= "table" or json.is_array(a) then
    fail(where, "must be an object")
  end
  where = where .. "."
  only_known(a, where, "accounts[].")
  if type(a.credit) == "number" then
    -- money is a decimal string: a JSON number is a float to most writers and readers
    fail(where .. "credit", "must be a decimal string such as \"100.00\", not a number")
  end
  local acct = {
    name = str(a, "name", where, true), api_key = key(a, "api_key", where, false, 8),
    access_key = key(a, "access_key", where, false), secret_key = key(a, "secret_key", where, false, 8),
    credit = str(a, "credit", where, true),
    -- Every client shares the upstream's parallel slots (and a node's room for open tasks):
    -- a client's share of them, refused beyond (429, 1303) as the upstream refuses its own.
    max_open = seconds(a, "max_open", where, nil, { unit = "tasks", min = 1, max = M.MAX_OPEN, whole = true }),
    -- Tasks that fail at no charge cost their client nothing and are kept all the same: a
    -- client's share of them a day (kling.gateway.capacity), refused beyond (429, 1102).
    max_failed_daily = seconds(a, "max_failed_daily", where, nil, { unit = "tasks", min = 1, max = M.MAX_OPEN,
      whole = true }),
    -- An operator's stop to an account's spending (unpaid, abused): its creates are refused
    -- (429, 1100: an account exception, which clients do not retry); its tasks and balance stay.
    suspended = flag(a, "suspended", where) or nil,
  }
  -- A name is a key of the ledger, a metrics label and a journal field on every line: short.
  -- It is a path segment of the admin API too: "." and ".." would be read as the path's own.
  if not acct.name:match("^%w[%w._-]*$") or #acct.name > 64 then
    fail(where .. "name", "1 to 64 letters, digits, '.', '_' and '-' only, the first a letter or digit")
  end
  local m, why = M.amount(acct.credit)
  if not m then
    -- why it is not an amount (negative, an exponent, too many decimals, out of range), not a guess
    fail(where .. "credit", "must be a decimal string such as \"100.00\" (" .. tostring(why) .. ")")
  end
  -- half a pair signs nothing: a typo the client would find only by its 401s
  if (acct.access_key == nil) ~= (acct.secret_key == nil) then
    local missing = acct.access_key and "secret_key" or "access_key"
    fail(where .. missing, "is required with " .. (missing == "secret_key" and "access_key" or "secret_key")
      .. " (the pair signs the client's tokens)")
  end
  if not acct.api_key and not acct.access_key then
    fail(where .. "api_key", "an api_key, or an access_key with its secret_key, is required")
  end
  if acct.api_key and auth.jwt_parts(acct.api_key) then
    fail(where .. "api_key", "must not have the shape of a JWT (three parts joined by '.'): the gateway reads"
      .. " such a Bearer token as a JWT, so the key could never be used")
  end
  return acct
end

-- The top-level fields whose value is an object.
local OBJECT_FIELDS = { "upstream", "poll", "memory", "store" }

-- load(path) -> config (raises with the path and the field)
function M.load(path)
  -- Only a regular file is read, its type checked before any open (kling.core.read_regular):
  -- opening a FIFO blocks (`kling gateway start --config FIFO` hung, and so would nginx's
  -- master at a reload), a device may never end.
  local local_file = require "kling.local_file"
  local data, err, kind = core.read_regular(path, local_file.MAX_TEXT + 1)
  if kind then
    error("kling gateway config: " .. path .. " is " .. kind .. "; only a regular file is read", 0)
  elseif not data then
    -- the message names the path already ("cannot open PATH: No such file or directory")
    error("kling gateway config: cannot read " .. tostring(err):gsub("^cannot open ", ""), 0)
  elseif #data > local_file.MAX_TEXT then
    error(("kling gateway config: %s is over %d bytes"):format(path, local_file.MAX_TEXT), 0)
  end
  -- a BOM at its start is taken, as in every file a user gives (kling.local_file.without_bom)
  local text = local_file.without_bom(data)
  local doc, derr, dup = json.decode_strict(text)
  if dup then
    error("kling gateway config: " .. path .. ": " .. derr, 0)
  elseif doc == nil then
    error("kling gateway config: " .. path .. " is not JSON: " .. tostring(derr), 0)
  end
  -- The decoder reads [] as it reads {}: an empty array where an object is due is marked as
  -- one, from the text, so that check() refuses it by name. (A key written with \u escapes
  -- is not seen here; it then reads as an empty object: its defaults.)
  if type(doc) == "table" and next(doc) == nil and text:match("^%s*%[") then
    json.array(doc)
  elseif type(doc) == "table" then
    for _, k in ipairs(OBJECT_FIELDS) do
      if type(doc[k]) == "table" and next(doc[k]) == nil and text:find('"' .. k .. '"%s*:%s*%[') then
        json.array(doc[k])
      end
    end
  end
  return M.check(doc)
end

return M
