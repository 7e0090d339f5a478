-- ffmpeg, as the workflows use it: one runner (errors read from its log), whether it is on
-- PATH, a clip's last frame (storyboards chain segments with it) and a poster frame (the
-- batch report shows it instead of a black box), and whether an output is in place.
local core = require "kling.core"
local output_path = require "kling.output_path"

local M = {}

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

local function read_all(path)
  local f = io.open(path, "rb")
  local text = f and f:read("a") or ""
  if f then
    f:close()
  end
  return (text:gsub("%s+$", ""))
end

-- run(args, out [, replace [, on_place]]) -> true | nil, message [, "exists"]: ffmpeg with `args` (already
-- quoted) making the file `out`. ffmpeg opens its output, and the shell its log, following
-- links: a link planted at either name (outputs may be written as root into directories
-- others can write) would have them overwrite its target. Both are made in a private
-- directory beside `out` (mode 0700, kling.core.private_dir) and the output moved into place
-- by kling.output_path.place, which replaces the name at `out` without following it; with
-- replace = false a file at `out` (one that appeared while ffmpeg ran) is kept and the output
-- dropped: a user's output, not a working file of ours. on_place(made), when given, sees the
-- finished output just before the move (a journal records it: kling.output_path.before_place);
-- what it raises is raised once the private directory is removed.
function M.run(args, out, replace, on_place)
  local dir, err = core.private_dir(out:match("^(.*)/[^/]*$") or ".")
  if not dir then
    return nil, err
  end
  local made = dir .. "/out" .. (out:match("(%.%w+)$") or "") -- ffmpeg picks its format by the extension
  local log = dir .. "/ffmpeg.log"
  local ok = os.execute("ffmpeg -nostdin -v error -y " .. args .. " " .. quote(made) .. " 2>" .. quote(log))
  local msg = read_all(log)
  local done = ok == true or ok == 0
  local moved, merr, mkind = true, nil, nil
  local seen, raised = true, nil
  if done and on_place then
    seen, raised = pcall(on_place, made)
  end
  if done and seen then
    moved, merr, mkind = output_path.place(made, out, replace ~= false)
  end
  os.remove(made)
  os.remove(log)
  os.remove(dir)
  if not seen then
    error(raised, 0)
  end
  if not done then
    return nil, "ffmpeg failed: " .. (msg ~= "" and msg or "no message")
  end
  if not moved then
    return nil, "cannot put ffmpeg's output at " .. out .. ": " .. tostring(merr), mkind
  end
  return true
end

function M.have()
  local ok = os.execute("command -v ffmpeg >/dev/null 2>&1")
  return ok == true or ok == 0
end

-- last_frame(video, png, min_side) -> true | nil, err: the video's last frame as a PNG, scaled
-- up (the aspect kept) when its short side is under min_side pixels.
function M.last_frame(video, png, min_side)
  local scale = string.format("scale=w='if(lt(iw,ih),max(iw,%d),-2)':h='if(lt(iw,ih),-2,max(ih,%d))'", min_side,
    min_side)
  return M.run("-sseof -1 -i " .. quote(video) .. " -vf " .. quote(scale) .. " -update 1", png)
end

-- nonempty(path) -> true when a regular file with content is there: how an output of ffmpeg (or a
-- segment already downloaded) is known to be in place.
function M.nonempty(path)
  return (output_path.size(path) or 0) > 0 -- a regular file: a link or a FIFO is never opened
end

-- poster(video, jpg) -> true | nil, err: a frame one second in (the very first is often
-- black), or the first frame of a shorter clip, as a JPEG at most 640 px wide.
function M.poster(video, jpg)
  for _, at in ipairs { "1", "0" } do
    local ok, err = M.run("-ss " .. at .. " -i " .. quote(video) .. " -frames:v 1 -vf 'scale=min(640\\,iw):-2' "
      .. "-q:v 4", jpg)
    if ok and M.nonempty(jpg) then
      return true
    end
    if at == "0" then
      os.remove(jpg)
      return nil, err or ("no frame in " .. video)
    end
  end
end

return M
