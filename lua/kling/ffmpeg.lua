-- ffmpeg, as the workflows use it: one runner (errors read from its log), whether it is on
-- PATH, a clip's last frame (storyboards chain segments with it) and a poster frame (the
-- batch report shows it instead of a black box), and whether an output is in place.
local M = {}

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

-- run(args, log) -> true | nil, message: ffmpeg with `args` (already quoted), stderr to log.
function M.run(args, log)
  local cmd = "ffmpeg -nostdin -v error -y " .. args .. " 2>" .. quote(log)
  local ok = os.execute(cmd)
  if ok == true or ok == 0 then
    os.remove(log)
    return true
  end
  local f = io.open(log)
  local msg = f and f:read("a") or ""
  if f then
    f:close()
  end
  return nil, "ffmpeg failed: " .. (msg:gsub("%s+$", "") ~= "" and msg:gsub("%s+$", "") or "see " .. log)
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
  return M.run("-sseof -1 -i " .. quote(video) .. " -vf " .. quote(scale) .. " -update 1 " .. quote(png),
    png .. ".log")
end

-- nonempty(path) -> true when a file with content is there: how an output of ffmpeg (or a
-- segment already downloaded) is known to be in place.
function M.nonempty(path)
  local f = io.open(path, "rb")
  if not f then
    return false
  end
  local size = f:seek("end")
  f:close()
  return size > 0
end

-- poster(video, jpg) -> true | nil, err: a frame one second in (the very first is often
-- black), or the first frame of a shorter clip, as a JPEG at most 640 px wide.
function M.poster(video, jpg)
  for _, at in ipairs { "1", "0" } do
    local ok, err = M.run("-ss " .. at .. " -i " .. quote(video) .. " -frames:v 1 -vf 'scale=min(640\\,iw):-2' "
      .. "-q:v 4 " .. quote(jpg), jpg .. ".log")
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
