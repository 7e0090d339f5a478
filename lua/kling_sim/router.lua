-- One request's way through the simulator: admin paths, media, or a dialect's route; faults
-- before and after the handler; authentication where the route needs it.
--
-- A dialect module (kling_sim/dialects/<name>.lua) provides:
--   name, routes = { {method, pattern, name = string | fn(caps, req), handler = fn(req, caps, account),
--                     auth = false to skip authentication} },
--   authenticate(req) -> account | nil, response
--   error_response(status, code, message) -> response,  sample_body() -> a success-shaped body,
--   not_found(req) -> response,  method_not_allowed(req) -> response,
--   task_status(task, now_ms) -> status name, billed thousandths of a unit (or nil).
-- At "/" only the official API's routes are served; every dialect (the official one too) is
-- served under "/<name>/", so gateways whose paths collide each get their own base URL.
-- luacheck: ignore 122 (ngx.ctx, ngx.status and ngx.header are meant to be written)
local json = require "kling.json"
local admin = require "kling_sim.admin"
local faults = require "kling_sim.faults"
local media = require "kling_sim.media"
local registry = require "kling_sim.registry"
local reply = require "kling_sim.reply"
local stats = require "kling_sim.stats"
local store = require "kling_sim.store"

local M = {}

local Req = {}
Req.__index = Req

local function request_id()
  local r = math.random
  return string.format("%08x-%04x-%04x-%04x-%04x%08x", r(0, 0xffffffff), r(0, 0xffff), 0x4000 + r(0, 0xfff),
    0x8000 + r(0, 0x3fff), r(0, 0xffff), r(0, 0xffffffff))
end

-- scheme://host:port as the client addressed us, so result URLs work the same way back.
local function base_url()
  local host = ngx.var.http_host
  if not host or not (host:match("^[%w%.%-]+:?%d*$") or host:match("^%[[%x:%.]+%]:?%d*$")) then
    host = ngx.var.server_addr .. ":" .. ngx.var.server_port
  end
  return ngx.var.scheme .. "://" .. host
end

function Req.header(_, name)
  return ngx.req.get_headers(100)[name]
end

function Req.args(_)
  return ngx.req.get_uri_args(100)
end

-- The body as text (memory, or the temp file nginx spilled a large one into).
function Req.body(_)
  ngx.req.read_body()
  local data = ngx.req.get_body_data()
  if data then
    return data
  end
  local path = ngx.req.get_body_file()
  if not path then
    return ""
  end
  local f = io.open(path, "rb")
  if not f then
    return ""
  end
  data = f:read("*a")
  f:close()
  return data
end

-- The body as a JSON value with nulls dropped from the top level, or nil.
function Req:json()
  local v = json.decode(self:body())
  if type(v) == "table" then
    for k, x in pairs(v) do
      if x == json.null then
        v[k] = nil
      end
    end
  end
  return v
end

local function find_route(d, method, path)
  local known = false
  for _, r in ipairs(d.routes) do
    local caps = { path:match(r.pattern) }
    if caps[1] ~= nil then
      if r.method == method then
        return r, caps
      end
      known = true
    end
  end
  return nil, known
end

-- -> dialect, route, caps, path (dialect-relative) | dialect, nil, known_path, path
local function match(method, uri)
  local name, rest = uri:match("^/([%w_%-]+)(/.*)$")
  local d = name and registry.by_name[name]
  if d then
    local r, caps = find_route(d, method, rest)
    return d, r, caps, rest
  end
  -- "/" is the official API alone: a gateway path that happens to match there (compat's
  -- GET /v1/videos/{id}) must not answer an official request in the gateway's dialect.
  local root = registry.root()
  local r, caps_or_known = find_route(root, method, uri)
  return root, r, caps_or_known, uri
end

local function media_route(req, uri)
  local vid, wm = uri:match("^/media/videos/(%d+)(%-?w?m?)%.mp4$")
  if vid and (wm == "" or wm == "-wm") and store.by_video(vid) then
    return media.response(media.file("sample.mp4"), req.method, req:header("range"))
  end
  local ext = uri:match("^/media/sample%.(%w+)$")
  local f = ext and media.file("sample." .. ext)
  if f then
    return media.response(f, req.method, req:header("range"))
  end
  return reply.json(404, { code = 404, message = "no such file" })
end

local function dispatch(req, d, route, caps)
  if route.auth ~= false then
    local account, res = d.authenticate(req)
    if not account then
      stats.incr("auth_failures")
      return res
    end
    return route.handler(req, caps, account)
  end
  return route.handler(req, caps)
end

function M.handle()
  local ctx = ngx.ctx
  local method, uri = ngx.req.get_method(), ngx.var.uri
  if uri == "/_sim" or uri:sub(1, 6) == "/_sim/" then
    ctx.admin = true
    return reply.send(admin.handle(method, uri))
  end
  ctx.request_id = request_id()
  local req = setmetatable({ method = method, uri = uri, base_url = base_url(), request_id = ctx.request_id }, Req)

  local d, route, caps, path, run
  if uri:sub(1, 7) == "/media/" then
    d = registry.root()
    ctx.route = method .. " /media/{file}"
    if method == "GET" or method == "HEAD" then
      run = function() return media_route(req, uri) end
    else
      run = function() return reply.json(405, { code = 405, message = "method not allowed" }) end
    end
  else
    d, route, caps, path = match(method, uri)
    req.path = path
    ctx.dialect = d.name
    if route then
      ctx.route = type(route.name) == "function" and route.name(caps, req) or route.name
      run = function() return dispatch(req, d, route, caps) end
    elseif caps then -- the path exists, the method does not
      run = function() return d.method_not_allowed(req) end
    else
      run = function() return d.not_found(req) end
    end
  end

  ctx.route = ctx.route or "unmatched"
  stats.arrive(method, ctx.route)
  local rule = faults.pick(method, uri, "before")
  if rule then
    ctx.fault = rule.kind
    stats.fault(rule.kind)
    local res = faults.respond(rule, d, nil)
    if res then
      return reply.send(res)
    end
  end
  local res = run()
  rule = faults.pick(method, uri, "after")
  if rule then
    ctx.fault = rule.kind
    stats.fault(rule.kind)
    res = faults.respond(rule, d, res) or res
  end
  return reply.send(res)
end

return M
