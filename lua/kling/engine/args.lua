-- Argument checks of the engine's options: misuse raises, naming the function and the rule.
local errors = require "kling.errors"
local validate = require "kling.validate"

local M = {}

-- Seconds (a number) as integer milliseconds; nil gives default. What a time is and how it
-- becomes milliseconds (a positive time under half a millisecond is 1 ms) is kling.validate's
-- decision (seconds_problem, seconds_ms), as for kling.new's and task:wait's times. With
-- allow_zero, 0 stays 0 (a progress interval of "every event", a deadline of "now").
function M.ms(fn, name, v, default, allow_zero)
  if v == nil then
    return default
  end
  if allow_zero and v == 0 then
    return 0
  end
  local problem = M.ms_problem(v, allow_zero)
  if problem then
    errors.misuse(fn, name .. " " .. problem)
  end
  return validate.seconds_ms(v)
end

-- Why v is not such a time (kling.validate.seconds_problem; allow_zero takes 0 too), or nil.
function M.ms_problem(v, allow_zero)
  if allow_zero and v == 0 then
    return nil
  end
  local problem = validate.seconds_problem(v)
  return problem and problem .. (allow_zero and "; or 0" or "")
end

-- A whole number in 1..max; nil gives default.
function M.whole(fn, name, v, default, max)
  if v == nil then
    return default
  end
  local problem = M.whole_problem(v, max)
  if problem then
    errors.misuse(fn, name .. " " .. problem)
  end
  return math.floor(v)
end

-- Why v is not a whole number in 1..max, or nil.
function M.whole_problem(v, max)
  if type(v) ~= "number" or v ~= math.floor(v) or v < 1 or v > max then
    return "must be a whole number from 1 to " .. max
  end
  return nil
end

-- true or false; nil gives default.
function M.flag(fn, name, v, default)
  if v == nil then
    return default
  end
  if type(v) ~= "boolean" then
    errors.misuse(fn, name .. " " .. M.FLAG_PROBLEM)
  end
  return v
end

M.FLAG_PROBLEM = "must be true or false"

return M
