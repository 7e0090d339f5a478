-- The simulator's clock: wall time in ms plus an offset that tests may push forward
-- (POST /_sim/clock), so a task's end can be reached without waiting. The offset lives in
-- shared memory, so every worker sees the same time.
local M = {}

local KEY = "clock:offset_ms"

local function state()
  return ngx.shared.kling_sim_state
end

function M.offset_ms()
  return state():get(KEY) or 0
end

function M.now_ms()
  ngx.update_time()
  return math.floor(ngx.now() * 1000) + M.offset_ms()
end

-- Moves the clock forward (never back: tasks' timestamps must not run backwards).
function M.advance(ms)
  return state():incr(KEY, math.floor(ms), 0)
end

function M.reset()
  state():delete(KEY)
end

return M
