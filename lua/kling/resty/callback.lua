--- A location that takes a provider's verified callbacks.
-- A location that takes a provider's callbacks (webhook POSTs): the raw body and headers go
-- to kling.webhook.parse, which checks the Standard Webhooks signature in C when a secret is
-- set (unsigned, tampered, stale or foreign callbacks are refused before the body is read)
-- and reads the body with the provider file; the canonical task goes to on_task.
--
--   location = /kling/callback {
--     content_by_lua_block {
--       require("kling.resty.callback").handle { provider = "kling", secret = "whsec_...",
--         on_task = function(task) ... return true end }
--     }
--   }
-- luacheck: ignore 122 (ngx.status and ngx.header are meant to be written)
-- @module kling.resty.callback
local json = require "kling.json"
local validate = require "kling.validate"
local webhook = require "kling.webhook"

-- What handle{} takes; another key is refused by name (a misspelt secret refused every callback
-- as unsigned, saying none was given).
local HANDLE_OPTIONS = { provider = true, secret = true, insecure_callbacks = true, on_task = true, refuse = true,
  tolerance_s = true }

local M = {}

M.MAX_BODY = 8 * 1024 * 1024

local function reply(status, t)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(json.encode(t))
  return ngx.exit(status)
end

--- The request body as received (read from its temp file when nginx spooled it).
-- The request body as received: in memory, or in the temp file nginx spilled it to (a body
-- past client_body_buffer_size); at most max bytes (default MAX_BODY) are taken.
---@param max? integer the most bytes taken (default MAX_BODY)
---@return string|nil body
---@return string|nil err
function M.raw_body(max)
  max = max or M.MAX_BODY
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then
    return body
  end
  local path = ngx.req.get_body_file()
  if not path then
    return ""
  end
  local f, err = io.open(path, "rb")
  if not f then
    return nil, "cannot read the spilled body: " .. tostring(err)
  end
  body = f:read(max + 1)
  f:close()
  if body and #body > max then
    return nil, "body larger than " .. max .. " bytes"
  end
  return body or ""
end

-- The default answer to a refusal: {"error": message}.
local function refused(status, message)
  return reply(status, { error = message })
end

--- Handles a callback POST in a content phase.
-- handle{provider =, secret =, insecure_callbacks =, tolerance_s =, on_task = function(task,
-- raw_body) -> ok, message, refuse = function(status, message)}
-- Answers 200 when on_task took the news, 401 when the signature is refused (or there is no
-- secret to check it with, unless insecure_callbacks = true: kling.webhook.takes), 400 when the
-- body is unreadable, 404/409/503 when on_task says so (ok = nil, message, status), 405 for another
-- method. refuse answers each refusal (default {"error": message}): a gateway answers in its
-- own envelope (kling.gateway's, the official one).
---@param opts table `provider`, `secret`, `insecure_callbacks`, `tolerance_s`, `on_task`, `refuse` (above)
---@return boolean|nil ok
---@return kling.Error|nil err
function M.handle(opts)
  validate.options("resty.callback.handle", opts, HANDLE_OPTIONS)
  -- webhook.secret_problem: the one rule of secrets. An empty one was a secret to handle and
  -- raised from the C core at the first signed callback, unsigned ones refused as unsigned.
  local bad = opts.secret ~= nil and webhook.secret_problem(opts.secret)
  if bad then
    error("kling.resty.callback.handle: secret " .. bad, 2)
  end
  local refuse = opts.refuse or refused
  if ngx.req.get_method() ~= "POST" then
    return refuse(405, "callbacks are POSTed")
  end
  if not webhook.takes(opts.secret, opts.insecure_callbacks) then
    local err = webhook.unverifiable(opts.provider, "handle{secret =}")
    ngx.log(ngx.WARN, "kling callback refused: ", tostring(err))
    return refuse(401, tostring(err))
  end
  local raw, rerr = M.raw_body()
  if not raw then
    return refuse(413, rerr)
  end
  local t, err = webhook.parse(opts.provider, raw, ngx.req.get_headers(100), { secret = opts.secret,
    tolerance_s = opts.tolerance_s })
  if not t then
    ngx.log(ngx.WARN, "kling callback refused: ", tostring(err))
    return refuse(err.kind == "auth" and 401 or 400, tostring(err))
  end
  local ok, msg, status = opts.on_task(t, raw)
  if not ok then
    return refuse(status or 404, msg or "not taken")
  end
  return reply(200, { ok = true })
end

return M
