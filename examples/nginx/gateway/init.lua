-- A metering gateway in front of Kling (seed 000's service): its clients call the official
-- Kling API shape with their own keys; every create is priced with the gateway's catalog,
-- held against the client's balance before anything is forwarded, forwarded to the
-- configured provider (any of kling's providers, the simulator included), and settled from
-- the actual result (on callback or poll), released on failure; synchronous calls are
-- charged at once, queries are free and answered from the gateway's own table.
--
-- nginx.conf: include http.conf in http{} and server.conf in a server{} (see nginx.conf here).
-- luacheck: ignore 122 (ngx.status and ngx.header are meant to be written)
local config = require "gateway.config"
local auth = require "gateway.auth"
local official = require "gateway.official"
local api = require "gateway.api"
local track = require "gateway.track"
local json = require "kling.json"
local kling = require "kling"
local resty = require "kling.resty"
local journal = require "kling.resty.journal"
local tasks = require "kling.resty.tasks"
local meter = require "kling.resty.meter"
local poller = require "kling.resty.poller"
local callback = require "kling.resty.callback"

local M = {}

M.TASKS_DICT, M.LEDGER_DICT = "kling_gateway_tasks", "kling_gateway_ledger"

local G = {}
M.G = G

-- A task ended in the journal whose money movement never made it there (nginx died in
-- between): the movement is made now, from the record.
local function settle_orphans(entries)
  local last = {}
  for _, e in ipairs(entries) do
    if e.op == "task" and type(e.record) == "table" and e.record.id then
      local prev = last[e.record.id]
      if not (prev and prev.final) then
        last[e.record.id] = e.record
      end
    end
  end
  for id, rec in pairs(last) do
    if rec.final and G.meter:hold(id) then
      if rec.status == "succeeded" then
        local m = require("kling.core").money_parse(tostring(rec.charge))
        if m then
          G.meter:settle(id, m, { task_id = rec.upstream_id })
        end
      elseif rec.charge == "0" then
        G.meter:release(id, { task_id = rec.upstream_id })
      end
    end
  end
end

-- init([path]) in init_by_lua (nginx's master, at start and at every reload): reads the
-- configuration (KLING_GATEWAY_CONFIG, else <prefix>/gateway.json), rebuilds shared memory
-- from the journal after a restart (a reload keeps it), and opens the accounts (a changed
-- credit moves the balance by the difference).
function M.init(path)
  path = path or os.getenv("KLING_GATEWAY_CONFIG") or (ngx.config.prefix() .. "gateway.json")
  G.cfg = config.load(path)
  G.journal = journal.open(G.cfg.journal)
  G.tasks = tasks.new { dict = M.TASKS_DICT, journal = G.journal, retention_s = G.cfg.retention_days * 86400 }
  G.meter = meter.new { dict = M.LEDGER_DICT, currency = G.cfg.currency, journal = G.journal }
  local entries, skipped = journal.read(G.cfg.journal)
  local moves, rerr = G.meter:restore(entries)
  if not moves then
    error("kling gateway: cannot rebuild the ledger from " .. G.cfg.journal .. ": " .. tostring(rerr), 0)
  end
  local restored = G.tasks:restore(entries)
  if moves > 0 or restored > 0 then
    settle_orphans(entries)
    ngx.log(ngx.NOTICE, "kling gateway: rebuilt ", moves, " ledger movements and ", restored, " tasks from ",
      G.cfg.journal, skipped > 0 and (" (" .. skipped .. " unreadable lines skipped)") or "")
  end
  for _, a in ipairs(G.cfg.accounts) do
    local ok, err = G.meter:open_account(a.name, a.credit)
    if not ok then
      error("kling gateway: " .. tostring(err), 0)
    end
  end
  G.journal:close() -- each worker opens its own
end

-- init_worker() in init_worker_by_lua: the upstream client (made on first use, per worker)
-- and the poller's timer.
function M.init_worker()
  local client
  G.client = function()
    if not client then
      local u = G.cfg.upstream
      G.driver = resty.driver { timeout_ms = math.floor(u.timeout * 1000),
        connect_timeout_ms = math.floor(u.connect_timeout * 1000), reuse_posts = u.reuse_posts }
      client = assert(kling.new { provider = u.provider, base_url = u.base_url, access_key = u.access_key,
        secret_key = u.secret_key, api_key = u.api_key, timeout = u.timeout, connect_timeout = u.connect_timeout,
        driver = G.driver, retry_base_ms = 200, retry_cap_ms = 5000, call_budget = u.timeout * 2 })
    end
    return client
  end
  local p = G.cfg.poll
  -- The longest a create can be in flight: its retries' budget, then the last attempt.
  G.creating_grace_ms = math.floor((G.cfg.upstream.timeout * 3 + 10) * 1000)
  local err
  G.poller, err = poller.start {
    tasks = G.tasks, poll = function(id)
      return track.poll(G, id)
    end,
    min_interval_ms = math.floor(p.min_interval * 1000), max_interval_ms = math.floor(p.max_interval * 1000),
    silence_ms = math.floor(p.silence * 1000),
    -- With callbacks coming, a new task is first polled only after a silence.
    first_poll_ms = G.cfg.callback_url and math.floor(p.silence * 1000) or nil,
  }
  if not G.poller then
    ngx.log(ngx.ERR, "kling gateway: ", err)
  end
end

local function caller()
  local account, err = auth.account(G.cfg, ngx.var.http_authorization, ngx.time())
  if not account then
    return official.fail(err)
  end
  return account
end

-- location /v1/ { content_by_lua_block { require("gateway").api() } }
function M.api()
  local account = caller()
  local endpoint, id = api.route(ngx.var.uri)
  if not endpoint then
    return official.fail { status = 404, code = 1202, message = "no such endpoint: " .. ngx.var.uri }
  end
  local method = ngx.req.get_method()
  if method == "POST" and not id then
    return api.create(G, account, endpoint)
  elseif method == "GET" and id then
    return api.query(G, account, endpoint, id)
  elseif method == "GET" then
    return api.list(G, account, endpoint)
  end
  return official.fail { status = 405, code = 1202, message = method .. " is not allowed on " .. ngx.var.uri }
end

-- location = /gateway/balance
function M.balance()
  return api.balance(G, caller())
end

-- location = /kling/callback: the upstream's callbacks, verified with webhook_secret.
function M.callback()
  return callback.handle { provider = G.cfg.upstream.provider, secret = G.cfg.webhook_secret,
    on_task = function(t)
      return track.on_callback(G, t)
    end }
end

-- location = /gateway/admin (keep it private: allow 127.0.0.1; deny all;): every account,
-- the totals, and this worker's poller and connection counters.
function M.admin()
  local core = require "kling.core"
  local accounts, spent, reserved = json.array {}, 0, 0
  for i, a in ipairs(G.cfg.accounts) do
    local s = G.meter:account(a.name)
    s.limit_micros, s.spent_micros, s.reserved_micros, s.balance_micros = nil, nil, nil, nil
    accounts[i] = s
    spent = spent + G.meter:account(a.name).spent_micros
    reserved = reserved + G.meter:account(a.name).reserved_micros
  end
  ngx.header["Content-Type"] = "application/json"
  ngx.say(json.encode {
    accounts = accounts, currency = G.cfg.currency, spent = core.money_format(spent),
    reserved = core.money_format(reserved), entries = G.meter:entries_count(),
    worker = ngx.worker.pid(), poller = G.poller and { holder = G.poller.holder, tracked = poller.count(G.poller),
      ticks = G.poller.stats.ticks, polls = G.poller.stats.polls, takeovers = G.poller.stats.takeovers } or nil,
    connections = G.driver and G.driver.stats or nil,
  })
end

return M
