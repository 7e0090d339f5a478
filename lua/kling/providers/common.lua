-- Helpers the official provider (kling.lua and kling/*.lua) and the gateways share: an id in
-- a URL, id lists, the pass-through part of a body, the video endpoint a request implies,
-- callback bodies, times, and the Kling v3 shot list. Runs on Lua 5.4 and LuaJIT.
local validate = require "kling.validate"
local errors = require "kling.errors"
local json = require "kling.json"

local M = {}

local function percent(c)
  return string.format("%%%02X", c:byte())
end

-- Percent-encodes all but RFC 3986's unreserved characters: an id safe in a path or a query
-- (every poll's path: no closure made per call). What every path builder (query_path,
-- external_query_path, cancel_path) puts its id through: an id that is no non-empty string is
-- a bug of the caller and raises (misuse). tostring made "nil" of a missing id, and the poll went
-- to /v1/tasks/nil; a table's address or an empty segment (/v1/tasks/) were sent the same way.
function M.escape(s)
  if type(s) ~= "string" or s == "" then
    errors.misuse("providers.escape", "a task id in a URL must be a non-empty string (got "
      .. (s == nil and "nil" or validate.got(s)) .. ")")
  end
  return (s:gsub("[^%w%-%._~]", percent))
end

-- An id as a provider's answer wrote it: a non-empty string, or a whole number in its digits
-- (not tostring's "8.6e+17"); anything else (a table, a boolean, a fraction) is no id: nil.
-- tostring made "table: 0x..." of a table, an id no task has, and the address went into records.
function M.id_text(v)
  if type(v) == "string" and v ~= "" then
    return v
  elseif type(v) == "number" and v >= 0 and v < 2 ^ 53 and v == math.floor(v) then
    return string.format("%d", v)
  end
  return nil
end

-- [{key = id}] from ids (sent as strings, a number in its digits: M.id_text, where LuaJIT's
-- tostring wrote 861796639666001 as "8.6179663966600e+14") or tables (sent as they are).
function M.id_list(list, key)
  local out = {}
  for i, item in ipairs(list) do
    if type(item) == "table" then
      out[i] = item
    else
      out[i] = { [key] = M.id_text(item) or tostring(item) }
    end
  end
  return out
end

-- A new body holding every field of req that is not in `spelt` (the fields the provider file
-- spells itself): provider-only fields pass through unchanged.
function M.copy_except(req, spelt)
  local body = {}
  for k, v in pairs(req) do
    if not spelt[k] then
      body[k] = v
    end
  end
  return body
end

-- The video endpoint a request implies: image-to-video when it has an image, else text.
function M.video_endpoint(req)
  if req.image ~= nil or req.last_image ~= nil then
    return "videos/image2video"
  end
  return "videos/text2video"
end

-- A callback whose body is the task, bare or in the provider's envelope: the envelope's data
-- (unwrap(doc, 200)) when it is a table, else the body itself, read by parse.
function M.callback_task(raw, unwrap, parse)
  local doc, err = M.decode_object(raw)
  if not doc then
    return nil, err
  end
  local data = unwrap(doc, 200)
  return M.checked_task(parse(type(data) == "table" and data or doc))
end

-- A callback's raw body as a JSON object (or array) -> doc | nil, message.
function M.decode_object(raw)
  local doc, derr = json.decode_answer(raw)
  if type(doc) ~= "table" then
    return nil, "body is not a JSON object" .. (derr and (": " .. tostring(derr)) or "")
  end
  return doc
end

-- A charge as a non-negative decimal string (numbers keep their decimal digits, never float
-- noise); anything else (negative, NaN, 2^53 or more where a double is no longer exact, a
-- table) is no charge: nil.
function M.charge(v)
  if v == nil then -- every answer of a task still running
    return nil
  elseif type(v) == "number" then
    if v ~= v or v < 0 or v >= 2 ^ 53 then
      return nil
    end
    if v == math.floor(v) then
      return string.format("%d", v)
    end
    return (string.format("%.10f", v):gsub("0+$", ""):gsub("%.$", ""))
  elseif type(v) == "string" and v:match("^%d+%.?%d*$") then
    return v
  end
  return nil
end

local OUTPUT_LISTS = { "videos", "images", "audios" }
-- A task's lists of items (its outputs, and the voices it made), made once: checked_task runs on
-- every answer a gateway's poller and creates read.
local ITEM_LISTS = { "videos", "images", "audios", "voices" }

-- A JSON null in a table is absent: null is truthy in Lua (`if v.watermark_url then` took it
-- for a URL, and download raised on it) and printed as "userdata: NULL".
local function without_nulls(o)
  for k, v in pairs(o) do
    if v == json.null then
      o[k] = nil
    end
  end
end

-- A parsed task as the provider gave it, checked: a succeeded task whose output URL is not a
-- string (a table, number or boolean) is no result to download or pay for (issue 11.10).
-- -> t | nil, message.
function M.checked_task(t, err)
  if not t then
    return nil, err
  end
  -- The provider's id goes into the URLs that query and cancel the task, and back to callers
  -- (a handler may put it in a header): one it gives that is no URL path segment (CR, LF, '/')
  -- is unreadable, as for get_task's own ids, not a task polled in vain until its deadline.
  local id = t.id
  local problem = id ~= nil and validate.task_id_problem(type(id) == "number" and tostring(id) or id)
  if problem then
    return nil, "task id " .. validate.brief(tostring(id), 64) .. " " .. problem
  end
  if t.status == "succeeded" then
    for _, list in ipairs(OUTPUT_LISTS) do
      for i, o in ipairs(type(t[list]) == "table" and t[list] or {}) do
        if type(o) ~= "table" or (o.url ~= nil and type(o.url) ~= "string") then
          return nil, string.format("succeeded task with %s[%d].url %s, not a URL", list, i,
            validate.type_of(type(o) == "table" and o.url or o))
        end
      end
    end
  end
  -- The task's own fields and its outputs' hold no null; a message is text (one of null, a
  -- table or a number raised where a failed task's error was made: kling.lifecycle.machine).
  without_nulls(t)
  if t.message ~= nil and type(t.message) ~= "string" then
    t.message = nil
  end
  for _, list in ipairs(ITEM_LISTS) do
    local items = t[list]
    if type(items) == "table" then
      for _, o in ipairs(items) do
        if type(o) == "table" then
          without_nulls(o)
        end
      end
    end
  end
  if type(t.parent_video) == "table" then
    without_nulls(t.parent_video)
  end
  return t
end

-- Milliseconds since the epoch (a number or a numeric string) as seconds.
function M.ms_to_s(v)
  v = tonumber(v)
  return v and v / 1000 or nil
end

-- The mode each video resolution is (720p std, 1080p pro), on the official API and the gateways.
M.RESOLUTION_MODE = { ["720p"] = "std", ["1080p"] = "pro" }

-- resolution and mode, when both are given, must agree; `where` qualifies the rule.
function M.check_mode_resolution(provider, req, where)
  if req.resolution and req.mode and M.RESOLUTION_MODE[req.resolution] ~= req.mode then
    return errors.validation("resolution", req.resolution .. " is mode " .. M.RESOLUTION_MODE[req.resolution]
      .. (where or "") .. "; it conflicts with mode " .. req.mode, provider)
  end
  return nil
end

-- duration by a model's rule: whole seconds in its set (m.durations) or its range
-- (m.min_duration .. m.max_duration); `name` names the model in the message.
function M.check_duration(provider, req, m, name)
  local c = { provider = provider }
  if m.durations then
    return validate.whole_in(c, req, "duration", 0, 0, m.durations, "for " .. name)
  end
  return validate.whole_in(c, req, "duration", m.min_duration, m.max_duration, nil, "for " .. name)
end

-- The Kling v3 shot rules: 1 to 6 shots, each {prompt <= 512 chars, whole duration >= 1},
-- durations summing to `duration` when it is given. `when` ends the message of a missing
-- list ("when multi_shot is true").
function M.check_shots(provider, req, duration, when)
  local c = { provider = provider }
  local err = validate.array(c, req, "multi_prompt", 6)
  if err then
    return err
  end
  local shots = req.multi_prompt
  if type(shots) ~= "table" or #shots == 0 then
    return errors.validation("multi_prompt", "is required (1 to 6 shots) " .. when, provider)
  end
  local sum = 0
  for i, shot in ipairs(shots) do
    local field = "multi_prompt[" .. i .. "]"
    if type(shot) ~= "table" then
      return errors.validation(field, "must be a table {prompt, duration}", provider)
    end
    err = validate.text(c, shot, "prompt", { required = true, max_chars = 512 })
      or validate.whole_in(c, shot, "duration", 1, 15)
    if err then
      err.field = field .. "." .. err.field
      return err
    end
    if shot.duration == nil then
      return errors.validation(field .. ".duration", "is required", provider)
    end
    sum = sum + shot.duration
  end
  if duration ~= nil and sum ~= duration then
    return errors.validation("multi_prompt", string.format("shot durations must sum to duration %d (got %d)",
      duration, sum), provider)
  end
  return nil
end

return M
