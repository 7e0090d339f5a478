-- The dialects this simulator speaks, one module each under kling_sim/dialects/. The first
-- is mounted at "/" (the official API); every dialect is also reachable under "/<name>/",
-- so gateways whose paths collide can each have their own base URL.
local M = { list = {}, by_name = {} }

function M.load(names)
  M.list, M.by_name = {}, {}
  for _, name in ipairs(names) do
    local d = require("kling_sim.dialects." .. name)
    assert(d.name == name, "dialect module kling_sim.dialects." .. name .. " names itself " .. tostring(d.name))
    M.list[#M.list + 1] = d
    M.by_name[name] = d
  end
  assert(#M.list > 0, "kling sim: no dialect to serve")
end

function M.root()
  return M.list[1]
end

return M
