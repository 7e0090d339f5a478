--- Errors: the kinds, the error table and its one-line form.
-- Errors that callers handle are returned as `nil, err`; err is one of these tables.
-- Misuse of the API (wrong argument types) raises instead (errors.misuse).
-- @module kling.errors
local M = {}

--- The error kinds: name -> what it means.
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

--- An error returned as `nil, err`; `tostring(err)` gives one line.
---@class kling.Error
---@field kind string one of `kinds`: validation, auth, rate_limited, quota, content_policy, not_found,
--- server, network, timeout, protocol, budget, unpriced, cancelled
---@field message string what happened
---@field retryable boolean whether the same call may succeed later
---@field code any|nil the provider's business code (Kling 1303, ...)
---@field http_status integer|nil
---@field request_id string|nil the provider's request id
---@field field string|nil the request field a validation error is about
---@field provider string|nil
---@field uncertain boolean|nil a create whose fate is unknown: look it up by external_task_id
---@field external_task_id string|nil
---@field exists boolean|nil client:download with replace = false: a file appeared at the path during the transfer

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

--- Makes an error.
-- new{kind=, message=, code=, http_status=, request_id=, retryable=, field=, provider=, ...}
---@param t table kind (one of `kinds`), message and the other fields
---@return kling.Error
function M.new(t)
  assert(M.kinds[t.kind], "kling.errors: unknown error kind " .. tostring(t.kind))
  if t.retryable == nil then
    t.retryable = false
  end
  return setmetatable(t, Error)
end

--- A validation error naming a field.
---@param field string
---@param message string the rule broken
---@param provider? string
---@return kling.Error
function M.validation(field, message, provider)
  return M.new { kind = "validation", field = field, message = message, provider = provider }
end

--- A validation error for a feature a provider lacks.
-- A feature the provider lacks is a validation error naming the provider and the feature:
-- it is never silently dropped.
---@param provider string
---@param feature string
---@param detail? string
---@return kling.Error
function M.unsupported(provider, feature, detail)
  return M.new {
    kind = "validation", provider = provider, field = feature,
    message = "not supported by provider '" .. tostring(provider) .. "'" .. (detail and (": " .. detail) or ""),
  }
end

--- Whether a value is an error of this module (of a kind).
---@param err any
---@param kind? string
---@return boolean
function M.is(err, kind)
  return getmetatable(err) == Error and (kind == nil or err.kind == kind)
end

--- Whether a raised error is the interpreter's answer to Ctrl-C (SIGINT).
-- lua5.4 and luajit raise "interrupted!" (with the location it struck at) from wherever the
-- program was; code that catches errors to report them passes this one on instead.
---@param e any a value caught by pcall
---@return boolean
function M.interrupted(e)
  return type(e) == "string" and (e == "interrupted!" or e:match(":%d+: interrupted!$") ~= nil)
end

-- The files of this module: "@<root>kling/" (this file's own directory), whatever the root.
local OWN = debug.getinfo(1, "S").source:match("^(@.*kling/)errors%.lua$")

-- The level (for error(), counted from the function that calls this one's caller) of the
-- first Lua function outside this module's files: a misuse is reported at the user's line
-- however deep inside the module the check ran (client:with -> a helper -> misuse).
local function user_level()
  local level = 3 -- 1 here, 2 the raising function (misuse), 3 its caller
  while true do
    local info = debug.getinfo(level, "S")
    if not info then
      return 0 -- no caller outside the module: no location at all
    end
    if info.what ~= "C" and not (OWN and info.source:sub(1, #OWN) == OWN) then
      return level - 1 -- as the raising function counts: one less
    end
    level = level + 1
  end
end

--- Raises a misuse error (internal).
-- Raises for programming errors (bad argument types), naming the function and argument, at
-- the caller's line outside this module (never a kling/*.lua location).
-- @local
---@param fn string
---@param what string
function M.misuse(fn, what)
  error("kling." .. fn .. ": " .. what, user_level())
end

--- Raises unless an argument has a type (internal).
-- @local
---@param fn string
---@param n integer
---@param value any
---@param want string
function M.check_arg(fn, n, value, want)
  if type(value) ~= want then
    error(string.format("kling.%s: bad argument #%d (%s expected, got %s)", fn, n, want, type(value)), user_level())
  end
end

--- Where a list is no sequence 1..n, or nil (internal): a hole (`{a, nil, b}`) or a key that
-- is not an index (`{first = a}`) would end ipairs early or be skipped, dropping items without
-- a word. -> nil | the stray key | nil, the first missing index, the largest index
-- @local
---@param list table
---@return any key a key that is not an index
---@return integer|nil missing the first missing index
---@return integer|nil max the largest index
function M.list_gap(list)
  local n, max = 0, 0
  for k in pairs(list) do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then
      return k
    end
    n = n + 1
    if k > max then
      max = k
    end
  end
  if n ~= max then
    for i = 1, max do
      if list[i] == nil then
        return nil, i, max
      end
    end
  end
  return nil
end

--- Raises unless a list argument is a sequence 1..n (internal), naming the first missing
-- index or the stray key (`list_gap`).
-- @local
---@param fn string
---@param name string the argument's name ("reqs", "tasks")
---@param list table
function M.check_list(fn, name, list)
  local k, i, max = M.list_gap(list)
  if k ~= nil then
    local shown = type(k) == "string" and string.format("%q", k:sub(1, 40)) or tostring(k)
    error(string.format("kling.%s: %s must be a list (indexes 1..n), got the key %s", fn, name, shown),
      user_level())
  elseif i then
    error(string.format("kling.%s: %s[%d] is missing (nil), before %s[%d]: a list has no holes", fn, name, i,
      name, max), user_level())
  end
end

return M
