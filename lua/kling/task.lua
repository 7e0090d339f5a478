--- A task: what a create returned, kept up to date by refresh() and wait().
-- @module kling.task
local errors = require "kling.errors"
local budget = require "kling.money.hold"
local validate = require "kling.validate"

--- A task, as the provider reported it last (canonical fields on every provider).
---@class kling.Task
---@field id string the provider's task id
---@field external_task_id string|nil the id this module gave the create (`kl-` + hex), where the provider takes one
---@field endpoint string the endpoint it was created on, e.g. "videos/text2video"
---@field status string "queued", "running", "succeeded", "failed" or "cancelled"
---@field progress number|nil percent, when the provider says
---@field eta number|nil seconds left, when the provider says
---@field videos table[]|nil outputs: {id, url, duration, watermark_url}
---@field images table[]|nil outputs: {index, url}
---@field audios table[]|nil outputs: {url, duration, url_mp3, url_wav}
---@field charge string|nil what the provider reports it charged, a decimal string as given (e.g. "2.5")
---@field message string|nil the provider's reason for a failure
---@field sync boolean|nil true for a synchronous answer: already final
---@field raw table the provider's own answer
local Task = {}
Task.__index = Task
Task.__name = "kling.task"

local M = {}

local TERMINAL = { succeeded = true, failed = true, cancelled = true }
M.TERMINAL = TERMINAL

-- Phrases providers use when a task fails on content grounds: never worth resubmitting.
local POLICY_PATTERNS = { "polic", "safety", "sensitive", "violat", "risk", "moderat", "inappropriate" }

--- Wraps parsed task fields into a task of a client (internal).
-- @local
---@param client kling.Client
---@param fields table
---@return kling.Task
function M.new(client, fields)
  fields.client = client
  return setmetatable(fields, Task)
end

function Task:__tostring()
  return string.format("kling.task(%s %s, %s)", self.client.provider.name, self.id, self.status)
end

--- Whether the task has ended (succeeded, failed or cancelled).
---@return boolean
function Task:is_terminal()
  return TERMINAL[self.status] == true
end

--- Takes a fresh query's fields (internal).
-- Copies a freshly parsed task's fields into this one; the first time it is seen ended, its
-- reservation (if the client has a budget) is settled or released.
-- @local
---@param fresh table
---@return kling.Task
function Task:update(fresh)
  for k, v in pairs(fresh) do
    if k ~= "client" then
      self[k] = v
    end
  end
  if TERMINAL[self.status] and self.ledger_key and not self.accounted then
    budget.account(self.client, self)
  end
  return self
end

--- The error that a failed or cancelled task ends with.
-- Kind `content_policy` (not retryable) when the reason is about content, `cancelled`, else `server`.
---@return kling.Error
function Task:failure()
  if self.status == "cancelled" then
    return errors.new { kind = "cancelled", message = "task " .. self.id .. " was cancelled",
      provider = self.client.provider.name, task = self }
  end
  local msg = self.message or "the provider reported failure without a reason"
  local lower = msg:lower()
  local kind, retryable = "server", true
  for _, p in ipairs(POLICY_PATTERNS) do
    if lower:find(p, 1, true) then
      kind, retryable = "content_policy", false
      break
    end
  end
  return errors.new { kind = kind, message = "task " .. self.id .. " failed: " .. msg, retryable = retryable,
    provider = self.client.provider.name, task = self, code = self.fail_code }
end

--- Queries the provider once. Returns the task, or nil and an error. A synchronous answer
-- (task.sync) is already final: there is nothing to query.
---@return kling.Task|nil task
---@return kling.Error|nil err
function Task:refresh()
  if self.sync then
    return self
  end
  local fresh, err = self.client:fetch_task(self.id, self.endpoint)
  if not fresh then
    return nil, err
  end
  return self:update(fresh)
end

-- The options task:wait takes; any other name is refused, naming the closest.
local WAIT_OPTIONS = { timeout = true, on_progress = true, poll_min = true, poll_max = true }

--- Polls until the task ends. opts: timeout (s), on_progress(task), poll_min, poll_max (s).
-- Returns the task (with videos/images/audios) when it succeeded, else nil and an error;
-- a timeout leaves the task running at the provider and returns an error of kind "timeout".
-- An unknown option raises, naming the closest known one. The intervals start at poll_min
-- and grow by half each poll up to poll_max; a retryable error of a poll is kept and the
-- polling goes on.
-- The times default to the client's wait_timeout, poll_min and poll_max.
---@param opts? {timeout: number, on_progress: fun(task: kling.Task), poll_min: number, poll_max: number}
---@return kling.Task|nil task the task with its outputs when it succeeded
---@return kling.Error|nil err its failure, a poll's fatal error, or kind `timeout` (it runs on at the provider)
function Task:wait(opts)
  opts = opts or {}
  validate.options("task:wait", opts, WAIT_OPTIONS)
  local client = self.client
  local driver = client.driver
  local timeout_ms = math.floor((opts.timeout or client.wait_timeout) * 1000)
  local poll_min = math.floor((opts.poll_min or client.poll_min) * 1000)
  local poll_max = math.floor((opts.poll_max or client.poll_max) * 1000)
  local deadline = driver:now_ms() + timeout_ms
  local interval = poll_min
  local last_err
  while true do
    if self.status == "succeeded" then
      return self
    elseif TERMINAL[self.status] then
      return nil, self:failure()
    end
    local left = deadline - driver:now_ms()
    if left <= 0 then
      return nil, errors.new { kind = "timeout", retryable = true, task = self,
        provider = client.provider.name,
        message = string.format("task %s did not finish within %g s (last status %s%s)", self.id,
          timeout_ms / 1000, self.status, last_err and ("; last error: " .. tostring(last_err)) or "") }
    end
    driver:sleep_ms(math.min(interval, left))
    interval = math.min(math.floor(interval * 1.5), poll_max)
    local ok, err = self:refresh()
    if not ok then
      if not err.retryable then
        return nil, err
      end
      last_err = err
    elseif opts.on_progress then
      opts.on_progress(self)
    end
  end
end

--- Cancels the task where the provider can (EvoLink while `task_info.can_cancel`).
---@return any|nil ok
---@return kling.Error|nil err kind `validation` where the provider cannot cancel
function Task:cancel()
  return self.client:cancel_task(self)
end

--- A plain table of the task's data (no client), for JSON or logs.
---@return table
function Task:to_table()
  local t = {}
  for k, v in pairs(self) do
    if k ~= "client" and k ~= "raw" then
      t[k] = v
    end
  end
  return t
end

return M
