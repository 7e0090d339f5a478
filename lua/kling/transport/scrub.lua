--- A driver whose answers never carry this client's own credentials: a provider (or anything
-- between) that echoes the key or token back ("invalid key <key>", a 401 quoting the
-- Authorization header) had it copied into errors, task messages, `task.raw`, journals and
-- reports. Every answer body and transport message is passed through the auth's scrub (in C:
-- the keys never reach Lua to be compared), on the blocking seam (request) and the engine's
-- (start's completion) alike; everything else passes through to the driver.
-- @module kling.transport.scrub
local M = {}

local function scrub_result(auth, res)
  if type(res) == "table" then
    if type(res.body) == "string" and res.body ~= "" then
      res.body = auth:scrub(res.body)
    end
    if type(res.message) == "string" then
      res.message = auth:scrub(res.message)
    end
  end
  return res
end

--- Wraps a driver (internal).
---@param driver table a driver (kling.driver.curl, kling.resty.driver, or one of their shape)
---@param auth userdata the client's kling.core auth
---@return table driver the wrapped driver (`inner` is the driver)
function M.wrap(driver, auth)
  local w = setmetatable({ inner = driver }, {
    -- a driver's other methods, bound to it once (not a closure made at each call)
    __index = function(self, k)
      local v = driver[k]
      if type(v) == "function" then
        local bound = function(_, ...)
          return v(driver, ...)
        end
        rawset(self, k, bound)
        return bound
      end
      return v
    end,
  })
  function w.request(_, req)
    local res, err = driver:request(req)
    return scrub_result(auth, res), err
  end
  if type(driver.start) == "function" then
    function w.start(_, req, done, arg)
      return driver:start(req, function(a, res)
        return done(a, scrub_result(auth, res))
      end, arg)
    end
  end
  return w
end

return M
