-- Rules and helpers shared by the gateway provider files (apiinone, apimodels, evolink, compat):
-- the Kling v3 limits every gateway repeats (3-15 s, multi-shot shots), canonical fields a
-- gateway lacks (a validation error naming the provider and the feature, never dropped), URL
-- checks (https only, no private or internal hosts) and small readers for task objects.
local core = require "kling.core"
local validate = require "kling.validate"
local errors = require "kling.errors"
local json = require "kling.json"
local common = require "kling.providers.common"

local M = {}

M.ASPECT = { ["16:9"] = true, ["9:16"] = true, ["1:1"] = true }
M.MODES = { std = true, pro = true }

--- What a gateway's media fields take when given a local file: a URL only (they fetch media
-- themselves and take no inline data), so kling.local_file refuses a path there by name.
-- url_media{extra fields} -> {field = "url"} for image, last_image and the extra ones.
---@param extra? string[] more media fields (in kling.local_file's notation)
---@return table media_inputs
function M.url_media(extra)
  local out = { image = "url", last_image = "url" }
  for _, f in ipairs(extra or {}) do
    out[f] = "url"
  end
  return out
end
M.RESOLUTIONS = { ["720p"] = true, ["1080p"] = true }
M.RESOLUTION_MODE = common.RESOLUTION_MODE
M.MODE_RESOLUTION = { std = "720p", pro = "1080p" }

-- Every canonical field with the capability it needs; a gateway that maps a field lists it
-- in its own `maps` set (true, or the one value it accepts), and any other canonical field it
-- receives is refused by name.
M.FEATURE_OF = {
  last_image = "first_last_frame", multi_shot = "multi_shot", multi_prompt = "multi_shot",
  shot_type = "multi_shot", element_list = "elements", voice_list = "voices",
  callback_url = "callbacks", external_task_id = "external_ids", camera_control = "camera_control",
  static_mask = "motion_brush", dynamic_masks = "motion_brush", cfg_scale = "cfg_scale",
  negative_prompt = "negative_prompt", watermark_info = "watermark", n = "several outputs",
}

-- The first canonical field present in req that the provider does not map, as an error.
function M.unsupported(P, req, maps)
  local names = {}
  for field in pairs(M.FEATURE_OF) do
    names[#names + 1] = field
  end
  table.sort(names)
  for _, field in ipairs(names) do
    local v, m = req[field], maps[field]
    if field == "n" and m == nil then
      m = 1 -- one video per task is what every gateway makes
    end
    if v ~= nil and v ~= false then
      if not m then
        return errors.unsupported(P.name, field, (P.title or P.name) .. " has no " .. M.FEATURE_OF[field]
          .. " (" .. field .. ")")
      elseif m ~= true and v ~= m then -- only one value is meaningful there
        return errors.unsupported(P.name, field, (P.title or P.name) .. " has only " .. field .. " = " .. m
          .. " (got " .. tostring(v) .. ")")
      end
    end
  end
  return nil
end

-- What every gateway checks first: a known endpoint (`known` lists them for the message),
-- then no canonical field it lacks.
function M.check_request(P, req, endpoint, maps, known)
  if not P.endpoints[endpoint] then
    return errors.validation("endpoint", "unknown endpoint " .. validate.quoted(endpoint) .. " (known: " .. known
      .. ")", P.name)
  end
  return M.unsupported(P, req, maps) or M.unknown_fields(P, req, endpoint, maps)
    or validate.typed(M.ctx(P), req, "model", "string") -- before any model table is looked up by it
end

-- The canonical request's fields (design.md) and the fields the client itself reads.
M.CANONICAL = {}
for _, f in ipairs { "model", "prompt", "negative_prompt", "mode", "duration", "aspect_ratio", "resolution",
  "sound", "image", "last_image", "multi_shot", "shot_type", "multi_prompt", "element_list", "voice_list", "n",
  "cfg_scale", "callback_url", "external_task_id", "provider", "endpoint", "estimate" } do
  M.CANONICAL[f] = true
end

-- No gateway's page documents passing unknown fields on: a field that is neither canonical nor
-- one of the endpoint's own documented fields (P.own[endpoint]) is refused by name, and the
-- gateway's own spelling of a canonical field (P.spellings, e.g. multi_shots) points at it.
-- Spellings of canonical fields on the official API, refused on every gateway too.
M.SPELLINGS = { model_name = "model", image_tail = "last_image" }

function M.unknown_fields(P, req, endpoint)
  local own = P.own and P.own[endpoint] or {}
  local names = {}
  for k in pairs(req) do
    names[#names + 1] = tostring(k)
  end
  table.sort(names)
  for _, k in ipairs(names) do
    if not (M.CANONICAL[k] or own[k]) then
      local canonical = P.spellings and P.spellings[k] or M.SPELLINGS[k]
      if canonical then
        return errors.validation(k, "use " .. canonical .. " (" .. (P.title or P.name) .. "'s " .. k
          .. " is written " .. canonical .. " here)", P.name)
      end
      local known = {}
      for f in pairs(M.CANONICAL) do
        known[#known + 1] = f
      end
      for f in pairs(own) do
        known[#known + 1] = f
      end
      return errors.validation(k, validate.unknown_name(k, known, "field for " .. endpoint .. " ("
        .. (P.title or P.name) .. " documents no such field)"), P.name)
    end
  end
  -- A container of the gateway's own options (compat's extra_body, EvoLink's model_params)
  -- passes its fields on, except canonical ones: the mapping writes those from the canonical
  -- field and would drop the container's copy.
  for container in pairs(own) do
    local t = req[container]
    if type(t) == "table" then
      for k in pairs(t) do
        if M.CANONICAL[k] then
          return errors.validation(container .. "." .. k, "use " .. k .. " (the canonical field; "
            .. container .. " carries only the gateway's other options)", P.name)
        end
      end
    end
  end
  return nil
end

function M.ctx(P)
  return { provider = P.name }
end

-- Duration as it will be sent: duration, else the sum of the shots, else the default.
function M.duration_of(req, default)
  if req.duration ~= nil then
    return req.duration
  end
  if req.multi_shot and type(req.multi_prompt) == "table" and #req.multi_prompt > 0 then
    local sum = 0
    for _, shot in ipairs(req.multi_prompt) do
      sum = sum + (tonumber(type(shot) == "table" and shot.duration) or 0)
    end
    return sum
  end
  return default
end

-- P.duration_of of a gateway that makes `default` seconds when no duration is given.
function M.duration_with_default(default)
  return function(req)
    return M.duration_of(req, default)
  end
end

-- Checks every v3 gateway shares: text, ratio, 3-15 s, mode/resolution agreement, booleans,
-- images, multi-shot. opts.prompt_required (text-to-video without multi-shot).
function M.check_v3(P, req, opts)
  local c = M.ctx(P)
  local err = validate.first(
    validate.text(c, req, "prompt", { required = opts.prompt_required, max_chars = 2500,
      why = opts.prompt_why }),
    validate.text(c, req, "negative_prompt", { max_chars = 2500 }),
    validate.one_of(c, req, "mode", M.MODES),
    validate.one_of(c, req, "resolution", M.RESOLUTIONS),
    validate.one_of(c, req, "aspect_ratio", M.ASPECT),
    validate.number_in(c, req, "cfg_scale", 0, 1),
    validate.boolean(c, req, "sound"),
    validate.boolean(c, req, "multi_shot"),
    validate.whole_in(c, req, "duration", 3, 15),
    validate.image(c, req, "image"),
    validate.image(c, req, "last_image"))
  if err then
    return err
  end
  err = common.check_mode_resolution(P.name, req)
  if err then
    return err
  end
  if req.multi_prompt ~= nil and not req.multi_shot then
    return errors.validation("multi_prompt", "needs multi_shot = true", P.name)
  end
  if req.multi_shot then
    if req.shot_type == "intelligence" or req.shot_type == "intelligent" then
      if req.multi_prompt ~= nil then -- the model cuts the shots itself from the prompt
        return errors.validation("multi_prompt", "is not used with shot_type " .. req.shot_type, P.name)
      end
      return nil
    end
    local d = M.duration_of(req, nil)
    if d ~= nil and (d < 3 or d > 15) then
      return errors.validation("multi_prompt", "shot durations must add up to 3-15 s (got " .. d .. ")", P.name)
    end
    return common.check_shots(P.name, req, req.duration, "when multi_shot is true")
  end
  return nil
end

-- The mode a request asks for: mode, else from resolution, else nil.
function M.mode_of(req)
  return req.mode or (req.resolution and M.RESOLUTION_MODE[req.resolution]) or nil
end

-- ---- URLs ----

local function ipv4(host)
  local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then
    return nil
  end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then
    return nil
  end
  return a, b
end

-- The host of an http(s) URL, lowercased, without brackets, port or credentials.
function M.url_host(url)
  local rest = type(url) == "string" and url:match("^[Hh][Tt][Tt][Pp][Ss]?://([^/?#]+)")
  if not rest then
    return nil
  end
  rest = rest:gsub("^.*@", "")
  local v6 = rest:match("^%[([^%]]+)%]")
  if v6 then
    return v6:lower()
  end
  return (rest:gsub(":%d*$", ""):lower())
end

-- True when a host names this machine, a private network, link-local or an internal name:
-- nothing a gateway's servers may be sent to fetch from or call back.
function M.is_private_host(host)
  if not host or host == "" then
    return true
  end
  host = host:gsub("%.$", "")
  if host == "localhost" or host:match("%.localhost$") or host:match("%.local$") or host:match("%.internal$")
    or host:match("%.lan$") or host:match("%.intranet$") or host:match("%.home%.arpa$")
    or not host:find("[%.:]") then
    return true
  end
  local a, b = ipv4(host)
  if a then
    return a == 0 or a == 10 or a == 127 or (a == 169 and b == 254) or (a == 172 and b >= 16 and b <= 31)
      or (a == 192 and b == 168) or (a == 100 and b >= 64 and b <= 127) or a >= 224
  end
  if host:find(":", 1, true) then
    local h = host:gsub("^0*", "")
    return host == "::" or host == "::1" or h:match("^f[cd]%x%x:") ~= nil or host:match("^fe[89ab]%x:") ~= nil
      or host:match("^::ffff:") ~= nil
  end
  return false
end

-- A media URL a gateway's servers must fetch: http(s) with a public host.
function M.check_public_url(P, req, field)
  local v = req[field]
  if v == nil then
    return nil
  end
  if not validate.is_url(v) then
    return errors.validation(field, "must be a public http(s) URL of the image (" .. P.name
      .. " does not take inline data)", P.name)
  end
  if M.is_private_host(M.url_host(v)) then
    return errors.validation(field, "must not point to a private or internal address (" .. tostring(M.url_host(v))
      .. "): the gateway's servers cannot fetch it", P.name)
  end
  return nil
end

-- ---- responses ----

-- A JSON value that may arrive as a JSON string (apimodels' param/resultJson).
function M.maybe_json(v)
  if type(v) ~= "string" then
    if v == json.null then
      return nil
    end
    return v
  end
  local doc, err = json.decode_answer(v)
  if doc == nil then
    return nil, err
  end
  if doc == json.null then
    return nil
  end
  return doc
end

-- An OpenAI-style answer (EvoLink, compat): the provider's object itself on a 2xx, else
-- {error = {code, message}}. is_object(body) tells the object; with code_or_type an error
-- without a code is named by its type.
function M.unwrap_plain(body, http_status, is_object, code_or_type)
  if type(body) ~= "table" then
    return false
  end
  local e = body.error
  if type(e) == "table" and (http_status == nil or http_status >= 300) then
    if code_or_type then
      return nil, e.code or e.type, e.message
    end
    return nil, e.code, e.message
  end
  if http_status and (http_status < 200 or http_status >= 300) then
    return false
  end
  if not is_object(body) then
    return false
  end
  return body
end

-- A callback that posts the provider's object itself (tolerated inside {data = object} too),
-- read by parse(object).
function M.plain_callback(raw, is_object, parse)
  local doc, err = common.decode_object(raw)
  if not doc then
    return nil, err
  end
  if not is_object(doc) and type(doc.data) == "table" then
    doc = doc.data
  end
  return parse(doc)
end

-- The fields a task object {task_id | id, status, progress, error = {code, message} | message}
-- gives alike on API in One and compat -> t | nil, message (`missing` when there is no id).
-- A succeeded task is at 100 %.
function M.plain_task(P, data, missing)
  if type(data) ~= "table" or (data.task_id == nil and data.id == nil) then
    return nil, missing
  end
  local status = P.statuses[data.status]
  if not status then
    return nil, "unknown status '" .. tostring(data.status) .. "'"
  end
  local id = common.id_text(data.task_id or data.id)
  if not id then
    return nil, "task id is " .. validate.type_of(data.task_id or data.id) .. ", not an id (a string or a whole number)"
  end
  local err = type(data.error) == "table" and data.error or nil
  return {
    id = id,
    status = status,
    provider_status = data.status,
    progress = status == "succeeded" and 100 or tonumber(data.progress),
    message = err and err.message or (type(data.error) == "string" and data.error or nil),
    fail_code = err and err.code or nil,
    raw = data,
  }
end

-- The code tables of a gateway whose errors carry no business codes of their own (each file
-- says what its errors carry): the HTTP status decides every retry, an API key is never renewed
-- and a full slot is a bare 429.
-- P.codes, P.renew_token_codes, P.slot_full_codes = gw.status_only_codes()
function M.status_only_codes()
  return core.codes {}, {}, {}
end

-- A charge as a non-negative decimal string (one home: common.charge).
M.charge = common.charge

return M
