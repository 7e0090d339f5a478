-- kling.core's functions that take a table kept a string (or the codes userdata) of one field
-- while they read the next with lua_getfield, and a metatable's __index ran Lua code there: a
-- string it made was held by nothing once popped, and a read that collected garbage freed it
-- (ASan: heap-use-after-free in webhook_sign's secret); an __index could also drop a field
-- read before. They read the table's own fields now (kling_rawfield), as their unknown-field
-- checks already did: __index is never run, a field only behind it is not there.
local core = require "kling.core"

describe("kling.core reads a table's own fields", function()
  -- a table whose every absent field runs Lua that collects garbage (and counts the runs)
  local function hostile(own)
    local runs = { n = 0 }
    local t = setmetatable(own, { __index = function(self, k)
      runs.n = runs.n + 1
      rawset(self, "secret", nil) -- drop a field read before
      collectgarbage()
      collectgarbage()
      return string.rep("x", 64) .. k -- a string nothing holds
    end })
    return t, runs
  end

  it("webhook_verify: an absent now_s or tolerance_s runs no __index", function()
    local secret = "whsec_" .. core.b64encode(string.rep("k", 32))
    local ts = os.time()
    local sig = core.webhook_sign { secret = secret, id = "msg_1", timestamp = ts, body = "{}" }
    local v, runs = hostile { secret = secret, id = "msg_1", timestamp = ts, body = "{}", signature = sig }
    assert.is_true(core.webhook_verify(v))
    assert.are.equal(0, runs.n)
  end)

  it("webhook_sign: a secret only behind __index is not there", function()
    local t, runs = hostile { body = "{}", id = "msg_1", timestamp = 1 }
    assert.has_error(function() core.webhook_sign(t) end,
      "kling.core: webhook_sign: field 'secret' is required (a string)")
    assert.are.equal(0, runs.n)
  end)

  it("auth: the keys are the table's own", function()
    local t, runs = hostile { access_key = "ak_123", secret_key = "sk_456" }
    assert.is_truthy(core.auth(t))
    assert.are.equal(0, runs.n)
  end)

  it("decide: method and codes kept while the other fields are read", function()
    local codes = core.codes { { 1000, 1999, "auth" } }
    local t, runs = hostile { method = "POST", attempt = 1, codes = codes, code = 1001, http_status = 200 }
    local d = core.decide(t)
    assert.are.equal(0, runs.n)
    assert.are.equal("auth", d.kind)
  end)

  it("http: the client's options and a request's fields are its own", function()
    local o, oruns = hostile { user_agent = "ua/1" }
    local http = core.http(o)
    assert.are.equal(0, oruns.n)
    local r, rruns = hostile { method = "GET" }
    assert.has_error(function() http:start(r) end, "kling.http: field 'url' must be an http:// or https:// URL")
    assert.are.equal(0, rruns.n)
    http:close()
  end)
end)
