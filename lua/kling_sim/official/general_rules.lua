-- The official API's documented body rules for the general endpoints: custom voices and
-- custom elements, and deleting them. Pure: each returns the cleaned request r or nil and
-- {status, code, message}.
local c = require "kling_sim.official.check"

local bad = c.bad
local M = {}

-- /v1/general/custom-voices: a voice trained from a clip (voice_url) or a past video (video_id).
M["general/custom-voices"] = function(body)
  local r = {}
  local err
  r.voice_name, err = c.text(body, "voice_name", 20, true)
  if not r.voice_name then return nil, err end
  local which
  which, err = c.one_of(body, "voice_url", "video_id")
  if not which then return nil, err end
  if which == "voice_url" then
    r.voice_url, err = c.url(body, "voice_url", true)
    if not r.voice_url then return nil, err end
  else
    r.video_id, err = c.id(body, "video_id", true)
    if not r.video_id then return nil, err end
  end
  return c.task_options(body, r)
end

local TAGS = {
  o_101 = "热梗", o_102 = "人物", o_103 = "动物", o_104 = "道具", o_105 = "服饰", o_106 = "场景", o_107 = "特效",
  o_108 = "其他",
}
M.TAGS = TAGS

-- /v1/general/custom-elements: a subject from a frontal image and 1 to 3 more views.
M["general/custom-elements"] = function(body, b64)
  local r = {}
  local err
  r.element_name, err = c.text(body, "element_name", 20, true)
  if not r.element_name then return nil, err end
  r.element_description, err = c.text(body, "element_description", 100, true)
  if not r.element_description then return nil, err end
  local ok
  ok, err = c.image(body, "element_frontal_image", b64, true)
  if not ok then return nil, err end
  local n
  n, err = c.image_list(body, "element_refer_list", 3, "image_url", b64, 1)
  if not n then return nil, err end
  local tags = body.tag_list
  if tags ~= nil then
    if not c.is_array(tags) then
      return nil, bad("tag_list must be an array of {tag_id}")
    end
    for i, t in ipairs(tags) do
      if type(t) ~= "table" or not TAGS[t.tag_id] then
        return nil, bad("tag_list[" .. i .. "].tag_id must be one of o_101 .. o_108")
      end
    end
  end
  return r
end

M["general/delete-elements"] = function(body)
  local id, err = c.id(body, "element_id", true)
  if not id then return nil, err end
  return { element_id = tostring(id) }
end

M["general/delete-voices"] = function(body)
  local id, err = c.id(body, "voice_id", true)
  if not id then return nil, err end
  return { voice_id = tostring(id) }
end

return M
