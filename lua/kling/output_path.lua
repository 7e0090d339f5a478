-- Where an output may be written: the one check, made before anything is sent, of a download's
-- path, its temporary <path>.part, an output directory and a name template. The rule itself is
-- kling.core.output_target's (C, lstat): no control byte (below 0x20, or 0x7f, NUL included:
-- a NUL cut the path short of the string, CR/LF made file names that forge lines), and nothing
-- at the path but a regular file (a planted symbolic link, a FIFO, a device or a directory is
-- refused: downloads may run as root in directories others can write). The temporary file is
-- then created exclusively, never through a link, by kling.core (core.http's output).
local core = require "kling.core"

local M = {}

local PART = ".part"

--- The temporary name a download streams to before it is renamed into place.
function M.part(path)
  return path .. PART
end

--- Whether a file name is a download's temporary name (it ends as M.part's do).
function M.is_part(name)
  return name:sub(-#PART) == PART
end

--- Why a download may not write path (nor its temporary name), or nil. The caller names
-- the field (`path`, `--out`, ...) in its error.
---@param path string
---@return string|nil
function M.refusal(path)
  local ok, err = core.output_target(path)
  if ok then
    ok, err = core.output_target(M.part(path), true) -- replaced only when it is ours
  end
  return not ok and err or nil
end

--- Why a directory or a name template may not be part of an output path (a control byte), or
-- nil: what is at the path is the write's concern (a directory is fine here).
---@param s string
---@return string|nil
function M.name_refusal(s)
  local ok, err, kind = core.output_target(s)
  if not ok and kind == "control" then
    return err
  end
  return nil
end

--- A new file at path, open for writing: made by kling.core (exclusively, never through a
-- link; a stale regular file of ours is replaced, anything else refused) and reopened by Lua's
-- io, the two compared so that a path swapped in between is never written.
-- create(path) -> file | nil, message
---@param path string
---@return file*|nil
---@return string|nil
function M.create(path)
  local made, err = core.create_output(path)
  if not made then
    return nil, err
  end
  local f
  f, err = io.open(path, "r+b") -- never creates nor truncates what it finds
  if not f then
    return nil, "cannot open " .. path .. ": " .. tostring(err)
  end
  if core.file_identity(f) ~= made then
    f:close()
    return nil, "cannot open " .. path .. ": it was replaced while being created"
  end
  return f
end

--- A file at path open for appending (a journal): created when absent, refused when path is
-- not a regular file, and the opened file compared with what lstat finds at path afterwards,
-- so a link planted before or during the open is never written through.
-- append(path) -> file, its identity (core.file_identity's) | nil, message
---@param path string
---@return file*|nil
---@return string|nil
function M.append(path)
  local ok, err = core.output_target(path)
  if not ok then
    return nil, err
  end
  local f
  f, err = io.open(path, "a")
  if not f then
    return nil, "cannot open " .. path .. ": " .. tostring(err)
  end
  local regular, why, id = core.output_target(path) -- true, size, identity | nil, message
  if not regular or id ~= core.file_identity(f) then
    f:close()
    return nil, regular and ("cannot open " .. path .. ": it was replaced while being opened") or why
  end
  return f, id
end

--- Makes the directories of `rel` under `base` (base is the caller's, a link there is the
-- user's own choice): each only where lstat finds a directory, or nothing (then made). A
-- link planted at DIR/posters would have every file written under it land wherever it
-- points; a file there is no directory either. The caller names the use in its error.
-- mkdir_under(base, rel) -> true | nil, message naming the path
---@param base string
---@param rel string
---@return boolean|nil
---@return string|nil
function M.mkdir_under(base, rel)
  local path = base
  for seg in rel:gmatch("[^/]+") do
    path = path .. "/" .. seg
    local ok, size, kind = core.output_target(path)
    local _
    if ok and size == nil then -- nothing there
      local made, err = core.mkdir_p(path)
      if not made then
        return nil, err
      end
      ok, _, kind = core.output_target(path)
    end
    if ok or kind ~= "a directory" then
      return nil, path .. " is " .. (ok and "a regular file" or kind or "not a directory")
        .. ": a directory of outputs is used only when it is a directory itself (never through a link)"
    end
  end
  return true
end

--- The size of the regular file at path, or nil (absent, or not a regular file: never opened,
-- so a FIFO cannot block the caller).
function M.size(path)
  local ok, size = core.output_target(path)
  return ok and size or nil
end

--- What a journal keeps of a finished download just before M.place moves it (its size and
-- identity, as core.output_target gives them), so that a file found at its name after a crash
-- between the move and the journal's next line is known for that download (M.placed).
-- before_place(tmp) -> bytes, id | nil
---@param tmp string
---@return integer|nil bytes
---@return string|nil id
function M.before_place(tmp)
  local regular, size, id = core.output_target(tmp)
  if regular == true and type(id) == "string" then
    return size, id
  end
  return nil
end

--- Whether the file at path is the one M.before_place saw (bytes, id): a regular file of that
-- size and inode. The inode alone, not the device: a device number may change across reboots
-- (btrfs). A copy, an edit or another file at the name is not it.
---@param path string
---@param bytes integer|nil
---@param id string|nil
---@return boolean
function M.placed(path, bytes, id)
  if type(bytes) ~= "number" or bytes ~= math.floor(bytes) or type(id) ~= "string" then
    return false
  end
  local regular, size, now = core.output_target(path)
  return regular == true and size == bytes and type(now) == "string" and now:match(":(%d+)$") ~= nil
    and now:match(":(%d+)$") == id:match(":(%d+)$")
end

--- Moves a finished download from its temporary name to path: over a file there when replace
-- is true, else only while nothing is there (core.rename_new, in one step: a file that
-- appeared at path during the download is kept, never replaced).
-- place(tmp, path, replace) -> true | nil, message, kind ("exists" | "error")
---@param tmp string
---@param path string
---@param replace boolean
---@return true|nil
---@return string|nil
---@return string|nil
function M.place(tmp, path, replace)
  if not replace then
    return core.rename_new(tmp, path)
  end
  local ok, err = os.rename(tmp, path)
  if not ok then
    return nil, "cannot move the download into place: " .. tostring(err), "error"
  end
  return true
end

return M
