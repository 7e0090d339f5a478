-- A FIFO of task records over an array with a moving head: O(1) push and pop, and it starts
-- again at index 1 whenever it drains, so a long run does not leave a sparse array behind.
local M = {}

function M.new()
  return { h = 1, t = 0 }
end

function M.push(q, rec)
  local t = q.t + 1
  q.t = t
  q[t] = rec
end

function M.pop(q)
  local h = q.h
  if h > q.t then
    return nil
  end
  local rec = q[h]
  q[h] = nil
  if h == q.t then
    q.h, q.t = 1, 0
  else
    q.h = h + 1
  end
  return rec
end

function M.size(q)
  return q.t - q.h + 1
end

return M
