--- The client: one provider, one set of credentials, one driver.
-- @module kling.client
local core = require "kling.core"
local errors = require "kling.errors"
local providers = require "kling.providers"
local transport = require "kling.transport"
local task = require "kling.task"
local validate = require "kling.validate"
local budget = require "kling.money.hold"
local quote = require "kling.money.quote"
local billing = require "kling.billing"
local local_file = require "kling.local_file"
local output_path = require "kling.output_path"
local http_debug = require "kling.transport.debug"
local lifecycle = require "kling.lifecycle.machine"
local blocking = require "kling.runner.blocking"

local Client = {}
Client.__index = Client
Client.__name = "kling.client"

local M = {}

local function env(name)
  local v = os.getenv(name)
  if v == "" then
    return nil
  end
  return v
end

-- The time options of kling.new, checked: {name = seconds} with the defaults | nil, err
-- (kind validation, naming the option).
local NEW_SECONDS = { timeout = 60, connect_timeout = 10, wait_timeout = 1800, poll_min = 1, poll_max = 15,
  call_budget = 120 }
local function new_seconds(opts)
  local t = {}
  for name, default in pairs(NEW_SECONDS) do
    local v = opts[name]
    if v == nil then
      v = default
    end
    local problem = validate.seconds_problem(v)
    if problem then
      return nil, errors.validation(name, problem)
    end
    t[name] = v
  end
  local order = validate.poll_order_problem(t.poll_min, t.poll_max)
  if order then
    return nil, errors.validation(opts.poll_min ~= nil and "poll_min" or "poll_max", order)
  end
  return t
end

-- client:with's time option: its value, or `default` when nil; a bad one raises at with's caller.
local function with_seconds(name, v, default)
  if v == nil then
    return default
  end
  local problem = validate.seconds_problem(v)
  if problem then
    errors.misuse("with", name .. " " .. problem)
  end
  return v
end

-- core.auth, whose rules for keys (core/auth.c: an API key goes into a header as it is) are
-- the user's input: a key it refuses is a validation error naming the key, returned, not raised.
-- `from_env` names the variables the keys came from ({api_key = "KLING_API_KEY"}): the message
-- says where to look.
local function auth_of(keys, provider, from_env)
  local ok, auth = pcall(core.auth, keys)
  if ok then
    return auth
  end
  local field, rule = tostring(auth):match("kling%.auth: ([%w_]+) (.*)$")
  if not field then
    error(auth, 0)
  end
  local var = from_env[field]
  return nil, errors.validation(field, rule .. (var and (" (the value of " .. var .. ")") or ""), provider.name)
end

--- Why a key cannot be used as `field` ("access_key", "secret_key", "api_key"), or nil: core.auth's
-- rule (core/auth.c), the one every client's key follows, for what makes keys for clients to use
-- (kling sim start --api-key "a b" made a simulator no client could call).
---@param field string
---@param v string
---@return string|nil rule
function M.key_problem(field, v)
  local keys = field == "api_key" and { api_key = v }
    or { access_key = field == "access_key" and v or "ak", secret_key = field == "secret_key" and v or "sk" }
  local ok, err = pcall(core.auth, keys)
  return not ok and (tostring(err):match("kling%.auth: " .. field .. " (.*)$") or tostring(err)) or nil
end

-- The keys a client uses: those its options give, else the environment's, never a mix: an
-- api_key given for a gateway must not lose to the official keys in the environment (a token
-- signed with them would go to the gateway's host). -> access_key, secret_key, api_key, from_env
local function keys_of(opts)
  if opts.access_key ~= nil or opts.secret_key ~= nil or opts.api_key ~= nil then
    return opts.access_key, opts.secret_key, opts.api_key, {}
  end
  return env("KLING_ACCESS_KEY"), env("KLING_SECRET_KEY"), env("KLING_API_KEY"),
    { access_key = "KLING_ACCESS_KEY", secret_key = "KLING_SECRET_KEY", api_key = "KLING_API_KEY" }
end

-- -> auth, the key that names the account (the access key, else the API key) | nil, err
local function make_auth(opts, provider)
  -- {api_key = 5} raised from kling.core ("field 'api_key' must be a string"), and an access_key
  -- of the wrong type beside an api_key was dropped unseen: each key given is a string
  for _, field in ipairs { "access_key", "secret_key", "api_key" } do
    if opts[field] ~= nil and type(opts[field]) ~= "string" then
      -- its type only: a key's value is a secret, never shown
      return nil, errors.validation(field, "must be a string (got a " .. type(opts[field]) .. ")", provider.name)
    end
  end
  local ak, sk, key, from_env = keys_of(opts)
  if ak and sk and provider.auth.jwt then
    local auth, err = auth_of({ access_key = ak, secret_key = sk }, provider, from_env)
    return auth, auth and ak or err
  end
  if key then
    local auth, err = auth_of({ api_key = key }, provider, from_env)
    return auth, auth and key or err
  end
  if (ak or sk) and not (ak and sk) and provider.auth.jwt then
    return nil, errors.new { kind = "auth", provider = provider.name,
      message = "access_key and secret_key go together: one of them is missing" }
  end
  local how = provider.auth.jwt and "access_key + secret_key, or api_key (or KLING_ACCESS_KEY + "
    .. "KLING_SECRET_KEY, or KLING_API_KEY)" or "api_key (or KLING_API_KEY)"
  if rawget(_G, "ngx") then
    -- nginx empties its workers' environment: a variable reaches os.getenv only when named
    how = how .. "; inside nginx a worker sees an environment variable only when nginx.conf names it "
      .. "in its main context, e.g. env KLING_API_KEY;"
  end
  return nil, errors.new { kind = "auth", provider = provider.name, message = "no credentials: give " .. how }
end

-- Downloads stop at this size unless kling.new{max_download_bytes =} says otherwise: far
-- beyond any clip the providers make, short of filling a disk from a misbehaving server.
M.DEFAULT_MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024

--- A short, non-reversible name for the account a key belongs to ("" for none): what caches
-- of an account's things (custom elements) are keyed by, never the key itself.
---@param key_text string|nil the access key, else the API key
---@return string
function M.account_of(key_text)
  if type(key_text) ~= "string" or key_text == "" then
    return ""
  end
  return core.sha256_hex("kling element account\0" .. key_text):sub(1, 16)
end

--- A time option's default in seconds (kling.new's timeout, poll_min, poll_max, ...). -> number
function M.default_seconds(name)
  return NEW_SECONDS[name]
end

--- The download size cap of a client: `kling.new{max_download_bytes =}` checked, or the default.
-- Raises (misuse) unless v is nil or a whole number of bytes from 1 to 2147483647.
---@param v integer|nil max_download_bytes as given to kling.new
---@param fn? string the call it was given to, for the message ("new", "with")
---@return integer bytes the cap (DEFAULT_MAX_DOWNLOAD_BYTES, 1 GiB, when v is nil)
function M.download_limit(v, fn)
  if v == nil then
    return M.DEFAULT_MAX_DOWNLOAD_BYTES
  end
  if not validate.is_whole(v) or v < 1 or v > 2147483647 then
    errors.misuse(fn or "new", "max_download_bytes must be a whole number of bytes from 1 to 2147483647")
  end
  return v
end

-- The options of kling.new with a rule of their own (validate.call_option_problem), checked there
-- as client:with checks the per-call ones among them.
local NEW_CALL_OPTIONS = { "max_attempts", "retry_base_ms", "retry_cap_ms", "on_retry", "auto_external_id",
  "local_files", "user_agent", "driver", "debug" }

local NEW_OPTIONS = {}
for _, k in ipairs(validate.CLIENT_OPTIONS) do
  NEW_OPTIONS[k] = true
end

--- The options of `kling.new`; every one is optional. Times are seconds. Any other name raises,
-- naming the closest known one. `budget` is `{limit = "50.00", currency = "CNY"}` (a gateway's
-- "credits" are that provider's: "evolink-credits"), `{budgets = {...}, rates = {...}}` as
-- `kling.ledger` takes, or a `kling.Ledger` shared by several clients. `debug = true` prints
-- each request (method, URL, headers, body) and each answer (status, time, body) to stderr,
-- with every key, token, Authorization header, secret, JWT and signature redacted (in headers,
-- JSON bodies and query strings); a function instead receives each printout; without the
-- option, KLING_DEBUG in the environment turns it on (unless "", 0, false, no or off).
-- `local_files = false` (the gateway, whose requests come from the network) never reads a
-- path a request names.
---@class kling.ClientOptions
---@field provider string "kling" (official, default), "apiinone", "apimodels", "evolink", "compat"; or KLING_PROVIDER
---@field access_key string with secret_key: JWT auth on the official API; or KLING_ACCESS_KEY
---@field secret_key string or KLING_SECRET_KEY
---@field api_key string an API key (gateways, or the official API); or KLING_API_KEY
---@field base_url string http(s) URL of the API; or KLING_BASE_URL; default the provider's
---@field ca_file string a CA bundle to verify TLS with; or KLING_CA_FILE
---@field timeout number one HTTP request (60)
---@field connect_timeout number one connection (10)
---@field max_attempts integer tries of one call, retries included (5)
---@field retry_base_ms integer first retry delay in milliseconds, doubled each retry (500)
---@field retry_cap_ms integer longest retry delay in milliseconds (20000)
---@field call_budget number one call with all its retries (120)
---@field on_retry fun(info: table) called before each retry with attempt, delay_ms, kind, code, http_status, path
---@field wait_timeout number default timeout of task:wait (1800)
---@field poll_min number first poll interval of task:wait (1)
---@field poll_max number longest poll interval of task:wait (15)
---@field auto_external_id boolean give each create an external_task_id "kl-..." where the provider takes one (true)
---@field max_download_bytes integer cap of client:download, 1 to 2147483647 bytes (1 GiB)
---@field user_agent string the User-Agent of the libcurl driver
---@field budget table|kling.Ledger a hard cap held before each create (see above)
---@field catalogs table this client's own price catalogs `{provider = catalog}` (see client:set_catalog)
---@field engine table options of the engine behind submit_many, wait_all, wait_any (`kling.engine.new`)
---@field driver table another transport (`kling.resty.driver` inside nginx); default libcurl
---@field debug boolean|fun(text: string) print requests and answers, secrets redacted (KLING_DEBUG=1)
---@field local_files boolean read a local file given for an image field (true); false: never

--- A client: one provider, one set of credentials, one driver. Made by `kling.new`.
---@class kling.Client
---@field provider table the provider (its `name`, `capabilities`)
---@field base_url string the API's base URL, without a trailing slash
---@field ledger kling.Ledger|nil the budget's ledger when one was given
---@field catalogs table this client's catalog set (`kling.billing.catalogs`), over the process default
---@field max_download_bytes integer the cap of client:download
---@field wait_timeout number default timeout of task:wait, seconds
---@field poll_min number first poll interval of task:wait, seconds
---@field poll_max number longest poll interval of task:wait, seconds

--- Makes a client (`kling.new`).
-- kling.new{provider =, access_key =, secret_key = | api_key =, base_url =, ca_file =, timeout =,
-- connect_timeout =, max_attempts =, wait_timeout =, poll_min =, poll_max =, driver =, on_retry =,
-- budget = {limit =, currency =} | ledger, catalogs = {provider = catalog}, user_agent =,
-- auto_external_id =, retry_base_ms =, retry_cap_ms =, call_budget =, max_download_bytes =,
-- engine = {options of kling.engine.new}}. Any other option name raises, naming the closest known one.
-- Returns a client, or nil and an error (unknown provider, missing credentials, bad budget,
-- a bad catalog). catalogs: this client's own prices (see client:set_catalog).
---@param opts? kling.ClientOptions
---@return kling.Client|nil client
---@return kling.Error|nil err kind `validation` (provider, base_url, budget, catalogs) or `auth` (credentials)
function M.new(opts)
  opts = opts or {}
  errors.check_arg("new", 1, opts, "table")
  validate.options("new", opts, NEW_OPTIONS)
  local provider, perr = providers.get(opts.provider or env("KLING_PROVIDER"))
  if not provider then
    return nil, perr
  end
  local auth, account_key = make_auth(opts, provider)
  if not auth then
    return nil, account_key
  end
  local base_url = opts.base_url or env("KLING_BASE_URL") or provider.default_base_url
  local uerr = validate.base_url_problem(base_url, provider.route_prefix)
  if uerr then
    -- shown without its user info or secret parameters: messages reach journals and reports
    return nil, errors.validation("base_url", uerr .. " (got " .. validate.brief(http_debug.redact_url(base_url), 200)
      .. ")")
  end
  local ca_file = opts.ca_file or env("KLING_CA_FILE")
  local cerr0 = validate.ca_file_problem(ca_file)
  if cerr0 then
    return nil, errors.validation("ca_file", cerr0)
  end
  local catalogs, cerr = billing.catalogs(opts.catalogs, billing.default_catalogs)
  if not catalogs then
    return nil, cerr
  end
  local ledger, lerr = budget.open(opts.budget, provider.name, catalogs)
  if lerr then
    return nil, lerr
  end
  local secs, serr = new_seconds(opts)
  if not secs then
    return nil, serr
  end
  local timeout, connect_timeout = secs.timeout, secs.connect_timeout
  for _, name in ipairs(NEW_CALL_OPTIONS) do
    local problem = validate.call_option_problem(name, opts[name])
    if problem then
      return nil, errors.validation(name, problem)
    end
  end
  if opts.max_download_bytes ~= nil and not pcall(M.download_limit, opts.max_download_bytes) then
    return nil, errors.validation("max_download_bytes", "must be a whole number of bytes from 1 to 2147483647 (got "
      .. validate.got(opts.max_download_bytes) .. ")")
  end
  -- the engine is made at the first submit_many: its options' names and type are checked now,
  -- so that kling.new{engine = {learn_fil = ...}} is refused here rather than at that call
  if opts.engine ~= nil then
    if type(opts.engine) ~= "table" then
      return nil, errors.validation("engine", "must be a table of kling.engine.new's options (got "
        .. validate.type_of(opts.engine) .. ")")
    end
    local engine = require "kling.engine"
    validate.options("new{engine}", opts.engine, engine.NEW_OPTIONS)
    -- and their values (a bad secret made every deliver() raise later, in C)
    local bad, problem = engine.options_problem(opts.engine, opts.driver)
    if bad then
      return nil, errors.validation("engine." .. bad, problem)
    end
  end
  -- The libcurl driver's own options: a driver given replaces it, and took them silently
  -- (inside nginx a ca_file verified nothing: cosockets verify against lua_ssl_trusted_certificate).
  if opts.driver ~= nil then
    for _, k in ipairs { "ca_file", "user_agent" } do
      if opts[k] ~= nil then
        return nil, errors.validation(k, "is the libcurl driver's, which driver = replaces: give it to that driver ("
          .. (k == "ca_file" and "inside nginx, TLS is verified against lua_ssl_trusted_certificate"
          or "kling.resty.driver{user_agent =}") .. ")")
      end
    end
  end
  local driver = opts.driver or require("kling.driver.curl").new {
    ca_file = ca_file,
    timeout_ms = validate.seconds_ms(timeout), connect_timeout_ms = validate.seconds_ms(connect_timeout),
    user_agent = opts.user_agent,
  }
  -- answers that echo this client's key or token back lose it before anything reads them
  driver = require("kling.transport.scrub").wrap(driver, auth)
  local sink = http_debug.sink(opts.debug)
  if sink then
    local ak, sk, key = keys_of(opts)
    driver = http_debug.wrap(driver, sink, { ak, sk, key })
  end
  local self = setmetatable({
    provider = provider,
    driver = driver,
    debug_sink = sink, -- also where a warning goes (kling.engine.learn); nil: stderr
    base_url = (base_url:gsub("/+$", "")),
    wait_timeout = secs.wait_timeout,
    poll_min = secs.poll_min,
    poll_max = secs.poll_max,
    auto_external_id = opts.auto_external_id ~= false,
    max_download_bytes = M.download_limit(opts.max_download_bytes),
    engine_opts = opts.engine, -- options of client:engine() when it is made (kling.engine.new)
    ledger = ledger,
    catalogs = catalogs, -- this client's own catalogs, over the process default (kling.set_catalog)
    local_files = opts.local_files ~= false,
    account_name = M.account_of(account_key),
    held = {}, -- external id -> the machine of a create whose fate was unknown, still holding (adopt_held)
  }, Client)
  self.ctx = {
    core = core, driver = driver, provider = provider, base_url = self.base_url, auth = auth,
    max_attempts = opts.max_attempts or 5, base_ms = opts.retry_base_ms or 500, cap_ms = opts.retry_cap_ms or 20000,
    call_budget_ms = validate.seconds_ms(secs.call_budget),
    timeout_ms = validate.seconds_ms(timeout), connect_timeout_ms = validate.seconds_ms(connect_timeout),
    on_retry = opts.on_retry,
  }
  return self
end

--- Sets this client's price catalog for a provider; other clients do not see it.
-- client:set_catalog(provider, catalog) -> true | nil, err: this client's price for a provider
-- (nil: the process default or the shipped catalog again). Other clients do not see it.
---@param provider string a provider name
---@param cat table|nil a catalog shaped like lua/kling/prices/PROVIDER.lua, or nil to drop this client's
---@return boolean|nil ok
---@return kling.Error|nil err kind `validation`: what is wrong with the catalog
function Client:set_catalog(provider, cat)
  return self.catalogs:set(provider, cat)
end

--- The price of a request on this client's provider, with this client's catalogs.
-- client:estimate(req) -> quote | nil, err: the request's price on this client's provider, with
-- this client's catalogs (what a budget reserves). What the provider would refuse (an unknown
-- field such as `sond`) is refused by name, as kling.estimate does (kling.money.quote strict).
---@param req table a canonical request (its `provider`, if any, is replaced by the client's)
---@return kling.Quote|nil quote
---@return kling.Error|nil err kind `validation` or `unpriced`
function Client:estimate(req)
  errors.check_arg("estimate", 1, req, "table")
  local q, err = budget.estimate(self, req)
  return quote.strict(self.provider.name, req, q, err)
end

function Client:__tostring()
  return string.format("kling.client(%s, %s)", self.provider.name, self.base_url)
end

-- The fields a request's local files become (read here, the one I/O before a create), or nil
-- when it names none, or nil and the error naming the field (prepare and submit).
local function local_inputs(self, req)
  if not self.local_files then
    return nil
  end
  return local_file.inline(self.provider, req)
end

--- Checks a request against every documented rule, without any network call.
-- Validates a canonical request and returns the endpoint it goes to, or nil and an error.
---@param req table a canonical request
---@return string|nil endpoint the path after /v1/ it goes to, e.g. "videos/text2video"
---@return kling.Error|nil err kind `validation`, naming the field and the rule
function Client:check(req)
  errors.check_arg("check", 1, req, "table")
  local endpoint, err = self:prepare(req)
  if not endpoint then
    return nil, err
  end
  return endpoint
end

local function protocol_error(self, msg, extra)
  local e = errors.new { kind = "protocol", provider = self.provider.name, message = msg }
  for k, v in pairs(extra or {}) do
    e[k] = v
  end
  return e
end

--- Sends the create and follows it up (the lifecycle every runner shares): a refused one is
-- sent again after at least 1 s, a lost answer looked up by external id, within call_budget.
-- Returns a task, or nil and an error. An error with `uncertain = true` means its answer was
-- lost and lookups have not found it: the task may exist, its reservation is kept; look it up
-- with get_task{external_task_id = err.external_task_id} (which takes the reservation along)
-- rather than sending it again.
---@param req table a canonical request (`model`, `prompt`, `duration`, `mode`, `image`, ...)
---@return kling.Task|nil task `id`, `external_task_id`, `status`, `endpoint` (a sync endpoint's is finished)
---@return kling.Error|nil err with `uncertain = true` and `external_task_id` when the create's fate is unknown
function Client:submit(req)
  errors.check_arg("submit", 1, req, "table")
  local files, ferr = local_inputs(self, req)
  if ferr then
    return nil, ferr
  end
  local m = self:lifecycle(req, { files = files })
  local how, t, err = blocking.drive(self, m, m:start(self.driver:now_ms()), { until_created = true })
  if how == "done" and err then
    if err.uncertain and err.ledger_key and err.external_task_id then
      -- Its hold stays with its machine: get_task finding the task hands it over (adopt_held).
      self.held[err.external_task_id] = m
    end
    return nil, err
  end
  return t -- created, or a synchronous answer (already final and charged)
end

--- A lifecycle machine for one create of this client (internal: submit and the runners).
-- Every runner follows the same lifecycle decisions (issue 10): an uncertain create is looked
-- up by external id (and the task adopted, its hold with it), a refused one (1302, 1303) sent
-- again after at least 1 s within the call budget.
-- @local
---@param req table a canonical request
---@param o? table options of kling.lifecycle.machine.new to override
---@return table machine
function Client:lifecycle(req, o)
  local ctx = self.ctx
  local opts = {
    provider = self.provider, request = req, task = task.new(self, {}), random = core.random_hex,
    budget = self.ledger ~= nil, auto_external_id = self.auto_external_id, lookups = 3,
    requeue_refused = true, max_attempts = ctx.max_attempts, base_ms = ctx.base_ms, cap_ms = ctx.cap_ms,
    create_budget_ms = ctx.call_budget_ms,
  }
  for k, v in pairs(o or {}) do
    opts[k] = v
  end
  local m = lifecycle.new(opts)
  m.task.lifecycle = m
  return m
end

-- The one check of a task id a caller gives (get_task, cancel_task): it becomes a URL path
-- segment, so kling.validate.task_id_problem's rule; nil when fine, else the validation error.
local function bad_task_id(self, id, field)
  local problem = validate.task_id_problem(id)
  return problem and errors.validation(field, problem .. " (got \"" .. validate.shown(tostring(id)) .. "\")",
    self.provider.name)
end

-- The one check of an endpoint a caller names for its tasks (get_task, list_tasks, tasks):
-- one of the provider's asynchronous endpoints, by name, so nothing else (`../x`, a query
-- string, CR/LF, a synchronous endpoint) reaches a URL. `what` says why a synchronous one is
-- refused. Returns nil when fine, else the validation error.
local function bad_task_endpoint(self, endpoint, what)
  local endpoints = self.provider.endpoints
  local def = type(endpoint) == "string" and endpoints[endpoint]
  if not def then
    return errors.validation("endpoint", validate.unknown_name(endpoint, endpoints, "endpoint "
      .. validate.quoted(endpoint)), self.provider.name)
  end
  if def.sync or not def.async then
    return errors.validation("endpoint", endpoint .. " answers at once and " .. what
      .. (self.provider.calls and self.provider.calls[endpoint] and "; its list is client:call" or ""),
      self.provider.name)
  end
  return nil
end

--- One query of a task (internal: use get_task).
-- One query of a task by id on an endpoint; returns the parsed fields (not a Task).
-- @local
---@param id string
---@param endpoint string
---@param by_external? boolean
---@return table|nil fields
---@return kling.Error|nil err
function Client:fetch_task(id, endpoint, by_external)
  local path = by_external and self.provider.external_query_path(endpoint, id)
    or self.provider.query_path(endpoint, id)
  local data, err = transport.call(self.ctx, { method = "GET", path = path })
  if not data then
    return nil, err
  end
  if by_external and type(data) == "table" and data[1] ~= nil then
    data = data[1]
  end
  local t, perr = self.provider.parse_task(data, endpoint)
  if not t then
    return nil, protocol_error(self, perr)
  end
  t.endpoint = endpoint
  return t
end

local function is_not_found(err)
  return err.kind == "not_found" or err.http_status == 404
end

-- A task found whose create this client (or one made from it by `with`) sent and lost the
-- answer of (submit's error was uncertain): the task its machine keeps, which holds the
-- create's reservation, now with the fields found; task:wait (or a refresh that sees the end)
-- settles or releases that hold, once. nil for any other task.
local function adopt_held(self, fields)
  local ext = fields.external_task_id
  local m = ext and self.held[ext]
  if not m then
    return nil
  end
  self.held[ext] = nil
  return m.task:update(fields)
end

-- The not-found error of a lookup without an endpoint that every endpoint tried answered not
-- found: the task may well exist on an endpoint not tried (an image, an audio), so the message
-- names the endpoints tried and, by kind, those a task is found on only when its endpoint is
-- given (kling.providers.task_endpoints); err.endpoints_tried lists the first,
-- err.other_endpoints the others by kind ({image = {...}, audio = {...}}: kling status and
-- kling download say --endpoint, with the kind's when they know the task's kind).
local KIND_RANK = { video = 1, image = 2, audio = 3, voice = 4 } -- the order the message names kinds in
local function not_found_anywhere(self, err, tried)
  local seen, others, kinds = {}, {}, {}
  for _, e in ipairs(tried) do
    seen[e] = true
  end
  for name, e in pairs(self.provider.endpoints or {}) do
    if e.async and e.kind and not seen[name] and not others[e.kind] then
      others[e.kind] = {}
      kinds[#kinds + 1] = e.kind
    end
  end
  table.sort(kinds, function(a, b)
    local ra, rb = KIND_RANK[a] or math.huge, KIND_RANK[b] or math.huge
    return ra < rb or ra == rb and a < b
  end)
  local named = {}
  for _, kind in ipairs(kinds) do
    local list = others[kind]
    for _, name in ipairs(providers.task_endpoints(self.provider, kind)) do
      if not seen[name] then
        list[#list + 1] = name
      end
    end
    named[#named + 1] = (kind:match("^[aeiou]") and "an " or "a ") .. kind .. "'s (" .. table.concat(list, ", ") .. ")"
  end
  err.endpoints_tried, err.other_endpoints = tried, others
  err.message = tostring(err.message) .. " (asked of " .. table.concat(tried, ", ") .. ": the endpoints tried when "
    .. "none is given" .. (named[1] and ("; a task of another endpoint is found only when its endpoint is given: "
    .. table.concat(named, ", ")) or "") .. ")"
  return err
end

local REF_KEYS = { external_task_id = true } -- what get_task's table reference holds

--- Looks a task up by id or by external id.
-- get_task(id | {external_task_id =}, {endpoint =}): a Task, or nil and an error. Without an
-- endpoint the video endpoints are tried in turn (queries are free).
---@param ref string|{external_task_id: string} the task id, or `{external_task_id = ...}`
---@param opts? {endpoint: string} the endpoint, else the video endpoints are tried in turn
---@return kling.Task|nil task
---@return kling.Error|nil err kind `not_found` when no endpoint knows it
function Client:get_task(ref, opts)
  opts = opts or {}
  errors.check_arg("get_task", 2, opts, "table") -- get_task(id, "videos/...") looked on every endpoint
  validate.options("get_task", opts, { endpoint = true })
  local id, by_external = ref, false
  if type(ref) == "table" then
    -- {external_task_id =, id =} looked the task up by its external id alone, the id unseen
    validate.options("get_task", ref, REF_KEYS, "key %s of the task reference {external_task_id = ...}")
    id, by_external = ref.external_task_id, true
    if type(id) ~= "string" or id == "" then
      errors.misuse("get_task", "{external_task_id = <string>} expected")
    end
  elseif type(ref) ~= "string" or ref == "" then
    errors.misuse("get_task", "a task id (string) or {external_task_id = ...} expected")
  end
  local bad = bad_task_id(self, id, by_external and "external_task_id" or "task_id")
    or (opts.endpoint ~= nil and bad_task_endpoint(self, opts.endpoint, "has no task to look up"))
  if bad then
    return nil, bad
  end
  if by_external and not (self.provider.capabilities.external_ids and self.provider.external_query_path) then
    return nil, errors.unsupported(self.provider.name, "external_task_id", "tasks cannot be looked up by external id")
  end
  local endpoints = { opts.endpoint }
  if not opts.endpoint and self.provider.lookup_endpoints then
    endpoints = self.provider.lookup_endpoints
  elseif not opts.endpoint then
    endpoints = providers.task_endpoints(self.provider, "video")
  end
  local last
  for _, endpoint in ipairs(endpoints) do
    local t, err = self:fetch_task(id, endpoint, by_external)
    if t then
      return adopt_held(self, t) or task.new(self, t)
    end
    if not is_not_found(err) then
      return nil, err
    end
    last = err
  end
  if last and not opts.endpoint then
    return nil, not_found_anywhere(self, last, endpoints)
  end
  return nil, last or errors.new { kind = "not_found", message = "no task " .. tostring(id) }
end

-- The one check of the options of a task list (list_tasks, tasks) past their names: the
-- endpoint (an asynchronous one of the provider, videos/text2video when none), page 1..1000
-- (1), page_size 1..500 (30). -> endpoint, page, page_size | nil, the validation error
local function list_options(self, opts)
  local endpoint = opts.endpoint or "videos/text2video"
  local bad = bad_task_endpoint(self, endpoint, "keeps no task list")
  if bad then
    return nil, bad
  end
  local page, size = opts.page or 1, opts.page_size or 30
  if not validate.is_whole(page) or page < 1 or page > 1000 then
    return nil, errors.validation("page", "must be a whole number between 1 and 1000 (got " .. validate.got(page)
      .. ")", self.provider.name)
  end
  if not validate.is_whole(size) or size < 1 or size > 500 then
    return nil, errors.validation("page_size", "must be a whole number between 1 and 500 (got "
      .. validate.got(size) .. ")", self.provider.name)
  end
  return endpoint, page, size
end

--- The check of a task list's options (internal: what list_tasks returns and tasks raises).
-- list_problem{endpoint =, page =, page_size =}: nil when list_tasks and tasks would take them,
-- else the validation error naming the option and its rule (kling tasks says it, exit 2).
-- @local
---@param opts table
---@return kling.Error|nil err
function Client:list_problem(opts)
  local ok, err = list_options(self, opts)
  return not ok and err or nil
end

--- One page of an asynchronous endpoint's tasks.
-- list_tasks{endpoint =, page =, page_size =}: an array of Tasks, or nil and an error. Items the
-- module cannot read (an unknown status, say) are not dropped silently: they come back as a second
-- array of {index, raw, message}.
---@param opts? {endpoint: string, page: integer, page_size: integer} page 1..1000, page_size 1..500 (30)
---@return kling.Task[]|nil tasks
---@return kling.Error|table|nil err_or_unreadable the error; with tasks, unreadable items {index, raw, message}
function Client:list_tasks(opts)
  opts = opts or {}
  errors.check_arg("list_tasks", 1, opts, "table") -- list_tasks("videos/...") listed text2video's
  validate.options("list_tasks", opts, { endpoint = true, page = true, page_size = true })
  if not providers.lists_tasks(self.provider) then
    return nil, errors.unsupported(self.provider.name, "list_tasks", "the provider has no task list")
  end
  local endpoint, page, size = list_options(self, opts)
  if not endpoint then
    return nil, page
  end
  local data, err = transport.call(self.ctx, { method = "GET", path = self.provider.list_path(endpoint, page, size) })
  if not data then
    return nil, err
  end
  if type(data) ~= "table" then
    return nil, protocol_error(self, "task list is not an array")
  end
  local out, unreadable = {}, {}
  for i, item in ipairs(data) do
    local t, perr = self.provider.parse_task(item, endpoint)
    if t then
      t.endpoint = endpoint
      out[#out + 1] = task.new(self, t)
    else
      unreadable[#unreadable + 1] = { index = i, raw = item, message = perr }
    end
  end
  return out, unreadable
end

--- A provider call that makes no task (lists, presets, deletes, selections).
-- call(endpoint, params, {method =}) -> result, meta | nil, err: one of the provider's calls
-- that make no task (official: element and voice lists, presets, deletes, multi-elements
-- selections). params are the call's own fields, plus page and page_size for lists; they are
-- checked before the network. The result is canonical where the answer has a canonical form
-- (lists of elements or tasks, {id, status} for a delete), else the answer's data.
---@param endpoint string e.g. "general/custom-elements", "general/delete-voices"
---@param params? table the call's own fields (page, page_size for lists)
---@param opts? {method: string} e.g. `{method = "DELETE"}`
---@return any|nil result canonical elements or tasks for a list, `{id, status}` for a delete, else the answer's data
---@return table|kling.Error meta_or_err `{request_id}`, or the error
function Client:call(endpoint, params, opts)
  errors.check_arg("call", 1, endpoint, "string")
  params = params or {}
  errors.check_arg("call", 2, params, "table")
  opts = opts or {}
  errors.check_arg("call", 3, opts, "table")
  validate.options("call", opts, { method = true })
  if not self.provider.call_spec then
    return nil, errors.unsupported(self.provider.name, "call", "it has no calls besides its tasks")
  end
  if opts.method ~= nil and type(opts.method) ~= "string" then -- {method = 5} raised "attempt to index"
    return nil, errors.validation("method", "must be an HTTP method's name, such as \"POST\" (got "
      .. validate.got(opts.method) .. ")", self.provider.name)
  end
  local spec, err = self.provider.call_spec(endpoint, params, opts.method)
  if not spec then
    return nil, err
  end
  -- The call's fields go as they are given (ids, URLs): {element_id = "a\r\nX"} reached the
  -- provider, CR, LF and all. A control character in any of them is refused by name, unsent.
  local at, problem = validate.controls_problem(params)
  if at then
    return nil, errors.validation(at, problem, self.provider.name)
  end
  local data, meta = transport.call(self.ctx, spec)
  if data == nil then
    meta.endpoint = endpoint
    return nil, meta
  end
  local result, perr, code = self.provider.parse_call(endpoint, data)
  if result == nil then
    if code ~= nil then -- the provider answered and refused (a selection's non-zero status)
      return nil, errors.new { kind = "validation", provider = self.provider.name, code = code,
        request_id = meta.request_id, message = endpoint .. " " .. tostring(perr) }
    end
    return nil, protocol_error(self, endpoint .. ": " .. tostring(perr))
  end
  return result, meta
end

--- Submits a request and waits for its task (`submit` + `task:wait`).
-- submit + wait. Returns the finished task or nil and an error.
---@param req table a canonical request
---@param wait_opts? table as `task:wait`
---@return kling.Task|nil task the finished task, with its outputs
---@return kling.Error|nil err
function Client:run(req, wait_opts)
  -- the wait's options first: a bad one refused once the create was sent cost that create
  if wait_opts ~= nil then -- run(req, 60) or run(req, "fast") sent the create and waited by the defaults
    errors.check_arg("run", 2, wait_opts, "table")
  end
  local bad = task.wait_problem(self, wait_opts)
  if bad then
    return nil, bad
  end
  local t, err = self:submit(req)
  if not t then
    return nil, err
  end
  return t:wait(wait_opts)
end

--- Cancels a task where the provider can (use `task:cancel`).
---@param t kling.Task
---@return any|nil ok
---@return kling.Error|nil err kind `validation` where the provider cannot cancel
function Client:cancel_task(t)
  if not self.provider.capabilities.cancel then
    return nil, errors.unsupported(self.provider.name, "cancel")
  end
  local bad = bad_task_id(self, type(t) == "table" and t.id or t, "task_id")
  if bad then
    return nil, bad
  end
  return self.provider.cancel(self, t)
end

local DOWNLOAD_OPTIONS = { max_bytes = true, expected_bytes = true, timeout = true, replace = true }
-- What a driver's download failure is, as an error kind and whether trying again can help.
local DOWNLOAD_KINDS = {
  not_found = { "not_found", false }, too_large = { "protocol", false }, io = { "validation", false },
  exists = { "validation", false }, network = { "network", true },
}
-- A download stops at this many bytes beyond twice the expected size, when one is known.
local EXPECTED_SLACK = 1024 * 1024

--- Downloads a URL to a path (through a temporary name, then renamed).
-- download(url, path [, {max_bytes =, expected_bytes =, timeout =, replace =}]) -> path, bytes | nil, err.
-- Streams to a temporary name, then renames (over a file at path; with replace = false a file
-- there is refused before anything is sent, and one that appeared during the transfer is kept:
-- validation, field path, err.exists = true, the download removed). The transfer stops at max_bytes (default the
-- client's max_download_bytes) and, when expected_bytes is known (a size the provider
-- reported), at twice that plus 1 MiB. err.kind: validation (path: its directory is missing
-- or not writable, it holds a control character, it or its temporary <path>.part is a link,
-- FIFO, device or directory: kling.output_path; nothing is sent then), not_found (HTTP
-- 404/410), protocol (too large), network; a bad max_bytes, expected_bytes or timeout is
-- validation naming it (nothing sent). An unknown option raises.
---@param url string an output URL (`task.videos[1].url`)
---@param path string where to write it
---@param opts? {max_bytes: integer, expected_bytes: integer, timeout: number, replace: boolean}
---@return string|nil path
---@return integer|kling.Error bytes_or_err the bytes written, or the error
function Client:download(url, path, opts)
  errors.check_arg("download", 1, url, "string")
  errors.check_arg("download", 2, path, "string")
  opts = opts or {}
  errors.check_arg("download", 3, opts, "table")
  validate.options("download", opts, DOWNLOAD_OPTIONS)
  local name = self.provider.name
  if not validate.is_url(url) then
    return nil, errors.validation("url", "must be an http(s) URL", name)
  end
  local max, by = self.max_download_bytes, "the client's max_download_bytes"
  if opts.max_bytes ~= nil then
    if not validate.is_whole(opts.max_bytes) or opts.max_bytes < 1 then
      return nil, errors.validation("max_bytes", "must be a whole number of bytes >= 1 (got "
        .. validate.got(opts.max_bytes) .. ")", name)
    end
    if opts.max_bytes < max then
      max, by = opts.max_bytes, "max_bytes"
    end
  end
  if opts.expected_bytes ~= nil then
    if not validate.is_whole(opts.expected_bytes) or opts.expected_bytes < 0 then
      return nil, errors.validation("expected_bytes", "must be a whole number of bytes >= 0 (got "
        .. validate.got(opts.expected_bytes) .. ")", name)
    end
    if opts.expected_bytes * 2 + EXPECTED_SLACK < max then
      max, by = opts.expected_bytes * 2 + EXPECTED_SLACK, "twice expected_bytes and 1 MiB"
    end
  end
  local tproblem = opts.timeout ~= nil and validate.seconds_problem(opts.timeout)
  if tproblem then -- -1 went to the driver as -1000 ms
    return nil, errors.validation("timeout", tproblem, name)
  end
  if opts.replace ~= nil and type(opts.replace) ~= "boolean" then
    return nil, errors.validation("replace", "must be true or false (got " .. validate.got(opts.replace) .. ")", name)
  end
  local refused = output_path.refusal(path)
  if refused then
    return nil, errors.validation("path", refused, name)
  end
  if opts.replace == false and output_path.size(path) then
    return nil, errors.validation("path", path .. " exists: it is never replaced (replace = false)", name)
  end
  local dir = path:match("^(.*)/[^/]*$")
  local probe = dir and dir ~= "" and io.open(dir .. "/.", "rb")
  if probe then
    probe:close()
  elseif dir and dir ~= "" then
    return nil, errors.validation("path", "its directory " .. dir .. " does not exist", name)
  end
  local got, msg, kind = self.driver:download(url, path, {
    max_bytes = math.min(max, 2147483647), timeout_ms = opts.timeout and validate.seconds_ms(opts.timeout) or nil,
    replace = opts.replace ~= false,
  })
  if not got then
    local k = DOWNLOAD_KINDS[kind or "network"] or DOWNLOAD_KINDS.network
    local err = errors.new { kind = k[1], message = msg, retryable = k[2], provider = name }
    if kind == "io" or kind == "exists" then
      err.field = "path"
      err.exists = kind == "exists" or nil -- a file appeared at path during the transfer (kept)
    elseif kind == "too_large" then -- the driver knows the cap, not whose it is
      err.message = tostring(msg) .. ", set by " .. by
    end
    return nil, err
  end
  return got, msg
end

-- ---- many tasks at once (kling.engine) ---------------------------------------------------

--- The client's engine of many tasks (internal: submit_many, wait_all, wait_any use it).
-- client:engine(opts) -> the client's engine, made on first use with opts (see kling.engine:
-- max_requests, max_parallel, slots, min_interval, max_interval, timeout, deadline,
-- callback_silence, webhook_secret, on_create, on_created).
-- @local
---@param opts? table engine options (kling.engine.new)
---@return table engine
function Client:engine(opts)
  if self.parent then -- a client of client:with: one multi handle has one engine, the parent's
    return self.parent:engine(opts)
  end
  if not self._engine then
    self._engine = require("kling.engine").new(self, opts or self.engine_opts)
  end
  return self._engine
end

-- The options submit_many takes; any other name is refused, naming the closest.
local SUBMIT_MANY_OPTIONS = { estimate = true, timeout = true, max_parallel = true, adopt = true,
  submit_timeout = true, engine = true }

-- Why one of submit_many's option values cannot be used: its name and the problem, or nil. All
-- are checked before the first request is taken in: {adopt = 5} was taken as true, a bad
-- submit_timeout raised once every create had been queued (sent by the next wait), and a bad
-- estimate failed each task alone; the engine's options are checked, by kling.engine's rules,
-- also when the client's engine exists already (they are not used then).
local function submit_many_problem(opts)
  for _, k in ipairs { "estimate", "timeout", "submit_timeout" } do
    local problem = opts[k] ~= nil and validate.seconds_problem(opts[k])
    if problem then
      return k, problem
    end
  end
  local engine = require "kling.engine"
  local mp = opts.max_parallel
  if mp ~= nil and not (validate.is_whole(mp) and mp >= 1 and mp <= engine.MAX_PARALLEL) then
    return "max_parallel", "must be a whole number of slots from 1 to " .. engine.MAX_PARALLEL .. " (got "
      .. validate.got(mp) .. ")"
  end
  if opts.adopt ~= nil and type(opts.adopt) ~= "boolean" then
    return "adopt", "must be a boolean (true or false) (got " .. validate.got(opts.adopt) .. ")"
  end
  local eo = opts.engine
  if eo ~= nil then
    if type(eo) ~= "table" then
      return "engine", "must be a table of kling.engine.new's options (got " .. validate.got(eo) .. ")"
    end
    validate.options("submit_many{engine}", eo, engine.NEW_OPTIONS)
    local k, problem = engine.options_problem(eo)
    if k then
      return "engine." .. k, problem
    end
  end
  return nil
end

--- Submits many requests at once through one engine (libcurl multi, one thread).
-- submit_many(reqs, {estimate =, timeout =, max_parallel =, adopt =, submit_timeout =, engine =})
-- -> tasks aligned with reqs. Returns once every create is settled: each task has an id, has
-- failed (task.error says why: validation, quota, budget, ...), or waits here for a provider
-- slot (status "pending"). estimate: expected seconds per task (or req.estimate each; not sent);
-- timeout: each task's deadline in seconds; max_parallel: the provider's parallel slots;
-- adopt: look each task up by its external_task_id first, create it only where the provider
-- has none (resuming); submit_timeout: seconds to wait for the creates (default: until all
-- are settled); engine: options of the client's engine, used only by the call that makes it
-- (else kling.new's `engine`).
---@param reqs table[] canonical requests (each may carry `estimate = seconds`, not sent)
---@param opts? table `estimate`, `timeout`, `max_parallel`, `adopt`, `submit_timeout`, `engine` (above)
---@return kling.Task[] tasks aligned with reqs: with an id, failed (`task.error`), or "pending" for a slot
function Client:submit_many(reqs, opts)
  errors.check_arg("submit_many", 1, reqs, "table")
  opts = opts or {}
  errors.check_arg("submit_many", 2, opts, "table")
  validate.options("submit_many", opts, SUBMIT_MANY_OPTIONS)
  local bad, problem = submit_many_problem(opts)
  if bad then
    errors.misuse("submit_many", bad .. " " .. problem)
  end
  local e = self:engine(opts.engine)
  if opts.max_parallel ~= nil then
    e:set_limit(nil, opts.max_parallel)
  end
  return e:submit_many(reqs, { estimate = opts.estimate, timeout = opts.timeout, adopt = opts.adopt },
    opts.submit_timeout)
end

--- What `client:wait_all` returns: one entry per task, plus the counts.
---@class kling.WaitResults
---@field succeeded integer tasks that succeeded
---@field failed integer tasks that failed or were cancelled
---@field uncertain integer tasks whose create's answer was lost and lookups have not found (not in `failed`)
---@field refused integer tasks refused before a task was made, nothing charged: the request (validation,
--- unpriced) or the budget refused it (not in `failed`; kling run calls such rows refused, and keeps a
--- budget's for a later run)
---@field unfinished integer tasks still running when the wait timed out (they stay tracked)
---@field timed_out boolean unfinished > 0
---@field spend string charged so far, decimal string in the provider's unit (e.g. "7.5"): the provider's
--- reported charges, else what the budget settled a task at
---@field spend_micros integer the same in micro-units
---@field charged integer the succeeded tasks whose charge spend counts
---@field elapsed_s number seconds the wait took

--- The options of `client:wait_all` and `client:wait_any`.
---@class kling.WaitOptions
---@field timeout number seconds to wait in all (the engine's deadline)
---@field on_progress fun(ev: table) {total, waiting, queued, running, succeeded, failed, done, spend, elapsed_s, eta_s}
---@field on_done fun(task: kling.Task, err: kling.Error|nil) called as each task ends
---@field progress_interval number seconds between progress events

--- Drives tasks of submit_many to their end.
-- wait_all(tasks, {on_progress =, on_done =, timeout =, progress_interval =}) -> results
-- aligned with tasks ({task, ok, error}) with counts, spend and elapsed_s. on_progress gets
-- {total, waiting, queued, running, succeeded, failed, done, spend, charged, elapsed_s, eta_s};
-- on_done(task, err) is called as each task ends.
---@param tasks kling.Task[] tasks returned by submit_many
---@param opts? kling.WaitOptions
---@return kling.WaitResults results `results[i] = {task, ok, error}` and the counts
function Client:wait_all(tasks, opts)
  return self:engine():wait_all(tasks, opts)
end

--- Waits for the first of tasks to end.
-- wait_any(tasks, opts) -> the first of tasks to end and its error (nil when it succeeded),
-- or nil and a timeout error.
---@param tasks kling.Task[] tasks returned by submit_many
---@param opts? kling.WaitOptions `timeout`, `on_progress`, `on_done`
---@return kling.Task|nil task the first to end (one already ended counts at once)
---@return kling.Error|nil err its error when it failed, or a `timeout` error with no task
function Client:wait_any(tasks, opts)
  return self:engine():wait_any(tasks, opts)
end

-- ---- requests with local files, task listing, derived clients ----------------------------

--- Validates a request and reads its local files (`check` and `submit` use it).
-- The endpoint the request goes to and the fields its local files became: for each image
-- field given as a local file path (not a URL, not `data:`, not base64), the provider's dialect
-- says whether the file is read and sent as base64 (the official API's images, at most
-- `kling.local_file.MAX_BYTES`, 10 MB) or refused by name because the provider needs a URL
-- (the gateways, and every video field). Then the request, with the files in place, is checked
-- against every documented rule. No network call; nothing is reserved.
---@param req table a canonical request
---@return string|nil endpoint the path after /v1/ it goes to
---@return table|kling.Error|nil fields_or_err the top-level fields the files became (nil when none), or the error
function Client:prepare(req)
  errors.check_arg("prepare", 1, req, "table")
  local files, ferr = local_inputs(self, req)
  if ferr then
    return nil, ferr
  end
  local endpoint, err = lifecycle.check(self.provider, req, files)
  if not endpoint then
    return nil, err
  end
  return endpoint, files
end

local TASKS_OPTIONS = { endpoint = true, page = true, page_size = true }

--- Every task of an asynchronous endpoint, page after page (an iterator).
-- `for task, err in client:tasks{endpoint =, page =, page_size =} do ... end`: each step gives
-- one task (as get_task returns it), newest first, walking the pages (`page_size` each, 30 by
-- default) until one comes back short or page 1000; with `page` only that page. A failure
-- (the network, the provider, a provider with no task list: kind `validation`, "not
-- supported", as every missing feature) is given once as `false, err` and ends the walk; so
-- does an item this module cannot read (kind `protocol`, with `raw`). A task seen on an earlier
-- page (the list moves while new tasks arrive) is not given twice. An unknown option name
-- raises, naming the closest known one; so does a bad value (an endpoint with no task list, a
-- page or page_size out of range), naming the option and its rule, before any request.
---@param opts? {endpoint: string, page: integer, page_size: integer} as `list_tasks`
---@return fun(): kling.Task|false|nil, kling.Error|nil iterator
function Client:tasks(opts)
  opts = opts or {}
  errors.check_arg("tasks", 1, opts, "table")
  validate.options("tasks", opts, TASKS_OPTIONS)
  -- a bad value raises here, as an unknown name does, before any request: given at the loop's
  -- first step, it read as a failure of the provider's list
  if providers.lists_tasks(self.provider) then
    local ok, bad = list_options(self, opts)
    if not ok then
      errors.misuse("tasks", bad.field .. " " .. bad.message)
    end
  end
  local page, size, only = opts.page or 1, opts.page_size or 30, opts.page ~= nil
  local items, i, fetched, full, done, failure = {}, 0, false, false, false, nil
  local seen = {}
  return function()
    while not done do
      i = i + 1
      local t = items[i]
      if t ~= nil then
        if t.id == nil or not seen[t.id] then
          if t.id ~= nil then
            seen[t.id] = true
          end
          return t
        end
      elseif failure then
        done = true
        return false, failure
      elseif fetched and (only or not full or page >= 1000) then
        done = true
      else
        if fetched then
          page = page + 1
        end
        fetched = true
        local list, extra = self:list_tasks { endpoint = opts.endpoint, page = page, page_size = size }
        if not list then
          done = true
          return false, extra
        end
        items, i, full = list, 0, #list + #extra >= size
        if extra[1] then
          failure = protocol_error(self, string.format("task list page %d, item %d: %s", page, extra[1].index,
            tostring(extra[1].message)), { raw = extra[1].raw })
        end
      end
    end
    return nil
  end
end

-- The options client:with takes: the per-call ones of kling.new.
local WITH_OPTIONS = {}
for _, k in ipairs { "timeout", "connect_timeout", "max_attempts", "retry_base_ms", "retry_cap_ms", "call_budget",
  "on_retry", "wait_timeout", "poll_min", "poll_max", "max_download_bytes", "auto_external_id", "debug" } do
  WITH_OPTIONS[k] = true
end

-- client:with's option other than a time: its value (nil when not given); a bad one raises at
-- with's caller, by kling.new's rule (validate.call_option_problem).
local function call_option(name, v)
  local problem = validate.call_option_problem(name, v)
  if problem then
    errors.misuse("with", name .. " " .. problem)
  end
  return v
end

--- The account this client's key names, as a short non-reversible name (`kling.client.account_of`
-- of the access key, else the API key): the key kling.new chose, from its options or else the
-- environment's, never a mix.
---@return string
function Client:account()
  return self.account_name
end

--- A client like this one with other per-call options; this one is unchanged.
-- `client:with{timeout =, connect_timeout =, max_attempts =, retry_base_ms =, retry_cap_ms =,
-- call_budget =, on_retry =, wait_timeout =, poll_min =, poll_max =, max_download_bytes =,
-- auto_external_id =, debug =}` (as `kling.new` takes them; `debug = false` quiets a loud
-- parent) -> a client that shares this one's connections and TLS sessions (its driver),
-- credentials, budget ledger and catalogs. Its `submit_many`, `wait_all` and `wait_any` run on
-- this client's engine (one libcurl multi handle has one engine), with its options and its
-- printing. An unknown option name, or a bad value, raises.
---@param opts table the options to change (see above)
---@return kling.Client client
function Client:with(opts)
  errors.check_arg("with", 1, opts, "table")
  validate.options("with", opts, WITH_OPTIONS)
  local child = setmetatable({}, Client)
  for k, v in pairs(self) do
    child[k] = v
  end
  child._engine, child.parent = nil, self.parent or self
  local ctx = {}
  for k, v in pairs(self.ctx) do
    ctx[k] = v
  end
  child.ctx = ctx
  if opts.timeout ~= nil then
    ctx.timeout_ms = validate.seconds_ms(with_seconds("timeout", opts.timeout))
  end
  if opts.connect_timeout ~= nil then
    ctx.connect_timeout_ms = validate.seconds_ms(with_seconds("connect_timeout", opts.connect_timeout))
  end
  if opts.call_budget ~= nil then
    ctx.call_budget_ms = validate.seconds_ms(with_seconds("call_budget", opts.call_budget))
  end
  ctx.max_attempts = call_option("max_attempts", opts.max_attempts) or ctx.max_attempts
  ctx.base_ms = call_option("retry_base_ms", opts.retry_base_ms) or ctx.base_ms
  ctx.cap_ms = call_option("retry_cap_ms", opts.retry_cap_ms) or ctx.cap_ms
  ctx.on_retry = call_option("on_retry", opts.on_retry) or ctx.on_retry
  child.wait_timeout = with_seconds("wait_timeout", opts.wait_timeout, self.wait_timeout)
  child.poll_min = with_seconds("poll_min", opts.poll_min, self.poll_min)
  child.poll_max = with_seconds("poll_max", opts.poll_max, self.poll_max)
  local order = validate.poll_order_problem(child.poll_min, child.poll_max)
  if order then
    errors.misuse("with", order)
  end
  if opts.max_download_bytes ~= nil then
    child.max_download_bytes = M.download_limit(opts.max_download_bytes, "with")
  end
  if call_option("auto_external_id", opts.auto_external_id) ~= nil then
    child.auto_external_id = opts.auto_external_id
  end
  if opts.debug ~= nil then
    local sink = http_debug.sink(call_option("debug", opts.debug))
    local loud = self.driver.with_sink and self.driver -- a wrapper of kling.transport.debug
    local raw = loud and loud.inner or self.driver
    child.driver = sink and (loud and loud:with_sink(sink) or http_debug.wrap(raw, sink)) or raw
    child.debug_sink = sink
    ctx.driver = child.driver
  end
  return child
end

return M
