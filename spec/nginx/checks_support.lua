-- luacheck: read globals ngx
-- What the checks that run inside nginx share: env() is what the test wrote for them (the
-- simulator's URLs and keys, fixture ports: env.json in the nginx prefix, read once per
-- worker); sim(method, path, body) calls the simulator's admin API; line(ok, name, detail)
-- prints one "ok - name" / "not ok - name: why" line, which the test counts.
local json = require "kling.json"
local http = require "kling.resty.http"

local M = {}

local env
function M.env()
  if not env then
    local f = assert(io.open(ngx.config.prefix() .. "env.json", "rb"))
    env = assert(json.decode(f:read("*a")))
    f:close()
  end
  return env
end

function M.sim(method, path, body)
  local res = http.request { method = method, url = M.env().http .. path,
    headers = { ["content-type"] = "application/json" }, body = body and json.encode(body) or nil }
  assert(res.ok and res.status < 300, "sim admin " .. path .. ": " .. tostring(res.message or res.body))
  return json.decode(res.body)
end

function M.line(ok, name, detail)
  ngx.say((ok and "ok - " or "not ok - ") .. name .. ((not ok and detail ~= nil) and (": " .. tostring(detail)) or ""))
end

return M
