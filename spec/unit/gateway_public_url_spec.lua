local public_url = require "kling.gateway.public_url"

describe("kling.gateway.public_url", function()
  local function refused(url, allow)
    local ok, err = public_url.check(url, allow)
    return ok == nil and type(err) == "string"
  end

  it("issue 12.1: public http(s) URLs are taken", function()
    for _, u in ipairs { "https://example.com/cb", "http://example.com:8080/a/b?x=1&y=%41",
      "https://93.184.216.34/cb", "https://[2606:2800:220:1:248:1893:25c8:1946]/cb", "https://a.b.c.example/" } do
      assert.is_true(public_url.check(u), u)
    end
  end)

  it("issue 12.1: a CR LF injection, raw or percent-encoded, is refused", function()
    assert.is_true(refused("http://host.example/cb HTTP/1.1\r\nX-Injected: yes\r\n\r\nGET /x"))
    assert.is_true(refused("http://host.example/cb%0d%0aX-Injected:%20yes"))
    assert.is_true(refused("http://host.example/cb%0D%0A"))
    assert.is_true(refused("http://host.example/a b"))
    assert.is_true(refused("http://host.example/\t"))
    assert.is_true(refused("http://host.example/%00"))
  end)

  it("controls and spaces of any range, raw or percent-encoded, are refused; encoded text is taken", function()
    for _, u in ipairs { "http://host.example/\u{85}x", "http://host.example/\u{a0}x", "http://host.example/\u{2028}",
      "http://host.example/%c2%85", "http://host.example/%C2%A0", "http://host.example/%e2%80%a8",
      "http://host.example/%E2%80%AE", "http://hóst.example/" } do
      assert.is_true(refused(u), u)
    end
    local _, why = public_url.check("http://host.example/%c2%85")
    assert.matches("percent-encoded control characters or spaces (U+0085)", why, 1, true)
    _, why = public_url.check("http://host.example/caf\u{e9}")
    assert.matches("must be ASCII", why, 1, true)
    assert.is_true(public_url.check("https://example.com/caf%C3%A9/%F0%9F%98%80?q=%2F"))
  end)

  it("issue 12.1: user info is refused", function()
    assert.is_true(refused("http://user:pass@example.com/cb"))
    assert.is_true(refused("http://example.com@127.0.0.1/cb"))
  end)

  it("issue 12.1: loopback, private, link-local, CGNAT and metadata IPv4 are refused", function()
    for _, h in ipairs { "127.0.0.1", "127.5.6.7", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
      "169.254.169.254", "100.64.0.1", "100.100.100.200", "0.0.0.0", "224.0.0.1", "255.255.255.255" } do
      assert.is_true(refused("http://" .. h .. "/cb"), h)
      assert.is_true(public_url.check("http://" .. h .. "/cb", true), h .. " with allow_private")
    end
    assert.is_true(public_url.check("http://172.32.0.1/cb"))
    assert.is_true(public_url.check("http://100.128.0.1/cb"))
  end)

  it("issue 12.1: non-canonical numeric hosts are refused", function()
    for _, h in ipairs { "127.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.0.0.01" } do
      assert.is_true(refused("http://" .. h .. "/cb"), h)
    end
  end)

  it("issue 12.1: IPv6 loopback, ULA, link-local and IPv4-mapped forms are refused", function()
    for _, h in ipairs { "[::1]", "[::]", "[fd00:ec2::254]", "[fc00::1]", "[fe80::1]", "[::ffff:127.0.0.1]",
      "[::ffff:7f00:1]", "[::ffff:169.254.169.254]", "[::ffff:a9fe:a9fe]", "[64:ff9b::10.0.0.1]", "[ff02::1]",
      "[0:0:0:0:0:0:0:1]" } do
      assert.is_true(refused("http://" .. h .. "/cb"), h)
    end
    assert.is_true(refused("http://[::1/cb"))
  end)

  it("issue 12.1: IPv6 forms that embed a refused IPv4 (SIIT ::ffff:0:a.b.c.d, 6to4 2002::/16) are refused",
    function()
    for _, h in ipairs { "[::ffff:0:127.0.0.1]", "[::ffff:0:7f00:1]", "[0:0:0:0:ffff:0:a00:1]", "[2002:7f00:1::]",
      "[2002:a9fe:a9fe::1]", "[2002:c0a8:101:0:0:0:0:1]", "[2002:0:0::]" } do
      assert.is_true(refused("http://" .. h .. "/cb"), h)
      assert.is_true(public_url.check("http://" .. h .. "/cb", true), h .. " with allow_private")
    end
    assert.is_true(public_url.check("http://[2002:5db8:d822::1]/cb")) -- 6to4 of 93.184.216.34
    -- local-use NAT64 (64:ff9b:1::/48): its IPv4 may sit anywhere past the /48, so all of it is refused
    -- 10.0.0.1 at /48 (its first half at bits 48-63, the rest past the u-octet) beside a public tail
    for _, h in ipairs { "[64:ff9b:1:a00:0:100:5db8:d822]", "[64:ff9b:1::a00:1]" } do
      assert.is_true(refused("http://" .. h .. "/cb"), h)
    end
    assert.is_true(public_url.check("http://[::ffff:0:5db8:d822]/cb"))
  end)

  it("issue 12.1: names of this machine or its network are refused", function()
    for _, h in ipairs { "localhost", "LOCALHOST", "foo.localhost", "metadata.google.internal", "nas.local",
      "intranet" } do
      assert.is_true(refused("http://" .. h .. "/cb"), h)
    end
  end)

  it("issue 12.1: other schemes and malformed URLs are refused", function()
    for _, u in ipairs { "ftp://example.com/", "file:///etc/passwd", "//example.com", "http:///x",
      "http://example.com:0/", "http://example.com:99999/", 42 } do
      assert.is_true(refused(u), tostring(u))
    end
  end)

  it("issue 12.1: name_of gives the DNS name a callback goes to, and nothing for numeric hosts", function()
    assert.are.equal("cb.example.com", public_url.name_of("https://CB.Example.com./hook?x=1"))
    assert.are.equal("cb.example.com", public_url.name_of("http://cb.example.com:8443"))
    for _, u in ipairs { "http://93.184.216.34/cb", "http://[2606:2800::1]/cb", "http://0x7f.1/", "ftp://a.com/",
      "http://u@a.com/", 42 } do
      assert.is_nil(public_url.name_of(u), tostring(u))
    end
  end)
end)
