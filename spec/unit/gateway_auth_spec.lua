-- Issue 12's speed work: a client's JWT is verified once per worker and served from its cache
-- until it expires; a token whose account's secret changed, or that expired, is checked again.
local core = require "kling.core"
local auth = require "kling.gateway.auth"

describe("kling.gateway.auth", function()
  local function accounts(list)
    local by_access, by_key = {}, {}
    for _, a in ipairs(list) do
      if a.access_key then
        by_access[a.access_key] = a
      end
      if a.api_key then
        by_key[a.api_key] = a
      end
    end
    return {
      by_access = function(_, ak)
        return by_access[ak]
      end,
      by_key = function(_, k)
        return by_key[k]
      end,
    }
  end

  it("issue 12.5: a verified JWT is served from the worker's cache until it expires", function()
    local bob = { name = "bob", access_key = "ak-bob", secret_key = "sk-bob" }
    local accts = accounts { bob }
    local cache = auth.cache()
    local now = 1796300000
    local token = core.jwt_hs256("ak-bob", "sk-bob", now, 1800)
    local a = assert(auth.account(accts, "Bearer " .. token, now, cache))
    assert.equal("bob", a.name)
    assert.is_table(cache.tokens[token]) -- verified once, kept
    -- A hit does not verify again: a verify would decode the token, this one cannot be decoded.
    cache.tokens["x.y.z"] = cache.tokens[token]
    assert.equal("bob", assert(auth.account(accts, "Bearer x.y.z", now + 10, cache)).name)
    -- Expired: refused (1004) and dropped from the cache.
    local _, err = auth.account(accts, "Bearer " .. token, now + 4000, cache)
    assert.equal(1004, err.code)
    assert.is_nil(cache.tokens[token])
  end)

  it("a JWT valid for more than a day is refused (1002, naming exp): a leaked one would be a key", function()
    local bob = { name = "bob", access_key = "ak-bob", secret_key = "sk-bob" }
    local accts = accounts { bob }
    local cache = auth.cache()
    local now = 1796300000
    local forever = core.jwt_hs256("ak-bob", "sk-bob", now, 10 * 365 * 86400)
    local a, err = auth.account(accts, "Bearer " .. forever, now, cache)
    assert.is_nil(a)
    assert.equal(1002, err.code)
    assert.matches("exp", err.message, 1, true)
    assert.is_nil(cache.tokens[forever])
    -- no exp, or one that is not a number: invalid (1002, naming exp), not "expired"
    local function signed(claims)
      local h = core.b64url_encode('{"alg":"HS256","typ":"JWT"}')
      local p = core.b64url_encode(claims)
      return h .. "." .. p .. "." .. core.b64url_encode(core.hmac_sha256("sk-bob", h .. "." .. p))
    end
    for _, claims in ipairs { '{"iss":"ak-bob"}', '{"iss":"ak-bob","exp":"1796301800"}' } do
      a, err = auth.account(accts, "Bearer " .. signed(claims), now, cache)
      assert.is_nil(a)
      assert.are.equal(1002, err.code)
      assert.matches("no exp", err.message, 1, true)
    end
    local day = core.jwt_hs256("ak-bob", "sk-bob", now, auth.MAX_LIFETIME_S)
    assert.equal("bob", assert(auth.account(accts, "Bearer " .. day, now, cache)).name)
  end)

  it("a JWT that gives a claim twice is refused (1002, naming it): another reader may take the other", function()
    local bob = { name = "bob", access_key = "ak-bob", secret_key = "sk-bob" }
    local now = 1796300000
    local function signed(header, claims)
      local h, p = core.b64url_encode(header), core.b64url_encode(claims)
      return h .. "." .. p .. "." .. core.b64url_encode(core.hmac_sha256("sk-bob", h .. "." .. p))
    end
    local ok = '{"alg":"HS256","typ":"JWT"}'
    for _, t in ipairs {
      { ok, '{"iss":"ak-bob","exp":1796300100,"exp":1796386000}', "claims: exp: given twice" },
      { ok, '{"iss":"ak-bob","\\u0069ss":"ak-bob","exp":1796300100}', "claims: iss: given twice" },
      { '{"alg":"none","alg":"HS256"}', '{"iss":"ak-bob","exp":1796300100}', "header: alg: given twice" },
    } do
      local a, err = auth.account(accounts { bob }, "Bearer " .. signed(t[1], t[2]), now, auth.cache())
      assert.is_nil(a)
      assert.are.equal(1002, err.code)
      assert.matches(t[3], err.message, 1, true)
    end
  end)

  it("issue 12.5: a cached JWT is checked again when its account's secret changed", function()
    local bob = { name = "bob", access_key = "ak-bob", secret_key = "sk-bob" }
    local accts = accounts { bob }
    local cache = auth.cache()
    local now = 1796300000
    local token = core.jwt_hs256("ak-bob", "sk-bob", now, 1800)
    assert(auth.account(accts, "Bearer " .. token, now, cache))
    bob.secret_key = "sk-bob-rotated"
    local _, err = auth.account(accts, "Bearer " .. token, now + 1, cache)
    assert.equal(1002, err.code) -- bad signature under the new secret
    assert.is_nil(cache.tokens[token])
  end)

  it("issue 12.5: refused tokens are not kept, and a full cache starts over", function()
    local bob = { name = "bob", access_key = "ak-bob", secret_key = "sk-bob" }
    local accts = accounts { bob }
    local cache = auth.cache(2)
    local now = 1796300000
    local bad = core.jwt_hs256("ak-bob", "not-the-secret", now, 1800)
    assert.is_nil((auth.account(accts, "Bearer " .. bad, now, cache)))
    assert.is_nil(cache.tokens[bad])
    local early = core.jwt_hs256("ak-bob", "sk-bob", now + 600, 1800) -- nbf in the future
    local _, err = auth.account(accts, "Bearer " .. early, now, cache)
    assert.equal(1003, err.code)
    assert.is_nil(cache.tokens[early])
    for i = 1, 3 do
      assert(auth.account(accts, "Bearer " .. core.jwt_hs256("ak-bob", "sk-bob", now + i, 1800), now + i, cache))
    end
    assert.is_true(cache.n <= 2)
  end)
end)
