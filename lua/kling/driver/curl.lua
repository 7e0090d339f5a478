-- The plain-Lua driver: kling.core's libcurl multi handle, the monotonic clock and sleep.
-- (Inside nginx the resty driver takes its place: libcurl never runs in a worker.)
-- `request` blocks (the blocking client); `start`/`cancel`/`wait`/`pending` are the
-- asynchronous seam the engine runs on (kling.driver.multi).
local core = require "kling.core"
local multi = require "kling.driver.multi"
local output_path = require "kling.output_path"

local Driver = {}
Driver.__index = Driver

local M = {}

-- opts: ca_file, connect_timeout_ms, timeout_ms, user_agent
function M.new(opts)
  local http = core.http {
    ca_file = opts.ca_file, connect_timeout_ms = opts.connect_timeout_ms, timeout_ms = opts.timeout_ms,
    user_agent = opts.user_agent,
  }
  return setmetatable({ http = http, completions = { done = {}, arg = {}, n = 0 } }, Driver)
end

multi.install(Driver)

function Driver:request(req)
  return self.http:request(req)
end

function Driver.now_ms()
  return core.now_ms()
end

function Driver.wall_s()
  return core.wall_s()
end

function Driver.sleep_ms(_, ms)
  if ms > 0 then
    core.sleep_ms(ms)
  end
end

-- Streams url to path through a temporary name, checks the size against Content-Length,
-- then renames: a reader never sees a partial file. opts: timeout_ms, max_bytes (the transfer
-- stops there), replace (false: a file that appeared at path meanwhile is kept, kind
-- "exists"). Returns path, bytes or nil, message, kind: "not_found" (HTTP 404 or 410),
-- "too_large" (past max_bytes), "io" (the file cannot be written, or the path is refused:
-- kling.output_path; the temporary file is created exclusively, never through a link, by
-- kling.core) or "network".
function Driver:download(url, path, opts)
  opts = opts or {}
  local refused = output_path.refusal(path) -- before anything is sent (kling.output_path)
  if refused then
    return nil, "path: " .. refused, "io"
  end
  local tmp = output_path.part(path)
  local function fail(msg, kind)
    os.remove(tmp)
    return nil, msg, kind
  end
  local res, serr = self.http:request {
    method = "GET", url = url, output = tmp, follow = true, max_output = opts.max_bytes,
    timeout_ms = opts.timeout_ms or 600000,
  }
  if not res then -- the transfer could not start (the output file cannot be created): what is at tmp is not ours
    return nil, "download of " .. url .. " could not start: " .. tostring(serr), "io"
  end
  if not res.ok then
    local kind = res.error == "too_large" and "too_large" or (res.error == "other" and res.message
      and res.message:find("^output") and "io") or "network"
    return fail("download of " .. url .. " failed: " .. tostring(res.message), kind)
  end
  if res.status ~= 200 then
    local kind = (res.status == 404 or res.status == 410) and "not_found" or "network"
    return fail("download of " .. url .. " failed: HTTP " .. tostring(res.status), kind)
  end
  local f = io.open(tmp, "rb")
  if not f then
    return fail("download of " .. url .. " wrote no file", "io")
  end
  local size = f:seek("end")
  f:close()
  -- Content-Length counts encoded bytes: only comparable when the body came unencoded.
  local expected = not res.headers["content-encoding"] and tonumber(res.headers["content-length"])
  if expected and expected ~= size then
    return fail(string.format("download of %s is %d bytes, expected %d", url, size, expected), "network")
  end
  local ok, rerr, rkind = output_path.place(tmp, path, opts.replace ~= false)
  if not ok then
    return fail(rerr, rkind == "exists" and "exists" or "io")
  end
  return path, size
end

return M
