-- What a valid create will deliver, decided when it arrives: the result's kind and size
-- (duration, number of images, the source it continues) and so its charge. This is where a
-- request meets earlier results: a video_id, an identify-face session, a TTS audio id, a
-- selection session must exist in this account (else 1201, as the API answers).
local c = require "kling_sim.official.check"
local library = require "kling_sim.official.library"
local units = require "kling_sim.units"
local views = require "kling_sim.official.views"

local bad = c.bad
local M = {}

local EXTEND_MODELS = { ["kling-v1"] = true, ["kling-v1-5"] = true, ["kling-v1-6"] = true }
local EXTEND_FROM = { text2video = true, image2video = true, ["video-extend"] = true }
M.EXTENSION_S = 4.5 -- video-extend adds 4~5 s
M.MAX_TOTAL_S = 180 -- an extended video stays within 3 min
M.UNKNOWN_MEDIA_S = 5 -- the length of a video or audio given by URL (the simulator cannot fetch it)

local seconds = library.seconds

local function missing(field, id, what)
  return bad(field .. " " .. tostring(id) .. " does not exist" .. (what and (" or is not " .. what) or "")
    .. " in this account")
end

-- A source video given by video_id or video_url -> {id, seconds} | nil, err
local function source(account, r, lo, hi)
  if r.video_id then
    local t, s = library.video(account, r.video_id)
    if not t then
      return nil, missing("video_id", r.video_id, "a finished video")
    end
    if (lo and s < lo) or (hi and s > hi) then
      return nil, bad("video_id " .. r.video_id .. " lasts " .. seconds(s) .. " s; this endpoint takes videos of "
        .. lo .. " to " .. hi .. " s")
    end
    return { id = t.video_id, seconds = s, task = t }
  end
  return { seconds = M.UNKNOWN_MEDIA_S }
end

local P = {}

local function video_of(r)
  return { kind = "video", duration = r.duration_str or seconds(r.duration) }
end

for _, key in ipairs { "text2video", "image2video", "omni-video", "multi-image2video", "motion-control", "effects" } do
  P[key] = function(r)
    return { out = video_of(r) }
  end
end

P["multi-elements"] = function(r, account)
  local s = library.selection(account, r.session_id)
  if not s then
    return nil, missing("session_id", r.session_id, "a selection session (init-selection)")
  end
  local len = s.duration_ms / 1000
  local lo, hi = 2, 5
  if r.duration == 10 then
    lo, hi = 7, 10
  end
  if len < lo or len > hi then
    return nil, bad("a " .. r.duration .. " s edit needs a video of " .. lo .. " to " .. hi .. " s; session "
      .. r.session_id .. " holds " .. seconds(len) .. " s")
  end
  local out = video_of(r)
  out.session_id = s.session_id
  return { out = out }
end

P["video-extend"] = function(r, account)
  local src, err = source(account, r)
  if not src then
    return nil, err
  end
  local p = src.task
  if not EXTEND_FROM[p.endpoint] or not EXTEND_MODELS[p.request.model] then
    return nil, bad("video_id " .. r.video_id .. " cannot be extended: video-extend takes videos made by "
      .. "text2video, image2video or video-extend with kling-v1, kling-v1-5 or kling-v1-6")
  end
  local total = src.seconds + M.EXTENSION_S
  if total > M.MAX_TOTAL_S then
    return nil, bad("video_id " .. r.video_id .. " would last " .. seconds(total) .. " s; an extended video "
      .. "stays within 3 minutes")
  end
  r.model, r.mode = p.request.model, p.request.mode
  return { out = { kind = "video", duration = seconds(total),
    parent = { id = src.id, duration = seconds(src.seconds), model = p.request.model, mode = p.request.mode } } }
end

P["avatar/image2video"] = function(r, account)
  local len = M.UNKNOWN_MEDIA_S
  if r.audio_id then
    local t, s = library.speech(account, r.audio_id)
    if not t then
      return nil, missing("audio_id", r.audio_id, "a TTS audio")
    end
    len = s
  end
  if len < 2 or len > 300 then
    return nil, bad("the audio lasts " .. seconds(len) .. " s; avatar takes 2 to 300 s")
  end
  return { out = { kind = "video", duration = seconds(len) } }
end

P["advanced-lip-sync"] = function(r, account)
  local session = library.face_session(account, r.session_id)
  if not session then
    return nil, missing("session_id", r.session_id, "a live identify-face session")
  end
  local video_ms = session.out.duration_ms
  local faces = {}
  for _, f in ipairs(session.out.faces) do
    faces[f.face_id] = f
  end
  for i, choice in ipairs(r.faces) do
    local where = "face_choose[" .. i .. "]."
    local face = faces[tostring(choice.face_id)]
    if not face then
      return nil, bad(where .. "face_id " .. tostring(choice.face_id) .. " is not a face of session " .. r.session_id)
    end
    if choice.audio_id ~= nil then
      local t, s = library.speech(account, choice.audio_id)
      if not t then
        return nil, missing(where .. "audio_id", choice.audio_id, "a TTS audio")
      end
      if choice.sound_end_time > s * 1000 then
        return nil, bad(where .. "sound_end_time is after the end of the audio (" .. seconds(s) .. " s)")
      end
    end
    local len = choice.sound_end_time - choice.sound_start_time
    local from, to = choice.sound_insert_time, choice.sound_insert_time + len
    if to > video_ms then
      return nil, bad(where .. "the inserted audio ends at " .. to .. " ms, after the video (" .. video_ms .. " ms)")
    end
    if math.min(to, face.end_time) - math.max(from, face.start_time) < 2000 then
      return nil, bad(where .. "the inserted audio must overlap the face's lip-sync interval by at least 2000 ms")
    end
  end
  local s = video_ms / 1000
  return { out = { kind = "video", duration = seconds(s), seconds = s,
    parent = session.out.source and { id = session.out.source, duration = seconds(s) } or nil } }
end

P["audio/text-to-audio"] = function(r)
  return { out = { kind = "audio", duration = seconds(r.duration) } }
end

P["audio/video-to-audio"] = function(r, account)
  local src, err = source(account, r, 3, 20)
  if not src then
    return nil, err
  end
  local s = seconds(src.seconds)
  return { out = { kind = "dubbed", duration = s, audio_duration = s,
    parent = src.id and { id = src.id, duration = s } or nil } }
end

local IMAGES = { "images/generations", "images/omni-image", "images/multi-image2image", "images/editing/expand" }
for _, key in ipairs(IMAGES) do
  P[key] = function(r)
    return { out = { kind = "image", n = r.n }, slots = r.n }
  end
end

-- Only videos with a voice in them train one: kling-v2-6 with sound, avatar, lip-sync.
local function can_train(t)
  return (t.endpoint == "text2video" or t.endpoint == "image2video") and t.request.model == "kling-v2-6"
    and t.request.sound == "on" or t.endpoint == "avatar/image2video" or t.endpoint == "advanced-lip-sync"
end

P["general/custom-voices"] = function(r, account)
  if r.video_id then
    local t = library.video(account, r.video_id)
    if not t or not can_train(t) then
      return nil, bad("video_id " .. r.video_id .. " cannot train a voice: use a kling-v2-6 video made with sound "
        .. "on, an avatar video or a lip-sync video of this account")
    end
  end
  return { out = { kind = "voice", voice_name = r.voice_name } }
end

-- ---- synchronous endpoints: what they answer ----

P["identify-face"] = function(r, account)
  local src, err = source(account, r, 2, 60)
  if not src then
    return nil, err
  end
  local ms = math.floor(src.seconds * 1000)
  return { out = { kind = "face", duration_ms = ms, source = src.id,
    faces = { { face_id = "0", start_time = 0, end_time = ms } } } }
end

P["image-recognize"] = function()
  return { out = { kind = "recognize" } }
end

-- TTS reads about 4 characters a second at speed 1.0 (at least 1 s).
P["audio/tts"] = function(r)
  local chars = c.chars(r.text)
  local s = math.max(1, math.floor(chars * 10 / (4 * r.voice_speed) + 0.5) / 10)
  return { out = { kind = "speech", duration = seconds(s) } }
end

P["general/custom-elements"] = function()
  return { out = { kind = "element" } }
end

-- plan(key, r, account) -> {out, slots, units} | nil, err
local PRESET_ELEMENT = {}
for _, p in ipairs(views.PRESET_ELEMENTS) do
  PRESET_ELEMENT[tostring(p.element_id)] = true
end

-- The elements a create names (element_list, its shape checked by the endpoint's rules): each a
-- preset or a custom element of this account that was made and not deleted; an id the
-- simulator never made is unknown, 1201 as the API answers -> true | nil, err
function M.elements(body, account)
  for i, item in ipairs(type(body.element_list) == "table" and body.element_list or {}) do
    local id = type(item) == "table" and item.element_id
    local whole = type(id) == "number" and id == math.floor(id) and id >= 0 and id < 2 ^ 53
    local text = whole and string.format("%d", id) or tostring(id)
    if not (PRESET_ELEMENT[text] or library.element(account, text)) then
      return nil, missing("element_list[" .. i .. "].element_id", text, "a preset or a finished custom element")
    end
  end
  return true
end

function M.plan(key, r, account)
  local fn = P[key]
  if not fn then
    return nil, { status = 404, code = 1202, message = "no such endpoint: " .. tostring(key) }
  end
  local p, err = fn(r, account)
  if not p then
    return nil, err
  end
  local out = p.out
  local parent = out.parent
  p.units = units.charge(key, r, { duration = tonumber(out.duration) or (out.duration_ms and out.duration_ms / 1000),
    n = out.n, parent = parent and { model = parent.model, mode = parent.mode } })
  return p
end

return M
