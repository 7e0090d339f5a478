-- A provider's callback (webhook POST) as a canonical task: the Standard Webhooks signature
-- checked in C when a secret is set, then the body parsed by the provider file. The official
-- API posts the bare task object; a provider whose callbacks differ supplies
-- parse_callback(raw_body) -> fields | nil, message.
local core = require "kling.core"
local json = require "kling.json"
local errors = require "kling.errors"

local M = {}

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
M.header = header

local function auth_error(provider, msg)
  return errors.new { kind = "auth", provider = provider, retryable = false, message = "callback: " .. msg }
end

-- verify(secret, body, headers, now_s, tolerance_s) -> true | nil, err
function M.verify(provider, secret, body, headers, now_s, tolerance_s)
  local id, ts = header(headers, "webhook-id"), header(headers, "webhook-timestamp")
  local sig = header(headers, "webhook-signature")
  if not (id and ts and sig) then
    return nil, auth_error(provider, "unsigned: webhook-id, webhook-timestamp and webhook-signature are required "
      .. "when a webhook secret is set")
  end
  local ok, why = core.webhook_verify { secret = secret, id = id, timestamp = ts, signature = sig, body = body,
    now_s = now_s, tolerance_s = tolerance_s }
  if not ok then
    return nil, auth_error(provider, "signature refused: " .. tostring(why))
  end
  return true
end

local function protocol(provider, msg)
  return errors.new { kind = "protocol", provider = provider.name, retryable = false, message = "callback: " .. msg }
end

-- parse(provider, body) -> canonical task fields | nil, err
function M.parse(provider, body)
  if provider.parse_callback then
    local t, perr = provider.parse_callback(body)
    if not t then
      return nil, protocol(provider, tostring(perr))
    end
    return t
  end
  local doc, derr = json.decode(body)
  if type(doc) ~= "table" then
    return nil, protocol(provider, "body is not a JSON object" .. (derr and (": " .. derr) or ""))
  end
  -- Some senders wrap the task in the provider's envelope; the official one does not.
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

return M
