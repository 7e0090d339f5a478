-- kling.dns: the one question the gateway asks of DNS (where does a callback host point?),
-- built and read without I/O. Replies are network input: nothing in them may raise.
local dns = require "kling.dns"

local function u16(n)
  return string.char(n >> 8 & 255, n & 255)
end

local function u32(n)
  return u16(n >> 16 & 65535) .. u16(n & 65535)
end

local function labels(name)
  local out = {}
  for label in (name .. "."):gmatch("(.-)%.") do
    out[#out + 1] = string.char(#label) .. label
  end
  return table.concat(out) .. "\0"
end

local QNAME_AT = 12 -- offset of the question's name: a pointer to it is "\192\12"

-- A reply to `query(id, name)` with these answers: {owner = name | "ptr", type = "A" | "CNAME",
-- ttl, data = "a.b.c.d" | name}.
local function reply(id, name, answers, opts)
  opts = opts or {}
  local out = { u16(id), opts.flags or "\129\128", u16(1), u16(#answers), u16(0), u16(0),
    labels(opts.qname or name), u16(opts.qtype or 1), u16(1) }
  for _, a in ipairs(answers) do
    local owner = a.owner == nil and string.char(192, QNAME_AT) or labels(a.owner)
    local data
    if a.type == "CNAME" then
      data = labels(a.data)
    elseif a.type == "AAAA" then
      data = a.data -- the 16 bytes as given
    else
      local b = {}
      for x in a.data:gmatch("%d+") do
        b[#b + 1] = string.char(tonumber(x))
      end
      data = table.concat(b)
    end
    local rtype = ({ CNAME = 5, AAAA = 28 })[a.type] or 1
    out[#out + 1] = owner .. u16(rtype) .. u16(1) .. u32(a.ttl or 300) .. u16(#data) .. data
  end
  return table.concat(out)
end

describe("kling.dns (issue 12: callback hosts are checked where they point)", function()
  it("asks for one name's A records with recursion", function()
    assert.are.equal("\18\52\1\0\0\1\0\0\0\0\0\0\7example\3com\0\0\1\0\1", dns.query(0x1234, "example.com"))
    assert.are.equal(dns.query(7, "example.com"), dns.query(7, "example.com."))
    for _, bad in ipairs { "", ".", "a..b", string.rep("a", 64) .. ".com", "a b.com", "a\r\n.com", "x/y", 42 } do
      assert.is_nil((dns.query(1, bad)), tostring(bad))
    end
    assert.is_nil((dns.query(65536, "a.com")))
    assert.is_nil((dns.query(1.5, "a.com")))
  end)

  it("takes a name server as a.b.c.d or a.b.c.d:port, nothing else", function()
    assert.are.same({ "192.0.2.53", 53 }, { dns.server_address("192.0.2.53") })
    assert.are.same({ "127.0.0.1", 5353 }, { dns.server_address("127.0.0.1:5353") })
    for _, bad in ipairs { "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536", "256.1.1.1", "::1", "ns.example.com", "1.2.3",
      "" } do
      assert.is_nil((dns.server_address(bad)), bad)
    end
  end)

  it("issue 12.1: asks for a name's AAAA records and reads them in brackets, as a URL host", function()
    assert.are.equal("\0\7\1\0\0\1\0\0\0\0\0\0\2v6\4test\0\0\28\0\1", dns.query(7, "v6.test", dns.TYPE_AAAA))
    assert.is_nil((dns.query(7, "v6.test", 15)))
    local loop = string.rep("\0", 15) .. "\1"
    local doc = "\32\1\13\184" .. string.rep("\0", 10) .. "\171\205"
    local msg = reply(7, "v6.test", { { type = "AAAA", data = loop, ttl = 30 }, { type = "AAAA", data = doc } },
      { qtype = 28 })
    local r = assert(dns.answer(msg, 7, "v6.test", dns.TYPE_AAAA))
    assert.are.same({ "[0:0:0:0:0:0:0:1]", "[2001:db8:0:0:0:0:0:abcd]" }, r.addresses)
    assert.are.equal(30, r.ttl)
    -- an answer to the A question is not read as one to the AAAA one, nor the other way
    assert.is_nil((dns.answer(msg, 7, "v6.test")))
    local _, why = dns.answer(reply(7, "v6.test", {}, { qtype = 28 }), 7, "v6.test", dns.TYPE_AAAA)
    assert.are.equal("no IPv6 address", why)
    _, why = dns.answer(reply(7, "v6.test", {}), 7, "v6.test")
    assert.are.equal(dns.NO_IPV4, why) -- the resolver then asks AAAA
    -- an AAAA record of the wrong length is not an address
    assert.is_nil((dns.answer(reply(7, "v6.test", { { type = "AAAA", data = "\1\2\3\4" } }, { qtype = 28 }), 7,
      "v6.test", dns.TYPE_AAAA)))
  end)

  it("reads every address of the name, the least TTL, in any case of the name", function()
    local r = assert(dns.answer(reply(9, "Example.COM", { { data = "93.184.216.34", ttl = 600 },
      { data = "93.184.216.35", ttl = 60 } }), 9, "example.com"))
    assert.are.same({ "93.184.216.34", "93.184.216.35" }, r.addresses)
    assert.are.equal(60, r.ttl)
  end)

  it("follows aliases whatever the order of the records, and ignores addresses of other names", function()
    local msg = reply(3, "cb.example.com", {
      { owner = "edge.example.net", data = "10.0.0.1" }, -- the alias's address comes first
      { type = "CNAME", data = "edge.example.net" },
      { owner = "unrelated.example.org", data = "127.0.0.1" },
    })
    assert.are.same({ "10.0.0.1" }, assert(dns.answer(msg, 3, "cb.example.com")).addresses)
  end)

  it("refuses what is not the answer to this query", function()
    local good = reply(5, "a.com", { { data = "1.2.3.4" } })
    assert.matches("another query", select(2, dns.answer(good, 6, "a.com")))
    assert.matches("another name", select(2, dns.answer(good, 5, "b.com")))
    assert.matches("not a reply", select(2, dns.answer(reply(5, "a.com", {}, { flags = "\1\0" }), 5, "a.com")))
    assert.matches("truncated", select(2, dns.answer(reply(5, "a.com", {}, { flags = "\131\128" }), 5, "a.com")))
    assert.matches("no such name", select(2, dns.answer(reply(5, "a.com", {}, { flags = "\129\131" }), 5, "a.com")))
    assert.matches("another question", select(2, dns.answer(reply(5, "a.com", {}, { qtype = 28 }), 5, "a.com")))
    assert.matches("no IPv4 address", select(2, dns.answer(reply(5, "a.com", {}), 5, "a.com")))
    assert.matches("no IPv4 address", select(2, dns.answer(reply(5, "a.com", { { type = "CNAME", data = "b.com" } }),
      5, "a.com")))
  end)

  it("survives pointer loops, cut replies and random damage without raising", function()
    -- an answer whose owner points at itself
    local loop = u16(1) .. "\129\128" .. u16(1) .. u16(1) .. u16(0) .. u16(0) .. labels("a.com") .. u16(1) .. u16(1)
      .. string.char(192, 23) .. u16(1) .. u16(1) .. u32(1) .. u16(4) .. "\1\2\3\4"
    assert.is_nil((dns.answer(loop, 1, "a.com")))
    local good = reply(11, "cb.example.com", { { type = "CNAME", data = "x.example.net" },
      { owner = "x.example.net", data = "1.2.3.4" } })
    for n = 0, #good - 1 do
      assert.is_nil((dns.answer(good:sub(1, n), 11, "cb.example.com")), n)
    end
    local rnd = 20261203
    local function random(m)
      rnd = (rnd * 1103515245 + 12345) % 2147483648
      return rnd % m
    end
    for _ = 1, 3000 do
      local b = { good:byte(1, -1) }
      for _ = 1, 1 + random(4) do
        b[1 + random(#b)] = random(256)
      end
      local ok, r, err = pcall(dns.answer, string.char(table.unpack(b)), 11, "cb.example.com")
      assert.is_true(ok, tostring(r))
      assert.is_true((r == nil) ~= (err == nil))
    end
    for _, v in ipairs { nil, 42, {}, "" } do
      assert.is_nil((dns.answer(v, 1, "a.com")))
    end
  end)
end)
