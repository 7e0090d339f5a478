-- Helpers shared by the official provider's endpoint files (kling/providers/kling/*.lua):
-- errors in the provider's name, which canonical fields an endpoint takes (any other one is
-- refused by name, never dropped), and small mappers (ids, image lists, data URIs).
local validate = require "kling.validate"
local errors = require "kling.errors"
local common = require "kling.providers.common"

local M = {}

M.NAME = "kling"
M.MODES = { std = true, pro = true }
M.ASPECT = { ["16:9"] = true, ["9:16"] = true, ["1:1"] = true }
M.IMAGE_ASPECT = { ["16:9"] = true, ["9:16"] = true, ["1:1"] = true, ["4:3"] = true, ["3:4"] = true,
  ["3:2"] = true, ["2:3"] = true, ["21:9"] = true }
M.RESOLUTION_MODE = common.RESOLUTION_MODE
M.IMAGE_RESOLUTIONS = { ["1k"] = true, ["2k"] = true }

-- The canonical request's fields (design.md); every other field is the provider's own and
-- passes through unchanged.
M.CANONICAL = {
  "model", "prompt", "negative_prompt", "mode", "duration", "aspect_ratio", "resolution", "sound", "image",
  "last_image", "multi_shot", "shot_type", "multi_prompt", "element_list", "voice_list", "n", "cfg_scale",
  "callback_url", "external_task_id",
}
-- Fields the client itself reads, never sent.
M.LOCAL = { provider = true, endpoint = true, estimate = true }

function M.ctx()
  return { provider = M.NAME }
end

function M.fail(field, msg)
  return errors.validation(field, msg, M.NAME)
end
local fail = M.fail

-- element_list: an array of at most max elements, each given by its id as the API numbers them
-- (a whole number, or its digits as a string; alone or as {element_id = id}). A name is no id:
-- sent as one, the API answers an unknown element after the request went out, so it is refused
-- here, saying how a name becomes an id. ASSUMPTION: the official API's element ids are whole
-- numbers (its custom- and preset-element answers as the simulator follows them; the notes give
-- `element_list [{element_id}]` without a type): an id of letters would be refused here.
-- -> err | nil
function M.element_ids(req, max)
  local err = validate.array(M.ctx(), req, "element_list", max)
  if err or req.element_list == nil then
    return err
  end
  for i, item in ipairs(req.element_list) do
    local id = type(item) == "table" and item.element_id or item
    local digits = type(id) == "string" and id:match("^%d+$") and #id <= 19
    local whole = validate.is_whole(id) and id >= 0 and id < 2 ^ 53
    if not (digits or whole) then
      local field = "element_list[" .. i .. "]" .. (type(item) == "table" and item.element_id ~= nil and ".element_id"
        or "")
      local name = type(item) == "table" and item.element_id == nil and item.name or id
      if type(name) == "string" then
        return fail(field, "'" .. validate.shown(name) .. "' is not an element id (the official API's are numbers): "
          .. "an element's name becomes its id through the element cache (kling.element.resolve; kling run and "
          .. "kling storyboard resolve names from --elements FILE, by default the cache kling element create "
          .. "writes)")
      end
      return fail(field, "must be an element id (a whole number or its digits), got " .. validate.got(id))
    end
  end
  return nil
end

-- A set from one list, or the union of several.
function M.set(...)
  local s = {}
  for i = 1, select("#", ...) do
    for _, v in ipairs((select(i, ...))) do
      s[v] = true
    end
  end
  return s
end
M.CANONICAL_SET = M.set(M.CANONICAL)

-- The first canonical field present in req that `endpoint` does not take, as an error.
-- false counts as absent (sound = false, multi_shot = false ask for nothing), and so does
-- n = 1 where n is not taken (one result is what such an endpoint makes).
function M.only(req, endpoint, takes)
  for _, field in ipairs(M.CANONICAL) do
    local v = req[field]
    if v ~= nil and v ~= false and not takes[field] and not (field == "n" and v == 1) then
      return errors.unsupported(M.NAME, field, endpoint .. " has no " .. field)
    end
  end
  return nil
end

-- The official API's own fields (not canonical) each endpoint documents: these, and only
-- these, pass through unchanged. Sources: kling-api-notes.md ([R]: text2video/image2video
-- camera_control, static_mask, dynamic_masks, watermark_info) and the official pages each
-- endpoint file cites; anything else is refused by name.
local WATERMARK = "watermark_info"
M.OWN = {
  ["videos/text2video"] = M.set { "camera_control", WATERMARK },
  ["videos/image2video"] = M.set { "camera_control", "static_mask", "dynamic_masks", WATERMARK },
  ["videos/omni-video"] = M.set { "image_list", "video_list" },
  ["videos/multi-image2video"] = M.set { "image_list" },
  ["videos/motion-control"] = M.set { "video_url", "character_orientation", "keep_original_sound" },
  ["videos/multi-elements"] = M.set { "session_id", "edit_mode", "image_list" },
  ["videos/video-extend"] = M.set { "video_id" },
  ["videos/effects"] = M.set { "effect_scene", "input", "images" },
  ["videos/avatar/image2video"] = M.set { "audio_id", "sound_file" },
  ["videos/identify-face"] = M.set { "video_id", "video_url" },
  ["videos/advanced-lip-sync"] = M.set { "session_id", "face_choose" },
  ["videos/image-recognize"] = {},
  ["images/generations"] = M.set { "image_reference", "image_fidelity", "human_fidelity" },
  ["images/omni-image"] = M.set { "image_list" },
  ["images/multi-image2image"] = M.set { "subject_image_list", "scene_image", "style_image" },
  ["images/editing/expand"] = M.set { "up_expansion_ratio", "down_expansion_ratio", "left_expansion_ratio",
    "right_expansion_ratio" },
  ["audio/tts"] = M.set { "text", "voice_id", "voice_language", "voice_speed" },
  ["audio/text-to-audio"] = {},
  ["audio/video-to-audio"] = M.set { "video_id", "video_url", "sound_effect_prompt", "bgm_prompt", "asmr_mode" },
  ["general/custom-voices"] = M.set { "voice_name", "voice_url", "video_id" },
  ["general/custom-elements"] = M.set { "element_name", "element_description", "element_frontal_image",
    "element_refer_list", "tag_list" },
}

-- The keys of the objects inside the fields that hold them (a list's items, an object's own
-- keys), as each endpoint's page documents them: any other key is refused by its path, as an
-- unknown field is (unknown_items). Copied as they were into the body, an item's unknown key
-- (image_list[1].evil, dynamic_masks[1].trajectories[1].z, effects' input.evil) went upstream
-- unseen: the gateway forwarded whatever a client put there. `lists` names an item's own lists
-- and their items' keys. Per endpoint where a field's items differ (omni-video's image_list).
local FACE = { "face_id", "audio_id", "sound_file", "sound_start_time", "sound_end_time", "sound_insert_time",
  "sound_volume", "original_audio_volume" }
M.ITEMS = {
  element_list = { keys = { "element_id" } },
  voice_list = { keys = { "voice_id" } },
  multi_prompt = { keys = { "index", "prompt", "duration" } },
  image_list = { keys = { "image" } },
  video_list = { keys = { "video_url", "refer_type", "keep_original_sound" } },
  dynamic_masks = { keys = { "mask", "trajectories" }, lists = { trajectories = { "x", "y" } } },
  face_choose = { keys = FACE },
  element_refer_list = { keys = { "image_url" } },
  subject_image_list = { keys = { "subject_image" } },
  tag_list = { keys = { "tag_id" } },
}
M.ENDPOINT_ITEMS = { ["videos/omni-video"] = { image_list = { keys = { "image_url", "type" } } } }
M.OBJECTS = { ["videos/effects"] = { input = { "image", "images", "model_name", "mode", "duration" } } }
local ITEM_FIELDS = {}
for f in pairs(M.ITEMS) do
  ITEM_FIELDS[#ITEM_FIELDS + 1] = f
end
table.sort(ITEM_FIELDS) -- the first refused in name order, whatever pairs' order

local function item_keys(list, field, spec)
  for i, item in ipairs(list) do
    if type(item) == "table" then -- a bare item (an id, an image) is the item's own check's
      local where = field .. "[" .. i .. "]"
      local err = validate.object_keys(M.ctx(), item, where, spec.keys)
      if err then
        return err
      end
      for name, keys in pairs(spec.lists or {}) do
        local inner = item[name]
        if type(inner) == "table" then
          err = item_keys(inner, where .. "." .. name, { keys = keys })
          if err then
            return err
          end
        end
      end
    end
  end
  return nil
end

--- The first key of an object inside the request (a list's item, effects' input) that its
-- endpoint's page does not document, as a validation error naming its path | nil. Asked once
-- the endpoint's own checks passed (they say what a malformed item must be).
function M.unknown_items(req, endpoint)
  local own = M.ENDPOINT_ITEMS[endpoint]
  for _, field in ipairs(ITEM_FIELDS) do
    local list = req[field]
    if type(list) == "table" then
      local err = item_keys(list, field, own and own[field] or M.ITEMS[field])
      if err then
        return err
      end
    end
  end
  for field, keys in pairs(M.OBJECTS[endpoint] or {}) do
    if type(req[field]) == "table" and next(req[field]) ~= nil then
      local err = validate.object_keys(M.ctx(), req[field], field, keys)
      if err then
        return err
      end
    end
  end
  return nil
end

-- The API's own spelling of a canonical field: refused by name, pointing at the canonical
-- field, so that it is never sent beside a default the module adds (model_name beside the
-- default kling-v1 was charged as kling-v1). Per endpoint where the spelling is local.
M.SPELLINGS = { model_name = "model", image_tail = "last_image" }
M.ENDPOINT_SPELLINGS = { ["videos/motion-control"] = { image_url = "image" } }

local function is_known(k, own)
  return M.CANONICAL_SET[k] or M.LOCAL[k] or own[k]
end

--- Whether the official API documents field `k` on `endpoint` (canonically written, or one of
-- the endpoint's own): what a gateway's clients, who speak the official API, may send.
---@param endpoint string
---@param k string
---@return boolean
function M.documents(endpoint, k)
  return is_known(k, M.OWN[endpoint] or {}) and true or false
end

-- The first field of req that is neither canonical, local, nor one of `endpoint`'s own
-- documented fields, as a validation error naming it (and the closest known field).
function M.unknown_fields(req, endpoint, takes)
  local own = M.OWN[endpoint] or {}
  local any = false
  for k in pairs(req) do
    if not is_known(k, own) then
      any = true
      break
    end
  end
  if not any then -- the usual request: nothing to name, so nothing to list or sort
    return nil
  end
  local names = {}
  for k in pairs(req) do
    names[#names + 1] = tostring(k)
  end
  local spellings = M.ENDPOINT_SPELLINGS[endpoint] or {}
  table.sort(names) -- the first unknown in name order: the same field named whatever pairs' order
  for _, k in ipairs(names) do
    if not is_known(k, own) then
      local canonical = spellings[k] or M.SPELLINGS[k]
      if canonical then
        return fail(k, "use " .. canonical .. " (the API's " .. k .. " is written " .. canonical
          .. " here; " .. endpoint .. ")")
      end
      local known = {}
      for f in pairs(takes) do
        known[#known + 1] = f
      end
      for f in pairs(own) do
        known[#known + 1] = f
      end
      return fail(k, validate.unknown_name(k, known, "field for " .. endpoint .. " (the official API documents "
        .. "no such field)"))
    end
  end
  return nil
end

-- A string field of at most `max` characters (required: not empty; `why` ends that message).
function M.text(req, field, max, required, why)
  return validate.text(M.ctx(), req, field, { max_chars = max, required = required, why = why })
end

-- callback_url (an http(s) URL) and external_task_id (a task id: validate.external_id).
function M.task_options(req)
  local c = M.ctx()
  return validate.callback_url(c, req) or validate.external_id(c, req)
end

-- The model: req.model (or the endpoint's default) must be one of `models` (a set).
function M.model(req, endpoint, models, default)
  local name = req.model or default
  if name == nil then
    return nil
  end
  if type(name) ~= "string" then
    return validate.typed(M.ctx(), req, "model", "string")
  end
  if not models[name] then
    local names = {}
    for k in pairs(models) do
      names[#names + 1] = k
    end
    table.sort(names)
    return fail("model", "unknown model '" .. validate.shown(name) .. "' for " .. endpoint .. " (known: "
      .. table.concat(names, ", ") .. ")")
  end
  return nil
end

-- The mode a request asks for: mode, else the one its resolution implies (720p std, 1080p pro).
function M.mode_of(req)
  return req.mode or (req.resolution and M.RESOLUTION_MODE[req.resolution])
end

-- mode and resolution of a video endpoint: std/pro, 720p/1080p, and not contradicting.
function M.video_mode(req)
  local c = M.ctx()
  local err = validate.one_of(c, req, "mode", M.MODES)
    or validate.one_of(c, req, "resolution", { ["720p"] = true, ["1080p"] = true })
  return err or M.check_mode_resolution(req)
end

-- resolution and mode, when both are given, must agree.
function M.check_mode_resolution(req)
  return common.check_mode_resolution(M.NAME, req, " on the official API")
end

function M.strip_data_uri(s)
  if type(s) ~= "string" then
    return s
  end
  return (s:gsub("^data:image/[%w.+-]+;base64,", ""))
end

-- [{key = id}] from ids or tables.
M.id_list = common.id_list

-- An array of images given as strings or as tables {key = image, ...}: each checked as an
-- image (URL or base64 JPG/PNG of 300+ px). -> count | nil, err
function M.image_list(req, field, key, min, max)
  local list = req[field]
  if list == nil then
    if min > 0 then
      return nil, fail(field, "is required (" .. min .. " to " .. max .. " images)")
    end
    return 0
  end
  local err = validate.array(M.ctx(), req, field, max)
  if err then
    return nil, err
  end
  if #list < min then
    return nil, fail(field, string.format("must have at least %d image%s (got %d)", min, min == 1 and "" or "s",
      #list))
  end
  for i, item in ipairs(list) do
    local holder = type(item) == "table" and item or { [key] = item }
    err = validate.image(M.ctx(), holder, key)
    if err then
      err.field = field .. "[" .. i .. "]" .. (type(item) == "table" and ("." .. key) or "")
      return nil, err
    end
    if holder[key] == nil then
      return nil, fail(field .. "[" .. i .. "]." .. key, "is required")
    end
  end
  return #list
end

-- The same list as the API wants it: [{key = image without a data: prefix, ...}].
function M.map_images(list, key)
  if list == nil then
    return nil
  end
  local out = {}
  for i, item in ipairs(list) do
    if type(item) == "table" then
      local copy = {}
      for k, v in pairs(item) do
        copy[k] = v
      end
      copy[key] = M.strip_data_uri(copy[key])
      out[i] = copy
    else
      out[i] = { [key] = M.strip_data_uri(item) }
    end
  end
  return out
end

-- Exactly one of fields a and b (at most one when optional).
function M.one_of(req, a, b, optional)
  local n = (req[a] ~= nil and 1 or 0) + (req[b] ~= nil and 1 or 0)
  if n == 2 then
    return fail(a, "cannot be combined with " .. b .. " (give one of them)")
  end
  if n == 0 and not optional then
    return fail(a, "is required (or " .. b .. ")")
  end
  return nil
end

-- A provider id: a non-empty string or a whole number.
function M.id(req, field, required)
  local v = req[field]
  if v == nil then
    return required and fail(field, "is required") or nil
  end
  if (type(v) == "string" and v ~= "") or (validate.is_whole(v) and v >= 0) then
    return nil
  end
  return fail(field, "must be a non-empty string id")
end

-- A duration that is not sent but prices the task (the source's length): seconds in [lo, hi].
function M.seconds_in(req, lo, hi, why)
  local v = req.duration
  if v == nil then
    return nil
  end
  if type(v) ~= "number" or v ~= v or v < lo or v > hi then
    return fail("duration", string.format("must be seconds between %s and %s %s (got %s)", lo, hi, why, tostring(v)))
  end
  return nil
end

-- A number with at most one decimal (text-to-audio durations, TTS speed).
function M.one_decimal(req, field)
  local v = req[field]
  if v ~= nil and math.abs(v * 10 - math.floor(v * 10 + 0.5)) > 1e-6 then
    return fail(field, "must have at most one decimal place (got " .. tostring(v) .. ")")
  end
  return nil
end

-- "yes"/"no" from a boolean or the API's own spelling.
function M.yes_no(v)
  if v == true then
    return "yes"
  elseif v == false then
    return "no"
  end
  return v
end

function M.check_yes_no(req, field)
  local v = req[field]
  if v ~= nil and v ~= true and v ~= false and v ~= "yes" and v ~= "no" then
    return fail(field, "must be a boolean (or \"yes\" / \"no\")")
  end
  return nil
end

-- The body: every field that is not canonical nor local passes through unchanged.
function M.passthrough(req)
  local canonical = M.set(M.CANONICAL)
  local body = {}
  for k, v in pairs(req) do
    if not canonical[k] and not M.LOCAL[k] then
      body[k] = v
    end
  end
  return body
end

-- The body of an asynchronous create: the pass-through fields and the task options.
function M.task_body(req)
  local body = M.passthrough(req)
  body.callback_url, body.external_task_id = req.callback_url, req.external_task_id
  return body
end

return M
