-- The nginx driver took a request's `follow = true` (the field list has it) and did not follow:
-- the caller got the 302 where the libcurl driver gives the page it points to. It follows now as
-- libcurl does (kling.resty.driver.follow): at most 10 redirects, to http(s) only, a 303 (and a
-- POST's 301/302) asked again as a GET, the credentials kept to their origin, one timeout for all.
-- These run the redirect logic on scripted answers; spec/nginx/driver_checks.lua runs it over
-- cosockets.
local fake_ngx = require "spec.support.fake_ngx"
local core = require "kling.core"

describe("the nginx driver's redirects", function()
  local saved, M
  setup(function()
    saved = fake_ngx.install { get_phase = function() return "timer" end, config = { ngx_lua_version = 0 } }
    M = require "kling.resty.driver"
  end)
  teardown(function()
    fake_ngx.restore(saved)
  end)

  local function answer(status, location, extra)
    local res = { ok = true, status = status, headers = { location = location }, body = "", sent = true,
      received = true }
    for k, v in pairs(extra or {}) do
      res[k] = v
    end
    return res
  end

  -- send for follow: answers in turn, each hop kept
  local function script(answers)
    local hops, i = {}, 0
    return hops, function(hop)
      i = i + 1
      hops[i] = hop
      return answers[i] or answer(200, nil, { body = "done" })
    end
  end

  it("reads a Location against the URL it answered", function()
    local base = "http://h.example:8080/a/b/c?q=1"
    for loc, want in pairs {
      ["https://o.example/x"] = "https://o.example/x",
      ["//o.example/y"] = "http://o.example/y",
      ["/abs?z=2"] = "http://h.example:8080/abs?z=2",
      ["rel"] = "http://h.example:8080/a/b/rel",
      ["../up/./x"] = "http://h.example:8080/a/up/x",
      ["../../../../top"] = "http://h.example:8080/top",
      ["?only=query"] = "http://h.example:8080/a/b/c?only=query",
      ["d/#frag"] = "http://h.example:8080/a/b/d/",
      ["ftp://f.example/file"] = "ftp://f.example/file",
    } do
      assert.are.equal(want, M.resolve(base, loc), loc)
    end
    assert.are.equal("http://h.example/x", M.resolve("http://h.example", "x"))
  end)

  it("follows to the end, sent and received over the whole chain, the request left as it was", function()
    local req = { url = "http://h.example/start", headers = { Accept = "a" }, follow = true }
    local hops, send = script { answer(302, "/next"), answer(301, "http://h.example/last") }
    local res = M.follow(req, send)
    assert.is_true(res.ok)
    assert.are.equal(200, res.status)
    assert.are.equal("done", res.body)
    assert.are.equal(3, #hops)
    assert.are.equal("http://h.example/next", hops[2].url)
    assert.are.equal("http://h.example/last", hops[3].url)
    assert.is_nil(hops[1].follow)
    assert.are.equal("a", hops[3].headers.Accept)
    assert.are.same({ url = "http://h.example/start", headers = { Accept = "a" }, follow = true }, req)
    -- a create redirected, whose next hop could not connect, was sent: it is never resent as unsent
    hops, send = script { answer(307, "http://other.example/x"), { ok = false, error = "connect", sent = false,
      received = false } }
    res = M.follow({ method = "POST", url = "http://h.example/c", body = "{}" }, send)
    assert.are.equal(2, #hops)
    assert.are.equal("connect", res.error)
    assert.is_true(res.sent)
    assert.is_true(res.received)
  end)

  it("asks a 303, and a POST's 301 or 302, again as a GET without its body; a 307 or 308 as it was", function()
    local headers = { ["Content-Type"] = "application/json", Authorization = "Bearer t" }
    for _, c in ipairs {
      { 303, "POST", "GET" }, { 303, "PUT", "GET" }, { 303, "HEAD", "HEAD" }, { 302, "POST", "GET" },
      { 301, "POST", "GET" }, { 302, "PUT", "PUT" }, { 307, "POST", "POST" }, { 308, "PATCH", "PATCH" },
    } do
      local hops, send = script { answer(c[1], "/to") }
      M.follow({ method = c[2], url = "http://h.example/from", body = "B", headers = headers }, send)
      local second = hops[2]
      assert.are.equal(c[3], second.method, c[1] .. " " .. c[2])
      if c[3] == c[2] then -- asked again as it was
        assert.are.equal("B", second.body)
        assert.are.equal("application/json", second.headers["Content-Type"])
      else
        assert.is_nil(second.body)
        assert.is_nil(second.headers["Content-Type"])
      end
      assert.are.equal("Bearer t", second.headers.Authorization) -- the same origin
    end
  end)

  it("keeps the Authorization and Cookie headers to their origin (scheme, host, port)", function()
    for to, kept in pairs {
      ["http://h.example/same"] = true, ["http://H.EXAMPLE:80/same-port"] = true,
      ["http://h.example:8080/port"] = false, ["https://h.example/scheme"] = false,
      ["http://cdn.example/host"] = false,
    } do
      local hops, send = script { answer(302, to) }
      M.follow({ url = "http://h.example/from", headers = { authorization = "Bearer t", Cookie = "c=1",
        Accept = "a" } }, send)
      assert.are.equal(kept and "Bearer t" or nil, hops[2].headers.authorization, to)
      assert.are.equal(kept and "c=1" or nil, hops[2].headers.Cookie, to)
      assert.are.equal("a", hops[2].headers.Accept, to)
    end
  end)

  it("stops after 10 redirects, and at one that is not http(s), as libcurl does: error other", function()
    local loop = {}
    for i = 1, 12 do
      loop[i] = answer(302, "/again")
    end
    local hops, send = script(loop)
    local res = M.follow({ url = "http://h.example/" }, send)
    assert.is_false(res.ok)
    assert.are.equal("other", res.error)
    assert.are.equal(302, res.status)
    assert.matches("more than 10 redirects", res.message)
    assert.are.equal(11, #hops)
    for _, to in ipairs { "ftp://h.example/f", "file:///etc/passwd", "http://h.example/a b", "http:///nohost" } do
      hops, send = script { answer(302, to) }
      res = M.follow({ url = "http://h.example/" }, send)
      assert.are.equal("other", res.error, to)
      assert.matches("only http and https URLs are followed", res.message, 1, true)
      assert.are.equal(1, #hops)
    end
  end)

  it("bounds the whole chain by one timeout", function()
    local hops = {}
    local res = M.follow({ url = "http://h.example/", timeout_ms = 120 }, function(hop)
      hops[#hops + 1] = hop
      core.sleep_ms(50)
      return answer(302, "/slow")
    end)
    assert.is_false(res.ok)
    assert.are.equal("timeout", res.error)
    assert.is_true(#hops <= 3)
    assert.is_true(hops[2].timeout_ms < 120 and hops[2].timeout_ms >= 1)
  end)

  it("is what driver:request does with follow = true (without it, the redirect is the answer)", function()
    local driver = M.new {}
    local hops = {}
    driver._send = function(_, hop)
      hops[#hops + 1] = hop
      if hop.url:find("/from", 1, true) then
        return answer(302, "/to")
      end
      return answer(200, nil, { body = "here" })
    end
    assert.are.equal(302, driver:request({ url = "http://h.example/from" }).status)
    local res = driver:request { url = "http://h.example/from", follow = true }
    assert.are.equal(200, res.status)
    assert.are.equal("here", res.body)
    assert.are.equal("http://h.example/to", hops[#hops].url)
  end)
end)
