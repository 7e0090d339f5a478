--- The blocking runner: carries out a lifecycle machine's actions one at a time over the
-- client's driver (libcurl, or cosockets inside nginx), sleeping until each wake-up. It
-- decides nothing: what to send, when, and what the end costs are the machine's
-- (kling.lifecycle.machine); money and token renewal go through kling.lifecycle.effects.
-- @module kling.runner.blocking
local transport = require "kling.transport"
local effects = require "kling.lifecycle.effects"

local MONEY = effects.TYPES -- reserve, settle, release, renew_token

local M = {}

-- Learnt durations: the blocking runner keeps and uses the engine's (kling.engine.learn: the
-- same kinds, windows and cache file, configured by the client's engine options), so one
-- polling policy holds for every runner. The client's engine's store when it has one, else the
-- client's own, made with the same methods.
local Learner = {}
Learner.__index = Learner
require("kling.engine.learn")(Learner)
function Learner.relearn() end -- one task waits here: no other task to move

---@param client kling.Client
---@return table|nil learner with :expectation(kind), :observe(kind, took, now, task), :save_learnt(now)
function M.learner(client)
  local root = client.parent or client
  local e = rawget(root, "_engine")
  if e then
    return e.learn and e or nil
  end
  local l = rawget(root, "_learner")
  if l == nil then
    local opts = root.engine_opts or {}
    l = false
    if opts.learn ~= false then
      local driver = root.driver
      l = setmetatable({ client = root, learned = false, learn = true,
        learn_file = require("kling.engine").learn_file(opts, driver), wall_s = function()
          return driver:wall_s()
        end }, Learner)
    end
    root._learner = l
  end
  return l or nil
end

--- Feeds the machine until it is done, or (opts.until_created) until the provider has the
-- task. acts: the actions an event already returned. opts.on_news(task) is called after
-- each answer that brought news of the task.
-- Returns "done", task, err | "created", task.
---@param client kling.Client
---@param m table a lifecycle machine
---@param acts table[] actions to carry out first
---@param opts? {until_created: boolean, on_news: fun(task: table)}
function M.drive(client, m, acts, opts)
  opts = opts or {}
  local ctx, driver = client.ctx, client.driver
  local i = 1
  while true do
    local act = acts[i]
    if act == nil then
      local at = m.wake_at
      if at == nil then
        return "idle", m.task
      end
      local now = driver:now_ms()
      if at > now then
        driver:sleep_ms(at - now)
      end
      acts, i = m:timer(driver:now_ms()), 1
    else
      i = i + 1
      local ty = act.type
      if ty == "send" then
        local res = transport.send(ctx, act.method, act.path, act.body)
        local more = m:answer(driver:now_ms(), res, driver:wall_s())
        for _, a in ipairs(more) do
          acts[#acts + 1] = a
        end
      elseif ty == "done" then
        return "done", act.task, act.err
      elseif ty == "created" and opts.until_created then
        -- what follows (the actions of a task that ended at once) is carried out first
        for j = i, #acts do
          local a = acts[j]
          if a.type == "done" then
            return "done", a.task, a.err
          end
          if MONEY[a.type] then
            effects.apply(client, a, driver:now_ms(), m) -- settle of a synchronous answer
          end
        end
        return "created", act.task
      elseif ty == "news" then
        if opts.on_news then
          opts.on_news(act.task)
        end
      elseif ty == "retry" then
        if ctx.on_retry then
          ctx.on_retry { attempt = act.attempt, delay_ms = act.delay_ms, kind = act.kind, code = act.code,
            http_status = act.http_status, path = act.path }
        end
      elseif MONEY[ty] then -- handed over unopened: a reserve's answer comes back as actions
        for _, a in ipairs(effects.apply(client, act, driver:now_ms(), m)) do
          acts[#acts + 1] = a
        end
      end
      -- wake is read from the machine when the actions run out; a blocking runner keeps no
      -- journal and no slot limiter (journal, refused), and has no request to abandon
    end
  end
end

return M
