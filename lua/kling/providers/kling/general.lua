-- The official API's general endpoints: custom voices (asynchronous: a task whose result is
-- voices[]) and custom elements (synchronous per seed 000: the element comes back at once;
-- an answer shaped as a task is accepted too). The free management calls (lists, presets,
-- deletes) and the multi-elements selections are in M.calls, for client:call.
-- Sources: kling-api-notes.md [R] and seed 000 (5. queries and management, not billed).
local validate = require "kling.validate"
local R = require "kling.providers.kling.rules"

local fail, set, text = R.fail, R.set, R.text
local M = { endpoints = {}, calls = {} }

M.endpoints["general/custom-voices"] = {
  kind = "voice", async = true,
  takes = set { "callback_url", "external_task_id" },
  validate = function(req)
    return text(req, "voice_name", 20, true) or R.one_of(req, "voice_url", "video_id") or R.id(req, "video_id")
      or R.task_options(req) or validate.url(R.ctx(), req, "voice_url", "must be an http(s) URL of a clean 5-30 s "
        .. "voice clip (mp3/wav/mp4/mov)")
  end,
  build = R.task_body,
}

M.TAGS = set { "o_101", "o_102", "o_103", "o_104", "o_105", "o_106", "o_107", "o_108" }

local function tag_list(list)
  local out = {}
  for i, t in ipairs(list) do
    out[i] = type(t) == "table" and t or { tag_id = t }
  end
  return out
end

-- image (canonical) is the frontal image; element_refer_list 1 to 3 more views.
M.endpoints["general/custom-elements"] = {
  kind = "element", sync = true,
  takes = set { "image" },
  validate = function(req)
    local c = R.ctx() -- the element's name and description are shown on one line wherever it is listed
    local err = validate.text(c, req, "element_name", { max_chars = 20, required = true, line = true })
      or validate.text(c, req, "element_description", { max_chars = 100, required = true, line = true })
      or R.one_of(req, "image", "element_frontal_image") or validate.image(R.ctx(), req, "image")
      or validate.image(R.ctx(), req, "element_frontal_image") or validate.array(R.ctx(), req, "tag_list")
    if err then
      return err
    end
    local _
    _, err = R.image_list(req, "element_refer_list", "image_url", 1, 3)
    if err then
      return err
    end
    for i, t in ipairs(tag_list(req.tag_list or {})) do
      if not M.TAGS[t.tag_id] then
        return fail("tag_list[" .. i .. "]", "must be one of o_101 .. o_108 (got " .. tostring(t.tag_id) .. ")")
      end
    end
    return nil
  end,
  build = function(req)
    local body = R.passthrough(req)
    body.element_frontal_image = R.strip_data_uri(req.image or req.element_frontal_image)
    body.element_refer_list = R.map_images(req.element_refer_list, "image_url")
    body.tag_list = req.tag_list and tag_list(req.tag_list) or nil
    return body
  end,
}

-- ---- client:call: management and selections (synchronous, free) ----
-- Each: methods (the first is the default), paged (GET lists take page and page_size),
-- validate(params), fields (the names it takes), parse = "elements" | "tasks" | "status" | "selection".

local function session(params)
  return R.id(params, "session_id", true)
end

local function points(params)
  local err = session(params) or validate.whole_in(R.ctx(), params, "frame_index", 0, 1e6)
  if err then
    return err
  end
  if params.frame_index == nil then
    return fail("frame_index", "is required: the frame the points are on")
  end
  local pts = params.points
  if type(pts) ~= "table" or #pts == 0 then
    return fail("points", "is required: an array of {x, y}, each in 0..1")
  end
  -- a hole ({p1, nil, p2}) left p2 unchecked and sent the points as a JSON object
  err = validate.array(R.ctx(), params, "points")
  if err then
    return err
  end
  for i, p in ipairs(pts) do
    if type(p) ~= "table" or type(p.x) ~= "number" or type(p.y) ~= "number" or p.x < 0 or p.x > 1 or p.y < 0
      or p.y > 1 then
      return fail("points[" .. i .. "]", "must be {x, y} with both in 0..1")
    end
    -- {x, y, z}: the z went to the provider as given
    err = validate.object_keys(R.ctx(), p, "points[" .. i .. "]", { "x", "y" })
    if err then
      return err
    end
  end
  return nil
end

local function source(params)
  return R.one_of(params, "video_id", "video_url") or R.id(params, "video_id")
    or validate.url(R.ctx(), params, "video_url")
end

local function required_id(field)
  return function(params)
    return R.id(params, field, true)
  end
end

M.calls["general/custom-elements"] = { methods = { "GET" }, paged = true, parse = "elements" }
M.calls["general/presets-elements"] = { methods = { "GET" }, paged = true, parse = "elements" }
M.calls["general/custom-voices"] = { methods = { "GET" }, paged = true, parse = "tasks" }
M.calls["general/presets-voices"] = { methods = { "GET" }, paged = true, parse = "tasks" }
-- Deletes: POST as the official pages show, DELETE as seed 000 lists them.
-- fields: what each takes; any other is refused by name (it went to the provider as given).
local POINTS = { "session_id", "frame_index", "points" }
M.calls["general/delete-elements"] = { methods = { "POST", "DELETE" }, validate = required_id("element_id"),
  fields = { "element_id" }, parse = "status" }
M.calls["general/delete-voices"] = { methods = { "POST", "DELETE" }, validate = required_id("voice_id"),
  fields = { "voice_id" }, parse = "status" }
M.calls["videos/multi-elements/init-selection"] = { methods = { "POST" }, validate = source,
  fields = { "video_id", "video_url" }, parse = "selection" }
M.calls["videos/multi-elements/add-selection"] = { methods = { "POST" }, validate = points, fields = POINTS,
  parse = "selection" }
M.calls["videos/multi-elements/delete-selection"] = { methods = { "POST" }, validate = points, fields = POINTS,
  parse = "selection" }
M.calls["videos/multi-elements/clear-selection"] = { methods = { "POST" }, validate = session,
  fields = { "session_id" }, parse = "selection" }
M.calls["videos/multi-elements/preview-selection"] = { methods = { "POST" }, validate = session,
  fields = { "session_id" }, parse = "selection" }

return M
