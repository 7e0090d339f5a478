-- The gateway's Prometheus metrics: counters and one latency histogram kept in a shared
-- dict (every worker adds to the same numbers), gauges read from the meter and the poller
-- at scrape time. GET /metrics answers the text exposition format.
--
-- A worker adds its counts up in its own table and moves them into the shared dict once per
-- FLUSH_S (start() in init_worker) and when it answers /metrics: the five dict increments of
-- every create were a twentieth of its Lua. A scrape sees the other workers' counts of the
-- last FLUSH_S late; a worker killed with SIGKILL loses at most that much of its counts
-- (metrics only: money and tasks are never counted here).
-- luacheck: ignore 122 (ngx.header is meant to be written)
local M = {}

M.DICT = "kling_gateway_metrics"
M.FLUSH_S = 1

-- This worker's counts not yet in the dict: key -> amount (each nginx worker is a Lua VM of
-- its own, so this table is per worker by construction).
local pending = {}
M.BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

local HELP = {
  kling_gateway_requests_total = { "counter", "Requests answered, by route and HTTP status." },
  kling_gateway_creates_forwarded_total = { "counter", "Creates sent upstream (each once)." },
  kling_gateway_refusals_total = { "counter",
    "Creates refused, by reason: auth (its caller not signed in: 401), balance, open (the account's max_open),"
      .. " failed_daily (the account's max_failed_daily), suspended (by the operator), upstream_paused (the"
      .. " upstream's 1302 Retry-After),"
      .. " upstream_slots (its parallel slots, learned from a 1303), validation, upstream, journal (one node's,"
      .. " unwritable), capacity (the node's room for open tasks), store (its records unreadable, or the Redis"
      .. " store's unwritable: down, full, reset, another unit); nothing forwarded but upstream." },
  kling_gateway_gone_found_total = { "counter",
    "Tasks ended as never made (a create whose answer was lost, not found by its external id: released)"
      .. " that a callback then showed the upstream has: made, maybe billed upstream, charged to no one." },
  kling_gateway_callbacks_dropped_total = { "counter", "Task ends not told their clients' callback_url: the worker"
    .. " held callback_queue callbacks already (queued, being sent or waiting for a retry)." },
  kling_gateway_journal_errors_total = { "counter", "Journal writes that failed (one node: its ledger and task"
    .. " table's lines)." },
  kling_gateway_store_errors_total = { "counter", "Redis calls that failed, reads and writes alike, by stage: connect"
    .. " (Redis not reached: connection, AUTH or SELECT), call (a command or script refused, or its answer lost)." },
  kling_gateway_store_round_trips_total = { "counter",
    "Redis round trips carrying creates' records and holds (the creates of a worker meanwhile share one)." },
  kling_gateway_upstream_seconds = { "histogram", "Upstream call latency, by operation." },
}

-- The reasons a create is refused for (kling_gateway_refusals_total{reason}, HELP above says
-- each): every one written from the start, at 0; journal only on one node (Redis has none).
M.REASONS = { "auth", "balance", "open", "failed_daily", "suspended", "upstream_paused", "upstream_slots",
  "validation", "upstream", "journal", "capacity", "store" }

local function dict()
  return ngx.shared[M.DICT]
end

local function key(name, labels)
  return name .. "{" .. (labels or "") .. "}"
end

-- Escapes a label value.
function M.label(v)
  return (tostring(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function add(k, n)
  pending[k] = (pending[k] or 0) + n
end

-- flush(): this worker's counts into the shared dict.
function M.flush()
  local d = dict()
  if not d or next(pending) == nil then
    return
  end
  local counts = pending
  pending = {}
  for k, n in pairs(counts) do
    d:incr(k, n, 0)
  end
end

-- start(): flushes this worker's counts every FLUSH_S (init_worker).
function M.start()
  if dict() then
    local ok, err = ngx.timer.every(M.FLUSH_S, M.flush)
    if not ok then
      ngx.log(ngx.ERR, "kling gateway: metrics are counted only when /metrics is read: ", err)
    end
  end
end

function M.inc(name, labels, n)
  add(key(name, labels), n or 1)
end

-- The keys of one op's histogram, made once: observe() is on every create's path.
local function series(op)
  local op_label = 'op="' .. M.label(op) .. '"'
  local out = { count = key("kling_gateway_upstream_seconds_count", op_label),
    sum = key("kling_gateway_upstream_seconds_sum", op_label) }
  for i, le in ipairs(M.BUCKETS) do
    out[i] = key("kling_gateway_upstream_seconds_bucket", op_label .. ',le="' .. le .. '"')
  end
  out[#M.BUCKETS + 1] = key("kling_gateway_upstream_seconds_bucket", op_label .. ',le="+Inf"')
  return out
end
local SERIES = { create = series("create"), poll = series("poll"), lookup = series("lookup") }

-- The counters' known series (bounded labels), written at 0 before their first event: a series
-- that appears only then leaves rate() and alerts on it blind until it does. requests_total's
-- statuses are nginx's, not known ahead: its series come with the first request of each.
local function known(redis)
  local out = { key("kling_gateway_creates_forwarded_total"), key("kling_gateway_gone_found_total"),
    key("kling_gateway_callbacks_dropped_total"), redis and key("kling_gateway_store_round_trips_total") or nil }
  for _, reason in ipairs(M.REASONS) do
    if not (redis and reason == "journal") then
      out[#out + 1] = key("kling_gateway_refusals_total", 'reason="' .. reason .. '"')
    end
  end
  for _, op in ipairs { "create", "poll", "lookup" } do
    out[#out + 1], out[#out + 2] = SERIES[op].count, SERIES[op].sum
  end
  return out
end

-- observe(op, seconds): one upstream call into the latency histogram. Each call counts in its
-- own bucket only (one increment); render() makes the buckets cumulative, as Prometheus reads them.
function M.observe(op, seconds)
  local keys = SERIES[op] or series(op)
  local i = 1
  while M.BUCKETS[i] and seconds > M.BUCKETS[i] do
    i = i + 1
  end
  add(keys[i], 1)
  add(keys.count, 1)
  add(keys.sum, seconds)
end

local KNOWN = { ["/gateway/balance"] = "balance", ["/kling/callback"] = "callback", ["/metrics"] = "metrics",
  ["/gateway/health"] = "health", ["/gateway/ready"] = "ready" }

-- The route a request took (a bounded label set). A request nginx refused before it had a
-- URI (a request line too long, not HTTP) has none: "other".
function M.route(uri, method)
  if type(uri) ~= "string" then
    return "other"
  end
  if uri:find("^/v1/") then
    if method == "POST" then
      return "create"
    end
    -- /v1/videos/text2video is a list, /v1/videos/text2video/ID a query
    return uri:find("/[^/]*/", 5) and "query" or "list"
  end
  if KNOWN[uri] then
    return KNOWN[uri]
  end
  if uri:find("^/gateway/admin") then
    return "admin"
  end
  return "other"
end

-- The counter's key of a route and status, made once per worker (a bounded set: the routes
-- above and nginx's statuses): the log phase of every request builds no string.
local request_keys = {}
local function request_key(route, status)
  local by_status = request_keys[route]
  if not by_status then
    by_status = {}
    request_keys[route] = by_status
  end
  local k = by_status[status]
  if not k then
    k = key("kling_gateway_requests_total", 'route="' .. route .. '",status="' .. status .. '"')
    by_status[status] = k
  end
  return k
end

-- In the log phase of every request of the gateway's server.
function M.log()
  add(request_key(M.route(ngx.var.uri, ngx.req.get_method()), ngx.status), 1)
end

-- render(G) -> the exposition text
function M.render(G)
  local out, seen = {}, {}
  local function head(name)
    local h = HELP[name]
    if h and not seen[name] then
      seen[name] = true
      out[#out + 1] = "# HELP " .. name .. " " .. h[2]
      out[#out + 1] = "# TYPE " .. name .. " " .. h[1]
    end
  end
  M.flush() -- this worker's own counts, up to this request
  local d = dict()
  local keys = d and d:get_keys(0) or {}
  local listed = {}
  for _, k in ipairs(keys) do
    listed[k] = true
  end
  for _, k in ipairs(known(G.redis ~= nil)) do
    if not listed[k] then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys)
  -- Buckets are stored one per bucket (see observe): written here cumulative, every bucket of
  -- an op, before its count.
  local per_bucket = {}
  for _, k in ipairs(keys) do
    local op, le = k:match('^kling_gateway_upstream_seconds_bucket{(.*),le="([^"]+)"}$')
    if op then
      per_bucket[op] = per_bucket[op] or {}
      per_bucket[op][le] = d:get(k) or 0
    end
  end
  for _, k in ipairs(keys) do
    local name = k:match("^([%w_]+){")
    local base = name and (name:match("^(kling_gateway_upstream_seconds)_") or name)
    head(base)
    local count_op = k:match("^kling_gateway_upstream_seconds_count{(.*)}$")
    if count_op then
      local n, counts = 0, per_bucket[count_op] or {}
      for _, le in ipairs(M.BUCKETS) do
        n = n + (counts[tostring(le)] or 0)
        out[#out + 1] = "kling_gateway_upstream_seconds_bucket{" .. count_op .. ',le="' .. le .. '"} ' .. n
      end
      out[#out + 1] = "kling_gateway_upstream_seconds_bucket{" .. count_op .. ',le="+Inf"} '
        .. (n + (counts["+Inf"] or 0))
    end
    if not k:find("^kling_gateway_upstream_seconds_bucket{") then
      -- a series without labels: its bare name; a known one not yet counted: 0
      out[#out + 1] = k:gsub("{}$", "") .. " " .. tostring(d and d:get(k) or 0)
    end
  end
  local function gauge(name, help, kind, lines)
    out[#out + 1] = "# HELP " .. name .. " " .. help
    out[#out + 1] = "# TYPE " .. name .. " " .. (kind or "gauge")
    for _, line in ipairs(lines or {}) do
      out[#out + 1] = line
    end
  end
  local store = G.meter.store
  if store.store_errors then -- Redis: no journal, every failed call of the store counted by its stage
    local by_stage, lines = store:store_errors(), {}
    for _, stage in ipairs { "connect", "call" } do
      lines[#lines + 1] = 'kling_gateway_store_errors_total{stage="' .. stage .. '"} ' .. (by_stage[stage] or 0)
    end
    gauge("kling_gateway_store_errors_total", HELP.kling_gateway_store_errors_total[2], "counter", lines)
  else
    gauge("kling_gateway_journal_errors_total", HELP.kling_gateway_journal_errors_total[2], "counter")
    out[#out + 1] = "kling_gateway_journal_errors_total " .. store:journal_errors() + G.tasks:journal_errors()
  end
  gauge("kling_gateway_open_reservations", "Reservations held (tasks not yet settled or released).")
  out[#out + 1] = "kling_gateway_open_reservations " .. store:open_holds()
  gauge("kling_gateway_spent_micros_total", "Settled spend by account and currency, in micro-units.", "counter")
  local reserved, balance, open = {}, {}, {}
  for _, name in ipairs(G.accounts:names()) do
    local a = G.meter:account(name)
    if a then
      local labels = '{account="' .. M.label(name) .. '",currency="' .. M.label(a.currency) .. '"}'
      out[#out + 1] = "kling_gateway_spent_micros_total" .. labels .. " " .. string.format("%d", a.spent_micros)
      reserved[#reserved + 1] = "kling_gateway_reserved_micros" .. labels .. " "
        .. string.format("%d", a.reserved_micros)
      balance[#balance + 1] = "kling_gateway_balance_micros" .. labels .. " " .. string.format("%d", a.balance_micros)
      open[#open + 1] = 'kling_gateway_open_tasks{account="' .. M.label(name) .. '"} '
        .. string.format("%d", a.open or 0)
    end
  end
  gauge("kling_gateway_open_tasks", "Tasks open (held) by account: what its max_open bounds.", nil, open)
  gauge("kling_gateway_reserved_micros", "Held by open reservations, by account and currency, in micro-units.", nil,
    reserved)
  gauge("kling_gateway_balance_micros", "What each account may still hold, in micro-units: negative when its credit"
    .. " was lowered below its spend (its creates are refused).", nil, balance)
  -- A full dict refuses creates (capacity): watch free against capacity, size memory by them.
  local capacity, free = {}, {}
  for _, name in ipairs { "tasks", "ledger" } do
    local shm, label = ngx.shared[G.dicts[name]], '{dict="' .. name .. '"} '
    capacity[#capacity + 1] = "kling_gateway_memory_capacity_bytes" .. label .. string.format("%d", shm:capacity())
    free[#free + 1] = "kling_gateway_memory_free_bytes" .. label .. string.format("%d", shm:free_space())
  end
  gauge("kling_gateway_memory_capacity_bytes", "The size of each shared dict (memory.tasks, memory.ledger).", nil,
    capacity)
  gauge("kling_gateway_memory_free_bytes", "Free pages of each shared dict, in bytes (entries in partly used pages"
    .. " not counted).", nil, free)
  gauge("kling_gateway_poll_lag_seconds", "Seconds since the poller's leader last ran (a stalled poller grows it).")
  local last = G.tasks.dict:get(require("kling.resty.poller").LAST_TICK)
  ngx.update_time()
  out[#out + 1] = "kling_gateway_poll_lag_seconds " .. (last and string.format("%.3f", ngx.now() - last) or "NaN")
  return table.concat(out, "\n") .. "\n"
end

-- location = /metrics
function M.handle(G)
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.print(M.render(G))
end

return M
