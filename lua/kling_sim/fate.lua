-- A task's fate and its place in time, both pure (no ngx): prompt markers decide how a task
-- ends, and its phase is computed from timestamps on every read, so no timer is needed and
-- any worker (or a reloaded nginx) sees the same state.
local M = {}

M.DEFAULT_FAIL_MSG = "Failure to pass the risk control system"

-- Share of a task's total time spent "submitted" before it turns "processing".
M.SUBMITTED_SHARE = 0.2

-- parse(prompt) -> fate, seconds | nil, message
-- fate = { outcome = "succeed" | "failed" | "status", status = NAME, message = text,
--   callbacks = {[status] = true} | nil (only these statuses' callbacks are sent) }
-- Markers: [sim:fail], [sim:fail=message], [sim:status=NAME], [sim:seconds=N],
-- [sim:callbacks=STATUS,...] (the callbacks of the other statuses are lost on the way: a
-- client must find those changes by polling).
function M.parse(prompt)
  local fate, seconds, only = { outcome = "succeed" }, nil, nil
  if type(prompt) ~= "string" then
    return fate, nil
  end
  for body in prompt:gmatch("%[sim:([^%]]*)%]") do
    local key, value = body:match("^([%a_]+)=(.*)$")
    key = key or body
    if key == "fail" then
      fate = { outcome = "failed", message = (value and value ~= "") and value or M.DEFAULT_FAIL_MSG }
    elseif key == "status" then
      if not value or not value:match("^[%w_%-]+$") then
        return nil, "prompt marker [sim:status=NAME]: NAME must be letters, digits, '_' or '-'"
      end
      fate = { outcome = "status", status = value }
    elseif key == "seconds" then
      local n = tonumber(value)
      if not n or n < 0 or n > 86400 then
        return nil, "prompt marker [sim:seconds=N]: N must be a number of seconds in 0..86400"
      end
      seconds = n
    elseif key == "callbacks" then
      only = {}
      for name in (value or ""):gmatch("[^,]+") do
        if not name:match("^[%a_]+$") then
          return nil, "prompt marker [sim:callbacks=STATUS,...]: each STATUS must be a task status name"
        end
        only[name] = true
      end
    else
      return nil, "unknown prompt marker [sim:" .. body .. "]: use fail, status=NAME, seconds=N or callbacks=STATUS,..."
    end
  end
  fate.callbacks = only
  return fate, seconds
end

-- Where a task stands at now_ms: phase "submitted" | "processing" | "done", and the time of
-- its last change (updated_at). A task with total_ms 0 is done the moment it exists.
function M.phase(created_ms, total_ms, now_ms)
  local ends = created_ms + total_ms
  if now_ms >= ends then
    return "done", ends
  end
  local processing = created_ms + math.floor(total_ms * M.SUBMITTED_SHARE)
  if now_ms >= processing and processing > created_ms then
    return "processing", processing
  end
  return "submitted", created_ms
end

return M
