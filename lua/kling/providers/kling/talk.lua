-- Talking faces on the official API: avatar (a portrait speaking an audio), identify-face
-- (synchronous: the faces of a video and a 24 h session) then advanced-lip-sync (faces of that
-- session speaking audio clips). Sources: kling-api-notes.md [R] and seed 000.
local validate = require "kling.validate"
local R = require "kling.providers.kling.rules"

local fail, set = R.fail, R.set
local M = {}

local function audio(req, field)
  local v = req[field]
  if v ~= nil and (type(v) ~= "string" or v == "") then
    return fail(field, "must be an audio URL or base64 (mp3/wav/m4a/aac, at most 5 MB)")
  end
  if type(v) == "string" and not validate.is_url(v) then
    -- Neither is refused here, before anything is held or sent: "\u00a0http://10.0.0.1/a.mp3"
    -- passed as base64 past the gateway's check of media URLs (allow_private_media), to an
    -- upstream that may trim it into a URL and fetch it.
    -- (its size first: a 20 MB body's string is refused before it is decoded)
    if math.floor(#v * 3 / 4) > 5 * 1024 * 1024 then
      return fail(field, "must be at most 5 MB")
    elseif not validate.is_base64(v) then
      return fail(field, "must be an http(s) URL or raw base64 audio (mp3/wav/m4a/aac, at most 5 MB): "
        .. "it is neither")
    end
  end
  return nil
end

-- duration (the audio's length, 2-300 s) prices the task; the API takes none.
M["videos/avatar/image2video"] = {
  kind = "video", async = true,
  -- The provider bills the audio's real length, whatever duration said: at most 300 s.
  media_seconds_max = 300,
  takes = set { "image", "prompt", "mode", "resolution", "duration", "callback_url", "external_task_id" },
  validate = function(req)
    local err = validate.image(R.ctx(), req, "image") or R.text(req, "prompt", 2500)
      or R.video_mode(req) or R.one_of(req, "audio_id", "sound_file") or R.id(req, "audio_id")
      or audio(req, "sound_file") or R.seconds_in(req, 2, 300, "(the audio's length)")
    if err then
      return err
    end
    if req.image == nil then
      return fail("image", "is required: the avatar's portrait")
    end
    return nil
  end,
  build = function(req)
    local body = R.task_body(req)
    body.image, body.prompt, body.mode = R.strip_data_uri(req.image), req.prompt, R.mode_of(req)
    return body
  end,
}

-- Synchronous: answers {session_id, face_data} at once (charged at once).
M["videos/identify-face"] = {
  kind = "face", sync = true, takes = {},
  validate = function(req)
    return R.one_of(req, "video_id", "video_url") or R.id(req, "video_id")
      or validate.url(R.ctx(), req, "video_url", "must be an http(s) URL (MP4/MOV, 2-60 s, 720p or 1080p)")
  end,
  build = R.passthrough,
}

local function face_choice(f, where)
  if type(f) ~= "table" then
    return fail(where, "must be a table {face_id, audio_id | sound_file, sound_start_time, sound_end_time, "
      .. "sound_insert_time}")
  end
  local err = R.id(f, "face_id", true) or R.one_of(f, "audio_id", "sound_file") or audio(f, "sound_file")
  if not err then
    for _, k in ipairs { "sound_start_time", "sound_end_time", "sound_insert_time" } do
      if not validate.is_whole(f[k]) or f[k] < 0 then
        err = fail(k, "is required: whole milliseconds >= 0")
        break
      end
    end
  end
  if not err and f.sound_end_time - f.sound_start_time < 2000 then
    err = fail("sound_end_time", "must be at least 2000 ms after sound_start_time (the cut audio lasts 2 s or more)")
  end
  err = err or validate.number_in(R.ctx(), f, "sound_volume", 0, 2)
    or validate.number_in(R.ctx(), f, "original_audio_volume", 0, 2)
  if err then
    err.field = where .. "." .. err.field
  end
  return err
end

-- duration (the video's length) prices the task (0.5 per started 5 s); the API takes none.
M["videos/advanced-lip-sync"] = {
  kind = "video", async = true,
  media_seconds_max = 60, -- billed from the video's real length, whatever duration said
  takes = set { "duration", "callback_url", "external_task_id" },
  validate = function(req)
    local err = R.id(req, "session_id", true) or validate.array(R.ctx(), req, "face_choose")
      or R.seconds_in(req, 2, 60, "(the video's length)")
    if err then
      return err
    end
    if type(req.face_choose) ~= "table" or #req.face_choose == 0 then
      return fail("face_choose", "is required: at least one face of the identify-face session")
    end
    for i, f in ipairs(req.face_choose) do
      err = face_choice(f, "face_choose[" .. i .. "]")
      if err then
        return err
      end
    end
    return nil
  end,
  build = R.task_body,
}

return M
