-- How an official task reads back (query, list and callback): the task object of the docs
-- with task_result shaped by what the endpoint delivers. `base` is the scheme://host:port
-- result URLs start with (the caller's, or the one recorded at create for callbacks).
local json = require "kling.json"
local units = require "kling_sim.units"

local M = {}

-- Result files: videos through the router's /media/videos/{id}.mp4, everything else through
-- the dialect's /cdn/{kind}/{name}.{ext} (see dialects/kling.lua).
function M.video_url(base, id)
  return base .. "/media/videos/" .. id .. ".mp4"
end

function M.cdn(base, kind, name, ext)
  return base .. "/cdn/" .. kind .. "/" .. name .. "." .. ext
end

local function video(t, base)
  local out, r = t.out or {}, t.request
  local v = { id = t.video_id, url = M.video_url(base, t.video_id), duration = out.duration or r.duration_str }
  if r.watermark then
    v.watermark_url = base .. "/media/videos/" .. t.video_id .. "-wm.mp4"
  end
  if out.session_id then
    v.session_id = out.session_id
  end
  return v
end

local function audio_pair(t, base)
  local d = t.out.audio_duration or t.out.duration
  return { id = t.video_id, url_mp3 = M.cdn(base, "audios", t.video_id, "mp3"),
    url_wav = M.cdn(base, "audios", t.video_id, "wav"), duration_mp3 = d, duration_wav = d }
end

local RESULTS = {}

RESULTS.video = function(t, base)
  return { videos = json.array { video(t, base) } }
end

RESULTS.image = function(t, base)
  local images = json.array {}
  for i = 1, t.out.n or 1 do
    local name = t.id .. "-" .. i
    local img = { index = i - 1, url = M.cdn(base, "images", name, "png") }
    if t.request.watermark then
      img.watermark_url = M.cdn(base, "images", name .. "-wm", "png")
    end
    images[i] = img
  end
  return { images = images }
end

RESULTS.audio = function(t, base)
  return { audios = json.array { audio_pair(t, base) } }
end

-- video-to-audio: the video with its new sound, and the sound alone.
RESULTS.dubbed = function(t, base)
  return { videos = json.array { video(t, base) }, audios = json.array { audio_pair(t, base) } }
end

RESULTS.speech = function(t, base)
  return { audios = json.array { { id = t.video_id, url = M.cdn(base, "audios", t.video_id, "mp3"),
    duration = t.out.duration } } }
end

RESULTS.voice = function(t, base)
  return { voices = json.array { M.voice(t, base) } }
end

function M.voice(t, base)
  return { voice_id = t.video_id, voice_name = t.out.voice_name, trial_url = M.cdn(base, "voices", t.video_id, "mp3"),
    owned_by = t.account }
end

-- task(t, base, status, billed, updated) -> the task object
function M.task(t, base, status, billed, updated)
  local d = {
    task_id = t.id, task_status = status, task_status_msg = "", created_at = t.created_ms, updated_at = updated,
    task_info = { external_task_id = t.external_task_id },
  }
  local out = t.out or {}
  if out.parent then
    d.task_info.parent_video = { id = out.parent.id, url = M.video_url(base, out.parent.id),
      duration = out.parent.duration }
  end
  if t.request.watermark then
    d.watermark_info = { enabled = true }
  end
  if status == "failed" then
    d.task_status_msg = t.fate.message
  elseif status == "succeed" then
    d.task_result = (RESULTS[out.kind or "video"])(t, base)
    d.final_unit_deduction = billed and units.format(billed) or nil
  end
  return d
end

-- A custom element as the element endpoints show it.
function M.element(t, base)
  local e = t.out
  local tags = json.array {}
  for i, tag in ipairs(e.tags or {}) do
    tags[i] = tag
  end
  local refs = json.array {}
  for i, url in ipairs(e.refer_urls or {}) do
    refs[i] = { image_url = url }
  end
  return {
    element_id = e.element_id, element_name = e.element_name, element_description = e.element_description,
    element_frontal_image = e.frontal_url or M.cdn(base, "elements", tostring(e.element_id), "png"),
    element_refer_list = refs, tag_list = tags, owned_by = t.account,
  }
end

-- The official library the presets endpoints list (owned_by "kling").
M.PRESET_ELEMENTS = {
  { element_id = 100001, element_name = "Shiba", element_description = "A red shiba inu with a blue collar",
    tag = "o_103" },
  { element_id = 100002, element_name = "Astronaut", element_description = "An astronaut in a white suit",
    tag = "o_102" },
  { element_id = 100003, element_name = "Lantern", element_description = "A red paper lantern", tag = "o_104" },
}
M.PRESET_VOICES = {
  { voice_id = "kling_narrator_en", voice_name = "Narrator (en)" },
  { voice_id = "kling_anchor_zh", voice_name = "新闻主播 (zh)" },
  { voice_id = "kling_child_zh", voice_name = "童声 (zh)" },
}

function M.preset_element(p, base, tag_names)
  local id = tostring(p.element_id)
  return {
    element_id = p.element_id, element_name = p.element_name, element_description = p.element_description,
    element_frontal_image = M.cdn(base, "elements", id, "png"),
    element_refer_list = json.array { { image_url = M.cdn(base, "elements", id .. "-1", "png") } },
    tag_list = json.array { { id = p.tag, name = tag_names[p.tag], description = tag_names[p.tag] } },
    final_unit_deduction = "0", owned_by = "kling",
  }
end

-- Preset voices are listed as finished voice tasks, as the docs show them.
function M.preset_voice(p, base, created_ms)
  return {
    task_id = "preset-" .. p.voice_id, task_status = "succeed", task_status_msg = "", created_at = created_ms,
    updated_at = created_ms,
    task_result = { voices = json.array { { voice_id = p.voice_id, voice_name = p.voice_name,
      trial_url = M.cdn(base, "voices", p.voice_id, "mp3"), owned_by = "kling" } } },
  }
end

return M
