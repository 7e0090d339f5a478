-- Who is calling: the gateway's own clients authenticate as they would with Kling, with a
-- Bearer API key or a Bearer JWT (HS256, iss = their access key, signed with their secret
-- key, exp/nbf checked), and are refused with Kling's codes (1001 empty, 1002 invalid, 1003
-- not yet valid, 1004 expired).
local core = require "kling.core"
local json = require "kling.json"

local M = {}

M.SKEW_S = 5 -- clients set nbf = now - 5

local function refuse(code, message)
  return nil, { status = 401, code = code, message = message }
end

local function verify_jwt(accounts, h, p, s, now)
  local claims = json.decode(core.b64url_decode(p) or "")
  local header = json.decode(core.b64url_decode(h) or "")
  if type(claims) ~= "table" or type(header) ~= "table" then
    return refuse(1002, "Authorization is invalid: the token is not a JWT")
  end
  if header.alg ~= "HS256" then
    return refuse(1002, "Authorization is invalid: only HS256 tokens are accepted")
  end
  local acct = type(claims.iss) == "string" and accounts:by_access(claims.iss)
  if not acct then
    return refuse(1002, "Authorization is invalid: unknown access key")
  end
  local want = core.b64url_encode(core.hmac_sha256(acct.secret_key, h .. "." .. p))
  if not core.ct_equal(want, s) then
    return refuse(1002, "Authorization is invalid: bad signature")
  end
  if type(claims.exp) ~= "number" or claims.exp <= now then
    return refuse(1004, "Authorization is expired")
  end
  if type(claims.nbf) == "number" and claims.nbf > now + M.SKEW_S then
    return refuse(1003, "Authorization is not yet valid")
  end
  return acct
end

-- account(accounts (kling.gateway.accounts), authorization_header, now_s) -> account | nil,
-- {status, code, message}
function M.account(accounts, value, now)
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
  local h, p, s = token:match("^([%w_-]+)%.([%w_-]+)%.([%w_-]+)$")
  if h then
    return verify_jwt(accounts, h, p, s, now)
  end
  local acct = accounts:by_key(token)
  if not acct then
    return refuse(1002, "Authorization is invalid: unknown API key")
  end
  return acct
end

return M
