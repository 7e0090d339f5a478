--- Debug printing of every request and answer, with every secret redacted.
-- `kling.new{debug = true}` (or `KLING_DEBUG=1` when the option is not given) wraps the
-- client's driver: every request of the client goes through a driver (`request` for single
-- calls, `start` (the asynchronous seam) for the engine, `download`), so the wrapper is the one place
-- that sees them all. Each request and each answer is formatted by one function (`request_text`,
-- `answer_text`) and handed to the sink: stderr, or the function given as `debug`.
-- Redacted: Authorization and every header, query parameter or JSON field whose name says
-- key, token, secret, password, signature, auth, cookie, session or credential (or is sk, ak,
-- pwd, bearer, q-sign...); anything that looks like a JWT or a bearer token; URL user info;
-- and, literally, the client's own keys wherever they appear. It fails closed: a body that
-- cannot be redacted field by field (not JSON, cut short, nested too deep) is redacted by
-- pattern (a secret-looking name followed by a value, bearer tokens, JWTs).
-- @module kling.transport.debug
local json = require "kling.json"

local M = {}

local REDACTED = "[redacted]"
-- Long strings (base64 images) are cut to this many characters in the printout.
local MAX_STRING = 120
-- A body that is not JSON is printed up to this many bytes.
local MAX_BODY = 4096

-- Names (headers, query parameters, JSON fields) whose values are secrets: found anywhere in
-- the lowercased name...
local SECRET_WORDS = { "key", "token", "secret", "passw", "signature", "auth", "cookie", "session", "credential",
  "jwt", "bearer", "pwd", "sig$", "^sig" }
-- ...or as one word of it (split at anything not a letter or digit): too short to search for.
local SECRET_PARTS = { sk = true, ak = true, pw = true, pass = true, sign = true }
-- JSON nested deeper than this is not walked: what is below is replaced, not printed.
local MAX_DEPTH = 32

--- Whether a header, parameter or field name holds a secret.
---@param name string
---@return boolean
function M.secret_name(name)
  if type(name) ~= "string" then
    return false
  end
  local n = name:lower()
  for _, w in ipairs(SECRET_WORDS) do
    if n:find(w) then
      return true
    end
  end
  for part in n:gmatch("[%l%d]+") do
    if SECRET_PARTS[part] then
      return true
    end
  end
  return false
end

-- JWTs (three base64url parts, the first a JSON header "eyJ...") anywhere in a string.
local function scrub_jwt(s)
  return (s:gsub("eyJ[%w_%-]+%.[%w_%-]+%.[%w_%-]*", REDACTED))
end

-- The literal secrets given to the wrapper, longest first, replaced wherever they appear.
local function scrub_literals(s, secrets)
  for _, v in ipairs(secrets or {}) do
    local from = 1
    while true do
      local i, j = s:find(v, from, true)
      if not i then
        break
      end
      s = s:sub(1, i - 1) .. REDACTED .. s:sub(j + 1)
      from = i + #REDACTED
    end
  end
  return s
end

-- "Bearer <token>" (any case) anywhere in a string.
local function scrub_bearer(s)
  return (s:gsub("([Bb][Ee][Aa][Rr][Ee][Rr]%s+)[%w%-%._~%+/]+=*", "%1" .. REDACTED))
end

local function scrub(s, secrets)
  return scrub_literals(scrub_bearer(scrub_jwt(s)), secrets)
end

-- Text that could not be read field by field (not JSON, cut short): every value after a
-- secret-looking name and ':' or '=' is redacted, quoted (to its closing quote, or to the end
-- when it has none) or not (to the next ',', '&', ';', '}', ']' or line end). Fails closed: a
-- name that is not a secret keeps its value, anything else that looks like one goes.
local function scrub_pairs(s)
  local out, from = {}, 1
  while true do
    local _, name_end, _, name = s:find("([\"']?)([%a_][%w_%-%.]*)%1%s*[:=]%s*", from)
    if not name_end then
      break
    end
    out[#out + 1] = s:sub(from, name_end)
    from = name_end + 1
    if M.secret_name(name) then
      local open = s:sub(from, from)
      if open == '"' or open == "'" then
        -- to the closing quote (a backslash escapes the next character), or to the end
        local j, close = from + 1, nil
        while not close do
          local k = s:find("[\\" .. open .. "]", j)
          if not k then
            break
          end
          if s:sub(k, k) == "\\" then
            j = k + 2
          else
            close = k
          end
        end
        out[#out + 1] = open .. REDACTED .. (close and open or "")
        from = (close or #s) + 1
      else
        out[#out + 1] = REDACTED
        from = s:find("[,&;}%]\r\n]", from) or #s + 1
      end
    end
  end
  out[#out + 1] = s:sub(from)
  return table.concat(out)
end

--- A URL with user info and secret query parameters redacted.
---@param url string
---@param secrets? string[] literal secrets to redact as well
---@return string
function M.redact_url(url, secrets)
  if type(url) ~= "string" then
    return tostring(url)
  end
  local u = url:gsub("^(%a[%w+.-]*://)[^/@?#]*@", "%1" .. REDACTED .. "@")
  local base, query = u:match("^([^?]*)%?(.*)$")
  if query then
    local parts = {}
    for pair in query:gmatch("[^&]+") do
      local name = pair:match("^([^=]*)")
      if M.secret_name(name) and pair:find("=", 1, true) then
        pair = name .. "=" .. REDACTED
      end
      parts[#parts + 1] = pair
    end
    u = base .. "?" .. table.concat(parts, "&")
  end
  return scrub(u, secrets)
end

-- A decoded JSON value with secret fields redacted, URLs checked and long strings cut.
local function redact_value(v, secrets, depth)
  if type(v) == "string" then
    if v:match("^[Hh][Tt][Tt][Pp][Ss]?://") then
      v = M.redact_url(v, secrets)
    else
      v = scrub(v, secrets)
    end
    if #v > MAX_STRING then
      v = v:sub(1, MAX_STRING) .. string.format("...(%d bytes)", #v)
    end
    return v
  end
  if type(v) ~= "table" then
    return v
  end
  if depth >= MAX_DEPTH then
    return string.format("[nested deeper than %d levels: not printed]", MAX_DEPTH)
  end
  local out = json.is_array(v) and json.array {} or {}
  for k, x in pairs(v) do
    if type(k) == "string" and M.secret_name(k) and x ~= json.null then
      out[k] = REDACTED
    else
      out[k] = redact_value(x, secrets, depth + 1)
    end
  end
  return out
end

--- A body with secrets redacted: JSON field by field, anything else as text (cut when long).
---@param body string|nil
---@param secrets? string[] literal secrets to redact as well
---@return string|nil
function M.redact_body(body, secrets)
  if body == nil or body == "" then
    return nil
  end
  local decoded = json.decode(body)
  if type(decoded) == "table" then
    local text = json.encode(redact_value(decoded, secrets, 0))
    if text then
      return text
    end
  end
  local s = body
  if #s > MAX_BODY then
    s = s:sub(1, MAX_BODY) .. string.format("...(%d bytes)", #body)
  end
  -- JSON cut short, form-encoded or other text: by pattern
  return scrub(scrub_pairs(s), secrets)
end

local function header_lines(out, headers, secrets)
  local names = {}
  for k in pairs(headers or {}) do
    names[#names + 1] = k
  end
  table.sort(names)
  for _, k in ipairs(names) do
    local v = tostring(headers[k])
    if k:lower() == "authorization" or k:lower() == "proxy-authorization" then
      local scheme = v:match("^(%a+)%s")
      v = (scheme and (scheme .. " ") or "") .. REDACTED
    elseif M.secret_name(k) then
      v = REDACTED
    else
      v = scrub(v, secrets)
    end
    out[#out + 1] = "  " .. k .. ": " .. v
  end
end

--- The printout of one request: method, URL, headers, body; secrets redacted.
---@param req table a driver request {method, url, headers, body}
---@param secrets? string[] literal secrets to redact as well
---@return string text several lines, without a final newline
function M.request_text(req, secrets)
  local out = { string.format("kling> %s %s", tostring(req.method or "GET"), M.redact_url(req.url, secrets)) }
  header_lines(out, req.headers, secrets)
  local body = M.redact_body(req.body, secrets)
  if body then
    out[#out + 1] = "  " .. body
  end
  return table.concat(out, "\n")
end

--- The printout of one answer: status (or the transport failure), time, headers, body.
---@param req table the request it answers
---@param res table|nil a driver result {ok, status, headers, body, error, message, elapsed_ms}
---@param elapsed_ms integer|nil the time taken, when the result does not say
---@param secrets? string[] literal secrets to redact as well
---@return string text several lines, without a final newline
function M.answer_text(req, res, elapsed_ms, secrets)
  local url = M.redact_url(req.url, secrets)
  local ms = res and res.elapsed_ms or elapsed_ms or 0
  if not res or not res.ok then
    local why = res and (tostring(res.error) .. ": " .. tostring(res.message)) or "could not start"
    return string.format("kling< %s %s failed after %d ms: %s (sent %s)", tostring(req.method or "GET"), url, ms,
      scrub(why, secrets), tostring(res and res.sent or false))
  end
  local out = { string.format("kling< %d %s %s in %d ms", res.status, tostring(req.method or "GET"), url, ms) }
  header_lines(out, res.headers, secrets)
  local body = res.body and M.redact_body(res.body, secrets)
  if body then
    out[#out + 1] = "  " .. body
  elseif req.output then
    out[#out + 1] = "  (" .. tostring(res.bytes or 0) .. " bytes to a file)"
  end
  return table.concat(out, "\n")
end

-- The values of KLING_DEBUG that leave debugging off.
local FALSE_WORDS = { [""] = true, ["0"] = true, ["false"] = true, ["no"] = true, ["off"] = true, n = true, f = true }

--- Where debug output goes, from the `debug` option (or KLING_DEBUG when it is nil).
-- true: stderr; a function: called with each printout; false: nowhere; nil: stderr when the
-- environment has KLING_DEBUG set to anything but a false word ("", 0, false, no, off, n, f,
-- in any case, spaces around ignored). Its callers check `opt` first, by the option's one rule
-- (kling.validate.call_option_problem); anything else raises here.
---@param opt boolean|fun(text: string)|nil
---@param getenv? fun(name: string): string|nil os.getenv by default (tests)
---@return fun(text: string)|nil sink
function M.sink(opt, getenv)
  if opt == nil then
    local v = (getenv or os.getenv)("KLING_DEBUG")
    opt = v ~= nil and not FALSE_WORDS[v:match("^%s*(.-)%s*$"):lower()]
  end
  if opt == false then
    return nil
  end
  if opt == true then
    return function(text)
      io.stderr:write(text, "\n")
    end
  end
  if type(opt) == "function" then
    return opt
  end
  error("kling.transport.debug.sink: debug must be true, false or a function(text) (got " .. type(opt) .. ")", 2)
end

-- Calls a method of the real object with the real object as self (for the pass-through).
local function bind(inner)
  return function(_, k)
    local v = inner[k]
    if type(v) == "function" then
      return function(_, ...)
        return v(inner, ...)
      end
    end
    return v
  end
end

-- The engine's asynchronous seam (kling.driver.multi): start prints the request, its
-- completion the answer; cancel and wait pass through.
local function wrap_start(driver, sink, secrets, now_ms)
  return function(_, req, done, arg)
    sink(M.request_text(req, secrets))
    local t0 = now_ms()
    local id, err = driver:start(req, function(a, res)
      sink(M.answer_text(req, res, now_ms() - t0, secrets))
      return done(a, res)
    end, arg)
    if not id then
      sink(M.answer_text(req, nil, 0, secrets))
    end
    return id, err
  end
end

--- Wraps a driver so that every request and answer through it is printed, redacted.
-- The wrapper shares everything with the driver (connections, TLS sessions): it only prints.
---@param driver table a driver (`kling.driver.curl`, `kling.resty.driver`, or one of the same shape)
---@param sink fun(text: string) where each printout goes
---@param secrets? string[] the client's own keys: redacted literally wherever they appear
---@return table driver the wrapped driver (`inner` is the driver; `with_sink(other)` the same printing elsewhere)
function M.wrap(driver, sink, secrets)
  local list = {}
  for _, s in ipairs(secrets or {}) do
    if type(s) == "string" and #s >= 4 then
      list[#list + 1] = s
    end
  end
  table.sort(list, function(a, b)
    return #a > #b
  end)
  local function now_ms()
    return driver:now_ms()
  end
  local w = setmetatable({ inner = driver }, { __index = bind(driver) })
  -- The same driver printing elsewhere (client:with{debug =}), with the same secrets hidden.
  function w.with_sink(_, other)
    return M.wrap(driver, other, list)
  end
  function w.request(_, req)
    sink(M.request_text(req, list))
    local t0 = now_ms()
    local res, err = driver:request(req)
    sink(M.answer_text(req, res, now_ms() - t0, list))
    return res, err
  end
  if driver.download then
    function w.download(_, url, path, opts)
      local req = { method = "GET", url = url, output = path }
      sink(M.request_text(req, list))
      local t0 = now_ms()
      local got, msg, kind = driver:download(url, path, opts)
      if got then
        sink(M.answer_text(req, { ok = true, status = 200, bytes = msg, output = path }, now_ms() - t0, list))
      else
        sink(M.answer_text(req, { ok = false, error = kind, message = msg, sent = true }, now_ms() - t0, list))
      end
      return got, msg, kind
    end
  end
  if driver.start then
    w.start = wrap_start(driver, sink, list, now_ms)
  end
  return w
end

return M
