-- What a batch shows while it runs: on a terminal one live line redrawn in place (a bar,
-- done, failed, running, spend, ETA); otherwise plain lines, one per row that ends plus a
-- status line every so often, so that logs stay readable.
local core = require "kling.core"
local validate = require "kling.validate"

local Progress = {}
Progress.__index = Progress

local M = {}

-- Whether file descriptor fd (2: stderr) is a terminal; the shell's test inherits our fds.
function M.is_tty(fd)
  local term = os.getenv("TERM")
  if term == "dumb" then
    return false
  end
  local ok = os.execute("test -t " .. (fd or 2))
  return ok == true or ok == 0
end

-- new{mode = "auto"|"bar"|"plain"|"none", stream = io.stderr, total =, interval_s =}
function M.new(opts)
  local mode = opts.mode or "auto"
  if mode == "auto" then
    mode = M.is_tty(2) and "bar" or "plain"
  end
  return setmetatable({
    mode = mode, stream = opts.stream or io.stderr, total = opts.total or 0,
    interval_ms = validate.seconds_ms(opts.interval_s or (mode == "bar" and 0.2 or 10)),
    last_ms = -math.huge, drawn = false, now = opts.now_ms or core.now_ms,
  }, Progress)
end

function M.clock(seconds)
  if not seconds then
    return "--:--"
  end
  seconds = math.floor(seconds + 0.5)
  local h, m, s = math.floor(seconds / 3600), math.floor(seconds % 3600 / 60), seconds % 60
  if h > 0 then
    return string.format("%d:%02d:%02d", h, m, s)
  end
  return string.format("%d:%02d", m, s)
end

-- The status text: c = {done, total, succeeded, failed, refused, uncertain, running, spend, eta_s}.
function M.text(c, width)
  local bar = ""
  if width and width > 0 then
    local filled = c.total > 0 and math.floor(width * c.done / c.total + 0.5) or 0
    bar = "[" .. string.rep("#", filled) .. string.rep("-", width - filled) .. "] "
  end
  local extra = (c.refused and c.refused > 0 and ("  refused " .. c.refused) or "")
    .. (c.uncertain and c.uncertain > 0 and ("  uncertain " .. c.uncertain) or "")
  return string.format("%s%d/%d done  ok %d  failed %d%s  running %d  spend %s  ETA %s", bar, c.done, c.total,
    c.succeeded, c.failed, extra, c.running, c.spend or "0", M.clock(c.eta_s))
end

-- update(counts [, force]): redraws (bar) or prints a status line (plain), throttled.
function Progress:update(c, force)
  if self.mode == "none" then
    return
  end
  local now = self.now()
  if not force and now - self.last_ms < self.interval_ms then
    return
  end
  self.last_ms = now
  if self.mode == "bar" then
    self.stream:write("\r\27[K", M.text(c, 24))
    self.drawn = true
  else
    self.stream:write(M.text(c), "\n")
  end
  self.stream:flush()
end

-- A line about one row (it ended, it is retried, ...): above the bar, or plain; shown as
-- validate.shown writes it, since it may carry what a manifest gave (a field named
-- "\27[31mfoo": a terminal acts on it).
function Progress:event(line)
  line = validate.shown(line)
  if self.mode == "none" then
    return
  end
  if self.mode == "bar" and self.drawn then
    self.stream:write("\r\27[K")
    self.last_ms = -math.huge -- redraw the bar under the line at the next update
  end
  self.stream:write(line, "\n")
  self.stream:flush()
end

function Progress:finish(c)
  if self.mode == "none" then
    return
  end
  self:update(c, true)
  if self.mode == "bar" then
    self.stream:write("\n")
    self.stream:flush()
  end
end

return M
