-- The query parameters a gateway route takes: the ones it knows, nothing else. A parameter a
-- route does not read would be dropped unseen (a misspelt ?pagenum= would give page 1; a
-- ?callback_url= on a create, a ?limit= on a top-up would look taken), so it is refused by name.
local validate = require "kling.validate"

local M = {}

-- unknown(known) -> nil | name, message: the first parameter of this request not in known (a
-- list of names, empty for a route that takes none), its name cut to 64 bytes, and why.
function M.unknown(known)
  local query = ngx.var.args
  if not query or query == "" then
    return nil
  end
  local allowed = {}
  for _, k in ipairs(known) do
    allowed[k] = true
  end
  for part in (query .. "&"):gmatch("([^&]*)&") do -- an empty part ("?&") is a parameter named ""
    local name = ngx.unescape_uri(part:match("^([^=]*)")):sub(1, 64)
    if not allowed[name] then
      name = validate.brief(name ~= "" and name or "(empty)", 64)
      if #known == 0 then
        return name, name .. ": this route takes no query parameters"
      end
      local near = validate.closest(name, known)
      return name, name .. ": is not a query parameter of this route ("
        .. (near and ("did you mean " .. near .. "?") or ("known: " .. table.concat(known, ", "))) .. ")"
    end
  end
  return nil
end

-- whole(args, name, default, max) -> n | nil, message: a whole-number parameter from 1 to max,
-- given once (default when absent); the message names it and says what it got: a value
-- repeated, one in hex or with an exponent, or none (?count).
function M.whole(args, name, default, max)
  local v = args[name]
  if v == nil then
    return default
  end
  local n = type(v) == "string" and v:match("^%d+$") and tonumber(v)
  if not n or n < 1 or n > max then
    local got = type(v) == "table" and "given more than once"
      or type(v) == "string" and ("got " .. validate.brief(v, 40)) or "given without a value"
    return nil, name .. ": must be a whole number from 1 to " .. max .. ", given once (" .. got .. ")"
  end
  return n
end

return M
