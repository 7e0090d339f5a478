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

return M
