-- A name server for tests, on a loopback UDP port: answers A questions from its command line
-- (name=a.b.c.d), "no such name" for any other name, and appends each name asked to a log.
-- Written apart from kling.dns on purpose: the module is tested against what a server sends.
--   lua5.4 spec/support/fake_dns.lua PORT LOG name=a.b.c.d ...
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

while true do
  local msg, host, from = udp:receivefrom()
  if msg and #msg >= 17 then
    local name, after = question(msg)
    if name then
      local log = io.open(log_path, "a")
      log:write(name, "\n")
      log:close()
      local q = msg:sub(13, after + 3) -- the question as asked (name, type, class)
      local addr = zone[name]
      local reply
      if addr then
        local a, b, c, d = addr:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
        reply = msg:sub(1, 2) .. "\129\128" .. u16(1) .. u16(1) .. u16(0) .. u16(0) .. q
          .. "\192\12" .. u16(1) .. u16(1) .. u16(0) .. u16(30) .. u16(4)
          .. string.char(tonumber(a), tonumber(b), tonumber(c), tonumber(d))
      else
        reply = msg:sub(1, 2) .. "\129\131" .. u16(1) .. u16(0) .. u16(0) .. u16(0) .. q
      end
      udp:sendto(reply, host, from)
    end
  end
end
