-- The official API's answers as canonical tasks: the task object (create, query, list,
-- callback) with its outputs (videos, images, audios, voices, the parent video), and the
-- synchronous answers that are not task objects (identify-face, image-recognize, a custom
-- element). Numbers that Kling sends as strings (durations) become numbers.
local common = require "kling.providers.common"
local validate = require "kling.validate"

local M = {}

-- Canonical status of each official task_status. Anything else is an error, never "keep polling".
M.statuses = { submitted = "queued", processing = "running", succeed = "succeeded", failed = "failed" }

local function list(v)
  return type(v) == "table" and v or {}
end

-- The fields every video has in the constructor, the optional ones only when present: a
-- constructor naming absent fields sizes the table for them (about 100 bytes a task).
local function video(v)
  local o = { id = v.id, url = v.url, duration = tonumber(v.duration) }
  o.watermark_url, o.session_id = v.watermark_url, v.session_id
  return o
end

-- TTS audios carry url and duration; text/video-to-audio ones mp3 and wav (url is the mp3).
local function audio(v)
  if v.url_mp3 ~= nil or v.url_wav ~= nil then
    return { id = v.id, url = v.url_mp3 or v.url_wav, url_mp3 = v.url_mp3, url_wav = v.url_wav,
      duration = tonumber(v.duration_mp3 or v.duration_wav), duration_mp3 = tonumber(v.duration_mp3),
      duration_wav = tonumber(v.duration_wav) }
  end
  return { id = v.id, url = v.url, duration = tonumber(v.duration) }
end

-- An element as the element endpoints answer it.
function M.element(e)
  if type(e) ~= "table" or e.element_id == nil then
    return nil, "element object without element_id"
  end
  if not common.id_text(e.element_id) then -- a table's tostring named an element no one has
    return nil, "element_id is " .. validate.type_of(e.element_id) .. ", not an id (a string or a whole number)"
  end
  return {
    element_id = e.element_id, element_name = e.element_name, element_description = e.element_description,
    element_frontal_image = e.element_frontal_image, element_refer_list = e.element_refer_list,
    tag_list = e.tag_list, owned_by = e.owned_by, raw = e,
  }
end

-- Each item of an output list must be an object: anything else is a malformed answer.
local function objects(result, name)
  local items = result[name]
  if type(items) ~= "table" then
    return nil
  end
  if items[1] == nil and next(items) ~= nil then
    -- {"videos": {"a": 1}}: read by ipairs as no output, a succeeded task with nothing to fetch
    return nil, string.format("task_result.%s is %s, not an array", name, validate.type_of(items))
  end
  for i, v in ipairs(items) do
    if type(v) ~= "table" then
      return nil, string.format("task_result.%s[%d] is %s, not an object", name, i, validate.type_of(v))
    end
  end
  return items
end

local function outputs(t, result)
  if type(result) ~= "table" then
    return true
  end
  for _, name in ipairs { "videos", "images", "audios", "voices" } do
    local _, err = objects(result, name)
    if err then
      return nil, err
    end
  end
  if type(result.videos) == "table" then
    t.videos = {}
    for i, v in ipairs(result.videos) do
      t.videos[i] = video(v)
    end
  end
  if type(result.images) == "table" then
    t.images = {}
    for i, v in ipairs(result.images) do
      t.images[i] = { index = v.index, url = v.url, watermark_url = v.watermark_url, type = v.type,
        is_contain = v.is_contain }
    end
  end
  if type(result.audios) == "table" then
    t.audios = {}
    for i, v in ipairs(result.audios) do
      t.audios[i] = audio(v)
    end
  end
  if type(result.voices) == "table" then
    t.voices = {}
    for i, v in ipairs(result.voices) do
      t.voices[i] = { voice_id = v.voice_id, voice_name = v.voice_name, trial_url = v.trial_url, owned_by = v.owned_by }
    end
  end
  return true
end

-- A canonical task from the provider's task object (create, query, list or callback).
function M.task(data)
  if type(data) ~= "table" or data.task_id == nil then
    return nil, "task object without task_id"
  end
  local status = M.statuses[data.task_status]
  if not status then
    local s = data.task_status
    return nil, "unknown task_status " .. (type(s) == "string" and ("'" .. s:sub(1, 64) .. "'")
      or ("(" .. validate.type_of(s) .. ")"))
  end
  local id = common.id_text(data.task_id)
  if not id then
    return nil, "task_id is " .. validate.type_of(data.task_id) .. ", not an id (a string or a whole number)"
  end
  local info = type(data.task_info) == "table" and data.task_info or {}
  -- The gateway finds a callback's task by it (a store key): a table there raised, HTTP 500.
  if info.external_task_id ~= nil and type(info.external_task_id) ~= "string" then
    return nil, "task_info.external_task_id is " .. validate.type_of(info.external_task_id) .. ", not a string"
  end
  local t = {
    id = id,
    status = status,
    provider_status = data.task_status,
    message = data.task_status_msg ~= "" and data.task_status_msg or nil,
    external_task_id = info.external_task_id,
    created_at = common.ms_to_s(data.created_at),
    updated_at = common.ms_to_s(data.updated_at),
    charge = common.charge(data.final_unit_deduction),
    raw = data,
  }
  if type(info.parent_video) == "table" then
    t.parent_video = video(info.parent_video)
  end
  local result = data.task_result
  if result ~= nil then -- none while the task runs
    local ok, err = outputs(t, result)
    if not ok then
      return nil, err
    end
  end
  if status == "succeeded" then
    t.progress = 100
  end
  return t
end

-- The synchronous answers that are no task object; each is a finished, charged result.
local SYNC = {}

SYNC["videos/identify-face"] = function(data)
  if data.session_id == nil then
    return nil, "identify-face answer without session_id"
  end
  local faces = {}
  for i, f in ipairs(list(data.face_data)) do
    faces[i] = { face_id = f.face_id, face_image = f.face_image, start_time = f.start_time, end_time = f.end_time }
  end
  local id = common.id_text(data.session_id)
  if not id then
    return nil, "session_id is " .. validate.type_of(data.session_id) .. ", not an id (a string or a whole number)"
  end
  return { id = id, session_id = id, face_data = faces }
end

SYNC["videos/image-recognize"] = function(data)
  if type(data.task_result) ~= "table" then
    return nil, "image-recognize answer without task_result"
  end
  local t = {}
  local ok, err = outputs(t, data.task_result)
  if not ok then
    return nil, err
  end
  return t
end

SYNC["general/custom-elements"] = function(data)
  local e, err = M.element(data)
  if not e then
    return nil, err
  end
  return { id = common.id_text(e.element_id), elements = { e } }
end

-- parse(data, endpoint) -> canonical fields | nil, message. A task object is read as one on
-- every endpoint (TTS answers one; custom-elements may); the other synchronous answers by
-- their endpoint, as finished tasks marked sync (nothing to poll).
function M.parse(data, endpoint)
  if type(data) ~= "table" then
    return nil, "answer is not an object"
  end
  if data.task_id ~= nil or not SYNC[endpoint] then
    return M.task(data)
  end
  local t, err = SYNC[endpoint](data)
  if not t then
    return nil, err
  end
  t.status, t.provider_status, t.progress, t.sync = "succeeded", "succeed", 100, true
  t.charge, t.raw = common.charge(data.final_unit_deduction), data
  return t
end

-- What client:call returns for each kind of management answer.
function M.call_result(kind, data)
  if kind == "elements" or kind == "tasks" then
    if type(data) ~= "table" then
      return nil, "list answer is not an array"
    end
    local out = {}
    for i, item in ipairs(data) do
      local v, err
      if kind == "elements" then
        v, err = M.element(item)
      else
        v, err = M.task(item)
      end
      if not v then
        return nil, "item " .. i .. ": " .. err
      end
      out[i] = v
    end
    return out
  elseif kind == "status" then
    if type(data) ~= "table" then
      return nil, "answer is not an object"
    end
    return { id = common.id_text(data.task_id), status = M.statuses[data.task_status],
      provider_status = data.task_status, raw = data }
  end
  return data
end

return M
