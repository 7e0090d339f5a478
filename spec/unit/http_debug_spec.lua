-- Issue 14 (debug switch): each request and answer printed with every key, token, secret,
-- JWT and signature redacted, in headers, JSON bodies and query strings.
local dbg = require "kling.transport.debug"
local core = require "kling.core"
local kling = require "kling"

local JWT = core.jwt_hs256("ak-unit-access", "sk-unit-secret-value", 1700000000, 1800)

describe("debug printing (issue 14)", function()
  it("issue 14: headers: Authorization keeps its scheme only; key, token and signature headers are hidden", function()
    local text = dbg.request_text { method = "POST", url = "https://api.example.com/v1/videos/text2video",
      headers = { authorization = "Bearer " .. JWT, ["x-api-key"] = "plain-key-123", ["webhook-signature"] = "v1,abc=",
        ["content-type"] = "application/json" }, body = "{}" }
    assert.matches("kling> POST https://api.example.com/v1/videos/text2video", text, 1, true)
    assert.matches("authorization: Bearer [redacted]", text, 1, true)
    assert.matches("content-type: application/json", text, 1, true)
    for _, secret in ipairs { JWT, "plain-key-123", "v1,abc=" } do
      assert.is_nil(text:find(secret, 1, true), secret)
    end
  end)

  it("issue 14: JSON bodies: secret fields, JWTs in any field, tokens in URLs' query strings", function()
    local body = [[{"prompt":"a cat","api_key":"k-123456","nested":{"secret_key":"s-abcdef","list":[{"token":"t-1"}]},
      "note":"bearer ]] .. JWT .. [[","callback_url":"https://hook.example.com/cb?token=tok-999&id=7",
      "image":"]] .. string.rep("A", 5000) .. [["}]]
    local text = dbg.redact_body(body)
    for _, secret in ipairs { "k-123456", "s-abcdef", "t-1\"", JWT, "tok-999" } do
      assert.is_nil(text:find(secret, 1, true), secret)
    end
    assert.matches('"prompt":"a cat"', text, 1, true)
    assert.matches("id=7", text, 1, true)
    assert.matches("(5000 bytes)", text, 1, true) -- a base64 image is cut, not printed whole
    assert.is_true(#text < 1000)
  end)

  it("issue 14: URLs: secret query parameters and user info are hidden, the rest kept", function()
    local u = dbg.redact_url("https://user:pw@api.example.com/v1/x?pageNum=2&access_token=abc&sig=zz&pageSize=5")
    assert.are.equal("https://[redacted]@api.example.com/v1/x?pageNum=2&access_token=[redacted]&sig=[redacted]"
      .. "&pageSize=5", u)
  end)

  it("issue 14: the client's own keys are hidden wherever they appear, and non-JSON bodies too", function()
    local text = dbg.redact_body("echo: my-own-access-key and password=hunter2", { "my-own-access-key" })
    assert.is_nil(text:find("my-own-access-key", 1, true))
    assert.is_nil(text:find("hunter2", 1, true))
  end)

  it("issue 14: answers print the status, the time and the body; failures the transport error", function()
    local req = { method = "GET", url = "https://h/v1/videos/text2video/1" }
    local ok = dbg.answer_text(req, { ok = true, status = 200, elapsed_ms = 12, headers = {},
      body = '{"code":0,"data":{"task_id":"1"}}' })
    assert.matches("kling< 200 GET https://h/v1/videos/text2video/1 in 12 ms", ok, 1, true)
    assert.matches('"task_id":"1"', ok, 1, true)
    local bad = dbg.answer_text(req, { ok = false, error = "timeout", message = "timed out", sent = true }, 500)
    assert.matches("failed after 500 ms: timeout: timed out", bad, 1, true)
  end)

  it("issue 14: the option: true, a function, false; KLING_DEBUG=1 only when it is not given", function()
    local env = function(v)
      return function()
        return v
      end
    end
    assert.is_function(dbg.sink(true))
    assert.is_nil(dbg.sink(false, env("1")))
    assert.is_function(dbg.sink(nil, env("1")))
    assert.is_nil(dbg.sink(nil, env("0")))
    assert.is_nil(dbg.sink(nil, env(nil)))
    local f = function() end
    assert.are.equal(f, dbg.sink(f))
    -- a bad value is refused as local_files = 1 is: nil, err (validation, naming the option), not a raise
    local none, err = kling.new { provider = "kling", api_key = "k", debug = "yes" }
    assert.is_nil(none)
    assert.are.equal("validation", err.kind)
    assert.are.equal("debug", err.field)
    assert.matches("must be true, false or a function(text) (got a string", err.message, 1, true)
    local c = assert(kling.new { provider = "kling", api_key = "k", debug = false })
    local ok, msg = pcall(c.with, c, { debug = 1 })
    assert.is_false(ok)
    assert.matches("kling.with: debug must be true, false or a function(text) (got", msg, 1, true)
  end)
  it("issue 14: a body that is not JSON (cut short, text) is redacted by pattern, not printed as is", function()
    local cut = dbg.redact_body('{"api_key":"S1-cut","x":1')
    assert.is_nil(cut:find("S1-cut", 1, true))
    assert.matches('"x":1', cut, 1, true)
    local unterminated = dbg.redact_body('{"x":1,"secret":"S2-unterminated')
    assert.is_nil(unterminated:find("S2-unterminated", 1, true))
    local text = dbg.redact_body("POST /v1 HTTP/1.1\r\nAuthorization: Bearer S3-tok.en\r\nHost: h\r\n\r\n"
      .. "token: S4, x: ok")
    assert.is_nil(text:find("S3-tok", 1, true))
    assert.is_nil(text:find("S4", 1, true))
    assert.matches("Host: h", text, 1, true)
    assert.matches("x: ok", text, 1, true)
    local bare = dbg.redact_body("the upstream said: bearer S5_abc/def= is not valid; jwt " .. JWT)
    assert.is_nil(bare:find("S5_abc", 1, true))
    assert.is_nil(bare:find(JWT, 1, true))
    local form = dbg.redact_body("a=1&pwd=S6&b=2")
    assert.are.equal("a=1&pwd=[redacted]&b=2", form)
    local escaped = dbg.redact_body([[{"password":"S7\"still-S7","n":1]])
    assert.is_nil(escaped:find("still-S7", 1, true))
    assert.matches('"n":1', escaped, 1, true)
  end)

  it("issue 14: JSON nested deeper than 32 levels is not printed below that depth", function()
    local deep = string.rep("[", 40) .. '{"api_key":"S8-deep","other":"S8-plain"}' .. string.rep("]", 40)
    local text = dbg.redact_body(deep)
    assert.is_nil(text:find("S8-deep", 1, true))
    assert.is_nil(text:find("S8-plain", 1, true))
    assert.matches("nested deeper than 32 levels", text, 1, true)
    local shallow = dbg.redact_body('[[{"api_key":"S9","name":"kept"}]]')
    assert.matches('"name":"kept"', shallow, 1, true)
  end)

  it("issue 14: sk, ak, pwd, bearer and q-sign are secret names; ordinary names are not", function()
    for _, name in ipairs { "sk", "ak", "pwd", "bearer", "q-sign", "SK", "x-ak", "user_pwd", "Bearer-Token", "sign" } do
      assert.is_true(dbg.secret_name(name), name)
    end
    for _, name in ipairs { "task", "mask", "speak", "model", "prompt", "design", "name", "duration" } do
      assert.is_false(dbg.secret_name(name), name)
    end
    local text = dbg.redact_body('{"sk":"S10","ak":"S11","pwd":"S12","bearer":"S13","q-sign":"S14","model":"m"}')
    for i = 10, 14 do
      assert.is_nil(text:find("S" .. i, 1, true), text)
    end
    assert.matches('"model":"m"', text, 1, true)
    assert.matches("q-sign=[redacted]", dbg.redact_url("https://cos.example.com/a.mp4?q-sign=S15&x=1"), 1, true)
  end)

  it("issue 14: KLING_DEBUG=false, no, off (any case) leave debugging off; other values turn it on", function()
    local env = function(v)
      return function()
        return v
      end
    end
    for _, v in ipairs { "", "0", "false", "FALSE", "no", "No", "off", "OFF", " off ", "n", "f" } do
      assert.is_nil(dbg.sink(nil, env(v)), v)
    end
    for _, v in ipairs { "1", "true", "yes", "on", "2" } do
      assert.is_function(dbg.sink(nil, env(v)), v)
    end
  end)
end)
