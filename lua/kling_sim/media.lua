-- Result files: a small real mp4 (with audio), a png, and the same 3 s tone as mp3 and wav
-- (the official audio endpoints deliver both), made by the launcher with ffmpeg
-- and read into memory in the master at init, so workers never open files. Served with
-- Content-Length, HEAD and single byte ranges, like a CDN.
local M = {}

local files = {} -- name -> {body, type}

local TYPES = { mp4 = "video/mp4", png = "image/png", mp3 = "audio/mpeg", wav = "audio/wav" }

function M.load(dir)
  for _, name in ipairs { "sample.mp4", "sample.png", "sample.mp3", "sample.wav" } do
    local f, err = io.open(dir .. "/" .. name, "rb")
    if not f then
      error("kling sim: cannot read media file: " .. tostring(err))
    end
    files[name] = { body = f:read("*a"), type = TYPES[name:match("%.(%w+)$")] }
    f:close()
  end
end

function M.file(name)
  return files[name]
end

-- A response table for file f, honouring a single "bytes=a-b" Range.
function M.response(f, method, range)
  local body, size = f.body, #f.body
  local headers = { ["Content-Type"] = f.type, ["Accept-Ranges"] = "bytes" }
  local status = 200
  if type(range) == "string" then
    local a, b = range:match("^bytes=(%d*)-(%d*)$")
    if a and (a ~= "" or b ~= "") then
      local first, last
      if a == "" then -- suffix: the last b bytes
        first, last = math.max(size - tonumber(b), 0), size - 1
      else
        first, last = tonumber(a), b == "" and size - 1 or math.min(tonumber(b), size - 1)
      end
      if first >= size or last < first then
        headers["Content-Range"] = "bytes */" .. size
        return { status = 416, headers = headers, body = "" }
      end
      status = 206
      headers["Content-Range"] = string.format("bytes %d-%d/%d", first, last, size)
      body = body:sub(first + 1, last + 1)
    end
  end
  headers["Content-Length"] = tostring(#body)
  if method == "HEAD" then
    body = ""
  end
  return { status = status, headers = headers, body = body }
end

return M
