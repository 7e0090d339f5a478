-- kling.durable_file: a file replaced whole, durably. The text goes to a temporary file beside
-- it, which is fsync'd and renamed over the path (a rename is atomic: a reader sees the old file
-- or the new one, never half of one), then the directory entry is fsync'd. The temporary name
-- is random, so that two processes replacing one file never write into each other's. A core
-- without fsync_path (an older build) gets the rename alone.
local core = require "kling.core"
local output_path = require "kling.output_path"

local M = {}

local TEMP = "^(.+)%." .. ("%x"):rep(16) .. "%.tmp$"

--- The file whose temporary name `name` is (replace writes <path>.<16 hex digits>.tmp), or nil.
---@param name string
---@return string|nil
function M.temp_of(name)
  return name:match(TEMP)
end

-- replace(path, text) -> true | nil, message (the temporary file is removed on failure).
function M.replace(path, text)
  local tmp = path .. "." .. core.random_hex(8) .. ".tmp"
  local f, err = output_path.create(tmp) -- new, never through a link
  if not f then
    return nil, err
  end
  local ok, werr = f:write(text)
  if ok then
    ok, werr = f:close()
  else
    f:close()
  end
  if ok and core.fsync_path then
    ok, werr = core.fsync_path(tmp)
  end
  if ok then
    ok, werr = os.rename(tmp, path)
  end
  if not ok then
    os.remove(tmp)
    return nil, werr
  end
  if core.fsync_path then
    return core.fsync_path(path, true)
  end
  return true
end

return M
