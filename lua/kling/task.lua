--- A task: what a create returned, kept up to date by refresh() and wait().
-- @module kling.task
local core = require "kling.core"
local validate = require "kling.validate"
local errors = require "kling.errors"
local lifecycle = require "kling.lifecycle.machine"
local effects = require "kling.lifecycle.effects"
local blocking = require "kling.runner.blocking"
local learnt = require "kling.lifecycle.learnt"

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
---@field raw table|nil the provider's own answer, parsed: the last one (create, poll, callback, refresh);
--- under the engine (submit_many, wait_all, wait_any) the one that ended the task: none while it runs
--- but a refresh()'s, until the engine's next poll
local Task = {}
Task.__index = Task
Task.__name = "kling.task"

local M = {}

local TERMINAL = lifecycle.TERMINAL
M.TERMINAL = TERMINAL

-- The kinds of an error that ends a task before one was made, nothing charged: the request
-- (validation, unpriced) or its budget refused it. wait_all counts such a task `refused`, apart
-- from `failed`; kling run reports such a row refused (a budget's refusal it keeps for a later run).
M.REFUSED = { validation = true, unpriced = true, budget = true }

--- Whether a task ended refused: no task was made (no id), its create not uncertain, its error
-- of a kind of M.REFUSED (internal: wait_all's count).
-- @local
---@param t kling.Task
---@return boolean
function M.refused(t)
  local e = t.id == nil and t.error
  return type(e) == "table" and not e.uncertain and M.REFUSED[e.kind] == true
end

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
-- Copies a freshly parsed task's fields into this one. A task with a lifecycle machine hands
-- them to it (which settles or releases its reservation the first time it is seen ended);
-- a task the engine drives is accounted here, through the same effects.
-- @local
---@param fresh table
---@return kling.Task
function Task:update(fresh)
  local m = rawget(self, "lifecycle")
  if m then
    local client = self.client
    local now = client.driver:now_ms()
    for _, act in ipairs(m:news(now, fresh)) do
      effects.apply(client, act, now, m)
    end
    return self
  end
  lifecycle.take(self, fresh, true)
  if TERMINAL[self.status] and self.ledger_key and not self.accounted then
    -- Seen ended here first (a task the engine drives): a machine taken up on it ends its hold,
    -- as the engine's would have (kling.lifecycle.machine existing: the adopt path).
    local client = self.client
    local now = client.driver:now_ms()
    local ended = lifecycle.existing { provider = client.provider, task = self, key = self.ledger_key }
    for _, act in ipairs(ended:watch(now)) do
      effects.apply(client, act, now, ended)
    end
  end
  return self
end

--- The error that a failed or cancelled task ends with.
-- Kind `content_policy` (not retryable) when the reason is about content, `cancelled`, else `server`;
-- nil for a task that has not failed (running, or succeeded).
---@return kling.Error|nil
function Task:failure()
  if self.status ~= "failed" and self.status ~= "cancelled" then
    return nil
  end
  return lifecycle.failure(self, self.client.provider.name)
end

-- Why a task without a provider's id cannot be queried nor waited for here (its id would go
-- into the query's URL path), or nil for a task with one: one of submit_many's that was
-- refused before anything was sent (invalid, over the budget: it never existed) or whose
-- create is uncertain gives its error; one still waiting for its create (a provider slot) is
-- the engine's to drive.
local function unqueryable(self)
  if self.id ~= nil then
    return nil
  end
  local err = rawget(self, "error")
  if type(err) == "table" then
    return err
  end
  return errors.validation("task", "has no id yet: its create has not been sent or answered (a task of "
    .. "submit_many waiting for a provider slot: client:wait_all or wait_any drive it)", self.client.provider.name)
end

--- Queries the provider once. Returns the task, or nil and an error. A synchronous answer
-- (task.sync) is already final: there is nothing to query; a task without an id yet (one of
-- submit_many's, refused, uncertain or waiting for a slot) is nil and why.
---@return kling.Task|nil task
---@return kling.Error|nil err
function Task:refresh()
  if self.sync then
    return self
  end
  local why = unqueryable(self)
  if why then
    return nil, why
  end
  local fresh, err = self.client:fetch_task(self.id, self.endpoint)
  if not fresh then
    return nil, err
  end
  return self:update(fresh)
end

-- The options task:wait takes; any other name is refused, naming the closest.
local WAIT_OPTIONS = { timeout = true, on_progress = true, poll_min = true, poll_max = true }

-- The learnt durations this task's wait uses and adds to (kling.runner.blocking.learner), and
-- its kind (kling.lifecycle.learnt): nil for a task whose request is not known (get_task).
local function learn_for(self, m)
  local req, client = rawget(self, "request"), self.client
  local learner = type(req) == "table" and self.endpoint and blocking.learner(client)
  if not learner then
    return nil
  end
  local kind = learnt.kind(client, req.model or client.provider.default_model or "default", self.endpoint, req)
  m.kind = kind
  m.learnt_ms = function()
    return learner:expectation(kind)
  end
  return learner, kind
end

--- Why task:wait's options cannot be used with `client`'s tasks: a validation error naming the
-- option, or nil; an unknown option's name raises. client:run checks them with it before its
-- create is sent, so that a bad one costs nothing.
---@param client kling.Client
---@param opts? table task:wait's options
---@return kling.Error|nil err
function M.wait_problem(client, opts)
  opts = opts or {}
  validate.options("task:wait", opts, WAIT_OPTIONS)
  for _, name in ipairs { "timeout", "poll_min", "poll_max" } do
    local problem = opts[name] ~= nil and validate.seconds_problem(opts[name])
    if problem then
      return errors.validation(name, problem)
    end
  end
  if opts.on_progress ~= nil and type(opts.on_progress) ~= "function" then
    return errors.validation("on_progress", "must be a function(task) (got " .. validate.type_of(opts.on_progress)
      .. ")")
  end
  local order = validate.poll_order_problem(opts.poll_min or client.poll_min, opts.poll_max or client.poll_max)
  if order then
    return errors.validation(opts.poll_min ~= nil and "poll_min" or "poll_max", order)
  end
  return nil
end

--- Polls until the task ends. opts: timeout (s), on_progress(task), poll_min, poll_max (s).
-- Returns the task (with videos/images/audios) when it succeeded, else nil and an error;
-- a timeout leaves the task running at the provider and returns an error of kind "timeout".
-- An unknown option raises, naming the closest known one. When to poll is the C scheduler's
-- (core.sched): the first poll after poll_min, then intervals growing by half up to poll_max
-- (jittered by 10 %), or near the provider's ETA when it gives one; a retryable error of a
-- poll is kept and the polling goes on after its backoff (Retry-After honoured).
-- The times default to the client's wait_timeout, poll_min and poll_max.
---@param opts? {timeout: number, on_progress: fun(task: kling.Task), poll_min: number, poll_max: number}
---@return kling.Task|nil task the task with its outputs when it succeeded
---@return kling.Error|nil err its failure, a poll's fatal error, or kind `timeout` (it runs on at the provider)
function Task:wait(opts)
  opts = opts or {}
  errors.check_arg("task:wait", 1, opts, "table") -- wait("60") waited by the client's defaults
  -- the options' values before the task's state: a bad one on an ended task (a synchronous
  -- endpoint's) passed, to fail on the first task that was still running
  local client = self.client
  local bad = M.wait_problem(client, opts)
  if bad then
    return nil, bad
  end
  if self.status == "succeeded" then
    return self
  elseif TERMINAL[self.status] then
    return nil, self:failure()
  end
  local why = unqueryable(self)
  if why then
    return nil, why
  end
  local driver = client.driver
  local timeout_ms = validate.seconds_ms(opts.timeout or client.wait_timeout)
  local poll_min = validate.seconds_ms(opts.poll_min or client.poll_min)
  local poll_max = math.max(poll_min, validate.seconds_ms(opts.poll_max or client.poll_max))
  local sched = core.sched { min_interval_ms = poll_min, max_interval_ms = poll_max, backoff = 1.5,
    max_age_ms = math.max(poll_min, math.min(timeout_ms, 2147483647)),
    seed = tonumber(core.random_hex(6), 16) }
  local m = self:machine()
  local learner, kind = learn_for(self, m)
  local now = driver:now_ms()
  local _, _, err = blocking.drive(client, m, m:watch(now, sched, now + timeout_ms), { on_news = opts.on_progress })
  if learner then
    now = driver:now_ms()
    if not err and self.status == "succeeded" and m:saw_whole_life() then
      learner:observe(kind, now - m.created_ms, now, self)
    end
    learner:save_learnt(now)
  end
  if err then
    return nil, err
  end
  return self
end

--- The task's lifecycle machine: the one that created it, or one that takes it up now (a
-- task from get_task or list_tasks).
-- @local
---@return table machine
function Task:machine()
  local m = rawget(self, "lifecycle")
  if not m then
    m = lifecycle.existing { provider = self.client.provider, task = self, key = self.ledger_key }
    self.lifecycle = m
  end
  return m
end

--- Cancels the task where the provider can (EvoLink while `task_info.can_cancel`).
---@return any|nil ok
---@return kling.Error|nil err kind `validation` where the provider cannot cancel
function Task:cancel()
  return self.client:cancel_task(self)
end

local LISTS = { { "videos", "video" }, { "images", "image" }, { "audios", "audio" } }

--- The files of a task's outputs, one per URL: each video, image and audio in that order, and
-- a text- or video-to-audio's audio twice, its mp3 (`url_mp3`) and then its wav (`url_wav`),
-- which the provider delivers both of (`url` is the mp3 alone). What `kling download` and
-- `kling run` write and `kling status` lists. The second file of one output (the wav beside
-- its mp3) says `alt = true`: the same audio, counted once where outputs are priced
-- (kling.money.usage.of_outputs).
---@return {kind: string, url: string, format: string|nil, duration: number|nil, alt: boolean|nil}[] files
function Task:files()
  local files = {}
  for _, list in ipairs(LISTS) do
    for _, o in ipairs(type(self[list[1]]) == "table" and self[list[1]] or {}) do
      if type(o) == "table" and list[2] == "audio" and (o.url_mp3 ~= nil or o.url_wav ~= nil) then
        local first = true
        for _, format in ipairs { "mp3", "wav" } do
          local url = o["url_" .. format]
          if type(url) == "string" then
            files[#files + 1] = { kind = "audio", url = url, format = format, duration = o["duration_" .. format],
              alt = not first or nil }
            first = false
          end
        end
      elseif type(o) == "table" and type(o.url) == "string" then
        files[#files + 1] = { kind = list[2], url = o.url, duration = o.duration }
      end
    end
  end
  return files
end

--- A plain table of the task's data (no client), for JSON or logs.
---@return table
function Task:to_table()
  local t = {}
  for k, v in pairs(self) do
    if k ~= "client" and k ~= "raw" and k ~= "lifecycle" then
      t[k] = v
    end
  end
  return t
end

return M
