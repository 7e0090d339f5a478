-- A fake of the official Kling API behind a fake libcurl multi handle, on a fake clock: the
-- engine's unit specs run thousands of simulated seconds in milliseconds and can count
-- every request. It answers like the simulator (envelope, statuses, 1303, lookups by
-- external id); faults are scripted: {method, path (Lua pattern), kind, phase, count}, kinds
-- "5xx", "reset" (connection dropped, request sent), "refused" (never sent), "1303",
-- "malformed"; phase "before" (nothing created) or "after" (the task exists, the answer is lost).
local json = require "kling.json"

local M = {}

local Fake = {}
Fake.__index = Fake

function M.new(opts)
  opts = opts or {}
  local f = setmetatable({
    t = 1000000, latency = opts.latency or 5, task_seconds = opts.task_seconds or 10,
    max_parallel = opts.max_parallel or 0, faults = {}, tasks = {}, by_ext = {}, seq = 0,
    pending = {}, next_id = 0, stats = { creates = 0, posts = 0, polls = 0, lookups = 0, requests = 0 },
    max_in_flight = 0,
  }, Fake)
  f.http = {
    start = function(_, req)
      return f:start(req)
    end,
    wait = function(_, timeout)
      return f:wait(timeout)
    end,
    cancel = function(_, id)
      for i, p in ipairs(f.pending) do
        if p.res.id == id then
          table.remove(f.pending, i)
          return true
        end
      end
      return false
    end,
  }
  f.driver = {
    http = f.http,
    now_ms = function()
      return f.t
    end,
    wall_s = function()
      return 1700000000 + f.t // 1000
    end,
    sleep_ms = function(_, ms)
      f.t = f.t + ms
    end,
    request = function()
      error("the fake serves the engine only (start/wait)")
    end,
  }
  require("kling.driver.multi").install(f.driver) -- the engine's asynchronous seam over f.http
  return f
end

function Fake:fault(rule)
  rule.count = rule.count or 1
  rule.phase = rule.phase or "before"
  self.faults[#self.faults + 1] = rule
end

local function pick(self, method, path, phase)
  for _, r in ipairs(self.faults) do
    if r.count > 0 and r.phase == phase and (r.method == nil or r.method == method)
        and (r.path == nil or path:find(r.path)) then
      r.count = r.count - 1
      return r
    end
  end
end

local function reply(status, body)
  return { ok = true, status = status, headers = { ["content-type"] = "application/json" },
    body = assert(json.encode(body)), sent = true, received = true }
end

local function fail(code, status, msg)
  return reply(status, { code = code, message = msg, request_id = "rq" })
end

function Fake:live()
  local n = 0
  for _, t in pairs(self.tasks) do
    if self.t < t.created + t.total then
      n = n + 1
    end
  end
  return n
end

-- The task as the official API shows it at the fake's current time.
function Fake:view(t)
  local status, changed = "submitted", t.created
  if self.t >= t.created + t.total then
    status, changed = t.fate or "succeed", t.created + t.total
  elseif self.t >= t.created + t.total // 5 then
    status, changed = "processing", t.created + t.total // 5
  end
  -- updated_at: the last change of status, as the API and the simulator report it
  local d = { task_id = t.id, task_status = status, task_status_msg = "", created_at = t.created,
    updated_at = changed, task_info = { external_task_id = t.ext } }
  if status == "succeed" then
    d.task_result = { videos = { { id = "v" .. t.id, url = "http://fake/v.mp4", duration = "5" } } }
    d.final_unit_deduction = "1.5"
    if not t.seen_done then
      t.seen_done = self.t
    end
  elseif status == "failed" then
    d.task_status_msg = "Failure to pass the risk control system"
  end
  return d
end

local function ok(data)
  return reply(200, { code = 0, message = "SUCCEED", request_id = "rq", data = data })
end

function Fake:create(req)
  local body = json.decode(req.body)
  self.stats.posts = self.stats.posts + 1
  if self.max_parallel > 0 and self:live() >= self.max_parallel then
    return fail(1303, 429, "parallel task over resource pack limit")
  end
  local ext = body.external_task_id
  if ext and self.by_ext[ext] then
    return fail(1201, 400, "external_task_id " .. ext .. " already exists")
  end
  self.seq = self.seq + 1
  local prompt = body.prompt or ""
  local seconds = tonumber(prompt:match("%[sim:seconds=([%d.]+)%]")) or self.task_seconds
  local t = { id = tostring(800000 + self.seq), ext = ext, created = self.t, total = math.floor(seconds * 1000),
    fate = prompt:find("[sim:fail]", 1, true) and "failed" or prompt:match("%[sim:status=([%w_]+)%]") }
  self.tasks[t.id] = t
  if ext then
    self.by_ext[ext] = t
  end
  self.stats.creates = self.stats.creates + 1
  return ok { task_id = t.id, task_status = "submitted", created_at = t.created, updated_at = t.created,
    task_info = { external_task_id = ext } }
end

function Fake:serve(req)
  local path = req.url:gsub("^https?://[^/]+", "")
  if req.method == "POST" then
    return self:create(req)
  end
  local ext = path:match("%?external_task_id=(.+)$")
  if ext then
    self.stats.lookups = self.stats.lookups + 1
    local t = self.by_ext[ext]
    return t and ok(self:view(t)) or fail(1203, 404, "task does not exist")
  end
  self.stats.polls = self.stats.polls + 1
  local id = path:match("/([^/?]+)$")
  local t = self.tasks[id]
  return t and ok(self:view(t)) or fail(1203, 404, "task does not exist")
end

local function broken(kind, res)
  if kind == "5xx" then
    return fail(5000, 500, "Server internal error")
  elseif kind == "1303" then
    return fail(1303, 429, "parallel task over resource pack limit")
  elseif kind == "reset" then
    return { ok = false, error = "reset", message = "connection reset", sent = true, received = false }
  elseif kind == "refused" then
    return { ok = false, error = "connect", message = "connection refused", sent = false, received = false }
  elseif kind == "malformed" then
    local body = res and res.body or '{"code":0,"data":{"task_id":"1"}}'
    return { ok = true, status = 200, headers = { ["content-type"] = "application/json" },
      body = body:sub(1, #body // 2), sent = true, received = true }
  end
  error("unknown fault kind " .. tostring(kind))
end

function Fake:start(req)
  assert(req.headers.authorization and req.headers.authorization:match("^Bearer "), "no bearer token")
  self.next_id = self.next_id + 1
  local id = self.next_id
  self.stats.requests = self.stats.requests + 1
  local path = req.url:gsub("^https?://[^/]+", "")
  local res
  local before = pick(self, req.method, path, "before")
  if before then
    res = broken(before.kind)
  else
    res = self:serve(req)
    local after = pick(self, req.method, path, "after")
    if after then
      res = broken(after.kind, res)
    end
  end
  res.id = id
  self.pending[#self.pending + 1] = { at = self.t + self.latency, res = res }
  if #self.pending > self.max_in_flight then
    self.max_in_flight = #self.pending
  end
  return id
end

function Fake:wait(timeout)
  local first
  for _, p in ipairs(self.pending) do
    if not first or p.at < first then
      first = p.at
    end
  end
  if not first or first > self.t + timeout then
    self.t = self.t + timeout
    return {}
  end
  if first > self.t then
    self.t = first
  end
  local out, keep = {}, {}
  for _, p in ipairs(self.pending) do
    if p.at <= self.t then
      out[#out + 1] = p.res
    else
      keep[#keep + 1] = p
    end
  end
  self.pending = keep
  return out
end

-- A client of the fake (real validation, auth and provider mapping; fake I/O).
function M.client(f, opts)
  local o = { provider = "kling", access_key = "ak-fake", secret_key = "sk-fake", base_url = "http://fake",
    driver = f.driver, poll_min = 1, poll_max = 15, retry_base_ms = 100, retry_cap_ms = 2000 }
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  return assert(require("kling").new(o))
end

return M
