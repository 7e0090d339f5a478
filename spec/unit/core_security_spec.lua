-- kling.core's security and retry bindings as Lua sees them (docs/internals.md): codec,
-- JWT, auth caching, webhooks, the retry policy, and that misuse raises.
local core = require "kling.core"
local cjson = require "cjson"

-- The value, or an error with the message (busted's assert returns extra values).
local function must(v, msg)
  if v == nil then
    error(msg, 2)
  end
  return v
end

-- Splits a JWT and decodes its header and claims with b64url_decode + cjson.
local function decode_jwt(token)
  local h, p, s = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
  must(h, "not a JWT: " .. tostring(token))
  local header = cjson.decode(must(core.b64url_decode(h), "bad header"))
  local claims = cjson.decode(must(core.b64url_decode(p), "bad claims"))
  return header, claims, s, h .. "." .. p
end

local function bearer_token(auth, now)
  local value = auth:bearer(now)
  return must(value:match("^Bearer (%S+)$"), "not a Bearer value: " .. tostring(value))
end

describe("kling.core codec", function()
  it("encodes and decodes base64 in both alphabets", function()
    assert.equal("Zm9vYmE=", core.b64encode("fooba"))
    assert.equal("Zm9vYmE", core.b64url_encode("fooba"))
    assert.equal("+/+/", core.b64encode("\251\255\191"))
    assert.equal("-_-_", core.b64url_encode("\251\255\191"))
    assert.equal("fooba", core.b64decode("Zm9vYmE="))
    assert.equal("fooba", core.b64url_decode("Zm9vYmE"))
    assert.equal("", core.b64decode(""))
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local all = table.concat(bytes)
    assert.equal(all, core.b64decode(core.b64encode(all)))
    assert.equal(all, core.b64url_decode(core.b64url_encode(all)))
  end)

  it("returns nil and a message for invalid base64", function()
    local s, err = core.b64decode("Zm9v!")
    assert.is_nil(s)
    assert.matches("not valid base64", err)
    assert.is_nil((core.b64decode("-_-_")))
    assert.is_nil((core.b64url_decode("+/+/")))
    assert.is_nil((core.b64decode("Z")))
  end)

  it("computes HMAC-SHA256 (RFC 4231 case 2) and SHA-256", function()
    local mac = core.hmac_sha256("Jefe", "what do ya want for nothing?")
    assert.equal(32, #mac)
    assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      (mac:gsub(".", function(c) return string.format("%02x", c:byte()) end)))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", core.sha256_hex("abc"))
  end)

  it("draws random hex of the asked size, different each time", function()
    local a, b = core.random_hex(16), core.random_hex(16)
    assert.matches("^%x+$", a)
    assert.equal(32, #a)
    assert.not_equal(a, b)
    assert.equal(2, #core.random_hex(1))
  end)

  it("compares in constant time", function()
    assert.is_true(core.ct_equal("secret", "secret"))
    assert.is_false(core.ct_equal("secret", "secreT"))
    assert.is_false(core.ct_equal("secret", "secret!"))
    assert.is_true(core.ct_equal("", ""))
  end)
end)

describe("kling.core.jwt_hs256", function()
  it("round-trips: header, claims in order, and a signature over them", function()
    local token = core.jwt_hs256("AK\"1", "SK-secret", 1700000000, 1800)
    local header, claims, sig, signed = decode_jwt(token)
    assert.same({ alg = "HS256", typ = "JWT" }, header)
    assert.same({ iss = "AK\"1", exp = 1700001800, nbf = 1699999995 }, claims)
    -- Key order is part of the contract: iss, exp, nbf.
    local raw = core.b64url_decode(signed:match("%.(.*)$"))
    assert.equal('{"iss":"AK\\"1","exp":1700001800,"nbf":1699999995}', raw)
    assert.equal(core.b64url_encode(core.hmac_sha256("SK-secret", signed)), sig)
  end)

  it("matches an independently made token (python3 hmac/hashlib/base64)", function()
    assert.equal("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
      .. "eyJpc3MiOiJBS2RlbW8xMjM0NTY3ODkwIiwiZXhwIjoxNzAwMDAxODAwLCJuYmYiOjE2OTk5OTk5OTV9."
      .. "z0NeTsM8L8SjT49sotlirvFN_G-iZYn_iupJWB3HZUg",
      core.jwt_hs256("AKdemo1234567890", "SKdemo-secret-0987654321", 1700000000, 1800))
  end)

  it("raises on bad arguments, naming them", function()
    assert.has_error(function() core.jwt_hs256("", "sk", 1, 1800) end)
    assert.has_error(function() core.jwt_hs256("ak", "", 1, 1800) end)
    assert.has_error(function() core.jwt_hs256("ak", "sk", 1, 0) end)
    assert.has_error(function() core.jwt_hs256("ak", "sk", "soon", 1800) end)
    assert.has_error(function() core.jwt_hs256("ak", "sk", math.maxinteger, 1800) end)
    assert.has_error(function() core.jwt_hs256(nil, "sk", 1, 1800) end)
  end)
end)

describe("kling.core.auth", function()
  it("scrubs its own key, secret and token out of a text, and nothing shorter than 8 characters", function()
    local a = core.auth { api_key = "APIsecretKEY789" }
    assert.equal("x [redacted] y [redacted]", a:scrub("x APIsecretKEY789 y APIsecretKEY789"))
    local same = "nothing to hide"
    assert.equal(same, a:scrub(same))
    local j = core.auth { access_key = "AKsecretAK123", secret_key = "SKsecretSK456" }
    local token = j:bearer(1800000000):sub(8)
    assert.equal("t=[redacted] ak=[redacted] sk=[redacted]",
      j:scrub("t=" .. token .. " ak=AKsecretAK123 sk=SKsecretSK456"))
    assert.equal("kkk", core.auth({ api_key = "k" }):scrub("kkk"))
  end)

  it("issue: an answer that echoes the client's key or token never carries it into an error", function()
    -- a 401 saying "invalid key <key>" put the key (or a live JWT) into the error, and from there
    -- into journals and reports: "no secret ever appears in an error or a log line"
    local kling = require "kling"
    local function echo_driver()
      local d = {}
      function d.request(_, req)
        local auth = req.headers.authorization
        local body = cjson.encode { code = 1002, message = "refused " .. auth .. " key=" .. auth:sub(8) }
        return { ok = true, status = 401, headers = { ["content-type"] = "application/json" }, body = body,
          sent = true, received = true }
      end
      function d.now_ms()
        return 0
      end
      function d.wall_s()
        return 1800000000
      end
      function d.sleep_ms() end
      return d
    end
    local key_sets = { { api_key = "APIsecretKEY789" }, { access_key = "AKsecretAK123", secret_key = "SKsecretSK456" } }
    for _, keys in ipairs(key_sets) do
      local o = { provider = "kling", base_url = "http://127.0.0.1:9", driver = echo_driver(), max_attempts = 1 }
      for k, v in pairs(keys) do
        o[k] = v
      end
      local c = must(kling.new(o))
      local t, err = c:submit { model = "kling-v2-6", prompt = "x" }
      assert.is_nil(t)
      local text = tostring(err) .. cjson.encode(err)
      assert.matches("refused Bearer [redacted] key=[redacted]", text, 1, true)
      assert.is_nil(text:find("secret", 1, true), text)
      assert.is_nil(text:find("eyJ", 1, true), text)
    end
  end)

  it("signs a JWT for the access key and caches it until 300 s before expiry", function()
    local auth = core.auth { access_key = "AK-123", secret_key = "SK-456" }
    assert.equal("jwt", auth:kind())
    local t0 = 1700000000
    local first = bearer_token(auth, t0)
    local header, claims, sig, signed = decode_jwt(first)
    assert.equal("HS256", header.alg)
    assert.same({ iss = "AK-123", exp = t0 + 1800, nbf = t0 - 5 }, claims)
    assert.equal(core.b64url_encode(core.hmac_sha256("SK-456", signed)), sig)
    assert.equal(core.jwt_hs256("AK-123", "SK-456", t0, 1800), first)
    -- Cached while more than 300 s of validity remain.
    assert.equal(first, bearer_token(auth, t0 + 1))
    assert.equal(first, bearer_token(auth, t0 + 1499))
    -- Renewed from then on, with claims from the new now.
    local second = bearer_token(auth, t0 + 1500)
    assert.not_equal(first, second)
    local _, claims2 = decode_jwt(second)
    assert.equal(t0 + 1500 + 1800, claims2.exp)
    assert.equal(second, bearer_token(auth, t0 + 1600))
    -- A clock that jumped back before nbf gets a fresh token too.
    local third = bearer_token(auth, t0)
    assert.not_equal(second, third)
    assert.equal(first, third)
  end)

  it("invalidate() forces a new token on the next call", function()
    local auth = core.auth { access_key = "ak", secret_key = "sk" }
    local t0 = 1700000000
    local first = bearer_token(auth, t0)
    auth:invalidate()
    local second = bearer_token(auth, t0 + 10)
    assert.not_equal(first, second)
    local _, claims = decode_jwt(second)
    assert.equal(t0 + 10 + 1800, claims.exp)
    auth:invalidate()
    auth:invalidate() -- twice is harmless
    assert.equal(core.jwt_hs256("ak", "sk", t0 + 20, 1800), bearer_token(auth, t0 + 20))
  end)

  it("uses the wall clock when now_s is omitted", function()
    local auth = core.auth { access_key = "ak", secret_key = "sk" }
    local _, claims = decode_jwt(bearer_token(auth))
    assert.is_true(math.abs(claims.exp - (os.time() + 1800)) <= 5)
  end)

  it("hands out an API key as the Bearer token", function()
    local auth = core.auth { api_key = "sk-live-abc123" }
    assert.equal("api_key", auth:kind())
    assert.equal("Bearer sk-live-abc123", auth:bearer(1))
    auth:invalidate()
    assert.equal("Bearer sk-live-abc123", auth:bearer(99999))
  end)

  it("never shows a secret in tostring", function()
    local jwt = core.auth { access_key = "AK-visible?", secret_key = "SK-must-not-leak" }
    local key = core.auth { api_key = "KEY-must-not-leak" }
    jwt:bearer(1700000000)
    for _, a in ipairs { jwt, key } do
      local s = tostring(a)
      assert.matches("^kling%.auth%(", s)
      assert.not_matches("must%-not%-leak", s)
      assert.not_matches("AK%-visible", s)
      assert.not_matches("eyJ", s)
    end
    assert.equal("kling.auth(jwt)", tostring(jwt))
    assert.equal("kling.auth(api_key)", tostring(key))
  end)

  it("rejects incomplete or conflicting credentials, naming the field", function()
    local function err_of(t)
      local ok, err = pcall(core.auth, t)
      assert.is_false(ok)
      return tostring(err)
    end
    assert.matches("secret_key", err_of { access_key = "ak" })
    assert.matches("access_key", err_of { secret_key = "sk" })
    assert.matches("access_key", err_of {})
    assert.matches("not both", err_of { api_key = "k", access_key = "ak", secret_key = "sk" })
    assert.matches("api_key", err_of { api_key = "" })
    assert.matches("api_key", err_of { api_key = "key\r\nX-Injected: 1" })
    assert.matches("access_key", err_of { access_key = "", secret_key = "sk" })
    assert.matches("secret_key", err_of { access_key = "ak", secret_key = "" })
    assert.matches("secret_key", err_of { access_key = "ak", secret_key = 42 })
    assert.has_error(function() core.auth("ak:sk") end)
    local auth = core.auth { access_key = "ak", secret_key = "sk" }
    assert.has_error(function() auth:bearer("now") end)
    assert.has_error(function() auth:bearer(math.maxinteger) end)
    assert.has_error(function() auth.bearer({}, 1) end)
  end)

  it("frees its secrets when collected", function()
    for _ = 1, 200 do
      core.auth({ access_key = "ak", secret_key = "sk" }):bearer(1700000000)
    end
    collectgarbage()
    collectgarbage()
  end)
end)

describe("kling.core webhooks", function()
  -- The Standard Webhooks reference example, checked with python3 hmac/hashlib/base64.
  local msg = {
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id = "msg_p5jXN8AQM9LWM0D4loKWxJek",
    timestamp = "1614265330", body = '{"test": 2432232314}',
  }
  local sig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

  local function with(over)
    local t = {}
    for k, v in pairs(msg) do t[k] = v end
    for k, v in pairs(over) do t[k] = v end
    return t
  end

  it("signs", function()
    assert.equal(sig, core.webhook_sign(msg))
    assert.equal(sig, core.webhook_sign(with { timestamp = 1614265330 }))
  end)

  it("verifies, also with several signatures during rotation", function()
    assert.is_true(core.webhook_verify(with { signature = sig, now_s = 1614265330 }))
    assert.is_true(core.webhook_verify(with { signature = "v1,AAAA " .. sig .. " v2,zzz", now_s = 1614265400 }))
    local other = core.webhook_sign(with { secret = "another raw secret" })
    assert.is_true(core.webhook_verify(with { secret = "another raw secret", signature = sig .. " " .. other,
      now_s = 1614265330 }))
  end)

  it("refuses bad signatures, stale or future timestamps and missing headers", function()
    local function reason(over)
      local ok, why = core.webhook_verify(with(over))
      assert.is_nil(ok)
      return why
    end
    assert.matches("does not match", reason { signature = sig, body = '{"test": 1}', now_s = 1614265330 })
    assert.matches("does not match", reason { signature = "v1,Zm9v", now_s = 1614265330 })
    assert.matches("too old", reason { signature = sig, now_s = 1614265330 + 301 })
    assert.matches("future", reason { signature = sig, now_s = 1614265330 - 301 })
    assert.is_true(core.webhook_verify(with { signature = sig, now_s = 1614265330 + 900, tolerance_s = 900 }))
    assert.matches("too old", reason { signature = sig, now_s = 1614265330 + 1 , tolerance_s = 0 })
    assert.matches("webhook%-timestamp", reason { signature = sig, timestamp = "soon", now_s = 1614265330 })
    local no_ts = with { signature = sig, now_s = 1614265330 }
    no_ts.timestamp = nil
    local ok, why = core.webhook_verify(no_ts)
    assert.is_nil(ok)
    assert.matches("webhook%-timestamp", why)
    assert.matches("webhook%-id", reason { signature = sig, id = "", now_s = 1614265330 })
    assert.matches("no v1", reason { now_s = 1614265330 })
    assert.matches("no v1", reason { signature = "v2,abc", now_s = 1614265330 })
  end)

  it("raises on misuse: no secret, no body, bad types, bad whsec_ secret", function()
    assert.has_error(function() core.webhook_verify(with { secret = false, signature = sig }) end)
    assert.has_error(function() core.webhook_verify { id = "x", timestamp = "1", signature = sig } end)
    assert.has_error(function() core.webhook_verify(with { body = true }) end)
    assert.has_error(function() core.webhook_verify(with { id = 7, signature = sig }) end)
    assert.has_error(function() core.webhook_verify(with { timestamp = 1.5, signature = sig }) end)
    assert.has_error(function() core.webhook_verify(with { signature = sig, tolerance_s = -1 }) end)
    assert.has_error(function() core.webhook_verify(with { signature = sig, secret = "whsec_!!" }) end)
    assert.has_error(function() core.webhook_sign(with { secret = "" }) end)
    assert.has_error(function() core.webhook_sign(with { id = "" }) end)
    assert.has_error(function() core.webhook_sign("secret") end)
  end)
end)

describe("kling.core retry policy", function()
  local kling_codes = require("kling.providers.kling").codes

  it("classifies by business code before HTTP status", function()
    local function class(status, code) return { core.classify(status, code, kling_codes) } end
    assert.same({ "quota", false }, class(429, 1102))
    assert.same({ "rate_limited", true }, class(429, 1303))
    assert.same({ "rate_limited", true }, class(429, 1302))
    assert.same({ "auth", false }, class(401, 1004))
    assert.same({ "auth", false }, class(429, 1304))
    assert.same({ "content_policy", false }, class(400, 1301))
    assert.same({ "validation", false }, class(400, 1201))
    assert.same({ "server", true }, class(503, 5001))
    assert.same({ "rate_limited", true }, class(429, nil))
    assert.same({ "not_found", false }, class(404))
    assert.same({ "timeout", true }, class(408))
    assert.same({ "server", true }, class(502, 0))
    assert.same({ "quota", false }, class(402, 1.5)) -- not an integer: no known code
    assert.same({ "protocol", false }, class(nil, nil))
  end)

  it("issue 10: the business codes are the dialect's table, handed in; C holds none", function()
    assert.same({ "rate_limited", true }, { core.classify(429, 1102) }) -- no table: the status decides
    assert.same({ "server", true }, { core.classify(500, 1303) })
    local gw = core.codes { { 7, 9, "quota" }, { 42, 42, "server", retryable = true } }
    assert.matches("^kling%.codes", tostring(gw))
    assert.same({ "quota", false }, { core.classify(429, 8, gw) })
    assert.same({ "server", true }, { core.classify(200, 42, gw) })
    assert.same({ "rate_limited", true }, { core.classify(429, 1102, gw) }) -- another provider's code
    assert.same({ "quota", false }, { core.classify(429, 1102, kling_codes) })
    assert.is_false(core.decide { method = "GET", http_status = 429, code = 8, codes = gw }.retry)
    assert.is_true(core.decide { method = "GET", http_status = 429, code = 8 }.retry)
    assert.same({ "validation", false }, { core.classify(400, 1, core.codes {}) })
    -- A table that is not one raises, naming what is wrong.
    assert.has_error(function() core.codes { { 5, 1, "auth" } } end,
      "kling.core: codes: range 5..1 is empty or overlaps another")
    assert.has_error(function() core.codes { { 1, 5, "auth" }, { 5, 9, "server" } } end,
      "kling.core: codes: range 5..9 is empty or overlaps another")
    assert.has_error(function() core.codes { { 1, 5, "gremlins" } } end)
    assert.has_error(function() core.codes { { 1, 5.5, "auth" } } end)
    assert.has_error(function() core.codes { { 1, 5, "auth", retryable = "yes" } } end)
    assert.has_error(function() core.codes { 7 } end)
    assert.has_error(function() core.classify(400, 1, {}) end)
    assert.has_error(function() core.decide { method = "GET", codes = { { 1, 2, "auth" } } } end)
  end)

  it("parses Retry-After", function()
    assert.equal(5000, core.retry_after("5", 0))
    assert.equal(5000, core.retry_after(5, 0))
    assert.equal(120000, core.retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 120))
    assert.equal(120000, core.retry_after("Sunday, 06-Nov-94 08:49:37 GMT", 784111777 - 120))
    assert.equal(120000, core.retry_after("Sun Nov  6 08:49:37 1994", 784111777 - 120))
    assert.equal(0, core.retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 1))
    assert.equal(0, core.retry_after("-3", 0))
    assert.equal(0, core.retry_after(-3, 0))
    assert.equal(86400000, core.retry_after("99999999999999999999", 0))
    assert.equal(86400000, core.retry_after(1e300, 0))
    assert.is_nil(core.retry_after("", 0))
    assert.is_nil(core.retry_after("later", 0))
    assert.is_nil(core.retry_after(0 / 0, 0))
    assert.has_error(function() core.retry_after(nil, 0) end)
    assert.has_error(function() core.retry_after({}, 0) end)
  end)

  it("backs off with full jitter inside [0, min(cap, base * 2^attempt)]", function()
    assert.equal(0, core.backoff(3, 500, 20000, 0))
    assert.equal(4000, core.backoff(3, 500, 20000, 4294967295))
    assert.equal(20000, core.backoff(100, 500, 20000, 4294967295))
    for attempt = 0, 100 do
      local d = core.backoff(attempt, 500, 20000)
      assert.is_true(math.type(d) == "integer" and d >= 0 and d <= math.min(20000, 500 * 2 ^ attempt))
    end
    assert.has_error(function() core.backoff(-1, 500, 20000) end)
    assert.has_error(function() core.backoff(1, 500, 20000, 2 ^ 32) end)
    assert.has_error(function() core.backoff(1, "fast", 20000) end)
  end)

  it("decides: a POST is retried only when it never left the host", function()
    local never = core.decide { method = "POST", transport = "connect", sent = false, r = 4294967295 }
    assert.same({ retry = true, delay_ms = 500, kind = "network", retryable = true, uncertain = false }, never)
    local lost = core.decide { method = "POST", transport = "timeout", sent = true, received = false }
    assert.is_false(lost.retry)
    assert.is_true(lost.uncertain)
    assert.equal("timeout", lost.kind)
    local answered = core.decide { method = "POST", http_status = 429, code = 1303, codes = kling_codes, sent = true,
      received = true }
    assert.is_false(answered.retry)
    assert.is_false(answered.uncertain)
    assert.is_true(answered.retryable)
  end)

  it("decides: GET retries while retryable, attempts remain and the delay fits", function()
    local base = { method = "GET", http_status = 503, sent = true, received = true, r = 4294967295,
      codes = kling_codes }
    local function d(over)
      local t = {}
      for k, v in pairs(base) do t[k] = v end
      for k, v in pairs(over) do t[k] = v end
      return core.decide(t)
    end
    assert.equal(2000, d { attempt = 2 }.delay_ms)
    assert.equal(7000, d { attempt = 2, retry_after = "7" }.delay_ms) -- Retry-After wins
    assert.equal(3000, d { retry_after = "Sun, 06 Nov 1994 08:49:40 GMT", now_s = 784111777 }.delay_ms)
    assert.is_true(d { retry_after = "7", budget_ms = 8000 }.retry)
    assert.is_false(d { retry_after = "7", budget_ms = 6000 }.retry)
    assert.is_false(d { budget_ms = 0 }.retry)
    assert.is_true(d { attempt = 3, max_attempts = 5 }.retry)
    assert.is_false(d { attempt = 4, max_attempts = 5 }.retry)
    assert.is_false(d { http_status = 429, code = 1102, retry_after = "1" }.retry) -- never
    local busy = d { http_status = 429, code = 1303, r = 0 }
    assert.is_true(busy.retry)
    assert.equal(1000, busy.delay_ms) -- at least 1 s after a rate limit
    assert.is_true(d { http_status = 200, transport = "protocol" }.retry)
    assert.is_false(d { http_status = 200, transport = "protocol" }.uncertain)
    assert.is_false(d { http_status = nil, transport = "other" }.retry)
    assert.is_false(d { http_status = 404 }.retry)
    for _ = 1, 50 do
      local r = d { attempt = 1, r = nil }
      assert.is_true(r.delay_ms >= 0 and r.delay_ms <= 1000)
    end
  end)

  it("raises on misuse of decide", function()
    assert.has_error(function() core.decide() end)
    assert.has_error(function() core.decide { http_status = 500 } end)
    assert.has_error(function() core.decide { method = "GET", transport = "gremlins" } end)
    assert.has_error(function() core.decide { method = "GET", sent = "yes" } end)
    assert.has_error(function() core.decide { method = "GET", attempt = -1 } end)
    assert.has_error(function() core.decide { method = "GET", http_status = "500" } end)
    assert.has_error(function() core.decide { method = "GET", http_status = 5000 } end)
    assert.has_error(function() core.decide { method = "GET", code = "1303" } end)
    assert.has_error(function() core.decide { method = "GET", retry_after = {} } end)
    assert.has_error(function() core.decide { method = "GET", r = -1 } end)
    assert.has_error(function() core.classify("500") end)
  end)
end)

-- A field name or a method is the whole Lua string: compared with strcmp, a known name followed by
-- a NUL and more ("timeout_ms\0x") passed the unknown-field check, and its value was never read.
describe("kling.core names with a NUL byte", function()
  it("refuses them as unknown fields or methods, showing the NUL", function()
    local ok, err = pcall(core.sched, { ["max_polls\0x"] = 1 })
    assert.is_false(ok)
    assert.matches("unknown field 'max_polls\\x00x'", err, 1, true)
    ok, err = pcall(core.slots, { ["limit\0"] = 1 })
    assert.is_false(ok)
    assert.matches("unknown field 'limit\\x00'", err, 1, true)
    ok, err = pcall(core.http, { ["timeout_ms\0x"] = 1 })
    assert.is_false(ok)
    assert.matches("unknown field 'timeout_ms\\x00x'", err, 1, true)
    local h = core.http {}
    ok, err = pcall(h.start, h, { method = "GET\0X", url = "http://127.0.0.1:9/" })
    h:close()
    assert.is_false(ok)
    assert.matches("field 'method' must be one of", err, 1, true)
  end)
end)
