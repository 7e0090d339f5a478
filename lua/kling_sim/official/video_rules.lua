-- The official API's documented body rules for the video endpoints beyond text2video and
-- image2video (those stay in kling_sim.params), the lip-sync pair and the multi-elements
-- selections. Pure: each rule returns the cleaned request r (with the facts the ledger and
-- the result need) or nil and {status, code, message}. What needs the store (sessions,
-- source videos, audio ids) is checked by the dialect afterwards.
local c = require "kling_sim.official.check"

local bad = c.bad
local M = {}

local MODES = { std = true, pro = true }
local RATIOS = { ["16:9"] = true, ["9:16"] = true, ["1:1"] = true }
local YES_NO = { yes = true, no = true }
local MAX_PROMPT = 2500

local model = c.model

-- duration as a string of seconds in `set` (a set of integers) -> seconds, spelling
local function duration(body, set, default, why)
  local v = body.duration
  if v == nil then
    return default, tostring(default)
  end
  local n = c.seconds(v)
  if not n or not set[n] then
    return nil, bad("duration must be one of \"" .. table.concat(c.sorted_keys(set), "\", \"") .. "\"" .. (why or "")
      .. " (got " .. (type(v) == "string" and ("\"" .. v .. "\"") or ("a " .. type(v))) .. ")")
  end
  return n, v
end

local FIVE_TEN = { [5] = true, [10] = true }
local THREE_TO_TEN = { [3] = true, [4] = true, [5] = true, [6] = true, [7] = true, [8] = true, [9] = true,
  [10] = true }

-- Shared by the video creates: prompt, negative_prompt, mode, task options.
local function basics(body, r, prompt_required, default_mode)
  local err
  r.prompt, err = c.text(body, "prompt", MAX_PROMPT, prompt_required)
  if err then return nil, err end
  r.negative_prompt, err = c.text(body, "negative_prompt", MAX_PROMPT, false)
  if err then return nil, err end
  r.mode, err = c.enum(body, "mode", MODES, default_mode)
  if err then return nil, err end
  return c.task_options(body, r)
end

-- /v1/videos/omni-video (kling-video-o1): images, elements and one video as references.
M["omni-video"] = function(body, b64)
  local r = { sound = "off" }
  local err
  r.model, err = model(body, "kling-video-o1", { ["kling-video-o1"] = true }, "omni-video")
  if not r.model then return nil, err end
  local okb, berr = basics(body, r, true, "pro")
  if not okb then return nil, berr end
  local videos = body.video_list
  if videos ~= nil and (not c.is_array(videos) or #videos > 1) then
    return nil, bad("video_list must be an array of at most 1 video")
  end
  local base = false
  for i, v in ipairs(videos or {}) do
    local where = "video_list[" .. i .. "]"
    if type(v) ~= "table" or not c.url(v, "video_url", true) then
      return nil, bad(where .. ".video_url must be an http(s) URL")
    end
    local rt, e1 = c.enum(v, "refer_type", { feature = true, base = true }, "base")
    if not rt then return nil, bad(where .. "." .. e1.message) end
    local ks, e2 = c.enum(v, "keep_original_sound", YES_NO, "yes")
    if not ks then return nil, bad(where .. "." .. e2.message) end
    base = rt == "base"
  end
  local with_video = videos ~= nil and #videos > 0
  local max = with_video and 4 or 7
  local images = body.image_list
  if images ~= nil and (not c.is_array(images) or #images > max) then
    return nil, bad("image_list must be an array of at most " .. max .. " images" .. (with_video and
      " when a video is given" or ""))
  end
  local first, last = false, false
  for i, item in ipairs(images or {}) do
    local where = "image_list[" .. i .. "]"
    if type(item) ~= "table" then
      return nil, bad(where .. " must be an object {image_url, type}")
    end
    local ok, ierr = c.image_value(item.image_url, where .. ".image_url", b64)
    if not ok then return nil, ierr end
    local kind, kerr = c.enum(item, "type", { first_frame = true, end_frame = true }, nil)
    if kerr then return nil, bad(where .. "." .. kerr.message) end
    first = first or kind == "first_frame"
    last = last or kind == "end_frame"
  end
  local n_images = images and #images or 0
  if last and not first then
    return nil, bad("image_list: an end_frame needs a first_frame")
  end
  if last and n_images > 2 then
    return nil, bad("image_list: an end_frame cannot be used with more than 2 images")
  end
  local n_elements
  n_elements, err = c.object_list(body, "element_list", max, "element_id")
  if not n_elements then return nil, err end
  if n_images + n_elements > max then
    return nil, bad("image_list and element_list together must have at most " .. max .. " items"
      .. (with_video and " when a video is given" or "") .. " (got " .. (n_images + n_elements) .. ")")
  end
  local ratio = body.aspect_ratio
  if first or base then
    if ratio ~= nil then
      return nil, bad("aspect_ratio is not supported with a first frame or when editing a video (refer_type base)")
    end
  else
    r.aspect_ratio, err = c.enum(body, "aspect_ratio", RATIOS, nil)
    if err then return nil, err end
    if not r.aspect_ratio then
      return nil, bad("aspect_ratio is required unless a first frame or a video to edit is given")
    end
  end
  if base then
    if body.duration ~= nil then
      return nil, bad("duration cannot be set when editing a video (refer_type base): it follows the video")
    end
    r.duration, r.duration_str = 5, "5" -- the edited video's length; the simulator's are 5 s
  else
    local plain = n_images + n_elements == 0 and not with_video
    local five_ten = plain or (first and n_images <= 2 and n_elements == 0 and not with_video)
    r.duration, r.duration_str = duration(body, five_ten and FIVE_TEN or THREE_TO_TEN, 5,
      five_ten and " for text-to-video and first-frame video" or "")
    if not r.duration then return nil, r.duration_str end
  end
  r.reference = n_images + n_elements > 0 or with_video
  r.elements = n_elements
  return r
end

-- /v1/videos/multi-image2video (kling-v1-6): 1 to 4 reference images.
M["multi-image2video"] = function(body, b64)
  local r = { sound = "off", reference = true }
  local err
  r.model, err = model(body, "kling-v1-6", { ["kling-v1-6"] = true }, "multi-image2video")
  if not r.model then return nil, err end
  local okb, berr = basics(body, r, true, "std")
  if not okb then return nil, berr end
  local n
  n, err = c.image_list(body, "image_list", 4, "image", b64, 1)
  if not n then return nil, err end
  r.aspect_ratio, err = c.enum(body, "aspect_ratio", RATIOS, "16:9")
  if err then return nil, err end
  r.duration, r.duration_str = duration(body, FIVE_TEN, 5)
  if not r.duration then return nil, r.duration_str end
  return r
end

-- /v1/videos/motion-control: a character image moved like the person in a reference video.
M["motion-control"] = function(body, b64)
  local r = { model = "kling-v2-6", sound = "off" }
  local err
  if body.mode == nil then
    return nil, bad("mode is required (std or pro)")
  end
  local okb, berr = basics(body, r, false, nil)
  if not okb then return nil, berr end
  local ok
  ok, err = c.image(body, "image_url", b64, true)
  if not ok then return nil, err end
  ok, err = c.url(body, "video_url", true)
  if not ok then return nil, err end
  r.keep_original_sound, err = c.enum(body, "keep_original_sound", YES_NO, "yes")
  if err then return nil, err end
  if body.character_orientation == nil then
    return nil, bad("character_orientation is required (image or video)")
  end
  r.character_orientation, err = c.enum(body, "character_orientation", { image = true, video = true })
  if err then return nil, err end
  r.duration, r.duration_str = 5, "5" -- the reference video's length; the simulator's are 5 s
  return r
end

-- /v1/videos/multi-elements: edit a video initialised by init-selection.
M["multi-elements"] = function(body, b64)
  local r = { sound = "off" }
  local err
  r.model, err = model(body, "kling-v1-6", { ["kling-v1-6"] = true }, "multi-elements")
  if not r.model then return nil, err end
  local okb, berr = basics(body, r, true, "std")
  if not okb then return nil, berr end
  r.session_id, err = c.id(body, "session_id", true)
  if not r.session_id then return nil, err end
  if body.edit_mode == nil then
    return nil, bad("edit_mode is required (addition, swap or removal)")
  end
  r.edit_mode, err = c.enum(body, "edit_mode", { addition = true, swap = true, removal = true })
  if err then return nil, err end
  local limits = { addition = { 1, 2 }, swap = { 1, 1 }, removal = { 0, 0 } }
  local lo, hi = limits[r.edit_mode][1], limits[r.edit_mode][2]
  local list = body.image_list
  local n = type(list) == "table" and #list or 0
  if list ~= nil and not c.is_array(list) then
    return nil, bad("image_list must be an array")
  end
  if n < lo or n > hi then
    return nil, bad("image_list must have " .. (lo == hi and lo or (lo .. " to " .. hi)) .. " image"
      .. (hi == 1 and "" or "s") .. " for edit_mode " .. r.edit_mode .. " (got " .. n .. ")")
  end
  if n > 0 then
    n, err = c.image_list(body, "image_list", hi, "image", b64, lo)
    if not n then return nil, err end
  end
  r.duration, r.duration_str = duration(body, FIVE_TEN, 5)
  if not r.duration then return nil, r.duration_str end
  return r
end

-- /v1/videos/video-extend: 4~5 s more of a video made by text2video, image2video or
-- video-extend; model and mode follow the source video (the dialect looks it up).
M["video-extend"] = function(body)
  local r = { sound = "off" }
  local err
  r.video_id, err = c.id(body, "video_id", true)
  if not r.video_id then return nil, err end
  r.prompt, err = c.text(body, "prompt", MAX_PROMPT, false)
  if err then return nil, err end
  r.negative_prompt, err = c.text(body, "negative_prompt", MAX_PROMPT, false)
  if err then return nil, err end
  local cfg
  cfg, err = c.number(body, "cfg_scale", 0, 1, 0.5)
  if not cfg then return nil, err end
  return c.task_options(body, r)
end

local function audio_file(v, field, b64)
  if type(v) ~= "string" or v == "" then
    return nil, bad(field .. " must be an audio URL or raw base64")
  end
  if v:match("^https?://") then
    return true
  end
  local bytes = b64(v)
  if not bytes then
    return nil, bad(field .. " is neither an http(s) URL nor valid base64")
  end
  if #bytes > 5 * 1024 * 1024 then
    return nil, bad(field .. " must be at most 5 MB (got " .. #bytes .. " bytes)")
  end
  return true
end

-- /v1/videos/avatar/image2video: a portrait speaking an audio (audio_id or sound_file).
M["avatar/image2video"] = function(body, b64)
  local r = { sound = "on" }
  local err
  local okb, berr = basics(body, r, false, "std")
  if not okb then return nil, berr end
  local ok
  ok, err = c.image(body, "image", b64, true)
  if not ok then return nil, err end
  local which
  which, err = c.one_of(body, "audio_id", "sound_file")
  if not which then return nil, err end
  if which == "audio_id" then
    r.audio_id, err = c.id(body, "audio_id", true)
    if not r.audio_id then return nil, err end
  else
    ok, err = audio_file(body.sound_file, "sound_file", b64)
    if not ok then return nil, err end
  end
  return r
end

-- The two-person effects (photo of two people merged, first on the left): the classic ones
-- take a model and a mode, the _pro ones and cheers_2026 take neither and last 5 s.
local TWO_PERSON = {
  hug = { "kling-v1", "kling-v1-5", "kling-v1-6" }, kiss = { "kling-v1", "kling-v1-5", "kling-v1-6" },
  heart_gesture = { "kling-v1", "kling-v1-5", "kling-v1-6" }, fight = { "kling-v1-6" },
  hug_pro = false, kiss_pro = false, fight_pro = false, heart_gesture_pro = false, cheers_2026 = false,
}
M.TWO_PERSON = TWO_PERSON

-- /v1/videos/effects: effect_scene and its input.
M.effects = function(body, b64)
  local r = { sound = "off" }
  local scene = body.effect_scene
  if type(scene) ~= "string" or not scene:match("^[%w_']+$") then
    return nil, bad("effect_scene is required: the name of an effect such as hug, kiss_pro or pet_lion")
  end
  r.effect = scene
  local input = body.input
  if type(input) ~= "table" or c.is_array(input) then
    return nil, bad("input is required: an object with the effect's image(s) and duration")
  end
  local ok, err = c.task_options(body, r)
  if not ok then return nil, err end
  local models = TWO_PERSON[scene]
  if models ~= nil then
    local images = input.images
    if not c.is_array(images) or #images ~= 2 then
      return nil, bad("input.images must hold exactly 2 images for the two-person effect " .. scene)
    end
    for i, img in ipairs(images) do
      ok, err = c.image_value(img, "input.images[" .. i .. "]", b64)
      if not ok then return nil, err end
    end
    if models then
      local allowed = {}
      for _, m in ipairs(models) do
        allowed[m] = true
      end
      if input.model_name == nil or input.mode == nil then
        return nil, bad("input.model_name and input.mode are required for " .. scene .. " ("
          .. table.concat(models, ", ") .. "; std or pro)")
      end
      if not allowed[input.model_name] then
        return nil, { status = 404, code = 1203, message = "input.model_name " .. tostring(input.model_name)
          .. " does not exist for effect " .. scene }
      end
      r.model = input.model_name
      r.mode, err = c.enum(input, "mode", MODES)
      if err then return nil, bad("input." .. err.message) end
      r.duration, r.duration_str = duration(input, FIVE_TEN, 5)
    else
      r.duration, r.duration_str = duration(input, { [5] = true }, 5, " for " .. scene)
    end
    if not r.duration then return nil, bad("input." .. r.duration_str.message) end
    return r
  end
  ok, err = c.image(input, "image", b64, true)
  if not ok then return nil, bad("input." .. err.message) end
  if input.duration == nil then
    return nil, bad("input.duration is required (\"5\" or \"10\")")
  end
  r.duration, r.duration_str = duration(input, FIVE_TEN, 5)
  if not r.duration then return nil, bad("input." .. r.duration_str.message) end
  return r
end

-- video_id or video_url (exactly one) -> r.video_id / r.video_url
local function source_video(body, r)
  local which, err = c.one_of(body, "video_id", "video_url")
  if not which then return nil, err end
  if which == "video_id" then
    r.video_id, err = c.id(body, "video_id", true)
    if not r.video_id then return nil, err end
  else
    r.video_url, err = c.url(body, "video_url", true)
    if not r.video_url then return nil, err end
  end
  return r
end
M.source_video = source_video

-- /v1/videos/identify-face (synchronous): the faces of a video, for advanced-lip-sync.
M["identify-face"] = function(body)
  return source_video(body, {})
end

-- /v1/videos/advanced-lip-sync: faces of an identify-face session speaking audio clips.
M["advanced-lip-sync"] = function(body, b64)
  local r = { sound = "on" }
  local err
  r.session_id, err = c.id(body, "session_id", true)
  if not r.session_id then return nil, err end
  local faces = body.face_choose
  if not c.is_array(faces) or #faces < 1 then
    return nil, bad("face_choose is required: an array of at least 1 face")
  end
  for i, f in ipairs(faces) do
    local where = "face_choose[" .. i .. "]."
    if type(f) ~= "table" then
      return nil, bad("face_choose[" .. i .. "] must be an object")
    end
    if not c.id(f, "face_id", true) then
      return nil, bad(where .. "face_id is required")
    end
    local which, werr = c.one_of(f, "audio_id", "sound_file")
    if not which then return nil, bad(where .. werr.message) end
    if which == "sound_file" then
      local ok, ferr = audio_file(f.sound_file, where .. "sound_file", b64)
      if not ok then return nil, ferr end
    end
    for _, k in ipairs { "sound_start_time", "sound_end_time", "sound_insert_time" } do
      if not c.is_int(f[k]) or f[k] < 0 then
        return nil, bad(where .. k .. " is required: whole milliseconds >= 0")
      end
    end
    if f.sound_end_time - f.sound_start_time < 2000 then
      return nil, bad(where .. "sound_end_time - sound_start_time must be at least 2000 ms (the cut audio "
        .. "must last 2 s or more)")
    end
    for _, k in ipairs { "sound_volume", "original_audio_volume" } do
      local ok, verr = c.number(f, k, 0, 2, 1)
      if not ok then return nil, bad(where .. verr.message) end
    end
  end
  r.faces = faces
  return c.task_options(body, r)
end

-- /v1/videos/multi-elements/{init,add,delete,clear,preview}-selection (synchronous, free).
M["init-selection"] = function(body)
  return source_video(body, {})
end

local function points(body)
  local pts = body.points
  if not c.is_array(pts) or #pts < 1 then
    return nil, bad("points is required: an array of {x, y} in 0..1")
  end
  for i, p in ipairs(pts) do
    if type(p) ~= "table" or type(p.x) ~= "number" or type(p.y) ~= "number" or p.x < 0 or p.x > 1
      or p.y < 0 or p.y > 1 then
      return nil, bad("points[" .. i .. "] must be {x, y} with both in 0..1")
    end
  end
  return #pts
end

local function selection(with_points)
  return function(body)
    local r = {}
    local err
    r.session_id, err = c.id(body, "session_id", true)
    if not r.session_id then return nil, err end
    if with_points then
      r.frame_index, err = c.int(body, "frame_index", 0, 1e6, nil)
      if r.frame_index == nil then
        return nil, err or bad("frame_index is required (an integer frame number)")
      end
      local n
      n, err = points(body)
      if not n then return nil, err end
      r.points = body.points
    end
    return r
  end
end
M["add-selection"] = selection(true)
M["delete-selection"] = selection(true)
M["clear-selection"] = selection(false)
M["preview-selection"] = selection(false)

return M
