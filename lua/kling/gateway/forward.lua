-- A create forwarded in the client's own request: the gateway's /v1/ location admits it in
-- access_by_lua (validated, priced, held and journaled: kling.gateway.api admit), sets the
-- upstream request (the provider's body, path and credentials) and lets the location's own
-- proxy_pass send it, once (proxy_next_upstream off: a create is never resent); the upstream's
-- answer is read in body_filter_by_lua and replaced by the gateway's own (its task id). No
-- subrequest and no Lua HTTP client on the way.
--
-- What the answer makes of the create is the create's lifecycle machine's decision
-- (kling.lifecycle.machine forwarded, made in access phase): the body filter feeds it the
-- answer as a driver's result and kling.gateway.api outcome carries its actions out. The HTTP
-- status goes out before the body is read: 200 unless the machine says the status alone
-- refuses the create (create_status: a 2xx, or an answer after which the task may exist, is
-- 200: made, or looked up by its external id, never resent); the body carries the code read
-- from the upstream's answer.
--
-- With the Redis store the record is written from a timer (these phases have no cosockets):
-- until it is, the task is in its creating state, which the reservation made in access phase
-- recorded with its external id; a node that dies in between leaves it to the poller's
-- lookup (kling.gateway.track poll).
-- luacheck: ignore 122 (ngx.status and ngx.header are meant to be written)
local core = require "kling.core"
local api = require "kling.gateway.api"
local pace = require "kling.gateway.upstream_pace"
local metrics = require "kling.gateway.metrics"
local official = require "kling.gateway.official"
local text = require "kling.gateway.text"
local http = require "kling.resty.http"

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
  c.m = api.machine(G, c, core.now_ms()) -- what the answer makes of the create is its to decide
  if not body then
    local _, answer = api.outcome(G, c, api.unsendable(c.m, eerr))
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

-- The upstream's answer as a driver's result: what the create's machine reads.
local function result(c, body)
  if c.size == false then -- past MAX_ANSWER: dropped unread, as the other drivers refuse it
    return { ok = false, error = "too_large", sent = true, received = true,
      message = "the answer is too large: over max_body (" .. M.MAX_ANSWER .. " bytes)" }
  elseif not c.sent then
    return { ok = false, error = "connect", sent = false, received = false,
      message = "the upstream could not be reached (HTTP " .. tostring(c.upstream_status) .. " from nginx)" }
  elseif not c.answered then
    return { ok = false, error = c.upstream_status == 504 and "timeout" or "reset", sent = true, received = false,
      message = "the upstream gave no answer (HTTP " .. tostring(c.upstream_status) .. " from nginx)" }
  end
  return { ok = true, status = c.upstream_status, headers = { ["content-type"] = c.content_type,
    ["x-request-id"] = c.request_id }, body = body }
end

-- header_filter_by_lua: the status of the gateway's answer (see the top of this file).
function M.header_filter()
  local c = ngx.ctx.kling_create
  if not c then
    return
  end
  local status = ngx.status
  c.answered = ngx.var.upstream_header_time ~= "-"
  -- No connection was made (refused, or the connect or TLS handshake timed out): not a byte
  -- of the create left, so nothing can exist upstream. nginx sets the connect time when it
  -- starts sending on a connection (a kept-alive one included).
  c.sent = c.answered or ngx.var.upstream_connect_time ~= "-"
  c.upstream_status = status
  c.content_type = ngx.header["Content-Type"]
  c.request_id = ngx.header["X-Request-Id"]
  c.retry_after = ngx.header["Retry-After"] -- a 1302's: how long this node's creates wait (upstream_pace)
  local err
  if c.answered then
    err = c.m:create_status(status)
  elseif not c.sent then -- the machine's end now: the status goes out before the body
    c.acts = c.m:answer(core.now_ms(), result(c), ngx.time())
    local done = c.acts[#c.acts]
    err = done and done.type == "done" and done.err
  end
  if err then
    ngx.status = api.upstream_error(err).status
  else
    ngx.status = 200 -- made, or maybe made (looked up by its external id)
  end
  -- The upstream's own headers are not the client's business: every one of them, however many
  -- (get_headers() lists the first 100 only; 0 lifts that limit: a hostile upstream's 101st
  -- header went out to the client).
  for k in pairs(ngx.resp.get_headers(0)) do
    ngx.header[k] = nil
  end
  ngx.header["Content-Type"] = "application/json; charset=utf-8"
  local wait = ngx.status == 429 and tonumber(c.retry_after)
  if wait and wait > 0 and wait <= 86400 then -- the upstream's pace, told to the client (digits only)
    ngx.header["Retry-After"] = string.format("%d", math.ceil(wait))
  end
end

-- Bytes of a create's answer kept: the cosocket and capture drivers' cap (their max_body), so
-- that the three paths of an answer refuse the same ones.
M.MAX_ANSWER = http.DEFAULTS.max_body

M.BATCH = 200 -- created records published per Redis round trip

-- Records what the body filters of this worker decided, from one timer: the created ones
-- published in batches (one round trip each), the others one by one.
local function flush(_, G)
  G.flush_scheduled = false
  local pending = G.pending
  G.pending = {}
  local created, stable = {}, {}
  for _, p in ipairs(pending) do
    if p.how == "created" then
      pace.slots(G, p.c, "created") -- what api.record does of the others: a count of slots learned may go
      local n = #created + 1
      created[n], stable[n] = p.c.rec, p.c.stable -- the part of the record its admission encoded
    else
      api.record(G, p.c, p.how)
    end
  end
  for i = 1, #created, M.BATCH do
    G.tasks:publish_many(created, i, math.min(#created, i + M.BATCH - 1), stable)
  end
end

-- later(G, create, how): recorded by this worker's next flush.
function M.later(G, c, how)
  local pending = G.pending
  pending[#pending + 1] = { c = c, how = how }
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
    -- A create's answer is a task object: one larger than MAX_ANSWER is not kept, and no chunk
    -- past it either (only counted until then: one length check a chunk), so an endless upstream
    -- body cannot fill the worker's memory; its machine reads it as too large (a protocol
    -- error: looked up by its external id).
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
  local acts = c.acts or c.m:answer(core.now_ms(), result(c, c.buf and table.concat(c.buf) or c.body or ""),
    ngx.time())
  local how, answer = api.outcome(G, c, acts)
  if G.redis then
    -- No cosockets here: the store learns it from a timer (the creating record and its hold,
    -- written in access phase, cover a crash until then), several creates per timer and per
    -- round trip.
    M.later(G, c, how)
  else
    answer = api.record(G, c, how) or answer
  end
  if not answer then -- ended at once with the Redis store: shown as created, its end follows
    answer = { status = 200, code = 0, message = "SUCCEED", data_json = official.created_json(c.rec) }
  end
  ngx.arg[1] = official.envelope(answer.code, answer.message, answer.data_json, "\n")
end

return M
