-- Whether a client's callback_url may be called by the gateway (and a media URL it gives in a
-- create fetched by the upstream: kling.gateway.official): an http(s) URL that stays
-- one request line (no control characters, spaces or percent-encoded controls), without
-- user info, to a public address. Loopback, private, link-local, CGNAT, metadata, multicast
-- and reserved IPv4 ranges are refused, and so are IPv6 loopback, ULA, link-local and the
-- IPv4-mapped/compatible/translated/NAT64/6to4 forms of a refused IPv4 address; numeric hosts must be
-- canonical (127.1, 0x7f.1 or 2130706433 are refused, not guessed at). Names that always
-- mean this machine or its network (localhost, *.local, *.internal ...) are refused; other
-- names are checked where they point when the callback is sent (kling.gateway.callback_host:
-- the gateway resolves them itself and connects to the address it checked).
local validate = require "kling.validate"

local M = {}

M.MAX_LENGTH = 2048
M.MEDIA_MAX_LENGTH = 16384 -- a media URL's (a signed one's query is long)

-- IPv4 ranges: {first octets as a 32-bit prefix, prefix length}
local V4_REFUSED = {
  { 0x00000000, 8 }, -- "this network" (0.0.0.0)
  { 0x0A000000, 8 }, -- private
  { 0x64400000, 10 }, -- CGNAT (100.100.100.200 is a cloud metadata address)
  { 0x7F000000, 8 }, -- loopback
  { 0xA9FE0000, 16 }, -- link-local (169.254.169.254: cloud metadata)
  { 0xAC100000, 12 }, -- private
  { 0xC0000000, 24 }, -- IETF protocol assignments
  { 0xC0000200, 24 }, -- documentation
  { 0xC0A80000, 16 }, -- private
  { 0xC6120000, 15 }, -- benchmarking
  { 0xC6336400, 24 }, -- documentation
  { 0xCB007100, 24 }, -- documentation
  { 0xE0000000, 4 }, -- multicast
  { 0xF0000000, 4 }, -- reserved, broadcast
}

local NAMES_REFUSED = { "localhost", "local", "internal", "localdomain", "home.arpa", "intranet", "lan" }

local function v4_number(host)
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then
    return nil
  end
  local n = 0
  for _, part in ipairs { a, b, c, d } do
    if #part > 1 and part:sub(1, 1) == "0" then
      return nil, "a numeric host must be a canonical dotted quad (no leading zeros)"
    end
    local v = tonumber(part)
    if v > 255 then
      return nil, "a numeric host must be a canonical dotted quad"
    end
    n = n * 256 + v
  end
  return n
end

local function v4_private(n)
  for _, r in ipairs(V4_REFUSED) do
    local size = 2 ^ (32 - r[2])
    if n >= r[1] and n < r[1] + size then
      return true
    end
  end
  return false
end

-- "fe80::1" -> eight 16-bit groups, or nil
local function v6_groups(host)
  if not host:match("^[%x:.]+$") then
    return nil
  end
  local tail4
  local v4 = host:match(":(%d+%.%d+%.%d+%.%d+)$")
  if v4 then
    tail4 = v4_number(v4)
    if not tail4 then
      return nil
    end
    host = host:sub(1, #host - #v4) .. string.format("%x:%x", math.floor(tail4 / 65536), tail4 % 65536)
  end
  local head, rest = host:match("^(.-)::(.*)$")
  local function split(s)
    local out = {}
    if s == "" then
      return out
    end
    for g in (s .. ":"):gmatch("([^:]*):") do
      if not g:match("^%x%x?%x?%x?$") then
        return nil
      end
      out[#out + 1] = tonumber(g, 16)
    end
    return out
  end
  local groups
  if head then
    local h, t = split(head), split(rest)
    if not h or not t or #h + #t > 7 then
      return nil
    end
    groups = h
    for _ = 1, 8 - #h - #t do
      groups[#groups + 1] = 0
    end
    for _, g in ipairs(t) do
      groups[#groups + 1] = g
    end
  else
    groups = split(host)
    if not groups or #groups ~= 8 then
      return nil
    end
  end
  return groups
end

local function v6_private(g)
  local zeros5 = g[1] == 0 and g[2] == 0 and g[3] == 0 and g[4] == 0 and g[5] == 0
  if zeros5 and g[6] == 0 and g[7] == 0 and g[8] <= 1 then
    return true -- :: and ::1
  end
  if g[1] == 0x64 and g[2] == 0xff9b and g[3] == 1 then
    return true -- local-use NAT64 64:ff9b:1::/48 (RFC 8215): where its IPv4 sits is the network's choice
  end
  local embedded
  if zeros5 and (g[6] == 0xffff or g[6] == 0) then
    embedded = true -- IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d
  elseif g[1] == 0x64 and g[2] == 0xff9b then
    embedded = true -- NAT64 64:ff9b::a.b.c.d
  elseif g[1] == 0 and g[2] == 0 and g[3] == 0 and g[4] == 0 and g[5] == 0xffff and g[6] == 0 then
    embedded = true -- IPv4-translated (SIIT) ::ffff:0:a.b.c.d
  end
  if embedded then
    return v4_private(g[7] * 65536 + g[8])
  end
  if g[1] == 0x2002 then
    return v4_private(g[2] * 65536 + g[3]) -- 6to4 2002:AABB:CCDD::/48 routes to a.b.c.d
  end
  return g[1] >= 0xfc00 and g[1] <= 0xfdff -- unique local (fd00:ec2::254: cloud metadata)
    or (g[1] >= 0xfe80 and g[1] <= 0xfebf) -- link-local
    or (g[1] >= 0xfec0 and g[1] <= 0xfeff) -- site-local (deprecated, still private)
    or g[1] >= 0xff00 -- multicast
    or (g[1] == 0x2001 and g[2] == 0x0db8) -- documentation
end

-- host_private(host) -> true (refused), false (public) | nil, message (not a host we take)
function M.host_private(host)
  host = host:lower()
  if host:sub(1, 1) == "[" then
    local inner = host:match("^%[([^%]]+)%]$")
    local g = inner and v6_groups(inner)
    if not g then
      return nil, "an IPv6 host must be a valid address in brackets"
    end
    return v6_private(g)
  end
  if host:match("^[%dx.]+$") or host:match("^0x") then
    local n, err = v4_number(host)
    if not n then
      return nil, err or "a numeric host must be a canonical dotted quad"
    end
    return v4_private(n)
  end
  if not host:match("^[%w.-]+$") or host:match("%.%.") or host:sub(1, 1) == "." or host:sub(1, 1) == "-" then
    return nil, "the host must be a DNS name or an IP address"
  end
  local name = host:gsub("%.$", "")
  if not name:find(".", 1, true) then
    return true -- a single label resolves inside the gateway's own network
  end
  for _, suffix in ipairs(NAMES_REFUSED) do
    if name == suffix or name:sub(-#suffix - 1) == "." .. suffix then
      return true
    end
  end
  return false
end

-- name_of(url) -> the host of an http(s) URL when it is a DNS name (not a numeric or
-- bracketed IPv6 host), in lower case without a trailing dot; else nil.
function M.name_of(url)
  local authority = type(url) == "string" and url:match("^[Hh][Tt][Tt][Pp][Ss]?://([^/?#]*)")
  local host = authority and not authority:find("@", 1, true) and authority:match("^([^:%[%]]+)")
  if not host or host:match("^[%dx.]+$") or host:match("^0x") then
    return nil
  end
  return (host:lower():gsub("%.$", ""))
end

-- check(url, allow_private [, max_length, switch]) -> true | nil, rule (a message without the
-- field name). max_length: MAX_LENGTH unless given; switch: the config flag that allows a
-- private address, named in the refusal (allow_private_callbacks unless given).
function M.check(url, allow_private, max_length, switch)
  if type(url) ~= "string" then
    return nil, "must be an http(s) URL string"
  end
  max_length = max_length or M.MAX_LENGTH
  if #url > max_length then
    return nil, "must be at most " .. max_length .. " characters"
  end
  local problem = validate.callback_url_problem(url)
  if problem then
    return nil, problem
  end
  local authority = url:match("^[Hh][Tt][Tt][Pp][Ss]?://([^/?#]*)")
  local host = authority:match("^(%b[])") or authority:match("^([^:]*)")
  local private, err = M.host_private(host)
  if private == nil then
    return nil, err
  end
  if private and not allow_private then
    return nil, "must be a public address (" .. host .. " is loopback, private, link-local or reserved;"
      .. " " .. (switch or "allow_private_callbacks") .. " in the gateway config allows it)"
  end
  return true
end

return M
