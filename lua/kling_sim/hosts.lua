-- Which URLs a gateway's servers refuse to fetch from or call back. The seeds say "HTTPS only,
-- no internal IPs" (EvoLink's callback_url) and the gateways refuse private media: the
-- simulator keeps its own reading of that rule here, so that it follows the documents and
-- not the client library under test.
local M = {}

-- The host of an http(s) URL, lowercased, without credentials, brackets or port; nil when
-- the text is not an http(s) URL.
function M.of(url)
  local authority = type(url) == "string" and url:match("^[Hh][Tt][Tt][Pp][Ss]?://([^/?#]+)")
  if not authority then
    return nil
  end
  authority = authority:gsub("^.*@", "")
  local v6 = authority:match("^%[([^%]]+)%]")
  if v6 then
    return v6:lower()
  end
  return (authority:gsub(":%d*$", ""):lower())
end

-- Names that only resolve inside a network (and bare single-label names).
local INTERNAL_SUFFIXES = { "localhost", "local", "internal", "lan", "intranet", "home.arpa" }

local function internal_name(host)
  if host == "localhost" or not host:find("[%.:]") then
    return true
  end
  for _, suffix in ipairs(INTERNAL_SUFFIXES) do
    if host:sub(-#suffix - 1) == "." .. suffix then
      return true
    end
  end
  return false
end

-- RFC 1918, loopback, "this network", link-local, carrier-grade NAT, multicast and above.
local function internal_ipv4(host)
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then
    return nil
  end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then
    return nil
  end
  return a == 0 or a == 10 or a == 127 or a >= 224 or (a == 169 and b == 254)
    or (a == 172 and b >= 16 and b <= 31) or (a == 192 and b == 168) or (a == 100 and b >= 64 and b <= 127)
end

-- Unspecified, loopback, unique-local (fc00::/7), link-local (fe80::/10), IPv4-mapped.
local function internal_ipv6(host)
  local trimmed = host:gsub("^0*", "")
  return host == "::" or host == "::1" or trimmed:match("^f[cd]%x%x:") ~= nil
    or host:match("^fe[89ab]%x:") ~= nil or host:match("^::ffff:") ~= nil
end

-- True when the URL's host is missing or internal: a name, an IPv4 or an IPv6 address.
function M.internal(url)
  local host = M.of(url)
  if not host or host == "" then
    return true
  end
  host = host:gsub("%.$", "")
  if internal_name(host) then
    return true
  end
  local v4 = internal_ipv4(host)
  if v4 ~= nil then
    return v4
  end
  return host:find(":", 1, true) ~= nil and internal_ipv6(host)
end

return M
