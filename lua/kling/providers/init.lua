-- The provider registry: one Lua file per provider under kling/providers/.
local errors = require "kling.errors"

local M = {}

-- Names are fixed; each maps to lua/kling/providers/<name>.lua.
M.names = { "kling", "apiinone", "apimodels", "evolink", "compat" }

local known = {}
for _, name in ipairs(M.names) do
  known[name] = true
end

-- Returns the provider module, or nil and a validation error.
function M.get(name)
  name = name or "kling"
  if type(name) ~= "string" or not known[name] then
    return nil, errors.validation("provider", "must be one of " .. table.concat(M.names, ", ")
      .. " (got " .. tostring(name) .. ")")
  end
  local ok, mod = pcall(require, "kling.providers." .. name)
  if not ok then
    return nil, errors.validation("provider", "provider '" .. name .. "' is not available: " .. tostring(mod))
  end
  return mod
end

return M
