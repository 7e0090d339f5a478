-- Callbacks the simulator sends to a client's callback_url, for every dialect: a POST from an
-- ngx.timer over a cosocket HTTP/1.1 client of our own, retried on the dialect's schedule
-- until a 2xx, every attempt recorded (GET /_sim/callbacks), and signed the Standard Webhooks
-- way when a secret is given:
--   webhook-id: msg_<hex> (the same on every retry of one message)
--   webhook-timestamp: <seconds of the attempt>
--   webhook-signature: v1,<base64 HMAC-SHA256(key, id "." timestamp "." body)>
-- where key is the base64-decoded part after "whsec_", else the secret's raw bytes.
-- HMAC comes from libcrypto through the FFI (kling_sim.auth), as the JWT check does.
local json = require "kling.json"
local auth = require "kling_sim.auth"

local M = {}

M.LOG_SIZE = 1000
M.USER_AGENT = "kling-sim-callbacks/1"

-- Attempts live in the request-log dict under their own keys, so /_sim/reset clears them too.
local function log()
  return ngx.shared.kling_sim_log
end

-- {scheme, host, port, target} of an http(s) URL, or nil and a message.
function M.parse_url(url)
  if type(url) ~= "string" then
    return nil, "url must be a string"
  end
  local scheme, rest = url:match("^([Hh][Tt][Tt][Pp][Ss]?)://(.*)$")
  if not scheme then
    return nil, "url must be an http or https URL"
  end
  scheme = scheme:lower()
  local authority, target = rest:match("^([^/%?#]*)([^#]*)")
  local host, port = authority:match("^([^:@]+):(%d+)$")
  if not host then
    host = authority:match("^([^:@]+)$")
  end
  if not host or host == "" then
    return nil, "url has no host (or a userinfo/IPv6 form this sender does not take): " .. url
  end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  if port < 1 or port > 65535 then
    return nil, "url port must be in 1..65535"
  end
  if target == "" then
    target = "/"
  elseif target:sub(1, 1) == "?" then
    target = "/" .. target
  end
  return { scheme = scheme, host = host, port = port, target = target }
end

-- The HMAC key of a Standard Webhooks secret, or nil and a message.
function M.signing_key(secret)
  if type(secret) ~= "string" or secret == "" then
    return nil, "sign_secret must be a non-empty string"
  end
  local b64 = secret:match("^whsec_(.*)$")
  if not b64 then
    return secret
  end
  local key = b64 ~= "" and b64:match("^[%w+/]+=*$") and ngx.decode_base64(b64)
  if not key or key == "" then
    return nil, "sign_secret: the part after whsec_ must be base64"
  end
  return key
end

-- "v1,<base64>" for one attempt.
function M.sign(key, id, timestamp, body)
  local mac, err = auth.hmac_sha256(key, id .. "." .. timestamp .. "." .. body)
  if not mac then
    return nil, err
  end
  return "v1," .. ngx.encode_base64(mac)
end

local function clean_header(k, v)
  return type(k) == "string" and k:match("^[%w%-]+$") and type(v) == "string" and not v:find("[\r\n]")
end

local function record(e)
  local dict = log()
  local n = dict:incr("cb:seq", 1, 0)
  e.seq = n
  dict:set("cb:e:" .. (n % M.LOG_SIZE), json.encode(e))
end

-- The last n attempts, oldest first.
function M.recent(n)
  local dict = log()
  local last = dict:get("cb:seq") or 0
  n = math.min(n or M.LOG_SIZE, M.LOG_SIZE, last)
  local out = json.array {}
  for i = last - n + 1, last do
    local s = dict:get("cb:e:" .. (i % M.LOG_SIZE))
    if s then
      out[#out + 1] = json.decode(s)
    end
  end
  return out
end

-- One POST; -> HTTP status | nil, error message.
local function post(msg, headers)
  local u = msg.target
  local sock = ngx.socket.tcp()
  local ms = math.floor(msg.timeout_s * 1000)
  sock:settimeouts(ms, ms, ms)
  -- Without a resolver in the conf only addresses connect; callbacks go to loopback.
  local host = u.host == "localhost" and "127.0.0.1" or u.host
  local ok, err = sock:connect(host, u.port)
  if not ok then
    return nil, "connect: " .. tostring(err)
  end
  if u.scheme == "https" then
    ok, err = sock:sslhandshake(nil, u.host, false)
    if not ok then
      sock:close()
      return nil, "tls: " .. tostring(err)
    end
  end
  local default_port = (u.scheme == "https" and 443 or 80) == u.port
  local lines = {
    "POST " .. u.target .. " HTTP/1.1",
    "Host: " .. u.host .. (default_port and "" or (":" .. u.port)),
    "User-Agent: " .. M.USER_AGENT,
    "Content-Length: " .. #msg.body,
    "Connection: close",
  }
  for k, v in pairs(headers) do
    lines[#lines + 1] = k .. ": " .. v
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = msg.body
  ok, err = sock:send(table.concat(lines, "\r\n"))
  if not ok then
    sock:close()
    return nil, "send: " .. tostring(err)
  end
  local line
  line, err = sock:receive("*l")
  sock:close()
  if not line then
    return nil, "receive: " .. tostring(err)
  end
  local status = tonumber(line:match("^HTTP/%d%.%d (%d%d%d)"))
  if not status then
    return nil, "not an HTTP status line: " .. line:sub(1, 80)
  end
  return status
end

local run

-- Attempt n (from 1) of msg; schedules the next one unless this one got a 2xx.
run = function(premature, msg, n)
  if premature then
    return
  end
  local headers = {}
  for k, v in pairs(msg.headers) do
    headers[k] = v
  end
  local sign_err
  if msg.key then
    local ts = tostring(ngx.time())
    local sig, err = M.sign(msg.key, msg.id, ts, msg.body)
    if sig then
      headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"] = msg.id, ts, sig
    else
      sign_err = err
    end
  end
  ngx.update_time()
  local started = ngx.now()
  local status, err
  if sign_err then
    err = "signing failed: " .. sign_err
  else
    status, err = post(msg, headers)
  end
  ngx.update_time()
  local delivered = status ~= nil and status >= 200 and status < 300
  local more = not delivered and n <= #msg.schedule_s
  record {
    id = msg.id, url = msg.url, attempt = n, status = status, error = err, delivered = delivered,
    final = not more, time_ms = math.floor(started * 1000), elapsed_ms = math.floor((ngx.now() - started) * 1000),
    signed = msg.key ~= nil, headers = headers, body = msg.body, meta = msg.meta,
    next_in_s = more and msg.schedule_s[n] or nil,
  }
  if more then
    local ok, terr = ngx.timer.at(msg.schedule_s[n], run, msg, n + 1)
    if not ok then
      record { id = msg.id, url = msg.url, attempt = n + 1, error = "cannot schedule a retry: " .. tostring(terr),
        delivered = false, final = true, meta = msg.meta }
    end
  end
end

-- schedule{url =, body =, headers =, schedule_s =, timeout_s =, sign_secret =, meta =}
-- -> message id | nil, message. The first attempt goes at once; after a failure (no answer,
-- or not a 2xx) attempt k+1 follows schedule_s[k] seconds later, until the list runs out.
-- timeout_s bounds each connect, send and read (default 10). meta is recorded with each
-- attempt (dialect, task id, status: whatever helps a test find its callbacks).
function M.schedule(o)
  if type(o) ~= "table" then
    return nil, "schedule takes a table"
  end
  local target, err = M.parse_url(o.url)
  if not target then
    return nil, err
  end
  if type(o.body) ~= "string" then
    return nil, "body must be a string (the raw bytes to POST)"
  end
  local schedule_s = o.schedule_s or {}
  if type(schedule_s) ~= "table" then
    return nil, "schedule_s must be an array of seconds"
  end
  for i, s in ipairs(schedule_s) do
    if type(s) ~= "number" or s ~= s or s < 0 or s > 86400 then
      return nil, "schedule_s[" .. i .. "] must be seconds in 0..86400"
    end
  end
  local timeout_s = o.timeout_s or 10
  if type(timeout_s) ~= "number" or timeout_s ~= timeout_s or timeout_s <= 0 or timeout_s > 600 then
    return nil, "timeout_s must be seconds in (0, 600]"
  end
  local headers = { ["Content-Type"] = "application/json" }
  for k, v in pairs(o.headers or {}) do
    if not clean_header(k, v) then
      return nil, "headers: " .. tostring(k) .. " must be a token name with a one-line string value"
    end
    headers[k] = v
  end
  local key
  if o.sign_secret ~= nil then
    key, err = M.signing_key(o.sign_secret)
    if not key then
      return nil, err
    end
  end
  local msg = {
    id = string.format("msg_%08x%08x%04x", math.random(0, 0x7fffffff), math.random(0, 0x7fffffff),
      math.random(0, 0xffff)),
    url = o.url, target = target, body = o.body, headers = headers, schedule_s = schedule_s,
    timeout_s = timeout_s, key = key, meta = o.meta,
  }
  local ok, terr = ngx.timer.at(0, run, msg, 1)
  if not ok then
    return nil, "cannot start a timer: " .. tostring(terr)
  end
  return msg.id
end

return M
