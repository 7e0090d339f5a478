-- An HTTP/1.1 client over nginx cosockets (ngx.socket.tcp): one request per call, results in
-- the shape of kling.core's libcurl driver (docs/internals.md) so that transport.lua reads
-- both alike. Connections are kept alive in a pool per scheme, host, port and TLS settings;
-- TLS is verified against lua_ssl_trusted_certificate. Nothing here blocks the worker: every
-- wait is a cosocket yield.
local M = {}

M.DEFAULTS = {
  timeout_ms = 60000, connect_timeout_ms = 10000,
  -- Shorter than nginx's default keepalive_timeout (75 s), so the server rarely closes a
  -- connection that sits in our pool.
  keepalive_ms = 30000, pool_size = 32,
  -- An API answer (not a download) is read whole and decoded in the worker, which nothing else
  -- runs in meanwhile: 20 MB of task JSON held it 140 ms. The biggest legitimate answer is a task
  -- list page (500 image tasks of 9 images each: 522 KB from the simulator, decoded in 4-9 ms);
  -- 2 MiB leaves a margin of 4 (the driver's max_body to change). Downloads have their own caps.
  max_body = 2 * 1024 * 1024,
}

local CHUNK = 65536

-- {scheme, host, port, target, authority} of an http(s) URL, or nil and a message.
function M.parse_url(url)
  if type(url) ~= "string" then
    return nil, "url must be a string"
  end
  local scheme, rest = url:match("^([Hh][Tt][Tt][Pp][Ss]?)://(.*)$")
  if not scheme then
    return nil, "url must be an http or https URL: " .. url
  end
  scheme = scheme:lower()
  local authority, target = rest:match("^([^/%?#]*)([^#]*)")
  local host, port = authority:match("^%[([^%]]+)%]:(%d+)$")
  if not host then
    host = authority:match("^%[([^%]]+)%]$")
  end
  if not host then
    host, port = authority:match("^([^:@]+):(%d+)$")
  end
  if not host then
    host = authority:match("^([^:@]+)$")
  end
  if not host or host == "" then
    return nil, "url has no host (or a userinfo form this client does not take): " .. url
  end
  local default = scheme == "https" and 443 or 80
  port = tonumber(port) or default
  if port < 1 or port > 65535 then
    return nil, "url port must be in 1..65535: " .. url
  end
  if target == "" then
    target = "/"
  elseif target:sub(1, 1) == "?" then
    target = "/" .. target
  end
  local name = host:find(":", 1, true) and ("[" .. host .. "]") or host
  return { scheme = scheme, host = host, port = port, target = target,
    authority = port == default and name or (name .. ":" .. port) }
end

local function is_ip(host)
  return host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil or host:find(":", 1, true) ~= nil
end

-- Nothing a caller passes may end the request line or a header early: a method is a token,
-- a URL and a header value hold no CR, LF or other control character (a value may hold
-- tabs), a header name is a token. A request breaking this is an error, never a send.
local TOKEN = "^[%w!#$%%&'*+.^_`|~-]+$"

local function header_clean(v)
  return not tostring(v):find("[%z\1-\8\10-\31\127]")
end

local function request_error(req)
  if type(req.method) ~= "nil" and (type(req.method) ~= "string" or not req.method:match(TOKEN)) then
    return "method must be a token (letters, no spaces or control characters)"
  end
  if type(req.url) == "string" and req.url:find("[%z\1-\32\127]") then
    return "url must not contain spaces or control characters (CR, LF ...)"
  end
  if req.address ~= nil and (type(req.address) ~= "string" or not (req.address:match("^%d+%.%d+%.%d+%.%d+$")
      or req.address:match("^%[[%x:]+%]$"))) then
    return "address must be an IPv4 address (a.b.c.d) or an IPv6 one in brackets ([x:x::x])"
  end
  for k, v in pairs(req.headers or {}) do
    if type(k) ~= "string" or not k:match(TOKEN) then
      return "header name " .. string.format("%q", tostring(k)) .. " is not a token"
    end
    if (type(v) ~= "string" and type(v) ~= "number") or not header_clean(v) then
      return "header " .. k .. " must be a one-line value without control characters"
    end
  end
  return nil
end
M.request_error = request_error

local function fail(res, category, message)
  res.ok, res.error, res.message = false, category, message
  return res
end

-- The category of a cosocket error while reading (timeout, closed, ...).
local function read_error(err, received)
  if err == "timeout" or err == "too_large" then
    return err
  end
  return received and "partial" or "reset"
end

-- A header block larger than this is refused (too_large), as the libcurl driver refuses one
-- (src/http_result.c, KH_MAX_HEAD): no API answer needs it.
M.MAX_HEAD = 256 * 1024

-- Reads the header block after the status line into a table of lowercased names
-- (repeated headers joined with ", "). Returns headers or nil, err. At most MAX_HEAD bytes:
-- a peer sending header lines without end filled memory, and the repeated names, joined one
-- by one, made quadratic work that held the worker (pings waited seconds).
local function read_headers(sock)
  local headers, repeated, bytes = {}, nil, 0
  while true do
    local line, err = sock:receive("*l")
    if not line then
      return nil, err
    end
    bytes = bytes + #line + 2
    if bytes > M.MAX_HEAD then
      return nil, "too_large"
    end
    if line == "" then
      for name, values in pairs(repeated or {}) do
        headers[name] = table.concat(values, ", ")
      end
      return headers
    end
    local name, value = line:match("^([^:%s]+)%s*:%s*(.-)%s*$")
    if name then
      name = name:lower()
      local prev = headers[name]
      if prev == nil then
        headers[name] = value
      else
        repeated = repeated or {}
        local values = repeated[name]
        if not values then
          values = { prev }
          repeated[name] = values
        end
        values[#values + 1] = value
      end
    end
  end
end

-- A response of which only the status is read (opts.status_only: a client's callback
-- receiver, which could send header lines, or interim answers, without end): the first
-- 12 bytes of its status line ("HTTP/1.1 200"), after at most INTERIM_MAX interim (1xx)
-- answers of at most INTERIM_BYTES each. -> status, version | nil, category, message
M.INTERIM_MAX, M.INTERIM_BYTES = 3, 8192
local function read_status_only(sock, res)
  for _ = 0, M.INTERIM_MAX do
    local head, err = sock:receive(12)
    if not head then
      return nil, read_error(err, res.received), "no response: " .. tostring(err)
    end
    res.received = true
    local version, code = head:match("^HTTP/(%d%.%d) (%d%d%d)$")
    if not version then
      return nil, "partial", "not an HTTP status line: " .. head:gsub("%c", "?")
    end
    code = tonumber(code)
    if code >= 200 or code == 101 then
      return code, version
    end
    local rest, n = sock:receiveuntil("\r\n\r\n"), 0
    repeat
      local data, rerr = rest(1024)
      if rerr then
        return nil, read_error(rerr, true), "reading an interim (" .. code .. ") answer: " .. tostring(rerr)
      end
      n = n + #(data or "")
      if n > M.INTERIM_BYTES then
        return nil, "partial", "an interim (" .. code .. ") answer longer than " .. M.INTERIM_BYTES .. " bytes"
      end
    until data == nil
  end
  return nil, "partial", "more than " .. M.INTERIM_MAX .. " interim answers"
end

-- Body sinks: into a string (with a size limit), or into a file (downloads).
local function string_sink(max)
  local parts, n = {}, 0
  local too_large = "the answer is too large: over max_body (" .. max .. " bytes)"
  return {
    max = max, too_large = too_large,
    put = function(s)
      n = n + #s
      if n > max then
        return nil, "too_large", too_large
      end
      parts[#parts + 1] = s
      return true
    end,
    bytes = function()
      return n
    end,
    result = function()
      return table.concat(parts)
    end,
  }
end

local function file_sink(f, max)
  local n = 0
  return {
    max = max, too_large = max and ("the download is larger than " .. max .. " bytes"),
    put = function(s)
      n = n + #s
      if max and n > max then -- a download's cap, whether or not a Content-Length said so
        return nil, "too_large", "the download is larger than " .. max .. " bytes"
      end
      local ok, err = f:write(s)
      if not ok then
        return nil, "other", "cannot write the download: " .. tostring(err)
      end
      return true
    end,
    bytes = function()
      return n
    end,
    result = function()
      return nil
    end,
  }
end

-- Reads exactly n bytes into the sink, in pieces. Returns true or nil, category, message.
local function read_n(sock, n, sink)
  while n > 0 do
    local piece, err = sock:receive(n < CHUNK and n or CHUNK)
    if not piece then
      return nil, read_error(err, true), "reading the body: " .. tostring(err)
    end
    local ok, cat, msg = sink.put(piece)
    if not ok then
      return nil, cat, msg
    end
    n = n - #piece
  end
  return true
end

local function read_chunked(sock, sink)
  while true do
    local line, err = sock:receive("*l")
    if not line then
      return nil, read_error(err, true), "reading a chunk size: " .. tostring(err)
    end
    local hex = line:match("^%s*(%x+)") -- tonumber(nil, 16) raises: a line without hex digits is the peer's
    local size = hex and tonumber(hex, 16)
    if not size then
      return nil, "partial", "bad chunk size line: " .. line:sub(1, 40)
    end
    if size == 0 then
      -- Trailers, up to the empty line: at most MAX_HEAD bytes of them, as of headers.
      local bytes = 0
      repeat
        line, err = sock:receive("*l")
        if not line then
          return nil, read_error(err, true), "reading the trailers: " .. tostring(err)
        end
        bytes = bytes + #line + 2
        if bytes > M.MAX_HEAD then
          return nil, "too_large", "trailers larger than " .. M.MAX_HEAD .. " bytes"
        end
      until line == ""
      return true
    end
    local ok, cat, msg = read_n(sock, size, sink)
    if not ok then
      return nil, cat, msg
    end
    local crlf
    crlf, err = sock:receive(2)
    if crlf ~= "\r\n" then
      return nil, "partial", "chunk not followed by CRLF" .. (err and (": " .. err) or "")
    end
  end
end

local function read_to_close(sock, sink)
  while true do
    local piece, err, partial = sock:receive(CHUNK)
    local data = piece or partial
    if data and #data > 0 then
      local ok, cat, msg = sink.put(data)
      if not ok then
        return nil, cat, msg
      end
    end
    if not piece then
      if err == "closed" then
        return true
      end
      return nil, read_error(err, true), "reading the body: " .. tostring(err)
    end
  end
end

-- Whether the connection can go back to the pool after this response.
local function reusable(version, headers)
  local conn = (headers["connection"] or ""):lower()
  if conn:find("close", 1, true) then
    return false
  end
  if version == "1.0" then
    return conn:find("keep-alive", 1, true) ~= nil
  end
  return true
end

local function read_body(sock, method, status, headers, sink)
  if method == "HEAD" or status == 204 or status == 304 or (status >= 100 and status < 200) then
    return true, true
  end
  local te = headers["transfer-encoding"]
  if te and te:lower():find("chunked", 1, true) then
    local ok, cat, msg = read_chunked(sock, sink)
    return ok, ok, cat, msg
  end
  local len = headers["content-length"]
  if len then
    local n = tonumber(len:match("^%s*(%d+)%s*$"))
    if not n then
      return nil, false, "partial", "bad Content-Length: " .. len
    end
    if sink.max and n > sink.max then -- refused unread: nothing of it is worth the worker's time
      return nil, false, "too_large", sink.too_large
    end
    local ok, cat, msg = read_n(sock, n, sink)
    return ok, ok, cat, msg
  end
  local ok, cat, msg = read_to_close(sock, sink)
  return ok, false, cat, msg
end

-- The socket's reads under one deadline (ms, as ngx.now() * 1000): timeout_ms bounds the whole
-- answer, as libcurl's does, not each read. A cosocket's read timeout starts again with every
-- piece that arrives, so receive(100) from a peer sending a byte every half second took 50 s
-- under a timeout of 3 s (and a slower peer could hold a request for as long as it liked).
-- Here every read is a receiveany, which returns whatever has arrived, under the time left;
-- the patterns the read helpers use (a number of bytes, "*l", receiveuntil) are cut from a
-- buffer as the cosocket would: receive returns nil, err, partial; "*l" drops CRs.
local function under_deadline(sock, deadline)
  -- The unread bytes are buf:sub(pos): a read moves pos, and only fill() copies, the unread
  -- rest with the new piece. Cutting each read off the buffer's front copied the rest every
  -- time: a body of 1-byte chunks took the worker 3.3 s of CPU a megabyte.
  local buf, pos = "", 1
  local function fill()
    local ms = math.floor(deadline - ngx.now() * 1000)
    if ms <= 0 then
      return nil, "timeout"
    end
    sock:settimeout(ms)
    local data, err = sock:receiveany(CHUNK)
    if not data then
      return nil, err
    end
    buf = (pos > #buf and "" or buf:sub(pos)) .. data
    pos = 1
    return true
  end
  local function give_up(err)
    local partial = buf:sub(pos)
    buf, pos = "", 1
    return nil, err, partial
  end
  local r = {}
  function r.receive(_, pattern)
    if pattern == "*l" then
      local scanned = 0 -- bytes after pos known to hold no LF
      while true do
        local i = buf:find("\n", pos + scanned, true)
        if i then
          local line = buf:sub(pos, i - 1):gsub("\r", "")
          pos = i + 1
          return line
        end
        scanned = #buf - pos + 1
        if scanned > M.MAX_HEAD then
          -- a line without end (a status, header, chunk size or trailer line): it held a
          -- gigabyte of the worker's memory until the timeout, each piece copied onto the rest
          return give_up("too_large")
        end
        local ok, err = fill()
        if not ok then
          return give_up(err)
        end
      end
    end
    while #buf - pos + 1 < pattern do
      local ok, err = fill()
      if not ok then
        return give_up(err)
      end
    end
    local out = buf:sub(pos, pos + pattern - 1)
    pos = pos + pattern
    return out
  end
  -- iter(size): at most size bytes before the pattern at each call, then nil once it is read
  function r.receiveuntil(_, pattern)
    local found = false
    return function(size)
      if found then
        return nil
      end
      while true do
        local i = buf:find(pattern, pos, true)
        if i == pos then
          pos, found = pos + #pattern, true
          return nil
        end
        -- bytes that cannot be the pattern's start (it would end beyond the buffer)
        local safe = i and i - pos or #buf - pos + 1 - #pattern + 1
        if safe > 0 then
          local n = math.min(safe, size)
          local out = buf:sub(pos, pos + n - 1)
          pos = pos + n
          return out
        end
        local ok, err = fill()
        if not ok then
          return give_up(err)
        end
      end
    end
  end
  return r
end

-- request(req, opts) -> result. req = {method, url, headers, body, timeout_ms,
-- connect_timeout_ms, output = path, max_output = bytes (output's cap), address = "a.b.c.d" or
-- "[x:x::x]" (connect there rather than to the URL's host, which stays the Host header and the
-- TLS name: an address the caller resolved and checked itself)}; opts = {keepalive_ms, pool_size, verify, server_name,
-- user_agent, max_body, fresh = bool (a connection of its own, not from the pool), stats,
-- status_only = bool (the answer's body is not read and the connection is closed: for a peer
-- that is not trusted, such as a client's callback receiver, whose status is all that is needed)}.
-- The result: {ok, status, headers, body, sent, received, elapsed_ms, bytes, reused,
-- error = connect|tls|timeout|reset|partial|too_large|other, message, output_failed = true when
-- output's file could not be created or written}.
function M.request(req, opts)
  opts = opts or {}
  ngx.update_time() -- the start of the deadline below: the loop's cached time may be behind
  local started = ngx.now()
  local res = { sent = false, received = false }
  local function done(r)
    ngx.update_time()
    r.elapsed_ms = math.floor((ngx.now() - started) * 1000 + 0.5)
    return r
  end
  local bad = request_error(req)
    or (opts.user_agent and not header_clean(opts.user_agent) and "user_agent must be one line")
  if bad then
    return done(fail(res, "other", bad))
  end
  local method = req.method and req.method:upper() or "GET"
  local u, uerr = M.parse_url(req.url)
  if not u then
    return done(fail(res, "other", uerr))
  end
  local body = req.body
  if body ~= nil and type(body) ~= "string" then
    return done(fail(res, "other", "body must be a string"))
  end
  local tls = u.scheme == "https"
  local verify = opts.verify ~= false
  -- Without a resolver in the conf only addresses connect: "localhost" is loopback.
  local addr = req.address or (u.host == "localhost" and "127.0.0.1" or u.host)
  local server_name = opts.server_name or (not is_ip(u.host) and u.host or nil)
  local pool = table.concat({ u.scheme, addr, u.port, tls and tostring(server_name) or "",
    tls and tostring(verify) or "" }, ":")
  if opts.fresh then
    -- Never given back to a pool under this name, so a connect under it is always new.
    pool = pool .. ":fresh"
  end
  local sock = ngx.socket.tcp()
  local timeout = req.timeout_ms or opts.timeout_ms or M.DEFAULTS.timeout_ms
  sock:settimeouts(req.connect_timeout_ms or opts.connect_timeout_ms or M.DEFAULTS.connect_timeout_ms,
    timeout, timeout)
  local ok, err = sock:connect(addr, u.port, { pool = pool, pool_size = opts.pool_size or M.DEFAULTS.pool_size })
  if not ok then
    return done(fail(res, "connect", "connect to " .. u.authority .. " failed: " .. tostring(err)))
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  res.reused = reused
  if opts.stats then
    local key = reused and "reused" or "connected"
    opts.stats[key] = (opts.stats[key] or 0) + 1
  end
  if tls and not reused then
    -- lua-resty-core 0.1.25 asserts (raises) instead of returning an error when a handshake
    -- that yielded fails its checks (host name, chain): both ways are a TLS failure here.
    -- (Passing false for the session would avoid the assertion, but then a host mismatch
    -- comes back as success on a closed connection.)
    local pok, hok, herr = pcall(sock.sslhandshake, sock, nil, server_name, verify)
    if not pok or not hok then
      sock:close()
      local why = pok and tostring(herr) or "certificate refused (not trusted, or not for this host; see error.log)"
      local hint = ""
      if verify and (why:find("issuer", 1, true) or why:find("self", 1, true) or why:find("verify", 1, true)) then
        hint = " (the CA is lua_ssl_trusted_certificate in nginx.conf)"
      end
      return done(fail(res, "tls", "TLS handshake with " .. u.authority .. " failed: " .. why .. hint))
    end
  end
  local lines = { method, " ", u.target, " HTTP/1.1\r\nHost: ", u.authority, "\r\n" }
  local headers = req.headers or {}
  local has = {}
  for k, v in pairs(headers) do
    has[k:lower()] = true
    lines[#lines + 1] = k .. ": " .. tostring(v) .. "\r\n"
  end
  if not has["user-agent"] and opts.user_agent then
    lines[#lines + 1] = "User-Agent: " .. opts.user_agent .. "\r\n"
  end
  if body or method == "POST" or method == "PUT" or method == "PATCH" then
    lines[#lines + 1] = "Content-Length: " .. (body and #body or 0) .. "\r\n"
  end
  lines[#lines + 1] = "\r\n"
  lines[#lines + 1] = body or ""
  local sent
  sent, err = sock:send(lines)
  -- A failed send may still have written part of the request: it counts as sent.
  res.sent = true
  if not sent then
    sock:close()
    return done(fail(res, err == "timeout" and "timeout" or "reset", "sending the request failed: " .. tostring(err)))
  end
  local rsock = under_deadline(sock, started * 1000 + timeout) -- the answer within timeout_ms of the start
  if opts.status_only then
    local status, version, message = read_status_only(rsock, res)
    sock:close()
    if not status then
      return done(fail(res, version, message))
    end
    res.status, res.version, res.headers = status, version, {}
    res.ok, res.body, res.bytes = true, "", 0
    return done(res)
  end
  local line
  local interims = 0
  repeat
    interims = interims + 1
    if interims > M.INTERIM_MAX + 1 then -- as status_only: interim answers without end held it to the timeout
      sock:close()
      return done(fail(res, "partial", "more than " .. M.INTERIM_MAX .. " interim answers"))
    end
    line, err = rsock:receive("*l")
    if not line then
      sock:close()
      if err == "too_large" then
        res.received = true
        return done(fail(res, "too_large", "a status line longer than " .. M.MAX_HEAD .. " bytes"))
      end
      return done(fail(res, read_error(err, false), "no response from " .. u.authority .. ": " .. tostring(err)))
    end
    res.received = true
    local version, code = line:match("^HTTP/(%d%.%d) (%d%d%d)")
    if not version then
      sock:close()
      return done(fail(res, "partial", "not an HTTP status line: " .. line:sub(1, 80)))
    end
    res.status, res.version = tonumber(code), version
    res.headers, err = read_headers(rsock)
    if not res.headers then
      sock:close()
      if err == "too_large" then
        return done(fail(res, "too_large", "response headers larger than " .. M.MAX_HEAD .. " bytes"))
      end
      return done(fail(res, read_error(err, true), "reading the headers: " .. tostring(err)))
    end
  until res.status >= 200 or res.status == 101
  local sink, file
  local ok2xx = res.status >= 200 and res.status < 300
  if req.output and ok2xx then
    file, err = require("kling.output_path").create(req.output) -- new, never through a link
    if not file then
      sock:close()
      res.output_failed = true -- the download's file, not the network (kling.resty.driver: "io")
      return done(fail(res, "other", tostring(err)))
    end
    sink = file_sink(file, req.max_output)
  else
    sink = string_sink(opts.max_body or M.DEFAULTS.max_body)
  end
  local complete, keep, cat, msg = read_body(rsock, method, res.status, res.headers, sink)
  if file then
    file:close()
  end
  res.bytes = sink.bytes()
  res.body = sink.result() or ""
  if not complete then
    sock:close()
    res.output_failed = file ~= nil and cat == "other" or nil -- the file could not be written
    return done(fail(res, cat, msg))
  end
  if keep and reusable(res.version, res.headers) and not opts.fresh then
    sock:setkeepalive(opts.keepalive_ms or M.DEFAULTS.keepalive_ms, opts.pool_size or M.DEFAULTS.pool_size)
  else
    sock:close()
  end
  res.ok = true
  return done(res)
end

return M
