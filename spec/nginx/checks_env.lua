-- luacheck: read globals ngx
-- What a test of nginx wrote for the checks that run inside it (the simulator's URLs and keys,
-- fixture ports): env.json in the nginx prefix, read once per worker.
local json = require "kling.json"

local env
return function()
  if not env then
    local f = assert(io.open(ngx.config.prefix() .. "env.json", "rb"))
    env = assert(json.decode(f:read("*a")))
    f:close()
  end
  return env
end
