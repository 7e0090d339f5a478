-- Argument checks of the engine's options: misuse raises, naming the function and the rule.
local errors = require "kling.errors"
local validate = require "kling.validate"

local M = {}

-- Seconds (a number) as integer milliseconds; nil gives default.
function M.ms(fn, name, v, default, allow_zero)
  if v == nil then
    return default
  end
  if type(v) ~= "number" or v ~= v or v < 0 or (v == 0 and not allow_zero) or v > validate.MAX_SECONDS then
    errors.misuse(fn, name .. " must be a positive number of seconds (at most " .. validate.MAX_SECONDS .. ")")
  end
  return math.floor(v * 1000 + 0.5)
end

-- A whole number in 1..max; nil gives default.
function M.whole(fn, name, v, default, max)
  if v == nil then
    return default
  end
  if type(v) ~= "number" or v ~= math.floor(v) or v < 1 or v > max then
    errors.misuse(fn, name .. " must be a whole number from 1 to " .. max)
  end
  return math.floor(v)
end

-- true or false; nil gives default.
function M.flag(fn, name, v, default)
  if v == nil then
    return default
  end
  if type(v) ~= "boolean" then
    errors.misuse(fn, name .. " must be true or false")
  end
  return v
end

return M
