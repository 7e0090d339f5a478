-- Responses as plain tables {status, headers, body} until the last moment, so a fault in
-- phase "after" can replace or truncate what the handler produced.
-- luacheck: ignore 122 (ngx.ctx, ngx.status and ngx.header are meant to be written)
local json = require "kling.json"

local M = {}

function M.json(status, value, headers)
  local h = { ["Content-Type"] = "application/json" }
  for k, v in pairs(headers or {}) do
    h[k] = v
  end
  return { status = status, headers = h, body = assert(json.encode(value)) }
end

function M.send(res)
  ngx.status = res.status
  for k, v in pairs(res.headers or {}) do
    ngx.header[k] = v
  end
  if res.body and res.body ~= "" then
    ngx.print(res.body)
  end
end

return M
