-- Who is calling: the gateway's own clients authenticate as they would with Kling, with a
-- Bearer API key or a Bearer JWT (HS256, iss = their access key, signed with their secret
-- key, exp required and at most a day ahead, nbf checked), and are refused with Kling's codes
-- (1001 empty, 1002 invalid, 1003 not yet valid, 1004 expired). A worker keeps the JWTs it
-- verified (cache()) until they expire: a client signs one token and sends it with many
-- requests, each verified once (two base64 and JSON decodes and an HMAC, every request, before).
local core = require "kling.core"
local json = require "kling.json"

local M = {}

M.SKEW_S = 5 -- clients set nbf = now - 5
-- Kling's clients sign tokens for 30 minutes; one valid for years is a second API key that
-- travels in every request (and in any log that keeps headers): refused.
M.MAX_LIFETIME_S = 86400
M.CACHE_MAX = 4096 -- verified tokens kept per worker; a full cache starts over

-- cache([max]) -> a worker's cache of verified tokens (kept in its gateway state)
function M.cache(max)
  return { n = 0, max = max or M.CACHE_MAX, tokens = {} }
end

local function refuse(code, message)
  return nil, { status = 401, code = code, message = message }
end

-- A store that cannot be read now (Redis down) and has never been read for this key: 503, as
-- every other answer of a store away, never "unknown key" (a client takes 1002 for its keys
-- refused for good).
local function unreadable()
  return nil, { status = 503, code = 5001, message = "the gateway cannot read its records now" }
end

local function verify_jwt(accounts, h, p, s, now)
  -- Strict (RFC 7519 4: a claim given twice is refused or the last taken; another reader
  -- of the same token may take the first): {"exp": 1, "exp": 9999999999} is refused.
  local claims, cerr, cdup = json.decode_strict(core.b64url_decode(p) or "")
  local header, herr, hdup = json.decode_strict(core.b64url_decode(h) or "")
  if cdup or hdup then
    return refuse(1002, "Authorization is invalid: the token's " .. (cdup and "claims" or "header") .. ": "
      .. (cdup and cerr or herr))
  end
  if type(claims) ~= "table" or type(header) ~= "table" then
    return refuse(1002, "Authorization is invalid: the token is not a JWT")
  end
  if header.alg ~= "HS256" then
    return refuse(1002, "Authorization is invalid: only HS256 tokens are accepted")
  end
  local acct, aerr
  if type(claims.iss) == "string" then
    acct, aerr = accounts:by_access(claims.iss)
  end
  if not acct and aerr then
    return unreadable()
  elseif not acct then
    return refuse(1002, "Authorization is invalid: unknown access key")
  end
  local want = core.b64url_encode(core.hmac_sha256(acct.secret_key, h .. "." .. p))
  if not core.ct_equal(want, s) then
    return refuse(1002, "Authorization is invalid: bad signature")
  end
  if type(claims.exp) ~= "number" then
    return refuse(1002, "Authorization is invalid: the token has no exp (a number of seconds) among its claims")
  end
  if claims.exp <= now then
    return refuse(1004, "Authorization is expired")
  end
  if claims.exp > now + M.MAX_LIFETIME_S then
    return refuse(1002, string.format("Authorization is invalid: its exp is more than %d s ahead (sign tokens"
      .. " for at most a day, as Kling's clients do for 30 minutes)", M.MAX_LIFETIME_S))
  end
  if type(claims.nbf) == "number" and claims.nbf > now + M.SKEW_S then
    return refuse(1003, "Authorization is not yet valid")
  end
  return acct, claims
end

-- A token verified before, while it is valid and its account's secret is the one it was
-- verified with (a changed secret, or an expired token, is verified again, or refused).
local function cached(cache, accounts, token, now)
  local hit = cache.tokens[token]
  if not hit then
    return nil
  end
  local acct = accounts:by_access(hit.iss)
  if acct and acct.secret_key == hit.secret and hit.exp > now then
    return acct
  end
  cache.tokens[token] = nil
  return nil
end

local function keep(cache, token, acct, claims)
  if cache.n >= cache.max then
    cache.tokens, cache.n = {}, 0
  end
  cache.tokens[token], cache.n = { iss = claims.iss, secret = acct.secret_key, exp = claims.exp }, cache.n + 1
end

-- The three base64url parts of a token the gateway reads as a JWT (header.claims.signature),
-- or nil: a Bearer value of that shape is never looked up as an API key.
function M.jwt_parts(token)
  return token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
end

-- account(accounts (kling.gateway.accounts), authorization_header, now_s [, cache]) ->
-- account | nil, {status, code, message}. cache: the worker's (cache()), for JWTs.
function M.account(accounts, value, now, cache)
  if type(value) == "table" then
    value = value[1]
  end
  if type(value) ~= "string" or value == "" then
    return refuse(1001, "Authorization is empty")
  end
  local token = value:match("^[Bb]earer%s+(%S+)%s*$")
  if not token then
    return refuse(1002, "Authorization is invalid: a Bearer token is expected")
  end
  local h, p, s = M.jwt_parts(token)
  if h then
    local acct = cache and cached(cache, accounts, token, now)
    if acct then
      return acct
    end
    local claims
    acct, claims = verify_jwt(accounts, h, p, s, now)
    if not acct then
      return nil, claims -- refused: claims is the refusal
    end
    if cache then
      keep(cache, token, acct, claims)
    end
    return acct
  end
  local acct, aerr = accounts:by_key(token)
  if not acct and aerr then
    return unreadable()
  elseif not acct then
    return refuse(1002, "Authorization is invalid: unknown API key")
  end
  return acct
end

return M
