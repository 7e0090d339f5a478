-- What a function writes to io.stderr, captured: io.stderr is swapped for a buffer while it
-- runs (and put back even when it raises).
--
--   local ok, status, text = require("support.stderr").capture(cli.main, { "run", ... })
local M = {}

-- capture(fn, ...) -> ok, the first value fn returned (or its error), what it wrote to stderr
function M.capture(fn, ...)
  -- luacheck: push ignore 122 (io.stderr is swapped for a buffer)
  local real, buf = io.stderr, {}
  io.stderr = { write = function(self, ...)
    for _, x in ipairs { ... } do
      buf[#buf + 1] = x
    end
    return self
  end }
  local ok, value = pcall(fn, ...)
  io.stderr = real
  -- luacheck: pop
  return ok, value, table.concat(buf)
end

return M
