-- The official Kling API ("/v1" style), every endpoint of seed 000: the catalogue (each
-- endpoint's kind, whether it answers at once or makes a task, the canonical fields it
-- takes), the canonical request's mapping to Kling's spelling, the response envelope,
-- statuses, validation and the free management calls (client:call).
-- Sources: ../shared/seeds/000 and ../shared/kling-api-notes.md ([R], [V], [MM]).
-- The endpoint families live in kling/providers/kling/: video (text2video, image2video),
-- edit (omni-video, multi-image2video, motion-control, multi-elements, video-extend, effects),
-- talk (avatar, identify-face, advanced-lip-sync), media (images, audio, image-recognize),
-- general (custom voices and elements, management calls); parse reads the answers.
local core = require "kling.core"
local validate = require "kling.validate"
local errors = require "kling.errors"
local R = require "kling.providers.kling.rules"
local video = require "kling.providers.kling.video"
local parse = require "kling.providers.kling.parse"
local common = require "kling.providers.common"
local codes = require "kling.providers.kling.codes"

local P = {
  name = "kling",
  title = "Kling (official API)",
  default_base_url = "https://api-singapore.klingai.com",
  -- what every path of its own starts with: a base_url ending in it is refused (/v1/v1/...)
  route_prefix = "/v1",
  auth = { jwt = true, api_key = true },
  capabilities = {
    text_to_video = true, image_to_video = true, first_last_frame = true, multi_shot = true,
    sound = true, elements = true, voices = true, cancel = false, external_ids = true,
    callbacks = true, list = true, custom_elements = true, motion_control = true,
    -- its custom elements are listed (general/custom-elements, GET): an interrupted create is looked up there
    element_list = true,
    -- beyond video: images/*, audio/* (tts, text-to-audio, video-to-audio)
    images = true, audio = true,
  },
}

P.models = video.models
P.default_model = video.default_model
P.statuses = parse.statuses
P.duration_of = video.duration_of

-- Endpoints (path after /v1/): kind of result, async (a task to poll) or sync (the answer is
-- the result), takes (canonical fields mapped), validate(req, endpoint) and build(req, endpoint).
local VIDEO_TAKES = R.set { "model", "prompt", "negative_prompt", "mode", "duration", "aspect_ratio", "resolution",
  "sound", "image", "last_image", "multi_shot", "shot_type", "multi_prompt", "element_list", "voice_list",
  "cfg_scale", "callback_url", "external_task_id" }
P.endpoints = {
  ["videos/text2video"] = { kind = "video", async = true, takes = VIDEO_TAKES, validate = video.validate,
    build = video.build },
  ["videos/image2video"] = { kind = "video", async = true, takes = VIDEO_TAKES, validate = video.validate,
    build = video.build },
}
local general = require "kling.providers.kling.general"
for _, family in ipairs { require "kling.providers.kling.edit", require "kling.providers.kling.talk",
  require "kling.providers.kling.media", general.endpoints } do
  for path, def in pairs(family) do
    if type(def) == "table" and def.validate then
      P.endpoints[path] = def
    end
  end
end
P.calls = general.calls

-- The video endpoints get_task tries (in this order) when it is not told the endpoint.
P.lookup_endpoints = { "videos/text2video", "videos/image2video", "videos/omni-video", "videos/multi-image2video",
  "videos/motion-control", "videos/multi-elements", "videos/video-extend", "videos/avatar/image2video",
  "videos/effects", "videos/advanced-lip-sync" }

P.default_endpoint = common.video_endpoint

-- What a local file given for a media field becomes (kling.local_file): the official API takes
-- an image as a URL or as raw base64 (at most 10 MB, kling-api-notes "image2video"), so image
-- fields are read and sent inline; videos it fetches from a URL only.
P.media_inputs = {
  image = "base64", last_image = "base64", scene_image = "base64", style_image = "base64",
  element_frontal_image = "base64",
  ["image_list[]"] = "base64", ["image_list[].image"] = "base64", ["image_list[].image_url"] = "base64",
  ["subject_image_list[]"] = "base64", ["subject_image_list[].subject_image"] = "base64",
  ["element_refer_list[]"] = "base64", ["element_refer_list[].image_url"] = "base64",
  ["input.image"] = "base64", ["input.images[]"] = "base64",
  video_url = "url", ["video_list[].video_url"] = "url",
}

-- The facts a price depends on, checked by the endpoint's own rules (billing.estimate asks
-- before pricing: what submit would refuse has no price). Content the estimate does without
-- (the prompt, the image) is stood in for; only text2video and image2video have per-model
-- rules to agree with, the other endpoints' prices name their models themselves.
local PRICE_FACTS = { "model", "mode", "duration", "sound", "resolution", "voice_list", "multi_shot",
  "multi_prompt", "shot_type", "element_list" }
function P.price_check(req, endpoint)
  if endpoint ~= "videos/text2video" and endpoint ~= "videos/image2video" then
    return nil
  end
  local probe = { prompt = "x", image = endpoint == "videos/image2video" and "https://example.com/a.png" or nil }
  for _, k in ipairs(PRICE_FACTS) do
    probe[k] = req[k]
  end
  probe.model = req.model or req.model_name
  if probe.multi_shot then
    probe.prompt = nil
  end
  return P.validate(probe, endpoint)
end

local function fail(field, msg)
  return errors.validation(field, msg, P.name)
end

-- Whether `endpoint` takes canonical field `field` (the client asks before adding an
-- external_task_id of its own).
function P.takes(endpoint, field)
  local def = P.endpoints[endpoint]
  return def ~= nil and def.takes[field] == true
end

-- Returns nil when the request is valid for `endpoint`, else a validation error.
function P.validate(req, endpoint)
  local def = P.endpoints[endpoint]
  if not def then
    if P.calls[endpoint] then
      return fail("endpoint", "'" .. endpoint .. "' is a management call, not a task: use client:call")
    end
    return fail("endpoint", "unknown endpoint " .. validate.quoted(endpoint))
  end
  return R.only(req, endpoint, def.takes) or R.unknown_fields(req, endpoint, def.takes)
    or def.validate(req, endpoint) or R.unknown_items(req, endpoint)
end

-- The create call for a validated request: method, path and body.
function P.build(req, endpoint)
  return { method = "POST", path = "/v1/" .. endpoint, body = P.endpoints[endpoint].build(req, endpoint) }
end

P.escape = common.escape

function P.query_path(endpoint, id)
  return "/v1/" .. endpoint .. "/" .. common.escape(id)
end

function P.external_query_path(endpoint, external_id)
  return "/v1/" .. endpoint .. "?external_task_id=" .. common.escape(external_id)
end

function P.list_path(endpoint, page, page_size)
  return string.format("/v1/%s?pageNum=%d&pageSize=%d", endpoint, page, page_size)
end

-- The response envelope {code, message, request_id, data}: returns data, or nil and the
-- business code and message when code is not 0. Returns false when the body is not an envelope.
function P.unwrap(body)
  if type(body) ~= "table" or body.code == nil then
    return false
  end
  if body.code ~= 0 then
    return nil, body.code, body.message, body.request_id
  end
  return body.data, nil, nil, body.request_id
end

-- A canonical task from the answer of `endpoint` (create, query, list or callback; endpoint
-- may be nil for a callback). A synchronous endpoint's finished answer is marked sync: it has
-- nothing to poll.
function P.parse_task(data, endpoint)
  local t, err = parse.parse(data, endpoint)
  if not t then
    return nil, err
  end
  local def = endpoint and P.endpoints[endpoint]
  if def and def.sync and (t.status == "succeeded" or t.status == "failed") then
    t.sync = true
  end
  return common.checked_task(t)
end

-- A callback POST's raw body: the task object at the top level (not wrapped in code/data);
-- an envelope around it is tolerated.
function P.parse_callback(raw)
  return common.callback_task(raw, P.unwrap, parse.task)
end

-- ---- management calls (client:call) ----

local PAGE_FIELDS = { page = true, page_size = true }
local PAGE_SPELLINGS = { pageNum = "page", pageSize = "page_size" }

-- call_spec(endpoint, params, method) -> {method, path, body} | nil, validation error
function P.call_spec(endpoint, params, method)
  local spec = P.calls[endpoint]
  if not spec then
    if P.endpoints[endpoint] then
      return nil, fail("endpoint", "'" .. endpoint .. "' makes a task: use client:submit (and client:list_tasks "
        .. "for its list)")
    end
    -- named with the closest call, else every call (general/custom-element was just "unknown")
    local near = validate.closest(endpoint, P.calls)
    local names = {}
    for name in pairs(P.calls) do
      names[#names + 1] = name
    end
    table.sort(names)
    return nil, fail("endpoint", "unknown call " .. validate.quoted(endpoint) .. (near and ("; did you mean " .. near
      .. "?") or (" (known: " .. table.concat(names, ", ") .. ")")))
  end
  method = method and method:upper() or spec.methods[1]
  local allowed = false
  for _, m in ipairs(spec.methods) do
    allowed = allowed or m == method
  end
  if not allowed then
    return nil, fail("method", endpoint .. " takes " .. table.concat(spec.methods, " or ") .. " (got " .. method .. ")")
  end
  if spec.paged then
    -- A list takes page and page_size only: the API's own pageNum and pageSize point at
    -- them, anything else is refused rather than dropped (the defaults sent instead).
    for k in pairs(params) do
      if k ~= "page" and k ~= "page_size" then
        local own, near = PAGE_SPELLINGS[k], validate.closest(tostring(k), PAGE_FIELDS)
        return nil, fail(tostring(k), own and ("use " .. own) or (endpoint .. " takes page and page_size only"
          .. (near and ("; did you mean " .. near .. "?") or "")))
      end
    end
    local page, size = params.page or 1, params.page_size or 30
    if not validate.is_whole(page) or page < 1 or page > 1000 then
      return nil, fail("page", "must be a whole number between 1 and 1000")
    end
    if not validate.is_whole(size) or size < 1 or size > 500 then
      return nil, fail("page_size", "must be a whole number between 1 and 500")
    end
    return { method = method, path = P.list_path(endpoint, page, size) }
  end
  -- {element_id = "e", elemnt_id = "f"}: the misspelt name went to the provider as given
  local unknown = {}
  for k in pairs(params) do
    local known = false
    for _, f in ipairs(spec.fields) do
      known = known or f == k
    end
    if not known then
      unknown[#unknown + 1] = validate.brief(k)
    end
  end
  if unknown[1] then
    table.sort(unknown) -- the first in name order, whatever pairs' order
    return nil, fail(unknown[1], validate.unknown_name(unknown[1], spec.fields, "field of " .. endpoint
      .. " (it takes " .. table.concat(spec.fields, ", ") .. ")"))
  end
  local err = spec.validate(params)
  if err then
    return nil, err
  end
  local body = {}
  for k, v in pairs(params) do
    body[k] = v
  end
  return { method = method, path = "/v1/" .. endpoint, body = body }
end

-- parse_call(endpoint, data) -> result | nil, message: canonical elements or tasks for the
-- lists, {id, status} for the deletes, the answer itself for the selections (whose non-zero
-- `status` is a refusal).
-- What a finished task delivered, in the terms billing.settle prices, where the outputs alone
-- do not say it: a video extension is billed by the seconds it added (the result's duration
-- minus the parent video's), not by the whole video. nil: price the outputs as they are.
function P.usage(t)
  local v, parent = t.videos and t.videos[1], t.parent_video
  if t.endpoint ~= "videos/video-extend" or not (v and parent) then
    return nil
  end
  local total, base = tonumber(v.duration), tonumber(parent.duration)
  if not (total and base) or total < base then
    return nil
  end
  local total_ms, base_ms = core.seconds_ms(total), core.seconds_ms(base) -- nil: no length (NaN, infinite)
  if not (total_ms and base_ms) then
    return nil
  end
  local ms = total_ms - base_ms
  return { count = 1, duration = string.format("%d.%03d", math.floor(ms / 1000), ms % 1000) }
end

function P.parse_call(endpoint, data)
  local kind = P.calls[endpoint].parse
  if kind == "selection" and type(data) == "table" and data.status ~= nil and data.status ~= 0 then
    return nil, "refused with status " .. tostring(data.status), data.status
  end
  return parse.call_result(kind, data)
end

-- Business codes (kling/codes.lua): the table core.decide reads, built once, and the codes
-- the runners act on themselves: renew the token and resend once; a create refused for want of
-- a free slot (nothing created: queue it again).
P.codes = core.codes(codes.ranges)
P.renew_token_codes = R.set(codes.renew_token)
P.slot_full_codes = R.set(codes.slot_full)

-- Its dated price catalog (kling.billing reads it through this link).
P.prices = "kling.prices.kling"

return P
