--- The asynchronous seam of a driver, over a libcurl-style multi handle (`http:start(req)` ->
-- id, `http:wait(ms)` -> finished results, `http:cancel(id)`): what the engine runs on.
--   driver:start(req, done, arg) -> id | nil, msg   the request starts; done(arg, res) is
--                                    called once with its result (the driver's result shape),
--                                    from a later driver:wait, unless it is cancelled first
--   driver:cancel(id)               the request is dropped: its done is never called
--   driver:wait(timeout_ms) -> n | nil, msg   waits at most timeout_ms for requests to finish
--                                    and calls their completions; n: how many ran
--   driver:pending() -> n           requests started and not finished or cancelled
-- An asynchronous driver implements the same four over its own events (inside nginx:
-- kling.resty.multi, light threads over cosockets); the clocks (now_ms, wall_s, sleep_ms) are
-- the driver's too. `install(D)` gives a
-- driver class or table these methods over its `http` field.
-- @module kling.driver.multi
local M = {}

local function completions(self)
  local c = rawget(self, "completions")
  if not c then
    c = { done = {}, arg = {}, n = 0 }
    rawset(self, "completions", c)
  end
  return c
end

function M.start(self, req, done, arg)
  local id, err = self.http:start(req)
  if not id then
    return nil, err
  end
  local c = rawget(self, "completions") or completions(self) -- one call a request, not two
  c.done[id], c.arg[id] = done, arg
  c.n = c.n + 1
  return id
end

function M.cancel(self, id)
  local c = completions(self)
  if c.done[id] then
    c.done[id], c.arg[id] = nil, nil
    c.n = c.n - 1
    self.http:cancel(id)
  end
end

function M.wait(self, timeout_ms)
  local results, err = self.http:wait(timeout_ms)
  if not results then
    return nil, err
  end
  local c = completions(self)
  local done, arg = c.done, c.arg
  for _, res in ipairs(results) do
    local id = res.id
    local fn = done[id]
    if fn then
      local a = arg[id]
      done[id], arg[id] = nil, nil
      c.n = c.n - 1
      fn(a, res)
    end
  end
  return #results
end

function M.pending(self)
  return completions(self).n
end

--- Sets start, cancel, wait and pending on D (a driver's class or a driver table).
function M.install(D)
  D.start, D.cancel, D.wait, D.pending = M.start, M.cancel, M.wait, M.pending
  return D
end

return M
