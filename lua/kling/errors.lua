-- Errors that callers handle are returned as `nil, err`; err is one of these tables.
-- Misuse of the API (wrong argument types) raises instead (errors.misuse).
local M = {}

-- Every kind a returned error can have, and whether that kind can be retried in general
-- (each error also carries its own `retryable`, which is what callers should read).
M.kinds = {
  validation = "the request breaks a documented rule; fix the named field",
  auth = "the credentials were refused",
  rate_limited = "too many requests or parallel tasks; slow down and retry",
  quota = "the account cannot pay (arrears, resource pack used up): retrying will not help",
  content_policy = "the content was refused by the provider's policy",
  not_found = "no such task or resource",
  server = "the provider failed",
  network = "the connection failed",
  timeout = "a deadline passed",
  protocol = "the provider answered something this module cannot read",
  budget = "the request would pass the budget",
  unpriced = "no price is known for the request",
  cancelled = "the task was cancelled",
}

local Error = {}
Error.__index = Error
Error.__name = "kling.error"

function Error.__tostring(e)
  local parts = { "kling: ", e.kind }
  local detail = {}
  if e.code ~= nil then
    detail[#detail + 1] = "code " .. tostring(e.code)
  end
  if e.http_status then
    detail[#detail + 1] = "HTTP " .. tostring(e.http_status)
  end
  if e.provider then
    detail[#detail + 1] = e.provider
  end
  if #detail > 0 then
    parts[#parts + 1] = " (" .. table.concat(detail, ", ") .. ")"
  end
  parts[#parts + 1] = ": "
  if e.field then
    parts[#parts + 1] = e.field .. ": "
  end
  parts[#parts + 1] = e.message or M.kinds[e.kind] or "error"
  if e.request_id then
    parts[#parts + 1] = " [request_id " .. tostring(e.request_id) .. "]"
  end
  return table.concat(parts)
end

-- new{kind=, message=, code=, http_status=, request_id=, retryable=, field=, provider=, ...}
function M.new(t)
  assert(M.kinds[t.kind], "kling.errors: unknown error kind " .. tostring(t.kind))
  if t.retryable == nil then
    t.retryable = false
  end
  return setmetatable(t, Error)
end

function M.validation(field, message, provider)
  return M.new { kind = "validation", field = field, message = message, provider = provider }
end

-- A feature the provider lacks is a validation error naming the provider and the feature:
-- it is never silently dropped.
function M.unsupported(provider, feature, detail)
  return M.new {
    kind = "validation", provider = provider, field = feature,
    message = "not supported by provider '" .. tostring(provider) .. "'" .. (detail and (": " .. detail) or ""),
  }
end

function M.is(err, kind)
  return getmetatable(err) == Error and (kind == nil or err.kind == kind)
end

-- Raises for programming errors (bad argument types), naming the function and argument.
function M.misuse(fn, what)
  error("kling." .. fn .. ": " .. what, 3)
end

function M.check_arg(fn, n, value, want)
  if type(value) ~= want then
    error(string.format("kling.%s: bad argument #%d (%s expected, got %s)", fn, n, want, type(value)), 3)
  end
end

return M
