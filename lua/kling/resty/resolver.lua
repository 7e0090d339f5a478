--- Where a host name points, asked by the Lua code itself over cosockets (UDP): nginx's own
-- resolver connects to a name without telling Lua the address, so an address cannot be
-- checked before the connection. The answer is read by kling.dns, cached per worker for its
-- TTL (at most max_ttl), and a name is asked of each name server in turn.
-- @module kling.resty.resolver
local core = require "kling.core"
local dns = require "kling.dns"

local M = {}

--- The IPv4 name servers of a resolv.conf text ("nameserver 192.0.2.53" lines).
---@param text string|nil
---@return string[] servers
function M.nameservers(text)
  local out = {}
  for line in (text or ""):gmatch("[^\n]+") do
    local ns = line:match("^%s*nameserver%s+([%d.]+)%s*$")
    if ns then
      out[#out + 1] = ns
    end
  end
  return out
end

local Resolver = {}
Resolver.__index = Resolver

--- A resolver for one worker.
-- opts: servers ({"a.b.c.d[:port]", ...}: required, at least one), timeout_ms (2000 per
-- server), max_ttl (300 s), cache_size (1024 names).
---@param opts {servers: string[], timeout_ms: integer, max_ttl: number, cache_size: integer}
---@return table|nil resolver
---@return string|nil err
function M.new(opts)
  local servers = {}
  for _, s in ipairs(opts.servers or {}) do
    local host, port = dns.server_address(s)
    if not host then
      return nil, "not a name server address (a.b.c.d or a.b.c.d:port): " .. tostring(s)
    end
    servers[#servers + 1] = { host = host, port = port }
  end
  if #servers == 0 then
    return nil, "no name server (none in /etc/resolv.conf and none configured)"
  end
  local cache, cerr = require("resty.lrucache").new(opts.cache_size or 1024)
  if not cache then
    return nil, "cannot make the resolver's cache: " .. tostring(cerr)
  end
  return setmetatable({ servers = servers, timeout_ms = opts.timeout_ms or 2000, max_ttl = opts.max_ttl or 300,
    cache = cache }, Resolver)
end

local function ask(server, name, timeout_ms, qtype)
  local id = tonumber(core.random_hex(2), 16) -- unguessable, with the kernel's random source port
  local query, qerr = dns.query(id, name, qtype)
  if not query then
    return nil, qerr
  end
  local sock = ngx.socket.udp()
  sock:settimeout(timeout_ms)
  local ok, err = sock:setpeername(server.host, server.port)
  if not ok then
    return nil, tostring(err)
  end
  ok, err = sock:send(query)
  if not ok then
    sock:close()
    return nil, tostring(err)
  end
  -- Datagrams that are not the reply (another id: late, or forged) are skipped until the
  -- time runs out.
  local limit = ngx.now() + timeout_ms / 1000
  while true do
    local msg, rerr = sock:receive()
    if not msg then
      sock:close()
      return nil, tostring(rerr)
    end
    local r, why = dns.answer(msg, id, name, qtype)
    if r or not why:find("another query", 1, true) or ngx.now() >= limit then
      sock:close()
      return r, why
    end
  end
end

--- The addresses of a name: its IPv4 ones ("a.b.c.d"), or when it has none its IPv6 ones
-- in brackets ("[2001:db8:0:0:0:0:0:1]", as a URL and a cosocket's connect write them); or
-- nil and why not ("no such name", "timeout", ...).
---@param name string
---@return string[]|nil addresses
---@return string|nil err
function Resolver:addresses(name)
  name = name:lower()
  local hit = self.cache:get(name)
  if hit then
    return hit
  end
  local last
  for _, server in ipairs(self.servers) do
    local r, err = ask(server, name, self.timeout_ms, dns.TYPE_A)
    if err == dns.NO_IPV4 then -- the name exists with no IPv4 address: an IPv6-only host
      r, err = ask(server, name, self.timeout_ms, dns.TYPE_AAAA)
    end
    if r then
      self.cache:set(name, r.addresses, math.max(1, math.min(r.ttl, self.max_ttl)))
      return r.addresses
    end
    last = server.host .. ":" .. server.port .. ": " .. tostring(err)
    if err == "no such name" then
      break -- an answer, not a failure: the next server would say the same
    end
  end
  return nil, last
end

return M
