--- A function run under a lock file's lock, the lock given back however the function ends.
-- kling.file_lock: what holds a lock of kling.core.lock_file for the length of one call
-- (kling.multishot.run its storyboard directory's, kling.element.create its element's). A
-- raise inside (Ctrl-C, a bug) is raised again, unchanged, once the lock is let go: it is the
-- caller's to report (kling.cli: Ctrl-C is exit 130).
-- @module kling.file_lock
local M = {}

local function finish(lock, path, ok, ...)
  if path then
    -- while the lock is still held: kling.core.lock_file takes no lock on a file no longer at
    -- its path, so a process that opened this one before the removal cannot hold it beside
    -- one that makes the file again
    os.remove(path)
  end
  lock:unlock()
  if not ok then
    error((...), 0)
  end
  return ...
end

--- fn(...) under `lock` (kling.core.lock_file's), released when it ends.
-- run(lock, fn, ...) -> what fn returns; what fn raises is raised again after the release.
---@param lock userdata a held lock (kling.core.lock_file)
---@param fn function
---@return any ... fn's results
function M.run(lock, fn, ...)
  return finish(lock, nil, pcall(fn, ...))
end

--- As run, with the lock's file removed before the release (nothing is left beside what it guards).
-- run_removing(lock, path, fn, ...) -> what fn returns; path is the file `lock` was taken on.
---@param lock userdata a held lock (kling.core.lock_file)
---@param path string the file the lock was taken on
---@param fn function
---@return any ... fn's results
function M.run_removing(lock, path, fn, ...)
  return finish(lock, path, pcall(fn, ...))
end

return M
