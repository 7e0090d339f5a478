-- The official API's documented body rules. Pure (no ngx): validate() returns the cleaned
-- request, or nil and an error {status, code, message} that names the field and the rule, as
-- the API's 1200/1201/1203 answers do. text2video and image2video are here; the other
-- endpoints' rules live in kling_sim.official.*_rules, keyed by the dialect's endpoint keys
-- (the path after /v1/videos/ for video endpoints, after /v1/ for the others).
local c = require "kling_sim.official.check"
local video_rules = require "kling_sim.official.video_rules"
local media_rules = require "kling_sim.official.media_rules"
local general_rules = require "kling_sim.official.general_rules"

local M = {}

-- Seed 000's text-to-video table (1.1) prices kling-v1-5 and kling-v2-1 (std, pro) there too.
local ENDPOINT_MODELS = {
  text2video = { "kling-v1", "kling-v1-5", "kling-v1-6", "kling-v2-master", "kling-v2-1", "kling-v2-1-master",
    "kling-v2-5-turbo", "kling-v2-6", "kling-v3", "kling-video-o1" },
  image2video = { "kling-v1", "kling-v1-5", "kling-v1-6", "kling-v2-master", "kling-v2-1", "kling-v2-1-master",
    "kling-v2-5-turbo", "kling-v2-6", "kling-v3", "kling-video-o1" },
}
local MODELS = {}
for ep, list in pairs(ENDPOINT_MODELS) do
  MODELS[ep] = {}
  for _, m in ipairs(list) do
    MODELS[ep][m] = true
  end
end

local SOUND_MODELS = { ["kling-v2-6"] = true, ["kling-v3"] = true }
local MODES = { std = true, pro = true }
local RATIOS = { ["16:9"] = true, ["9:16"] = true, ["1:1"] = true }
local CAMERA_TYPES = { simple = true, down_back = true, forward_up = true, right_turn_forward = true,
  left_turn_forward = true }
local CAMERA_AXES = { "horizontal", "vertical", "pan", "tilt", "roll", "zoom" }
local MAX_PROMPT, MAX_SHOT_PROMPT = 2500, 512

local RULES = {}
for _, set in ipairs { video_rules, media_rules, general_rules } do
  for k, fn in pairs(set) do
    if type(fn) == "function" and not k:find("_", 1, true) then -- helpers have "_" in their names
      RULES[k] = fn
    end
  end
end

M.ENDPOINTS = { text2video = true, image2video = true }
for k in pairs(RULES) do
  M.ENDPOINTS[k] = true
end

local bad, chars, is_int, is_array, text, enum = c.bad, c.chars, c.is_int, c.is_array, c.text, c.enum
local object_list = c.object_list

local function image(body, field, decode_b64)
  return c.image_value(body[field], field, decode_b64)
end

local function camera(body)
  local cc = body.camera_control
  if cc == nil then
    return true
  end
  if type(cc) ~= "table" or not CAMERA_TYPES[cc.type] then
    return nil, bad("camera_control.type must be one of simple, down_back, forward_up, right_turn_forward, "
      .. "left_turn_forward")
  end
  if cc.type ~= "simple" then
    return true
  end
  if type(cc.config) ~= "table" then
    return nil, bad("camera_control.config is required when camera_control.type is simple")
  end
  local nonzero = 0
  for _, axis in ipairs(CAMERA_AXES) do
    local v = cc.config[axis]
    if v ~= nil then
      if type(v) ~= "number" or v < -10 or v > 10 then
        return nil, bad("camera_control.config." .. axis .. " must be a number in -10..10")
      end
      if v ~= 0 then
        nonzero = nonzero + 1
      end
    end
  end
  if nonzero ~= 1 then
    return nil, bad("camera_control.config must set exactly one of horizontal, vertical, pan, tilt, roll, zoom "
      .. "to a non-zero value when type is simple")
  end
  return true
end

local function duration(body, model)
  local v = body.duration
  if v == nil then
    return 5, "5"
  end
  if type(v) ~= "string" then
    return nil, bad("duration must be a string of seconds such as \"5\" (got a " .. type(v) .. ")")
  end
  local n = c.seconds(v)
  if model == "kling-v3" then
    if not n or n < 3 or n > 15 then
      return nil, bad("duration must be \"3\" to \"15\" for kling-v3 (got \"" .. v .. "\")")
    end
  elseif n ~= 5 and n ~= 10 then
    return nil, bad("duration must be \"5\" or \"10\" for " .. model .. " (got \"" .. v .. "\")")
  end
  return n, v
end

local function multi_shot(body, model, total)
  if body.multi_shot == nil and body.multi_prompt == nil and body.shot_type == nil then
    return false
  end
  if model ~= "kling-v3" then
    return nil, bad("multi_shot, shot_type and multi_prompt need model_name kling-v3")
  end
  if body.multi_shot ~= nil and type(body.multi_shot) ~= "boolean" then
    return nil, bad("multi_shot must be a boolean")
  end
  if not body.multi_shot then
    return false
  end
  local shot_type = body.shot_type or "customize"
  if shot_type ~= "customize" and shot_type ~= "intelligence" then
    return nil, bad("shot_type must be customize or intelligence (got " .. tostring(shot_type) .. ")")
  end
  if shot_type == "intelligence" then
    return true
  end
  local shots = body.multi_prompt
  if not is_array(shots) or #shots < 1 or #shots > 6 then
    return nil, bad("multi_prompt must be an array of 1 to 6 shots when shot_type is customize")
  end
  local sum = 0
  for i, shot in ipairs(shots) do
    local where = "multi_prompt[" .. i .. "]"
    if type(shot) ~= "table" then
      return nil, bad(where .. " must be an object {index, prompt, duration}")
    end
    if type(shot.prompt) ~= "string" or shot.prompt == "" or chars(shot.prompt) > MAX_SHOT_PROMPT then
      return nil, bad(where .. ".prompt must be a non-empty string of at most " .. MAX_SHOT_PROMPT .. " characters")
    end
    local d = shot.duration
    if type(d) == "string" then
      d = c.seconds(d) -- as the request's duration is written ("0x5" or "05" is none)
    end
    if not is_int(d) or d < 1 then
      return nil, bad(where .. ".duration must be a whole number of seconds")
    end
    sum = sum + d
  end
  if sum ~= total then
    return nil, bad("multi_prompt durations must add up to duration " .. total .. " (got " .. sum .. ")")
  end
  return true
end

-- The motion brush: static_mask and each dynamic_masks[].mask are images as image is (the
-- official page: "same format requirements as image").
local function masks(body, decode_b64)
  local dm = body.dynamic_masks
  if body.static_mask ~= nil then
    local ok, err = image(body, "static_mask", decode_b64)
    if not ok then return nil, err end
  end
  if dm == nil then
    return true
  end
  if not is_array(dm) or #dm > 6 then
    return nil, bad("dynamic_masks must be an array of at most 6 items")
  end
  for i, m in ipairs(dm) do
    local where = "dynamic_masks[" .. i .. "]"
    if type(m) ~= "table" or m.mask == nil then
      return nil, bad(where .. ".mask is required")
    end
    local ok, err = c.image_value(m.mask, where .. ".mask", decode_b64)
    if not ok then return nil, err end
    local tr = m.trajectories
    if not is_array(tr) or #tr < 2 or #tr > 77 then
      return nil, bad(where .. ".trajectories must hold 2 to 77 points")
    end
    for j, p in ipairs(tr) do
      if type(p) ~= "table" or not is_int(p.x) or not is_int(p.y) then
        return nil, bad(where .. ".trajectories[" .. j .. "] must be {x = integer, y = integer}")
      end
    end
  end
  return true
end

-- Fields every video create shares; fills r (the cleaned request).
local function common(body, ep, r)
  local err
  r.model = body.model_name == nil and "kling-v1" or body.model_name
  if type(r.model) ~= "string" then
    return nil, bad("model_name must be a string")
  end
  if not MODELS[ep][r.model] then
    return nil, { status = 404, code = 1203, message = "model_name " .. r.model .. " does not exist for " .. ep }
  end
  r.prompt, err = text(body, "prompt", MAX_PROMPT, false)
  if err then return nil, err end
  r.negative_prompt, err = text(body, "negative_prompt", MAX_PROMPT, false)
  if err then return nil, err end
  r.mode, err = enum(body, "mode", MODES, "std")
  if err then return nil, err end
  r.aspect_ratio, err = enum(body, "aspect_ratio", RATIOS, "16:9")
  if err then return nil, err end
  r.sound, err = enum(body, "sound", { on = true, off = true }, "off")
  if err then return nil, err end
  if r.sound == "on" and not SOUND_MODELS[r.model] then
    return nil, bad("sound on needs kling-v2-6 or later (model_name is " .. r.model .. ")")
  end
  -- Seed 000 sells kling-v2-6's sound in pro only ("pro (有声...)").
  if r.sound == "on" and r.model == "kling-v2-6" and r.mode ~= "pro" then
    return nil, bad("sound on needs mode pro on kling-v2-6")
  end
  local seconds, spelled = duration(body, r.model)
  if not seconds then return nil, spelled end
  r.duration, r.duration_str = seconds, spelled
  local cfg = body.cfg_scale
  if cfg ~= nil and (type(cfg) ~= "number" or cfg < 0 or cfg > 1) then
    return nil, bad("cfg_scale must be a number in 0..1")
  end
  local ok
  ok, err = camera(body)
  if not ok then return nil, err end
  local wm = body.watermark_info
  if wm ~= nil and (type(wm) ~= "table" or (wm.enabled ~= nil and type(wm.enabled) ~= "boolean")) then
    return nil, bad("watermark_info must be an object {enabled = boolean}")
  end
  r.watermark = type(wm) == "table" and wm.enabled == true
  local cb = body.callback_url
  if cb ~= nil and (type(cb) ~= "string" or not cb:match("^https?://.")) then
    return nil, bad("callback_url must be an http(s) URL")
  end
  r.callback_url = body.callback_url
  local ext = body.external_task_id
  if ext ~= nil and (type(ext) ~= "string" or ext == "") then
    return nil, bad("external_task_id must be a non-empty string")
  end
  r.external_task_id = ext
  r.multi_shot, err = multi_shot(body, r.model, r.duration)
  if r.multi_shot == nil then return nil, err end
  r.voices, err = object_list(body, "voice_list", 2, "voice_id")
  if not r.voices then return nil, err end
  if r.voices > 0 and r.sound ~= "on" then
    return nil, bad("voice_list needs sound on")
  end
  r.elements, err = object_list(body, "element_list", 3, "element_id")
  if not r.elements then return nil, err end
  if r.elements > 0 and r.model ~= "kling-v3" then
    return nil, bad("element_list needs model_name kling-v3")
  end
  if r.elements > 0 and r.voices > 0 then
    return nil, bad("element_list and voice_list cannot be used together")
  end
  return r
end

-- validate(endpoint, body, decode_b64) -> request | nil, {status, code, message}
-- body is the decoded JSON; decode_b64(s) -> bytes | nil decodes standard base64.
function M.validate(ep, body, decode_b64)
  if type(body) ~= "table" or is_array(body) and next(body) ~= nil then
    return nil, { status = 400, code = 1200, message = "the request body must be a JSON object" }
  end
  local rule = RULES[ep]
  if rule then
    local r, err = rule(body, decode_b64)
    if r then
      r.endpoint = ep
    end
    return r, err
  end
  if ep ~= "text2video" and ep ~= "image2video" then
    return nil, { status = 404, code = 1202, message = "no such endpoint: " .. tostring(ep) }
  end
  local r, err = common(body, ep, { endpoint = ep })
  if not r then
    return nil, err
  end
  if ep == "text2video" then
    if not r.multi_shot and (not r.prompt or r.prompt:match("^%s*$")) then
      return nil, bad("prompt is required and must not be empty")
    end
    return r
  end
  -- image2video
  if body.image == nil then
    return nil, bad("image is required")
  end
  local ok
  ok, err = image(body, "image", decode_b64)
  if not ok then return nil, err end
  if body.image_tail ~= nil then
    ok, err = image(body, "image_tail", decode_b64)
    if not ok then return nil, err end
  end
  ok, err = masks(body, decode_b64)
  if not ok then return nil, err end
  local groups = (body.image_tail ~= nil and 1 or 0)
    + ((body.static_mask ~= nil or body.dynamic_masks ~= nil) and 1 or 0)
    + (body.camera_control ~= nil and 1 or 0)
  if groups > 1 then
    return nil, bad("image_tail, static_mask/dynamic_masks and camera_control cannot be used together")
  end
  r.reference = true
  return r
end

return M
