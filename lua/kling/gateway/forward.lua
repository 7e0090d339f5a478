-- A create forwarded in the client's own request: the gateway's /v1/ location admits it in
-- access_by_lua (validated, priced, held and journaled: kling.gateway.api admit), sets the
-- upstream request (the provider's body, path and credentials) and lets the location's own
-- proxy_pass send it, once (proxy_next_upstream off: a create is never resent); the upstream's
-- answer is read in body_filter_by_lua and replaced by the gateway's own (its task id). No
-- subrequest and no Lua HTTP client on the way.
--
-- The HTTP status goes out before the upstream's body is read: a 2xx answer is 200 (the task
-- was made, or its answer is unreadable and it is looked up by its external id), so is an
-- answer after which the task may exist (no answer at all: nginx's own 502/504; an upstream
-- 5xx: looked up, never resent, as the Lua client decides); any other status is mapped from
-- the upstream's status alone, and the body carries the code read from the upstream's answer.
--
-- With the Redis store the record is written from a timer (these phases have no cosockets):
-- until it is, the task is in its creating state, which the reservation made in access phase
-- recorded with its external id; a node that dies in between leaves it to the poller's
-- lookup (kling.gateway.track poll).
-- luacheck: ignore 122 (ngx.status and ngx.header are meant to be written)
local core = require "kling.core"
local errors = require "kling.errors"
local transport = require "kling.transport"
local api = require "kling.gateway.api"
local metrics = require "kling.gateway.metrics"
local official = require "kling.gateway.official"
local text = require "kling.gateway.text"

local M = {}

-- The nginx variables the location's proxy_pass reads (kling.gateway.proxy).
M.PATH_VAR, M.AUTH_VAR = "kling_upstream_path", "kling_upstream_auth"

-- access(G, account, endpoint): admits the create and sets the request proxy_pass sends;
-- a refused create is answered here (nothing forwarded).
function M.access(G, account, endpoint)
  local c = api.admit(G, account, endpoint)
  if not c then
    return
  end
  local client = c.client
  local call = client.provider.build(c.fwd, endpoint)
  local body, eerr = text.body(call.body, c.rec.id) -- its id last (kling.gateway.text)
  if not body then
    -- Nothing was sent: the hold is given back.
    local _, answer = api.outcome(G, c, nil, errors.validation("request", "cannot be encoded as JSON: "
      .. tostring(eerr)))
    api.record(G, c, "refused")
    return official.reply_json(answer.status, answer.code, answer.message)
  end
  local base_path = G.base_path
  if not base_path then
    base_path = client.base_url:match("^https?://[^/]+(.*)$") or ""
    G.base_path = base_path -- the upstream's own path prefix, the same for every create of this worker
  end
  ngx.var[M.PATH_VAR] = base_path .. call.path
  local auth = client.ctx.auth
  ngx.var[M.AUTH_VAR] = auth and auth:bearer(core.wall_s()) or ""
  ngx.req.set_body_data(body)
  c.sent_at = ngx.now()
  ngx.ctx.kling_create = c
end

-- header_filter_by_lua: the status of the gateway's answer (see the top of this file).
function M.header_filter()
  local c = ngx.ctx.kling_create
  if not c then
    return
  end
  local status = ngx.status
  c.answered = ngx.var.upstream_header_time ~= "-"
  c.upstream_status = status
  c.content_type = ngx.header["Content-Type"]
  c.request_id = ngx.header["X-Request-Id"]
  local err = c.answered and (status < 200 or status >= 300) and M.error(c, { status = status, sent = true,
    received = true })
  if err and not err.uncertain then
    ngx.status = api.upstream_error(err).status
  else
    ngx.status = 200 -- made, or maybe made (looked up by its external id)
  end
  for k in pairs(ngx.resp.get_headers()) do
    ngx.header[k] = nil -- the upstream's own headers are not the client's business
  end
  ngx.header["Content-Type"] = "application/json; charset=utf-8"
end

-- error(create, f) -> err: a failed upstream answer (transport.read_result's f) as the error
-- the Lua client would give for it, decided the same way (core.decide), never retried.
function M.error(c, f)
  local provider = c.client.provider
  local d = core.decide { method = "POST", attempt = 0, max_attempts = 1, http_status = f.status,
    code = tonumber(f.code), codes = provider.codes, transport = f.transport, sent = f.sent, received = f.received,
    now_s = core.wall_s(), budget_ms = 0, base_ms = 0, cap_ms = 0 }
  return errors.new { kind = d.kind, code = f.code, http_status = f.status, request_id = f.request_id,
    message = f.message or errors.kinds[d.kind], retryable = d.retryable, provider = provider.name,
    uncertain = d.uncertain or nil, transport = f.transport, attempts = 1 }
end

-- The upstream's answer read: a task, or nil, err.
local function read(c, body)
  if not c.answered then
    return nil, M.error(c, { transport = c.upstream_status == 504 and "timeout" or "reset", sent = true,
      received = false, message = "the upstream gave no answer (HTTP " .. tostring(c.upstream_status)
      .. " from nginx)" })
  end
  local data, f = transport.read_result(c.client.provider, { ok = true, status = c.upstream_status,
    headers = { ["content-type"] = c.content_type, ["x-request-id"] = c.request_id }, body = body })
  local ok2xx = c.upstream_status >= 200 and c.upstream_status < 300
  local t, perr
  if data ~= nil then
    t, perr = c.client.provider.parse_task(data, c.rec.endpoint)
  end
  if t then
    return t
  end
  if ok2xx then
    -- Accepted and unreadable: the task may exist, it is looked up (as the Lua client does).
    return nil, errors.new { kind = "protocol", uncertain = true, message = "create accepted, its answer is "
      .. "unreadable: " .. tostring(perr or f.message) }
  end
  return nil, M.error(c, f)
end

M.MAX_ANSWER = 4 * 1024 * 1024 -- bytes of a create's answer kept (the capture location's buffer too)

M.BATCH = 200 -- created records published per Redis round trip

-- Records what the body filters of this worker decided, from one timer: the created ones
-- published in batches (one round trip each), the others one by one.
local function flush(_, G)
  G.flush_scheduled = false
  local pending = G.pending
  G.pending = {}
  local created = {}
  for _, p in ipairs(pending) do
    if p.how == "created" then
      created[#created + 1] = p.c.rec
    else
      api.record(G, p.c, p.how, p.t)
    end
  end
  for i = 1, #created, M.BATCH do
    G.tasks:publish_many(created, i, math.min(#created, i + M.BATCH - 1))
  end
end

-- later(G, create, how, t): recorded by this worker's next flush.
function M.later(G, c, how, t)
  local pending = G.pending
  pending[#pending + 1] = { c = c, how = how, t = t }
  if not G.flush_scheduled then
    local ok, err = ngx.timer.at(0, flush, G)
    if not ok then
      ngx.log(ngx.ERR, "kling gateway: cannot record ", c.rec.id, " now (it is looked up later): ", err)
      return
    end
    G.flush_scheduled = true
  end
end

-- body_filter_by_lua: the upstream's answer collected, then replaced by the gateway's.
function M.body_filter(G)
  local c = ngx.ctx.kling_create
  if not c then
    return
  end
  local chunk, eof = ngx.arg[1], ngx.arg[2]
  if chunk and chunk ~= "" and c.size ~= false then
    -- A create's answer is a task object: one larger than MAX_ANSWER is not kept (read as
    -- unreadable: looked up), so an endless upstream body cannot fill the worker's memory.
    c.size = (c.size or 0) + #chunk
    if c.size > M.MAX_ANSWER then
      c.body, c.buf, c.size = nil, nil, false
    elseif not c.body then
      c.body = chunk -- the usual answer is one chunk: kept as is, not copied into a table
    else
      c.buf = c.buf or { c.body }
      c.buf[#c.buf + 1] = chunk
    end
  end
  if not eof then
    ngx.arg[1] = nil
    return
  end
  ngx.update_time()
  metrics.observe("create", ngx.now() - c.sent_at)
  local t, err = read(c, c.buf and table.concat(c.buf) or c.body or "")
  local how, answer = api.outcome(G, c, t, err)
  if G.redis then
    -- No cosockets here: the store learns it from a timer (the creating record and its hold,
    -- written in access phase, cover a crash until then), several creates per timer and per
    -- round trip.
    M.later(G, c, how, t)
  else
    answer = api.record(G, c, how, t) or answer
  end
  if not answer then -- ended at once with the Redis store: shown as created, its end follows
    answer = { status = 200, code = 0, message = "SUCCEED", data_json = official.created_json(c.rec) }
  end
  ngx.arg[1] = official.envelope(answer.code, answer.message, answer.data_json, "\n")
end

return M
