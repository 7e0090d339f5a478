-- Downloads of a batch's outputs, several at once and without blocking the batch's loop: a
-- libcurl multi handle of their own (the engine's handle drops answers it did not ask for),
-- started and collected with start/wait. Each file streams to <path>.part (created
-- exclusively and made durable by the C driver; the path is checked first, kling.output_path),
-- its size is checked against Content-Length, then it is moved to its name only while nothing
-- is there (kling.output_path.place: a file that appeared at the name during the download is
-- kept, never replaced nor taken for the output), after the job's on_place hook has seen it (the batch
-- journals it, so that a crash right after the move still knows the file for its own): a file
-- under its final name is always whole. Transient failures are tried again with a
-- back-off; a 403/404/410 (an expired URL) is reported at once so the caller can fetch a
-- fresh URL. A body past the job's max_bytes (else the client's default cap) is stopped and
-- not tried again: a misbehaving server would fill the disk, each try anew.
local core = require "kling.core"
local client = require "kling.client"
local output_path = require "kling.output_path"

local Downloads = {}
Downloads.__index = Downloads

local M = {}

local EXPIRED = { [403] = true, [404] = true, [410] = true }

-- new{ca_file =, max = 4, attempts = 4, timeout_ms = 600000, now_ms =} -> downloads
function M.new(opts)
  opts = opts or {}
  return setmetatable({
    http = core.http { ca_file = opts.ca_file, timeout_ms = opts.timeout_ms or 600000, connect_timeout_ms = 10000 },
    max = opts.max or 4, attempts = opts.attempts or 4, now = opts.now_ms or core.now_ms,
    queue = {}, inflight = {}, n_inflight = 0,
  }, Downloads)
end

-- add{url =, path =, max_bytes = (optional: the row's client's max_download_bytes),
--     on_done = fn(job, path, bytes) | fn(job, nil, message, expired),
--     on_place = fn(job, bytes, identity) (optional: called, whole and checked, just before the move)}
function Downloads:add(job)
  job.tries = 0
  job.not_before = 0
  self.queue[#self.queue + 1] = job
end

function Downloads:busy()
  return #self.queue + self.n_inflight
end

-- The size of the regular file at path, or nil: never opened, so a FIFO there cannot block.
local size_of = output_path.size

-- What a finished transfer means: path, bytes | nil, message, retryable, expired.
local function outcome(job, res)
  local tmp = output_path.part(job.path)
  if not res.ok then
    os.remove(tmp)
    return nil, "download failed: " .. tostring(res.message or res.error), res.error ~= "too_large"
  end
  if res.status ~= 200 then
    os.remove(tmp)
    local retry = res.status == 429 or res.status >= 500
    return nil, "download failed: HTTP " .. tostring(res.status), retry, EXPIRED[res.status]
  end
  local size = size_of(tmp)
  if not size then
    return nil, "download wrote no file", true
  end
  local expected = not res.headers["content-encoding"] and tonumber(res.headers["content-length"])
  if expected and expected ~= size then
    os.remove(tmp)
    return nil, string.format("download is %d bytes, expected %d", size, expected), true
  end
  if job.on_place then
    local _, identity = output_path.before_place(tmp)
    job.on_place(job, size, identity)
  end
  local ok, err, kind = output_path.place(tmp, job.path, false)
  if not ok then
    os.remove(tmp)
    if kind == "exists" then
      return nil, "download refused: " .. err .. " (it appeared there during the download and is not this "
        .. "batch's: kept as it is; move it away and run the same command again, or name the outputs otherwise "
        .. "with --name)", false
    end
    return nil, "cannot move the download into place: " .. tostring(err), false
  end
  if core.fsync_path then
    core.fsync_path(job.path, true) -- the rename itself, durable before the journal says so
  end
  return job.path, size
end

function Downloads:start_queued(now)
  local i = 1
  while i <= #self.queue and self.n_inflight < self.max do
    local job = self.queue[i]
    if job.not_before <= now then
      table.remove(self.queue, i)
      job.tries = job.tries + 1
      -- The path's checks (kling.output_path) before anything is sent; a refusal is not
      -- tried again in this run (the row stays open, naming the path).
      local refused = output_path.refusal(job.path)
      if refused then
        job.on_done(job, nil, "download refused: path: " .. refused)
      else
        local id, err = self.http:start { method = "GET", url = job.url, output = output_path.part(job.path),
          follow = true, max_output = job.max_bytes or client.DEFAULT_MAX_DOWNLOAD_BYTES }
        if id then
          self.inflight[id] = job
          self.n_inflight = self.n_inflight + 1
        else
          job.on_done(job, nil, "download could not start: " .. tostring(err))
        end
      end
    else
      i = i + 1
    end
  end
end

-- step(wait_ms): starts what may start, waits at most wait_ms for transfers to finish, and
-- calls on_done for each job that has ended (done, or failed for good).
function Downloads:step(wait_ms)
  local now = self.now()
  self:start_queued(now)
  if self.n_inflight == 0 then
    return
  end
  local results = self.http:wait(math.max(0, math.floor(wait_ms or 0)))
  for _, res in ipairs(results or {}) do
    local job = self.inflight[res.id]
    if job then
      self.inflight[res.id] = nil
      self.n_inflight = self.n_inflight - 1
      local path, bytes, retry, expired = outcome(job, res)
      if path then
        job.on_done(job, path, bytes)
      elseif retry and job.tries < self.attempts then
        job.not_before = self.now() + math.min(30000, 500 * 2 ^ job.tries)
        job.last_error = bytes
        self.queue[#self.queue + 1] = job
      else
        job.on_done(job, nil, bytes, expired)
      end
    end
  end
  self:start_queued(self.now())
end

-- The time (ms) until a queued retry may start, or nil.
function Downloads:next_due()
  local soonest
  for _, job in ipairs(self.queue) do
    if not soonest or job.not_before < soonest then
      soonest = job.not_before
    end
  end
  return soonest and math.max(0, soonest - self.now()) or nil
end

function Downloads:close()
  self.http:close()
end

M.size_of = size_of
return M
