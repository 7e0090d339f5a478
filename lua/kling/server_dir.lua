-- The two servers kling starts in a directory D of their own (`kling sim start`, `kling gateway
-- start`), each known there by its pid file while it runs. A command of one refuses the other's
-- D: `kling sim stop` stopped a live metering gateway, `kling gateway stop` a simulator. Pure Lua
-- (the simulator uses it without the library's C core): the caller reads the files.
local M = {}

local KINDS = {
  gateway = { pid = "gateway.pid", name = "a metering gateway's", cmd = "kling gateway", what = "the gateway" },
  sim = { pid = "sim.pid", name = "a simulator's", cmd = "kling sim", what = "the simulator" },
}

--- other_kind(read, dir, own) -> message | nil: dir holds the other server's pid file and not
-- own's ("gateway" or "sim"). read(path) -> the file's text | nil.
function M.other_kind(read, dir, own)
  local mine, other = KINDS[own], KINDS[own == "sim" and "gateway" or "sim"]
  if read(dir .. "/" .. other.pid) and not read(dir .. "/" .. mine.pid) then
    return dir .. " is " .. other.name .. " directory (its " .. other.pid .. "): " .. mine.cmd
      .. " neither starts nor stops anything there (" .. other.cmd .. " stop --dir " .. dir .. " stops " .. other.what
      .. ")"
  end
  return nil
end

return M
