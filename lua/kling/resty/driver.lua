--- The OpenResty driver: the transport over nginx cosockets.
-- The OpenResty driver: what kling.transport needs (request, now_ms, wall_s, sleep_ms) over
-- nginx cosockets, so the same client, providers, retry policy and billing run inside a
-- worker without ever blocking it. libcurl is never used here.
-- @module kling.resty.driver
local core = require "kling.core"
local output_path = require "kling.output_path"
local validate = require "kling.validate"
local http = require "kling.resty.http"
local multi = require "kling.resty.multi"

local Driver = {}
Driver.__index = Driver
Driver.__name = "kling.resty.driver"

local M = {}

-- What driver{} takes; another key is refused by name (a misspelt timeout_ms was ignored).
M.OPTIONS = { timeout_ms = true, connect_timeout_ms = true, keepalive_ms = true, pool_size = true, verify = true,
  server_name = true, user_agent = true, max_body = true, reuse_posts = true, capture = true }

-- Phases in which nginx gives Lua cosockets and ngx.sleep.
M.PHASES = { rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true }

local function check_phase(what)
  if ngx == nil or type(ngx.get_phase) ~= "function" then
    error("kling.resty: " .. what .. " needs nginx's Lua module (ngx is not there): use the plain-Lua driver", 3)
  end
  local phase = ngx.get_phase()
  if not M.PHASES[phase] then
    error("kling.resty: " .. what .. " cannot run in the " .. phase .. " phase: nginx has no cosockets there. "
      .. "Call the client from rewrite, access, content or a timer (ngx.timer.at(0, fn) from elsewhere)", 3)
  end
end

local function positive(name, v, default)
  if v == nil then
    return default
  end
  -- What nginx's cosockets take (their timeouts and pool sizes are C ints): 0.4 became 0, an
  -- immediate timeout, and math.huge or 1e12 had every request raise "bad timeout value".
  if type(v) ~= "number" or v ~= v or v < 1 or v > 2147483647 then
    error("kling.resty.driver: " .. name .. " must be a positive number from 1 to 2147483647, got " .. tostring(v), 3)
  end
  return math.floor(v)
end

--- Makes the driver (see `kling.resty.driver`).
-- driver{timeout_ms, connect_timeout_ms, keepalive_ms, pool_size, verify, server_name,
-- user_agent, max_body, reuse_posts, capture = {location, origin}} -> driver. Times in ms.
-- TLS is verified (verify = false turns that off) against lua_ssl_trusted_certificate of
-- the nginx conf: a ca_file option cannot work here and is refused. POSTs go on a
-- connection of their own unless reuse_posts:
-- a kept-alive connection the server has just closed would lose the request after it was
-- written, and a create whose fate is unknown must be looked up, never resent.
---@param opts? table
---@return table driver
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("kling.resty.driver: options table expected", 2)
  end
  if opts.ca_file ~= nil then
    error("kling.resty.driver: ca_file cannot be set per driver: cosockets verify against "
      .. "lua_ssl_trusted_certificate in nginx.conf", 2)
  end
  validate.options("resty.driver", opts, M.OPTIONS)
  -- Read by truth, verify = "no" verified and reuse_posts = "yes" did not reuse; a server_name
  -- or user_agent that cannot be sent failed every request instead of this call.
  for _, k in ipairs { "verify", "reuse_posts" } do
    if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
      error("kling.resty.driver: " .. k .. " must be a boolean (true or false), got " .. validate.got(opts[k]), 2)
    end
  end
  if opts.server_name ~= nil and not (type(opts.server_name) == "string" and opts.server_name:match("^[%w._-]+$")) then
    error("kling.resty.driver: server_name must be a host name (letters, digits, '.', '_' and '-'), got "
      .. validate.got(opts.server_name), 2)
  end
  local ua = validate.call_option_problem("user_agent", opts.user_agent)
  if ua then
    error("kling.resty.driver: user_agent " .. ua, 2)
  end
  local o = {
    timeout_ms = positive("timeout_ms", opts.timeout_ms, http.DEFAULTS.timeout_ms),
    connect_timeout_ms = positive("connect_timeout_ms", opts.connect_timeout_ms, http.DEFAULTS.connect_timeout_ms),
    keepalive_ms = positive("keepalive_ms", opts.keepalive_ms, http.DEFAULTS.keepalive_ms),
    pool_size = positive("pool_size", opts.pool_size, http.DEFAULTS.pool_size),
    max_body = positive("max_body", opts.max_body, http.DEFAULTS.max_body),
    verify = opts.verify ~= false,
    server_name = opts.server_name,
    user_agent = opts.user_agent or ("lua-kling/" .. core.version .. " ngx_lua/" .. tostring(ngx and ngx.config
      and ngx.config.ngx_lua_version)),
  }
  -- Counters of this driver's connections (per worker): connected, reused, captured.
  o.stats = { connected = 0, reused = 0, captured = 0 }
  local capture = opts.capture
  if capture ~= nil and (type(capture) ~= "table" or type(capture.location) ~= "string"
    or type(capture.origin) ~= "string") then
    error("kling.resty.driver: capture must be {location = \"/_kling_upstream\", origin = \"http(s)://host[:port]\"}",
      2)
  end
  return setmetatable({ opts = o, reuse_posts = opts.reuse_posts == true, stats = o.stats,
    capture = capture and { location = capture.location, origin = capture.origin:lower():gsub("/+$", "") } },
    Driver)
end

-- Through nginx's own upstream machinery: a request to the configured origin, made from a
-- request handler, goes to an internal proxy_pass location by subrequest (the location maps
-- these two headers and drops the client's; it never resends: proxy_next_upstream off).
-- The location's error pages say what nginx saw: 598 no answer (connect failed or the
-- connection broke), 599 a timeout; both count as sent, so a create is looked up, not resent.
local CAPTURE_PHASES = { content = true, access = true, rewrite = true }
local CAPTURE_HEADERS = { authorization = "X-Kling-Upstream-Authorization",
  ["content-type"] = "X-Kling-Upstream-Content-Type" }
local METHODS = { GET = ngx and ngx.HTTP_GET, POST = ngx and ngx.HTTP_POST, DELETE = ngx and ngx.HTTP_DELETE }

local function capturable(self, req)
  local c = self.capture
  if not c or not CAPTURE_PHASES[ngx.get_phase()] or not METHODS[(req.method or "GET"):upper()] then
    return nil
  end
  local origin, target = req.url:match("^(https?://[^/?#]+)(.*)$")
  if not origin or origin:lower() ~= c.origin then
    return nil
  end
  for k in pairs(req.headers or {}) do
    if not CAPTURE_HEADERS[k:lower()] and k:lower() ~= "accept" and k:lower() ~= "user-agent" then
      return nil
    end
  end
  return target ~= "" and target or "/"
end

local function capture(self, req, target)
  local started = ngx.now()
  for k, v in pairs(req.headers or {}) do
    local as = CAPTURE_HEADERS[k:lower()]
    if as then
      ngx.req.set_header(as, v)
    end
  end
  local res = ngx.location.capture(self.capture.location .. target, { method = METHODS[(req.method or "GET"):upper()],
    body = req.body or "" })
  for _, as in pairs(CAPTURE_HEADERS) do
    ngx.req.clear_header(as)
  end
  self.stats.captured = self.stats.captured + 1
  ngx.update_time()
  local out = { sent = true, received = true, elapsed_ms = math.floor((ngx.now() - started) * 1000 + 0.5) }
  if res.status == 598 or res.status == 599 then
    out.ok, out.received = false, false
    out.error = res.status == 599 and "timeout" or "reset"
    out.message = "the upstream " .. (res.status == 599 and "timed out" or "gave no answer") .. " (proxy_pass)"
    return out
  end
  if res.truncated then
    out.ok, out.error, out.message = false, "partial", "the upstream's answer was cut short (proxy_pass)"
    return out
  end
  if #(res.body or "") > self.opts.max_body then -- nginx read it; it is not decoded here either
    out.ok, out.error = false, "too_large"
    out.message = "the answer is too large: over max_body (" .. self.opts.max_body .. " bytes)"
    return out
  end
  local headers = {}
  for k, v in pairs(res.header or {}) do
    headers[k:lower()] = type(v) == "table" and table.concat(v, ", ") or v
  end
  out.ok, out.status, out.headers, out.body, out.bytes = true, res.status, headers, res.body or "", #(res.body or "")
  return out
end

-- ---- redirects ----
-- Followed as the libcurl driver follows them (src/http.c: CURLOPT_FOLLOWLOCATION with
-- CURLOPT_MAXREDIRS 10, to http and https URLs only): a request with follow = true, and every
-- download. A 303 is asked again as a GET (HEAD stays HEAD), and so is a POST answered 301 or
-- 302, without its body; a 307 or 308 is the same request again. The Authorization and Cookie
-- headers go only to the origin (scheme, host, port) they were given for. timeout_ms bounds the
-- whole chain, as libcurl's does. (libcurl keeps the method of a PUT, PATCH or DELETE answered
-- 301 to 303 and drops its body; here a 303 makes it a GET, and a 301 or 302 keeps it whole, as
-- RFC 9110 says: the library itself follows GETs only.)
M.MAX_REDIRECTS = 10
local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }
local CREDENTIALS = { authorization = true, cookie = true }
local BODY_HEADERS = { ["content-type"] = true, ["content-length"] = true, ["transfer-encoding"] = true }

-- A path without its "." and ".." segments (RFC 3986 5.2.4).
local function remove_dots(path)
  local segs, out = {}, {}
  for seg in (path:sub(2) .. "/"):gmatch("([^/]*)/") do
    segs[#segs + 1] = seg
  end
  for i, seg in ipairs(segs) do
    if seg == "." or seg == ".." then
      if seg == ".." and #out > 0 then
        out[#out] = nil
      end
      if i == #segs then
        out[#out + 1] = ""
      end
    else
      out[#out + 1] = seg
    end
  end
  return "/" .. table.concat(out, "/")
end

--- The URL a Location header names, read against the URL it answered (RFC 3986 5.2).
-- resolve(base, location) -> URL: absolute, //host/..., /path, ?query or a relative path; the
-- fragment dropped (it is never sent).
---@param base string the http(s) URL that was asked
---@param location string
---@return string url
function M.resolve(base, location)
  local loc = location:gsub("#.*$", "")
  if loc:match("^%a[%w+.-]*:") then
    return loc
  end
  local scheme, authority, path, query = base:match("^(%a[%w+.-]*:)//([^/?#]*)([^?#]*)(%??[^#]*)")
  if loc:sub(1, 2) == "//" then
    return scheme .. loc
  end
  if path == "" then
    path = "/"
  end
  if loc == "" then
    return scheme .. "//" .. authority .. path .. query
  elseif loc:sub(1, 1) == "?" then
    return scheme .. "//" .. authority .. path .. loc
  end
  local target = loc:sub(1, 1) == "/" and loc or ((path:match("^(.*/)") or "/") .. loc)
  local p, q = target:match("^([^?]*)(.*)$")
  return scheme .. "//" .. authority .. remove_dots(p) .. q
end

local function origin(url)
  local u = http.parse_url(url)
  return u and (u.scheme .. "://" .. u.host:lower() .. ":" .. u.port)
end

--- A request sent, and sent again where its answers redirect it (at most MAX_REDIRECTS times).
-- follow(req, send, timeout_ms) -> the last answer (the result shape of send), each request
-- made by send(hop); `sent` and `received` say whether any of them was sent or answered (a
-- create redirected once was sent, whatever the next hop's fate). More redirects than the
-- limit, or one to a URL that is not http(s), is error "other" (libcurl's too), with the last
-- answer's status. timeout_ms (default kling.resty.http's) bounds them all.
---@param req table a request (kling.resty.http's), not changed
---@param send fun(hop: table): table
---@param timeout_ms? integer
---@return table result
function M.follow(req, send, timeout_ms)
  local total = req.timeout_ms or timeout_ms or http.DEFAULTS.timeout_ms
  local started = core.now_ms()
  local hop = {}
  for k, v in pairs(req) do
    hop[k] = v
  end
  hop.follow = nil
  local sent, received, res = false, false, nil
  for n = 0, M.MAX_REDIRECTS + 1 do
    res = send(hop)
    sent, received = sent or res.sent == true, received or res.received == true
    local to = res.ok and REDIRECT[res.status] and res.headers and res.headers["location"]
    if not to then
      break
    end
    local failure
    local url = M.resolve(hop.url, to)
    if n == M.MAX_REDIRECTS then
      failure = "more than " .. M.MAX_REDIRECTS .. " redirects"
    elseif url:find("[%c ]") or not http.parse_url(url) then
      failure = "a redirect to " .. validate.brief(url, 200) .. ": only http and https URLs are followed"
    elseif core.now_ms() - started >= total then
      res.ok, res.error, res.message = false, "timeout", "the redirects took longer than " .. total .. " ms"
      break
    end
    if failure then
      res.ok, res.error, res.message = false, "other", failure
      break
    end
    local nxt = {}
    for k, v in pairs(hop) do
      nxt[k] = v
    end
    nxt.url, nxt.timeout_ms = url, math.max(1, total - (core.now_ms() - started))
    local method = (hop.method or "GET"):upper()
    local as_get = (res.status == 303 and method ~= "GET" and method ~= "HEAD")
      or ((res.status == 301 or res.status == 302) and method == "POST")
    if as_get then
      nxt.method, nxt.body = "GET", nil
    end
    local other_origin = origin(url) ~= origin(hop.url)
    local headers = {}
    for k, v in pairs(hop.headers or {}) do
      local name = k:lower()
      if not (other_origin and CREDENTIALS[name]) and not (as_get and BODY_HEADERS[name]) then
        headers[k] = v
      end
    end
    nxt.headers = headers
    hop = nxt
  end
  res.sent, res.received = sent, received
  res.elapsed_ms = core.now_ms() - started
  return res
end

local function for_method(self, method)
  local m = (method or "GET"):upper()
  if not self.reuse_posts and (m == "POST" or m == "PATCH") then
    if not self.fresh_opts then
      local f = {}
      for k, v in pairs(self.opts) do
        f[k] = v
      end
      f.fresh = true
      self.fresh_opts = f
    end
    return self.fresh_opts
  end
  return self.opts
end

-- request(req) -> result (docs/internals.md: ok, status, headers, body, sent, received,
-- elapsed_ms, error, message). Raises outside the phases that have cosockets.
function Driver:request(req)
  check_phase("an HTTP request")
  if type(req) ~= "table" then
    error("kling.resty.driver:request: request table expected", 2)
  end
  -- a field the libcurl driver refuses (a misspelt timeout_ms ran with the driver's timeout):
  -- refused by name here too, by its one list (src/http.c)
  core.http_check_request(req)
  if req.follow then
    return M.follow(req, function(hop)
      return self:_send(hop)
    end, for_method(self, req.method).timeout_ms)
  end
  return self:_send(req)
end

-- One request, through nginx's upstream (capture) when it goes there, else over a cosocket.
function Driver:_send(req)
  local target = self.capture and not http.request_error(req) and capturable(self, req)
  if target then
    return capture(self, req, target)
  end
  return http.request(req, for_method(self, req.method))
end

function Driver.now_ms()
  return core.now_ms()
end

function Driver.wall_s()
  return core.wall_s()
end

-- The asynchronous seam the engine runs on (start, cancel, wait, pending): each request in a
-- light thread, waits on a semaphore (kling.resty.multi).
multi.install(Driver, check_phase)

-- start checks the request's fields before its light thread runs, as the libcurl driver's
-- start does: a raise inside the thread would be taken for a request sent and lost.
local start = Driver.start
function Driver:start(req, done, arg)
  if type(req) ~= "table" then
    error("kling.resty.driver:start: request table expected", 2)
  end
  core.http_check_request(req)
  return start(self, req, done, arg)
end

-- It runs inside nginx's event loop: what would block it (a file of the engine's learnt
-- durations, kling.engine.durations_file) is left out by the engine.
Driver.event_loop = true

-- Waits by yielding to nginx (ngx.sleep): other requests of the worker go on meanwhile.
function Driver.sleep_ms(_, ms)
  check_phase("a wait")
  if ms > 0 then
    ngx.sleep(ms / 1000)
  end
end

-- Streams url to path through a temporary name, checks the size against Content-Length,
-- then renames (opts.replace false: only while nothing is at path; opts.max_bytes: the transfer
-- stops there). Returns path, bytes or nil, message [, "io" when the path is refused or its file
-- cannot be created or written, "exists" when a file appeared there meanwhile, "too_large" past
-- max_bytes, "not_found" on HTTP 404 or 410: kling.driver.curl's kinds]. The
-- temporary file is created exclusively, never through a link (kling.resty.http). (The file
-- writes are ordinary disk writes: keep downloads out of latency-sensitive workers, or hand
-- out the URL instead.)
function Driver:download(url, path, opts)
  check_phase("a download")
  local refused = output_path.refusal(path) -- before anything is sent (kling.output_path)
  if refused then
    return nil, "path: " .. refused, "io"
  end
  local tmp = output_path.part(path)
  local o = {}
  for k, v in pairs(self.opts) do
    o[k] = v
  end
  local function failed(msg, kind)
    os.remove(tmp)
    return nil, msg, kind
  end
  -- Redirects are followed (result URLs may point at a CDN), as the libcurl driver's download
  -- follows them (M.follow)
  local res = M.follow({ method = "GET", url = url, output = tmp, max_output = opts and opts.max_bytes,
    timeout_ms = opts and opts.timeout_ms or 600000 }, function(hop)
    return http.request(hop, o)
  end)
  if not res.ok then
    return failed("download of " .. url .. " failed: " .. tostring(res.message),
      res.error == "too_large" and "too_large" or res.output_failed and "io" or nil)
  end
  if res.status ~= 200 then
    return failed("download of " .. url .. " failed: HTTP " .. tostring(res.status),
      (res.status == 404 or res.status == 410) and "not_found" or nil)
  end
  local expected = not res.headers["content-encoding"] and tonumber(res.headers["content-length"])
  if expected and expected ~= res.bytes then
    return failed(string.format("download of %s is %d bytes, expected %d", url, res.bytes, expected))
  end
  local ok, rerr, rkind = output_path.place(tmp, path, not (opts and opts.replace == false))
  if not ok then
    os.remove(tmp)
    return nil, rerr, rkind == "exists" and "exists" or nil
  end
  return path, res.bytes
end

return M
