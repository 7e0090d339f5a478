--- The asynchronous seam (kling.driver.multi: start, cancel, wait, pending) over nginx light
-- threads, so that the engine (submit_many, wait_all, wait_any) runs inside a worker.
-- Each request runs in a light thread (ngx.thread.spawn) over the driver's own `request`
-- (cosockets, or a subrequest where the driver is set to capture); its end queues the result
-- and wakes a waiter, and `wait` runs the completions, in the caller's coroutine (the one
-- that started them: only it may kill them). `wait` sleeps on an ngx.semaphore with the
-- timeout, so the worker serves other requests meanwhile; `cancel` kills the thread, which
-- closes a cosocket it was connecting, writing or reading on (nginx finalises the pending
-- operation), so nothing is left open.
-- The seam's state is kept per request or timer (ngx.ctx): one driver may serve several of
-- them at once (light threads and cosockets never cross from one to another), and an
-- engine lives within one. Concurrency is bounded by the caller (the engine's max_requests).
-- @module kling.resty.multi
-- luacheck: ignore 122 (ngx.ctx is meant to be written)
local clone = require("kling.tables").clone
local M = {}

local KEY = "kling.resty.multi"

-- The seam's state of this driver in this request or timer.
local function state(self, check_phase)
  check_phase("the engine's requests")
  local ctx = ngx.ctx
  local all = ctx[KEY]
  if not all then
    all = setmetatable({}, { __mode = "k" })
    ctx[KEY] = all
  end
  local s = all[self]
  if not s then
    s = { next = 0, n = 0, done = {}, arg = {}, threads = {}, live = {}, finished = {}, spare = {},
      sleeping = false, sema = false }
    all[self] = s
  end
  return s
end

-- The engine reuses its request table: the thread gets a copy (it runs past start's return).
local function copy(req)
  local c = clone(req)
  if type(req.headers) == "table" then
    c.headers = clone(req.headers)
  end
  return c
end

-- The body of a request's light thread.
local function run(self, s, id, req)
  local ok, res = pcall(self.request, self, req)
  if not ok or type(res) ~= "table" then
    -- A bug below, not an answer: whether anything was written is unknown, so it counts as
    -- sent (a create is then looked up, never sent again blindly).
    res = { ok = false, error = "other", sent = true, received = false,
      message = "the request raised: " .. tostring(res) }
  end
  res.id = id
  s.live[id], s.threads[id] = nil, nil
  local q = s.finished
  q[#q + 1] = res
  if s.sleeping then
    s.sleeping = false
    s.sema:post(1)
  end
end

--- start(req, done, arg) -> id | nil, msg (kling.driver.multi).
function M.start(self, req, done, arg, check_phase)
  local s = state(self, check_phase)
  local id = s.next + 1
  s.next = id
  s.done[id], s.arg[id], s.live[id] = done, arg, true
  s.n = s.n + 1
  local th, err = ngx.thread.spawn(run, self, s, id, copy(req))
  if not th then
    s.done[id], s.arg[id], s.live[id] = nil, nil, nil
    s.n = s.n - 1
    return nil, "cannot start a light thread: " .. tostring(err)
  end
  if s.live[id] then -- else it has ended already (it never yielded), its result queued
    s.threads[id] = th
  end
  return id
end

--- cancel(id): the request is dropped, its done never called; its thread is killed.
function M.cancel(self, id, check_phase)
  local s = state(self, check_phase)
  if not s.done[id] then
    return
  end
  s.done[id], s.arg[id] = nil, nil
  s.n = s.n - 1
  local th = s.threads[id]
  if th then
    s.threads[id], s.live[id] = nil, nil
    -- Refused for a thread waiting on a subrequest, or when called from another coroutine
    -- than the one that started it: the thread then runs to its end, its result unread.
    ngx.thread.kill(th)
  end
end

--- wait(timeout_ms) -> n: waits at most timeout_ms for a request to finish (on a
-- semaphore: the worker goes on meanwhile), then runs the completions of every finished one.
-- With nothing finished and no time to wait it still yields once, so that the threads move.
function M.wait(self, timeout_ms, check_phase)
  local s = state(self, check_phase)
  if #s.finished == 0 then
    if timeout_ms > 0 and next(s.live) ~= nil then
      local sema = s.sema
      if not sema then
        sema = assert(require("ngx.semaphore").new(0))
        s.sema = sema
      elseif sema:count() > 0 then
        sema:wait(0) -- a post that came after its waiter had timed out
      end
      s.sleeping = true
      sema:wait(timeout_ms / 1000)
      s.sleeping = false
    else
      ngx.sleep(timeout_ms > 0 and timeout_ms / 1000 or 0)
    end
  end
  -- Results of completions' own requests that end at once go to the other list, run next time.
  local q = s.finished
  s.finished, s.spare = s.spare, q
  local done, arg = s.done, s.arg
  local ran = 0
  for i = 1, #q do
    local res = q[i]
    q[i] = nil
    local id = res.id
    local fn = done[id]
    if fn then -- else cancelled meanwhile
      local a = arg[id]
      done[id], arg[id] = nil, nil
      s.n = s.n - 1
      ran = ran + 1
      fn(a, res)
    end
  end
  return ran
end

--- pending() -> requests started here and neither finished nor cancelled.
function M.pending(self, check_phase)
  return state(self, check_phase).n
end

--- Sets start, cancel, wait and pending on the driver class D; check_phase(what) raises
-- where nginx has no cosockets.
function M.install(D, check_phase)
  D.start = function(self, req, done, arg)
    return M.start(self, req, done, arg, check_phase)
  end
  D.cancel = function(self, id)
    return M.cancel(self, id, check_phase)
  end
  D.wait = function(self, timeout_ms)
    return M.wait(self, timeout_ms, check_phase)
  end
  D.pending = function(self)
    return M.pending(self, check_phase)
  end
  return D
end

return M
