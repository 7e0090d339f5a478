-- Credentials as the official API checks them: "Authorization: Bearer <JWT>" signed HS256
-- with the secret key (iss = access key, exp and nbf checked), or "Bearer <api key>".
-- HMAC-SHA256 comes from the libcrypto nginx already has loaded, through the LuaJIT FFI.
local ffi = require "ffi"
local bit = require "bit"
local json = require "kling.json"

local M = {}

ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len, const unsigned char *d, size_t n,
                    unsigned char *md, unsigned int *md_len);
]]

-- nginx links libcrypto, so its symbols are normally global; else load it by name.
local crypto
for _, name in ipairs { false, "libcrypto.so.3", "crypto" } do
  local ok, lib = pcall(function()
    local l = name and ffi.load(name) or ffi.C
    local _ = l.HMAC and l.EVP_sha256
    return l
  end)
  if ok then
    crypto = lib
    break
  end
end

function M.hmac_sha256(key, msg)
  if not crypto then
    return nil, "libcrypto is not available to the FFI"
  end
  local md = ffi.new("unsigned char[32]")
  local len = ffi.new("unsigned int[1]")
  if crypto.HMAC(crypto.EVP_sha256(), key, #key, msg, #msg, md, len) == nil then
    return nil, "HMAC failed"
  end
  return ffi.string(md, len[0])
end

-- Constant time in the length of b (the secret side): no early exit on a mismatch.
function M.ct_equal(a, b)
  if type(a) ~= "string" or type(b) ~= "string" then
    return false
  end
  local diff = #a == #b and 0 or 1
  for i = 1, #b do
    diff = bit.bor(diff, bit.bxor(a:byte(i) or 0, b:byte(i)))
  end
  return diff == 0
end

function M.b64url_decode(s)
  if type(s) ~= "string" or not s:match("^[%w%-_]*$") or #s % 4 == 1 then
    return nil
  end
  local std = s:gsub("%-", "+"):gsub("_", "/")
  return ngx.decode_base64(std .. string.rep("=", (4 - #std % 4) % 4))
end

-- "Bearer <token>" -> token | nil, "missing" | "malformed"
function M.bearer(header)
  if header == nil or header == "" then
    return nil, "missing"
  end
  if type(header) ~= "string" then -- repeated header
    return nil, "malformed"
  end
  local token = header:match("^[Bb]earer +(%S+)%s*$")
  if not token then
    return nil, "malformed"
  end
  return token
end

local function number_claim(v)
  return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge
end

-- verify_jwt(token, access_key, secret_key, now_s) -> claims | nil, reason
-- reason: "invalid" (not a JWT, wrong alg, bad signature, unknown issuer, missing exp),
-- "not_yet_valid" (nbf in the future), "expired" (now >= exp), "internal".
function M.verify_jwt(token, access_key, secret_key, now_s)
  local h64, p64, s64 = token:match("^([%w%-_]+)%.([%w%-_]+)%.([%w%-_]+)$")
  if not h64 then
    return nil, "invalid"
  end
  local header = json.decode(M.b64url_decode(h64) or "")
  if type(header) ~= "table" or header.alg ~= "HS256" then
    return nil, "invalid"
  end
  local sig = M.b64url_decode(s64)
  local want, err = M.hmac_sha256(secret_key, h64 .. "." .. p64)
  if not want then
    ngx.log(ngx.ERR, "kling sim: ", err)
    return nil, "internal"
  end
  if not sig or not M.ct_equal(sig, want) then
    return nil, "invalid"
  end
  local claims = json.decode(M.b64url_decode(p64) or "")
  if type(claims) ~= "table" or not M.ct_equal(claims.iss, access_key) or not number_claim(claims.exp) then
    return nil, "invalid"
  end
  if claims.nbf ~= nil and (not number_claim(claims.nbf) or now_s < claims.nbf) then
    return nil, number_claim(claims.nbf) and "not_yet_valid" or "invalid"
  end
  if now_s >= claims.exp then
    return nil, "expired"
  end
  return claims
end

-- check(header, keys, now_s) -> kind ("jwt" | "api_key") | nil, reason
-- keys = {access_key, secret_key, api_key}; reason adds "missing" to verify_jwt's reasons.
function M.check(header, keys, now_s)
  local token, why = M.bearer(header)
  if not token then
    return nil, why == "missing" and "missing" or "invalid"
  end
  if keys.api_key and keys.api_key ~= "" and M.ct_equal(token, keys.api_key) then
    return "api_key"
  end
  if keys.access_key and keys.secret_key then
    local claims, reason = M.verify_jwt(token, keys.access_key, keys.secret_key, now_s)
    if not claims then
      return nil, reason
    end
    return "jwt"
  end
  return nil, "invalid"
end

return M
