--- DNS messages for one question: the addresses of a name (RFC 1035 type A, RFC 3596 type
-- AAAA; class IN).
-- Pure (no I/O): `query` builds the datagram, `answer` reads the reply. The gateway asks
-- itself where a client's callback host points, so that a name resolving to a loopback or
-- private address is refused like the address itself would be (nginx's resolver gives the
-- Lua code no addresses to check). A reply comes from the network: `answer` never raises and
-- returns nil and a reason for anything it cannot read. Runs on Lua 5.1-5.4 and LuaJIT alike
-- (no string.pack, no bit operators).
-- @module kling.dns
local M = {}

M.TYPE_A, M.TYPE_CNAME, M.TYPE_AAAA, M.CLASS_IN = 1, 5, 28, 1

-- What answer() says of a name that exists without an IPv4 address: ask its IPv6 ones.
M.NO_IPV4 = "no IPv4 address"

-- The address types asked, and the length of their record data.
local ADDRESS_LENGTH = { [M.TYPE_A] = 4, [M.TYPE_AAAA] = 16 }

local RCODES = { [1] = "format error", [2] = "server failure", [3] = "no such name", [4] = "not implemented",
  [5] = "refused" }

--- A name server's address as configured: "a.b.c.d" (port 53) or "a.b.c.d:port".
---@param s string
---@return string|nil host
---@return integer|nil port
function M.server_address(s)
  s = tostring(s)
  local host, port = s:match("^(%d+%.%d+%.%d+%.%d+):(%d+)$")
  if not host then
    host, port = s:match("^(%d+%.%d+%.%d+%.%d+)$"), "53"
  end
  if not host then
    return nil
  end
  for part in host:gmatch("%d+") do
    if tonumber(part) > 255 then
      return nil
    end
  end
  port = tonumber(port)
  if port < 1 or port > 65535 then
    return nil
  end
  return host, port
end

local function u16(n)
  return string.char(math.floor(n / 256) % 256, n % 256)
end

--- Whether a host name can be asked: labels of 1-63 letters, digits, '-' or '_', at most 253
-- characters in all, one trailing dot allowed.
---@param name string
---@return boolean
function M.valid_name(name)
  if type(name) ~= "string" then
    return false
  end
  name = name:gsub("%.$", "")
  if name == "" or #name > 253 then
    return false
  end
  for label in (name .. "."):gmatch("(.-)%.") do
    if #label < 1 or #label > 63 or label:find("[^%w%-_]") then
      return false
    end
  end
  return true
end

--- The query datagram asking for name's A (default) or AAAA records (recursion desired).
---@param id integer 0..65535, the reply must carry it back (pick it at random)
---@param name string a host name (see valid_name)
---@param qtype? integer M.TYPE_A (default) or M.TYPE_AAAA
---@return string|nil datagram
---@return string|nil err
function M.query(id, name, qtype)
  qtype = qtype or M.TYPE_A
  if type(id) ~= "number" or id < 0 or id > 65535 or id % 1 ~= 0 then
    return nil, "the query id must be a whole number in 0..65535"
  end
  if not ADDRESS_LENGTH[qtype] then
    return nil, "the query type must be A or AAAA"
  end
  if not M.valid_name(name) then
    return nil, "not a host name that can be asked"
  end
  local parts = { u16(id), "\1\0", u16(1), u16(0), u16(0), u16(0) }
  for label in (name:gsub("%.$", "") .. "."):gmatch("(.-)%.") do
    parts[#parts + 1] = string.char(#label) .. label
  end
  parts[#parts + 1] = "\0" .. u16(qtype) .. u16(M.CLASS_IN)
  return table.concat(parts)
end

local function read16(msg, i)
  local a, b = msg:byte(i, i + 1)
  if not b then
    return nil
  end
  return a * 256 + b
end

-- The name at position i (labels, or a pointer to an earlier name) in lower case, and the
-- position after it in the message; nil when it runs off the end or loops.
local function read_name(msg, i)
  local labels, after, jumps = {}, nil, 0
  while true do
    local len = msg:byte(i)
    if not len then
      return nil
    end
    if len == 0 then
      return table.concat(labels, "."), after or i + 1
    elseif len >= 192 then
      local low = msg:byte(i + 1)
      if not low then
        return nil
      end
      after = after or i + 2
      jumps = jumps + 1
      if jumps > 32 then
        return nil -- a pointer loop
      end
      i = (len - 192) * 256 + low + 1
    elseif len > 63 then
      return nil -- the 0x40 and 0x80 label types are not in use
    else
      local label = msg:sub(i + 1, i + len)
      if #label < len then
        return nil
      end
      labels[#labels + 1] = label:lower()
      if #labels > 127 then
        return nil
      end
      i = i + 1 + len
    end
  end
end

-- The text of an address record: "a.b.c.d", or an IPv6 address in brackets (eight groups,
-- "[2001:db8:0:0:0:0:0:1]"), the form a URL's host and a cosocket's connect take.
local function address_text(msg, at, len)
  if len == 4 then
    local a, b, c, d = msg:byte(at, at + 3)
    return a .. "." .. b .. "." .. c .. "." .. d
  end
  local groups = {}
  for g = 0, 7 do
    groups[g + 1] = string.format("%x", read16(msg, at + 2 * g))
  end
  return "[" .. table.concat(groups, ":") .. "]"
end

--- Reads the reply to `query(id, name, qtype)`.
-- Returns {addresses = {"a.b.c.d", ...} or {"[x:x:x:x:x:x:x:x]", ...}, ttl = seconds (the
-- least of them)}, where addresses are every record of the type asked in the answer section
-- (for the name or the aliases it leads to), or nil and why not (a foreign id, not a reply,
-- truncated, an error code, no address of that type, unreadable).
---@param msg string the datagram received
---@param id integer the query's id
---@param name string the name asked
---@param qtype? integer the type asked: M.TYPE_A (default) or M.TYPE_AAAA
---@return table|nil result
---@return string|nil err
function M.answer(msg, id, name, qtype)
  qtype = qtype or M.TYPE_A
  if type(msg) ~= "string" or #msg < 12 then
    return nil, "a reply shorter than a DNS header"
  end
  if read16(msg, 1) ~= id then
    return nil, "a reply to another query (id)"
  end
  local flags, rflags = msg:byte(3, 4)
  if flags < 128 then
    return nil, "not a reply"
  end
  if math.floor(flags / 2) % 2 == 1 then
    return nil, "the reply was truncated"
  end
  local rcode = rflags % 16
  if rcode ~= 0 then
    return nil, RCODES[rcode] or ("error code " .. rcode)
  end
  local qd, an = read16(msg, 5), read16(msg, 7)
  if qd ~= 1 then
    return nil, "a reply with " .. qd .. " questions"
  end
  local qname, i = read_name(msg, 13)
  local want = tostring(name):gsub("%.$", ""):lower()
  if qname ~= want then
    return nil, "a reply about another name"
  end
  if read16(msg, i) ~= qtype or read16(msg, i + 2) ~= M.CLASS_IN then
    return nil, "a reply to another question"
  end
  i = i + 4
  local records = {}
  for _ = 1, an do
    local owner, at = read_name(msg, i)
    if not owner then
      return nil, "an unreadable answer"
    end
    local rtype, class, len = read16(msg, at), read16(msg, at + 2), read16(msg, at + 8)
    local t1, t2 = read16(msg, at + 4), read16(msg, at + 6)
    if not (rtype and class and len and t1 and t2) or at + 9 + len > #msg then
      return nil, "an answer cut short"
    end
    if class == M.CLASS_IN then
      records[#records + 1] = { owner = owner, type = rtype, ttl = t1 * 65536 + t2, at = at + 10, len = len }
    end
    i = at + 10 + len
  end
  -- The name and the aliases it leads to, in whatever order the records come.
  local names, grew = { [want] = true }, true
  while grew do
    grew = false
    for _, r in ipairs(records) do
      if r.type == M.TYPE_CNAME and names[r.owner] then
        local alias = read_name(msg, r.at)
        if not alias then
          return nil, "an unreadable alias"
        end
        if not names[alias] then
          names[alias], grew = true, true
        end
      end
    end
  end
  local addresses, ttl = {}, nil
  for _, r in ipairs(records) do
    if r.type == qtype and r.len == ADDRESS_LENGTH[qtype] and names[r.owner] then
      addresses[#addresses + 1] = address_text(msg, r.at, r.len)
      ttl = math.min(ttl or r.ttl, r.ttl)
    end
  end
  if #addresses == 0 then
    return nil, qtype == M.TYPE_A and M.NO_IPV4 or "no IPv6 address"
  end
  return { addresses = addresses, ttl = ttl }
end

return M
