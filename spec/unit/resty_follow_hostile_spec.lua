-- A Location header is what a server says: hostile ones (control bytes, other schemes, bare
-- slashes, userinfo, NULs, random bytes) fed to the nginx driver's redirect resolution. follow
-- must never raise, never send a hop to a URL with a control byte or space, and never leave
-- http/https; resolve must give a string for any Location against an http(s) base.
local fake_ngx = require "spec.support.fake_ngx"

describe("the nginx driver's redirects, hostile Locations", function()
  local saved, M, http
  setup(function()
    saved = fake_ngx.install { get_phase = function() return "timer" end, config = { ngx_lua_version = 0 } }
    M = require "kling.resty.driver"
    http = require "kling.resty.http"
  end)
  teardown(function()
    fake_ngx.restore(saved)
  end)

  local BASES = { "http://h.example/a/b?q=1", "https://h.example:8443", "HTTP://[::1]:80/x/", "http://h/?" }

  local FIXED = { "", "#", "?", "/", "//", "///", "////x", ".", "..", "/..", "../../..", "?#x", "#/x",
    "http:", "http:/", "http://", "https:///", "http:x", "http://@h/", "http://u:p@h/", "http://h:0/",
    "http://h:99999/", "http://h:-1/", "http://[::1/", "http://]/", "javascript:alert(1)", "data:,x",
    "file:///etc/passwd", "ftp://h/", "gopher://h:70/", "\\\\evil/x", "/\\evil", "http:\\\\evil",
    " http://evil/", "http://evil/ x", "http://ev\0il/", "/a\0b", "/a\r\nSet-Cookie: x=1", "\r\n",
    "http://evil\t/", "http://h/\127", "//evil\n.example/", "?a\rb", "h%00t/", "\255\254", "%",
    "http://h/" .. string.rep("../", 200), string.rep("/", 5000), string.rep("a/", 2000) .. "..",
    "HtTpS://H/ok", "//h.example:8080/p?q#f" }

  -- a fixed generator (no seed from the clock): the same Locations every run
  local state = 12345
  local function byte()
    state = (state * 1103515245 + 12345) % 2147483648
    return state % 256
  end
  local ALPHABET = "/?#.:@[]%\\ \t\r\n\0\127hHtTpPsS0123456789x-_~"
  local function hostile()
    local n, out = byte() % 40, {}
    for i = 1, n do
      local b = byte()
      out[i] = b < 128 and ALPHABET:sub(b % #ALPHABET + 1, b % #ALPHABET + 1) or string.char(b)
    end
    local prefix = ({ "", "http://", "https://", "//", "/", "?" })[byte() % 6 + 1]
    return prefix .. table.concat(out)
  end

  local function check(base, loc)
    local ok, url = pcall(M.resolve, base, loc)
    assert(ok, ("resolve raised on %q: %s"):format(loc, tostring(url)))
    assert.are.equal("string", type(url))
    local hops = {}
    local answers = { { ok = true, status = 302, headers = { location = loc }, body = "", sent = true,
      received = true } }
    local fine, res = pcall(M.follow, { method = "GET", url = base, headers = { Authorization = "x" } }, function(hop)
      hops[#hops + 1] = hop
      return answers[#hops] or { ok = true, status = 200, headers = {}, body = "", sent = true, received = true }
    end, 10000)
    assert(fine, ("follow raised on %q: %s"):format(loc, tostring(res)))
    assert.are.equal("table", type(res))
    for i = 2, #hops do
      local to = hops[i].url
      assert(not to:find("[%c ]"), ("a hop to a URL with a control byte or space: %q from %q"):format(to, loc))
      assert(to:lower():match("^https?://"), ("a hop off http(s): %q from %q"):format(to, loc))
      assert(http.parse_url(to), ("a hop to a URL the client cannot read: %q from %q"):format(to, loc))
    end
    if #hops == 1 then
      assert.is_false(res.ok) -- not followed: said so, not passed off as the 302
    end
  end

  it("never raises, never sends a hop to a URL with a control byte, never leaves http(s)", function()
    for _, base in ipairs(BASES) do
      for _, loc in ipairs(FIXED) do
        check(base, loc)
      end
      for _ = 1, 2000 do
        check(base, hostile())
      end
    end
  end)
end)
