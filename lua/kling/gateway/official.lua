-- The official Kling API's shape on the gateway's side: a client's create body read as the
-- canonical request (so that it can go to any provider and be priced), the gateway's task
-- records shown as official task objects, and the envelope {code, message, request_id, data}.
-- luacheck: ignore 122 (ngx.status and ngx.header are meant to be written)
local json = require "kling.json"
local owners = require "kling.gateway.owners" -- which fields name upstream ids (names_id)
local ids = require "kling.gateway.ids"
local public_url = require "kling.gateway.public_url"
local validate = require "kling.validate"
local rules = require "kling.providers.kling.rules"

local M = {}

M.EXTERNAL_ID_MAX_CHARS = 256 -- a client's external_task_id

-- Canonical status -> official task_status.
M.STATUS = { queued = "submitted", pending = "submitted", running = "processing", succeeded = "succeed",
  failed = "failed", cancelled = "failed" }

local copy = require("kling.tables").clone

-- The official API writes durations as strings ("5"): only plain decimal digits are read as a
-- number (tonumber would also take "0x5", "5e0" or " 5"), without a leading zero ("05" is no
-- duration the API lists: it would be priced and sent as "5").
-- decimal(v, field) -> v read | nil, message: a string of anything else is refused in the
-- official API's terms (the check's "must be a number, got a string" read as if "5" were wrong).
local function decimal(v, field)
  if type(v) ~= "string" then
    return v
  elseif v:match("^[1-9]%d*$") then
    return tonumber(v)
  end
  return nil, field .. ": must be whole seconds written in digits, such as \"5\", without a leading zero (got \""
    .. validate.brief(v) .. "\")"
end

-- Fields of free text: a prompt may start with a URL that nobody fetches.
local TEXT = { prompt = true, negative_prompt = true, text = true, sound_effect_prompt = true, bgm_prompt = true,
  element_name = true, element_description = true, voice_name = true }

-- Whether a string is a URL the upstream would fetch: one that starts with http:// or https://
-- (any case, after any white space). Read from its first bytes only: an inline base64 image
-- (or a data: URL) is no URL and its megabytes are not walked.
-- White space is Lua's %s: a form feed or vertical tab first ("\fhttp://10.0.0.1/") was not
-- looked at, though an upstream's trim removes it as it does a space.
local H, h, SP = ("H"):byte(), ("h"):byte(), (" "):byte()
local TAB, CR = ("\t"):byte(), ("\r"):byte() -- \t \n \v \f \r: 9 to 13
local function url_like(v)
  local b = v:byte(1)
  if b == H or b == h then
    return v:find("^[Hh][Tt][Tt][Pp][Ss]?://") ~= nil
  elseif b == SP or (b >= TAB and b <= CR) then
    return v:find("^%s*[Hh][Tt][Tt][Pp][Ss]?://") ~= nil
  end
  return false
end

-- The official API's ids are strings. One sent as a JSON number is read in its digits
-- ("video_id": 860000000000000000 is "860000000000000000": the encoder would write it 8.6e+17
-- upstream), and one past 2^53 is refused: its digits are lost in the decoding already
-- (851796586942000002 arrives as ...000000, another id). And every URL given for the upstream
-- to fetch (image, image_tail, video_url, image_list[].image, static_mask, sound_file, ... : a
-- URL in any field but free text) is checked as a callback_url is (kling.gateway.public_url:
-- no loopback, private, link-local or metadata host) unless allow_media. In the same walk, no
-- other. -> nil | path, message
local EXACT = 2 ^ 53
local function ids_as_text(t, path, allow_media, name)
  for k, v in pairs(t) do
    local here = type(k) == "number" and (path .. "[" .. k .. "]") or (path == "" and k or (path .. "." .. k))
    local field = owners.field_of(k, name) -- an array's items are its field's (a bare id its id's)
    if type(v) == "table" then
      local bad, why = ids_as_text(v, here, allow_media, field)
      if bad then
        return bad, why
      end
    elseif type(v) == "string" and v ~= "" and not TEXT[field] and url_like(v) then
      local ok, why = public_url.check(v, allow_media, public_url.MEDIA_MAX_LENGTH, "allow_private_media")
      if not ok then
        return here, why
      end
    elseif type(v) == "number" and owners.names_id(field) then
      if v >= EXACT then
        return here, "an id is a string (\"860000000000000000\"): a number past 2^53 loses its last digits"
      elseif v % 1 ~= 0 or v < 0 then
        return here, "an id is a string of digits (\"860000000000000000\"), not " .. validate.shown(v)
      end
      t[k] = string.format("%.0f", v)
    end
  end
  return nil
end

local LOCAL_KNOBS = { "provider", "endpoint", "base_url", "estimate" }
-- The official API's spelling of a field -> the library's canonical one: on every endpoint, and
-- on one endpoint only (motion-control's character image is image_url, another's image_url is
-- not an image of that endpoint: refused by name there).
local SPELLINGS = { model_name = "model", image_tail = "last_image" }
local ENDPOINT_SPELLINGS = { ["videos/motion-control"] = { image_url = "image" } }

-- The pairs {official, canonical} an endpoint's body is read with, made once at load (a
-- create reads them; they never change).
local function spelling_pairs(...)
  local out = {}
  for _, map in ipairs { ... } do
    for official, canonical in pairs(map) do
      out[#out + 1] = { official, canonical }
    end
  end
  return out
end
local EVERY_ENDPOINT, BY_ENDPOINT = spelling_pairs(SPELLINGS), {}
for endpoint, map in pairs(ENDPOINT_SPELLINGS) do
  BY_ENDPOINT[endpoint] = spelling_pairs(SPELLINGS, map)
end
local function spellings(endpoint)
  return BY_ENDPOINT[endpoint] or EVERY_ENDPOINT
end

-- The field as the client's body spelled it: the official spelling (image_tail) of a
-- canonical field (last_image) where the client used it, so that a refusal names what it sent.
function M.as_sent(body, field, endpoint)
  for _, pair in ipairs(spellings(endpoint)) do
    if pair[2] == field and type(body) == "table" and body[pair[1]] ~= nil then
      return pair[1]
    end
  end
  return field
end

--- The first field of req (by name) that the upstream documents as its own (`own`: its
-- provider's P.own[endpoint]) and the official API does not, or nil. A gateway's clients speak
-- the official API: an upstream's container (EvoLink's model_params, compat's extra_body)
-- would carry fields to the upstream that no catalog prices, past the hold.
---@param req table the canonical request
---@param own table|nil the upstream provider's own fields of the endpoint
---@param endpoint string
---@return string|nil field
function M.upstream_only(req, own, endpoint)
  local found
  for k in pairs(own or {}) do
    if req[k] ~= nil and not rules.documents(endpoint, k) and (not found or k < found) then
      found = k
    end
  end
  return found
end

-- to_canonical(body, allow_private_callbacks, endpoint, allow_private_media) -> request,
-- callback_url, external_task_id | nil, message, code (the official API's: 1200 for a body that
-- is not an object, 1201 for a field). The official spelling (model_name, "5", "on", image_tail,
-- motion-control's image_url, shots with string durations) becomes the canonical one; fields
-- the module does not know pass through unchanged. callback_url and external_task_id are the
-- client's: the gateway keeps them and sends its own upstream; a callback_url must be a public
-- http(s) URL (kling.gateway.public_url), and so must every URL the upstream would fetch
-- (unless allow_private_media).
function M.to_canonical(body, allow_private, endpoint, allow_private_media)
  if type(body) ~= "table" or json.is_array(body) or body[1] ~= nil then
    return nil, "the body must be a JSON object", 1200
  end
  -- The library's own knobs (which provider, endpoint, base URL, poll estimate) are not the
  -- official API's fields: a client of the gateway names none of them.
  for _, k in ipairs(LOCAL_KNOBS) do
    if body[k] ~= nil then
      return nil, k .. ": is not a field of the official API (the endpoint is the request's path)"
    end
  end
  local req = copy(body)
  local cb, ext = req.callback_url, req.external_task_id -- the client's (below), not the upstream's
  req.callback_url, req.external_task_id = nil, nil
  local bad, why = ids_as_text(req, "", allow_private_media)
  if bad then
    return nil, bad .. ": " .. why
  end
  if cb ~= nil then
    local ok, uwhy = public_url.check(cb, allow_private)
    if not ok then
      return nil, "callback_url: " .. uwhy
    end
  end
  -- Echoed in answers, callbacks and the journal, and the client's name for its task: text,
  -- never control characters, stray bytes or characters that show as nothing.
  local ext_why = ext ~= nil and validate.name_problem(ext, M.EXTERNAL_ID_MAX_CHARS)
  if ext_why then
    return nil, "external_task_id: " .. ext_why
  end
  -- Two spellings of one field: which one was meant cannot be guessed, and neither is dropped.
  local pairs_of = spellings(endpoint)
  for _, pair in ipairs(pairs_of) do
    local official, canonical = pair[1], pair[2]
    if req[official] ~= nil and req[canonical] ~= nil then
      return nil, official .. ": names the same field as " .. canonical .. ": give one (" .. official
        .. ", the official API's)"
    end
  end
  for _, pair in ipairs(pairs_of) do
    if req[pair[1]] ~= nil then
      req[pair[2]], req[pair[1]] = req[pair[1]], nil
    end
  end
  req.duration, why = decimal(req.duration, "duration")
  if why then
    return nil, why
  end
  if req.sound == "on" then
    req.sound = true
  elseif req.sound == "off" then
    req.sound = false
  elseif type(req.sound) == "string" then
    -- the official API spells it "on"/"off": say so, not the canonical "must be a boolean"
    local v = req.sound
    return nil, "sound: must be \"on\" or \"off\" (or true or false), got "
      .. ((#v <= 16 and v:match("^[%w%p ]*$")) and ("\"" .. v .. "\"") or "another string")
  end
  if type(req.multi_prompt) == "table" then
    local shots = {}
    for i, s in ipairs(req.multi_prompt) do
      if type(s) == "table" then
        -- every key kept (the dialect refuses one its page does not document): rebuilt from
        -- prompt and duration alone, a shot's other keys were dropped unseen
        shots[i] = copy(s)
        shots[i].duration, why = decimal(s.duration, "multi_prompt[" .. i .. "].duration")
        if why then
          return nil, why
        end
      else
        shots[i] = s
      end
    end
    req.multi_prompt = shots
  end
  return req, cb, ext
end

-- Large strings (inline images, audio) are not kept in the task table: pricing only asks
-- whether they were given.
function M.facts(req)
  local out = copy(req) -- at its size; the large values replaced below (no key is added)
  for k, v in pairs(req) do
    if type(v) == "string" and #v > 2048 then
      out[k] = "(" .. #v .. " bytes)"
    elseif type(v) == "table" and #(json.encode(v) or "") > 2048 then
      out[k] = { "(large)" }
    end
  end
  return out
end

-- The task_result of an official task object from a canonical task (any provider).
function M.result(t)
  if t.raw and type(t.raw.task_result) == "table" and t.provider_status ~= nil and M.STATUS[t.status]
    and t.raw.task_status == t.provider_status then
    return t.raw.task_result -- the official upstream's own, as it was
  end
  local r = {}
  if t.videos then
    r.videos = json.array {}
    for i, v in ipairs(t.videos) do
      r.videos[i] = { id = v.id and tostring(v.id) or tostring(i), url = v.url, watermark_url = v.watermark_url,
        duration = v.duration and tostring(v.duration) or nil }
    end
  end
  if t.images then
    r.images = json.array {}
    for i, v in ipairs(t.images) do
      r.images[i] = { index = v.index or (i - 1), url = v.url }
    end
  end
  if t.audios then
    r.audios = json.array {}
    for i, v in ipairs(t.audios) do
      r.audios[i] = { id = v.id, url = v.url, url_mp3 = v.url_mp3, url_wav = v.url_wav,
        duration = v.duration and tostring(v.duration) or nil }
    end
  end
  if t.voices then
    r.voices = t.voices
  end
  return next(r) and r or nil
end

-- The official task object of a gateway record (query, list, callback forwarding).
function M.view(rec)
  return {
    task_id = rec.id,
    task_status = M.STATUS[rec.status] or "submitted",
    task_status_msg = rec.message or "",
    task_info = { external_task_id = rec.external_task_id },
    task_result = rec.result,
    created_at = rec.created_at,
    updated_at = rec.updated_at,
    final_unit_deduction = rec.charge,
  }
end

-- What a create answers.
function M.created(rec)
  return {
    task_id = rec.id, task_status = M.STATUS[rec.status] or "submitted",
    task_info = { external_task_id = rec.external_task_id },
    created_at = rec.created_at, updated_at = rec.updated_at,
  }
end

-- created_json(rec) -> json.encode(M.created(rec)), written as text: a create's answer is
-- built on every create, and only the client's external_task_id needs escaping. The task id
-- ends the text (kling.gateway.text says why).
function M.created_json(rec)
  local id, c, u = rec.id, rec.created_at, rec.updated_at
  if type(id) ~= "string" or type(c) ~= "number" or c % 1 ~= 0
    or type(u) ~= "number" or u % 1 ~= 0 then
    return json.encode(M.created(rec))
  end
  local ext = rec.external_task_id
  return '{"task_status":"' .. (M.STATUS[rec.status] or "submitted") .. '","task_info":'
    .. (ext == nil and "{}" or ('{"external_task_id":' .. json.encode(ext) .. "}"))
    .. ',"created_at":' .. string.format("%d", c) .. ',"updated_at":' .. string.format("%d", u)
    .. ',"task_id":' .. json.quote(id) .. "}"
end


-- The official envelope as JSON text around data already encoded (data_json, or nil for an
-- answer without data): what is encoded once (a stored task view) is not encoded again.
-- suffix: text to end it with ("\n"), in the same string.
local SUCCEED = '{"code":0,"message":"SUCCEED","request_id":"'
function M.envelope(code, message, data_json, suffix)
  local rid = ids.request() -- random: a counter would tell the gateway's traffic
  local head
  if code == 0 and message == "SUCCEED" then
    head = SUCCEED .. rid .. '"' -- the usual answer: nothing to escape (the id is hex and digits)
  else
    head = '{"code":' .. string.format("%d", code) .. ',"message":' .. (json.encode(tostring(message)) or '""')
      .. ',"request_id":' .. (json.encode(rid) or '""')
  end
  if data_json then
    return head .. ',"data":' .. data_json .. "}" .. (suffix or "")
  end
  return head .. "}" .. (suffix or "")
end

-- reply_json(status, code, message, data_json): answers with the envelope and ends the request.
function M.reply_json(status, code, message, data_json)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json; charset=utf-8"
  ngx.say(M.envelope(code, message, data_json))
  return ngx.exit(status)
end

-- Answers with the official envelope and ends the request.
function M.reply(status, code, message, data)
  return M.reply_json(status, code, message, data ~= nil and json.encode(data) or nil)
end

function M.ok(data)
  return M.reply(200, 0, "SUCCEED", data)
end

-- An error answer; e = {status, code, message, retry_after (seconds, a Retry-After header)}.
function M.fail(e)
  if e.retry_after then
    ngx.header["Retry-After"] = string.format("%d", e.retry_after)
  end
  return M.reply(e.status or 400, e.code or 1200, e.message or "error", nil)
end

return M
