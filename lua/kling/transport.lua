-- One API call with the retry policy of the C core, over any driver (libcurl or nginx
-- cosockets). The decisions (retry or not, how long to wait, what kind of error) are made by
-- core.decide; this loop only carries them out.
local json = require "kling.json"
local errors = require "kling.errors"
local providers = require "kling.providers"

local M = {}

local function is_json(content_type)
  -- as it is first (every answer's "application/json"), lowered only when that finds nothing
  return content_type ~= nil and (content_type:find("json", 1, true) ~= nil
    or content_type:lower():find("json", 1, true) ~= nil)
end

local function request_id(headers)
  return headers and (headers["x-request-id"] or headers["request-id"])
end

-- A code, message or request id as an envelope gave it: a string or a number, else nothing. A
-- JSON null (a userdata), a table or a boolean there made an error whose tostring raised.
local function scalar(v)
  local t = type(v)
  if t == "string" or t == "number" then
    return v
  end
  return nil
end

local function text(v)
  v = scalar(v)
  return v ~= nil and tostring(v) or nil
end

-- Reads one driver result. Returns the envelope's data on success, or a description of the
-- failure: {status, code, message, request_id, transport}.
local function read_result(provider, res)
  if not res.ok then
    local message = res.message
    if res.error == "tls" and type(message) == "string" and message:find("certificate", 1, true)
      and not message:find("lua_ssl_trusted_certificate", 1, true) then -- nginx's driver says its own
      message = message .. " (a server whose CA is not the system's: give it as ca_file or KLING_CA_FILE)"
    end
    return nil, { transport = res.error or "other", message = message, sent = res.sent,
      received = res.received }
  end
  local f = { status = res.status, sent = true, received = true }
  local headers = res.headers
  if not is_json(headers and headers["content-type"]) then
    if res.status >= 200 and res.status < 300 then
      f.transport = "protocol"
      f.message = "expected JSON, got content type " .. tostring(res.headers["content-type"])
    else
      f.message = "HTTP " .. res.status .. " without a JSON body"
    end
    f.request_id = request_id(headers)
    return nil, f
  end
  local body, derr = json.decode_answer(res.body) -- ids of 18 digits kept exact
  if body == nil then
    f.transport = "protocol"
    f.message = "malformed JSON in the response: " .. tostring(derr)
    return nil, f
  end
  local data, code, message, rid = provider.unwrap(body, res.status)
  f.request_id = text(rid) or request_id(headers) -- the header read only where the body names none
  if data == false then
    if res.status >= 200 and res.status < 300 then
      f.transport = "protocol"
      f.message = "the response is not a " .. provider.name .. " envelope"
    else
      f.message = type(body) == "table" and (body.message or body.msg or body.error) or nil
      if type(f.message) == "table" then
        f.code = scalar(f.message.code)
        f.message = f.message.message
      end
      f.message = text(f.message)
    end
    return nil, f
  end
  if data == nil then
    -- The code is kept as sent. A string code is no success, "0" included: every envelope the
    -- seeds and the API notes show carries a JSON number (the official API's 0, apimodels.app's
    -- 200; seeds 001, 003 and 004 send none), so a "0" is not the API a dialect was written for,
    -- and its answer is not trusted as a made task; core.decide reads code 0 on a failure as
    -- protocol (a create looked up by its external id, its hold kept). Accept it in each dialect's
    -- unwrap if a provider is seen to send one.
    f.code, f.message = scalar(code), text(message)
    if f.code == nil and res.status >= 200 and res.status < 300 then
      -- A 2xx whose envelope says "not 0" without a code ({"code": null}): no refusal the
      -- provider made but an answer this module cannot read, as a malformed body is (a create's
      -- is looked up by its external id, its hold kept; it was taken as refused and released).
      f.transport = "protocol"
      f.message = "the response is not a " .. provider.name .. " envelope (its code is not a number or string)"
    end
    return nil, f
  end
  if res.status < 200 or res.status >= 300 then
    f.message = "HTTP " .. res.status .. " with a success envelope"
    return nil, f
  end
  return data, f
end

-- read_result(provider, res): one driver result as the envelope's data (and f), or nil and
-- the failure f = {status, code, message, request_id, transport, sent, received}. Exported for
-- the engine, which reads results of requests it started itself (non-blocking).
M.read_result = read_result

-- failure(f, d, provider_name, extra): the error a failed request ends with, from its failure f
-- (read_result) and core.decide's verdict d; `extra` fields are added. The one shape of a
-- transport error for every runner (transport.call, the lifecycle machine, the engine).
function M.failure(f, d, provider_name, extra)
  local e = errors.new {
    kind = d.kind, code = f.code, http_status = f.status, request_id = f.request_id,
    message = f.message or errors.kinds[d.kind], retryable = d.retryable, provider = provider_name,
    uncertain = d.uncertain or nil, transport = f.transport,
    unsent = f.sent == false or nil, -- provably never left the host: nothing can exist upstream
  }
  for k, v in pairs(extra or {}) do
    e[k] = v
  end
  return e
end

-- send(ctx, method, path, body): one attempt of one request (body already encoded), with
-- the client's headers and timeouts. Returns the driver's result; a transfer that could not
-- even start is a result too (nothing sent). The lifecycle runners send with it.
function M.send(ctx, method, path, body)
  local driver = ctx.driver
  local headers = { accept = "application/json" }
  if ctx.auth then
    headers.authorization = ctx.auth:bearer(driver:wall_s())
  end
  if body then
    headers["content-type"] = "application/json"
  end
  local res, rerr = driver:request {
    method = method, url = ctx.base_url .. path, headers = headers, body = body,
    timeout_ms = ctx.timeout_ms, connect_timeout_ms = ctx.connect_timeout_ms,
  }
  if not res then
    -- The driver could not even start the transfer: nothing left the host.
    res = { ok = false, error = "other", message = rerr, sent = false, received = false }
  end
  return res
end

-- call(ctx, spec): ctx = {driver, provider, base_url, auth, max_attempts, base_ms, cap_ms,
-- call_budget_ms, timeout_ms, connect_timeout_ms, core}; spec = {method, path, body}.
-- Returns data, meta ({request_id, http_status}) or nil, err.
function M.call(ctx, spec)
  local core, driver = ctx.core, ctx.driver
  local body = spec.body
  if body ~= nil and type(body) ~= "string" then
    local encoded, eerr = json.encode(body)
    if not encoded then
      return nil, errors.validation("request", "cannot be encoded as JSON: " .. tostring(eerr), ctx.provider.name)
    end
    body = encoded
  end
  local deadline = driver:now_ms() + (spec.budget_ms or ctx.call_budget_ms)
  local attempt, renewed = 0, false
  while true do
    local res = M.send(ctx, spec.method, spec.path, body)
    local data, f = read_result(ctx.provider, res)
    if data ~= nil then
      return data, { request_id = f.request_id, http_status = f.status }
    end
    if ctx.auth and not renewed and providers.token_expired(ctx.provider, f) then
      -- The token expired in flight (clock skew): renew once, without counting an attempt.
      ctx.auth:invalidate()
      renewed = true
    else
      local now = driver:now_ms()
      local d = core.decide {
        method = spec.method, attempt = attempt, max_attempts = ctx.max_attempts,
        http_status = f.status, code = tonumber(f.code), codes = ctx.provider.codes, transport = f.transport,
        sent = f.sent, received = f.received,
        retry_after = res.headers and res.headers["retry-after"], now_s = driver:wall_s(),
        budget_ms = math.max(0, deadline - now), base_ms = ctx.base_ms, cap_ms = ctx.cap_ms,
      }
      if not d.retry then
        return nil, M.failure(f, d, ctx.provider.name, { attempts = attempt + 1 })
      end
      if ctx.on_retry then
        ctx.on_retry { attempt = attempt + 1, delay_ms = d.delay_ms, kind = d.kind, code = f.code,
          http_status = f.status, path = spec.path }
      end
      driver:sleep_ms(d.delay_ms)
      attempt = attempt + 1
    end
  end
end

return M
