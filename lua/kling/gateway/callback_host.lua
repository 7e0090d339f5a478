-- Where the gateway connects to deliver a task's end to a client's callback_url. A numeric
-- host was checked at the create (kling.gateway.public_url); a name is resolved here, by the
-- gateway itself, and every address it has is checked like a numeric host: a name pointing
-- at loopback, a private network or a metadata address is refused, and the connection goes
-- to the address that was checked, so re-pointing the name afterwards (DNS rebinding) cannot
-- move it. A name's IPv4 addresses are asked first, its IPv6 ones when it has none.
local public_url = require "kling.gateway.public_url"
local resolver = require "kling.resty.resolver"

local M = {}

-- The worker's resolver: the config's name servers, else /etc/resolv.conf's.
local function resolver_of(G)
  if G.resolver == nil then
    local servers = G.cfg.resolver
    if not servers then
      local f = io.open("/etc/resolv.conf")
      servers = resolver.nameservers(f and f:read("*a"))
      if f then
        f:close()
      end
    end
    local r, err = resolver.new { servers = servers }
    if not r then
      return nil, err
    end
    G.resolver = r
  end
  return G.resolver
end

--- The address to connect to for url: false when its host is numeric (connect as written),
-- else the first address of the name; or nil, why not, and whether that is final (the name
-- points somewhere refused, or does not exist) rather than worth another attempt later.
---@param G table the gateway (its cfg: allow_private_callbacks, resolver)
---@param url string a callback_url that passed public_url.check
---@return string|false|nil address
---@return string|nil err
---@return boolean|nil final
function M.address(G, url)
  local name = public_url.name_of(url)
  if not name then
    return false
  end
  local r, rerr = resolver_of(G)
  if not r then
    return nil, rerr, false
  end
  local addresses, err = r:addresses(name)
  if not addresses then
    return nil, name .. " does not resolve (" .. tostring(err) .. ")", err:find("no such name", 1, true) ~= nil
  end
  if not G.cfg.allow_private_callbacks then
    for _, a in ipairs(addresses) do
      if public_url.host_private(a) ~= false then
        return nil, name .. " points at " .. a .. ", a loopback, private, link-local or reserved address"
          .. " (allow_private_callbacks in the gateway config allows it)", true
      end
    end
  end
  return addresses[1]
end

return M
