--- The OpenResty runner: carries out a lifecycle machine's actions inside nginx, over the
-- cosocket driver, for one event at a time and without sleeping: it sends what the machine
-- asks (kling.transport.send, one attempt), feeds each answer back, and stops when the
-- machine waits (its wake-up is the caller's to keep: the poller's scheduler) or ends. It
-- decides nothing: what to send, when, and what the end costs are the machine's
-- (kling.lifecycle.machine); the store (a record per task: kling.resty.tasks in a shared
-- dict, or kling.gateway.redis_tasks) and the money (kling.lifecycle.effects) are reached
-- through the hooks the caller gives, one per kind of action.
-- @module kling.runner.resty
local effects = require "kling.lifecycle.effects"
local transport = require "kling.transport"

local M = {}

local function append(list, more)
  for _, a in ipairs(more) do
    list[#list + 1] = a
  end
end

--- Carries out `acts` (what one event of `m` returned) and everything the answers bring,
-- until the machine waits or ends.
-- hooks = {ctx (the client's call context: its resty driver, auth, base url, timeouts),
--   and, each optional, one function per action type: settle, release, journal, created, news, retry,
--   refused, abandon, refused_cancel (renew_token defaults to kling.lifecycle.effects'),
--   and answered(send_act, ms) after each answer (how long it took)}.
-- Returns "done", task, err | "waiting", wake_at (absolute ms, the driver's clock) | "idle"
-- (nothing to do until another event).
---@param m table a lifecycle machine
---@param acts table[] the actions an event returned
---@param hooks table
function M.run(m, acts, hooks)
  local ctx = hooks.ctx
  local driver = ctx.driver
  local ended
  local i = 1
  while acts[i] ~= nil do
    local act = acts[i]
    i = i + 1
    local ty = act.type
    if ty == "send" then
      local sent_at = driver:now_ms()
      local res = transport.send(ctx, act.method, act.path, act.body)
      local now = driver:now_ms()
      if hooks.answered then
        hooks.answered(act, now - sent_at)
      end
      append(acts, m:answer(now, res, driver:wall_s()))
    elseif ty == "reserve" then
      -- The machines run here follow tasks whose create was held and sent elsewhere (the
      -- gateway's create handler): a machine that holds its own estimate runs in the engine.
      error("kling.runner.resty: a machine with a budget (a reserve action) is not run here", 2)
    elseif ty == "done" then
      ended = act
    elseif ty == "renew_token" and not hooks.renew_token then
      effects.renew_token(ctx, driver:now_ms())
    elseif ty ~= "wake" and hooks[ty] then
      hooks[ty](act)
    end
  end
  if ended then
    return "done", ended.task, ended.err
  end
  if m.wake_at then
    return "waiting", m.wake_at
  end
  return "idle"
end

return M
