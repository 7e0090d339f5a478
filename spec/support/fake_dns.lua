-- A name server for tests, on a loopback UDP port: answers A and AAAA questions from its
-- command line (name=a.b.c.d, name=x:x::x), no record for a name asked another type than it
-- has (an IPv6-only name asked for A), "no such name" for any other name, and appends each
-- name asked (and "AAAA name" for an AAAA question) to a log. Written apart from kling.dns on
-- purpose: the module is tested against what a server sends.
--   lua5.4 spec/support/fake_dns.lua PORT LOG name=a.b.c.d name6=::1 ...
local socket = require "socket"

local port, log_path = tonumber(arg[1]), arg[2]
local zone = {}
for i = 3, #arg do
  local name, addr = arg[i]:match("^([^=]+)=(.+)$")
  zone[name:lower()] = addr
end

local udp = assert(socket.udp())
assert(udp:setsockname("127.0.0.1", port))

local function u16(n)
  return string.char(n >> 8 & 255, n & 255)
end

-- The question's name (labels from offset 13) and the offset after it, or nil.
local function question(msg)
  local labels, i = {}, 13
  while true do
    local len = msg:byte(i)
    if not len or len > 63 then
      return nil
    end
    if len == 0 then
      return table.concat(labels, "."):lower(), i + 1
    end
    labels[#labels + 1] = msg:sub(i + 1, i + len)
    i = i + 1 + len
  end
end

-- "2001:db8::1" -> its 16 bytes
local function v6_bytes(addr)
  local head, tail = addr:match("^(.-)::(.*)$")
  local function groups(text)
    local out = {}
    for g in text:gmatch("[^:]+") do
      out[#out + 1] = tonumber(g, 16)
    end
    return out
  end
  local all = groups(head or addr)
  if head then
    local t = groups(tail)
    for _ = 1, 8 - #all - #t do
      all[#all + 1] = 0
    end
    for _, g in ipairs(t) do
      all[#all + 1] = g
    end
  end
  local out = {}
  for i, g in ipairs(all) do
    out[i] = u16(g)
  end
  return table.concat(out)
end

-- The record data for an address of the type asked (1 A, 28 AAAA), or nil (no such record).
local function rdata(addr, qtype)
  if qtype == 1 and not addr:find(":", 1, true) then
    local a, b, c, d = addr:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    return string.char(tonumber(a), tonumber(b), tonumber(c), tonumber(d))
  elseif qtype == 28 and addr:find(":", 1, true) then
    return v6_bytes(addr)
  end
end

while true do
  local msg, host, from = udp:receivefrom()
  if msg and #msg >= 17 then -- a header and the shortest question
    local name, after = question(msg)
    if name and msg:byte(after + 3) then
      local q = msg:sub(13, after + 3) -- the question as asked (name, type, class)
      local qtype = msg:byte(after) * 256 + msg:byte(after + 1)
      local log = io.open(log_path, "a")
      log:write(qtype == 28 and "AAAA " or "", name, "\n")
      log:close()
      local addr = zone[name]
      local data = addr and rdata(addr, qtype)
      local reply
      if data then
        reply = msg:sub(1, 2) .. "\129\128" .. u16(1) .. u16(1) .. u16(0) .. u16(0) .. q
          .. "\192\12" .. u16(qtype) .. u16(1) .. u16(0) .. u16(30) .. u16(#data) .. data
      elseif addr then -- the name exists, without a record of this type
        reply = msg:sub(1, 2) .. "\129\128" .. u16(1) .. u16(0) .. u16(0) .. u16(0) .. q
      else
        reply = msg:sub(1, 2) .. "\129\131" .. u16(1) .. u16(0) .. u16(0) .. u16(0) .. q
      end
      udp:sendto(reply, host, from)
    end
  end
end
