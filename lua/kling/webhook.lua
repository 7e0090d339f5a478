--- Callbacks (webhook POSTs) of any provider as canonical task fields.
-- Callbacks (webhook POSTs) of any provider as canonical tasks: the Standard Webhooks
-- signature checked in C (core.webhook_verify: constant time, +-tolerance, several v1,
-- signatures during key rotation) when a secret is given, then the raw body parsed by the
-- provider file's parse_callback (official: the bare task object). The engine's deliver()
-- goes through here too (kling.engine.callback).
-- @module kling.webhook
local core = require "kling.core"
local json = require "kling.json"
local errors = require "kling.errors"
local providers = require "kling.providers"
local validate = require "kling.validate"

local M = {}

--- How far (seconds) a callback's timestamp may be from now.
M.TOLERANCE_S = 300

-- A header by lowercase name from a table with any spelling; the first value of a list
-- (ngx.req.get_headers gives one for a repeated header).
local function header(headers, name)
  local v = headers[name]
  if v == nil then
    for k, x in pairs(headers) do
      if type(k) == "string" and k:lower() == name then
        v = x
        break
      end
    end
  end
  if type(v) == "table" then
    v = v[1]
  end
  return type(v) == "string" and v or nil
end
--- A header by lowercase name, whatever its spelling in the table.
---@param headers table
---@param name string lowercase
---@return string|nil value
-- @function header
M.header = header

local function auth_error(provider, msg)
  return errors.new { kind = "auth", provider = provider, retryable = false, message = "callback: " .. msg }
end

--- Whether callbacks may be taken at all: only verified ones (a webhook secret is set), unless
-- whoever takes them opted in to unverified ones by name (`insecure_callbacks = true`). An
-- unsigned callback can say anything (a forged "failed" releases a hold the provider will bill).
-- The one rule for every intake: the engine's deliver() and the gateway's callback location.
---@param secret string|nil the webhook secret
---@param insecure boolean|nil insecure_callbacks
---@return boolean taken
function M.takes(secret, insecure)
  return secret ~= nil or insecure == true
end

--- Why a webhook secret cannot sign or verify a callback, or nil: the C core's rule (what
-- signing and verifying would raise on), a non-empty string whose rest after whsec_ is the key
-- in base64. The one rule of the engine's webhook_secret (checked when kling.new makes the
-- client), the gateway config's secrets and `kling sim start --webhook-secret`.
---@param s any
---@return string|nil problem
function M.secret_problem(s)
  if type(s) ~= "string" or s == "" then
    return "must be a non-empty string: whsec_ and the key in base64, or another key used as it is (got "
      .. (s == "" and "an empty string" or validate.type_of(s)) .. ")"
  elseif not pcall(core.webhook_sign, { secret = s, id = "x", timestamp = 0, body = "" }) then
    return "after whsec_ must come the key in base64 (the Standard Webhooks form); a key without the whsec_ prefix "
      .. "is used as it is"
  end
  return nil
end

--- The refusal of a callback that M.takes refuses (kind `auth`, field `webhook_secret`).
---@param provider string
---@param where string how the caller sets them, e.g. "kling.engine.new{webhook_secret =}"
---@return kling.Error
function M.unverifiable(provider, where)
  local e = auth_error(provider, "refused: no webhook_secret to verify it with (" .. where .. "); an "
    .. "unsigned callback can say anything. insecure_callbacks = true takes callbacks unverified")
  e.field = "webhook_secret"
  return e
end

--- Checks a Standard Webhooks signature (in C).
-- verify(provider_name, secret, body, headers, now_s, tolerance_s) -> true | nil, err
---@param provider string
---@param secret string whsec_...
---@param body string the raw body
---@param headers table
---@param now_s? number
---@param tolerance_s? number (300)
---@return boolean|nil ok
---@return kling.Error|nil err kind `auth`
function M.verify(provider, secret, body, headers, now_s, tolerance_s)
  local id, ts = header(headers, "webhook-id"), header(headers, "webhook-timestamp")
  local sig = header(headers, "webhook-signature")
  if not (id and ts and sig) then
    return nil, auth_error(provider, "unsigned: webhook-id, webhook-timestamp and webhook-signature are required "
      .. "when a webhook secret is set")
  end
  local ok, why = core.webhook_verify { secret = secret, id = id, timestamp = ts, signature = sig, body = body,
    now_s = now_s or core.wall_s(), tolerance_s = tolerance_s or M.TOLERANCE_S }
  if not ok then
    return nil, auth_error(provider, "signature refused: " .. tostring(why))
  end
  return true
end

local function protocol(provider, msg)
  return errors.new { kind = "protocol", provider = provider.name, retryable = false, message = "callback: " .. msg }
end

--- A callback body as canonical task fields (no signature check).
-- decode(provider, body) -> canonical task fields | nil, err. The provider's parse_callback
-- when it has one; else the body as JSON, the provider's envelope tolerated around a task.
---@param provider table a provider (kling.providers.get)
---@param body string
---@return table|nil fields
---@return kling.Error|nil err kind `protocol`
function M.decode(provider, body)
  if provider.parse_callback then
    local t, perr = provider.parse_callback(body)
    if not t then
      return nil, protocol(provider, tostring(perr))
    end
    return t
  end
  local doc, derr = json.decode_answer(body)
  if type(doc) ~= "table" then
    return nil, protocol(provider, "body is not a JSON object" .. (derr and (": " .. derr) or ""))
  end
  local data = provider.unwrap(doc, 200)
  if type(data) ~= "table" then
    data = doc
  end
  local t, perr = provider.parse_task(data)
  if not t then
    return nil, protocol(provider, perr)
  end
  return t
end

local PARSE_OPTIONS = { secret = true, now_s = true, tolerance_s = true }

--- Verifies and reads a callback POST.
-- parse(provider_name, raw_body, headers, {secret =, now_s =, tolerance_s =})
-- -> canonical task fields | nil, err. With a secret, an unsigned, tampered, stale or
-- wrongly signed callback is refused (kind "auth") before its body is read. raw_body must be
-- the bytes as received (the signature covers them exactly). An unknown option raises, naming
-- the closest known one.
---@param provider_name string "kling", "evolink", ...
---@param raw_body string the body as received
---@param headers? table the request headers
---@param opts? {secret: string, now_s: number, tolerance_s: number}
---@return table|nil fields canonical task fields (id, status, videos, ...)
---@return kling.Error|nil err kind `auth` (unsigned, tampered, stale) or `protocol`
function M.parse(provider_name, raw_body, headers, opts)
  if type(raw_body) ~= "string" then
    errors.misuse("webhook.parse", "raw_body must be the request body as received (a string)")
  end
  headers = headers or {}
  errors.check_arg("webhook.parse", 3, headers, "table")
  opts = opts or {}
  errors.check_arg("webhook.parse", 4, opts, "table")
  -- {secert = ...} would otherwise read as no secret: every forged callback accepted.
  validate.options("webhook.parse", opts, PARSE_OPTIONS)
  -- Checked here, whatever the callback holds: they raised from inside kling.core only when a
  -- callback came signed, so a bad value passed every test made with unsigned ones.
  if opts.now_s ~= nil and not (validate.is_whole(opts.now_s) and opts.now_s >= 0) then
    errors.misuse("webhook.parse", "now_s must be a whole number of seconds since the epoch (got "
      .. validate.got(opts.now_s) .. ")")
  end
  if opts.tolerance_s ~= nil and not (validate.is_whole(opts.tolerance_s) and opts.tolerance_s >= 0
    and opts.tolerance_s <= 2147483647) then
    errors.misuse("webhook.parse", "tolerance_s must be a whole number of seconds from 0 (got "
      .. validate.got(opts.tolerance_s) .. ")")
  end
  local provider, perr = providers.get(provider_name)
  if not provider then
    return nil, perr
  end
  if opts.secret ~= nil then
    local ok, verr = M.verify(provider.name, opts.secret, raw_body, headers, opts.now_s, opts.tolerance_s)
    if not ok then
      return nil, verr
    end
  end
  return M.decode(provider, raw_body)
end

return M
