-- What the official dialect keeps beside tasks, in the task dict (so /_sim/reset clears it):
-- multi-elements selection sessions, custom element ids, and deletions of custom elements
-- and voices. Also the lookups of earlier results that later calls refer to (a video by its
-- id, an identify-face session, a TTS audio id).
local json = require "kling.json"
local clock = require "kling_sim.clock"
local store = require "kling_sim.store"

local M = {}

M.SESSION_MS = 24 * 3600 * 1000 -- identify-face and selection sessions last 24 h

local function dict()
  return ngx.shared.kling_sim_tasks
end

-- Seconds as the API spells them: "5", "9.5", "4.25".
function M.seconds(x)
  if x == math.floor(x) then
    return string.format("%d", x)
  end
  return (string.format("%.3f", x):gsub("0+$", ""))
end

-- A finished, successful task of this dialect and account, or nil.
local function succeeded(t, account)
  if not t or t.dialect ~= "kling" or t.account ~= account then
    return nil
  end
  local phase = store.phase(t, clock.now_ms())
  if phase ~= "done" or t.fate.outcome ~= "succeed" then
    return nil
  end
  return t
end
M.succeeded = succeeded

local VIDEO_KINDS = { video = true, dubbed = true }

-- video(account, id) -> task, seconds | nil: a video the simulator delivered.
function M.video(account, id)
  local t = succeeded(store.by_video(tostring(id)), account)
  local out = t and (t.out or { kind = "video" })
  if not t or not VIDEO_KINDS[out.kind or "video"] then
    return nil
  end
  return t, tonumber(out.duration or t.request.duration_str)
end

-- speech(account, audio_id) -> task, seconds | nil: a TTS audio (avatar and lip-sync take its id).
function M.speech(account, id)
  local t = succeeded(store.by_video(tostring(id)), account)
  if not t or t.endpoint ~= "audio/tts" then
    return nil
  end
  return t, tonumber(t.out.duration)
end

-- face_session(account, id) -> identify-face task | nil (absent, another account's, or expired)
function M.face_session(account, id)
  local t = succeeded(store.get(tostring(id)), account)
  if not t or t.endpoint ~= "identify-face" or clock.now_ms() - t.created_ms > M.SESSION_MS then
    return nil
  end
  return t
end

-- ---- multi-elements selection sessions ----

function M.new_selection(account, source)
  local s = {
    session_id = store.new_id("87"), account = account, created_ms = clock.now_ms(), fps = 30,
    duration_ms = math.floor(source.seconds * 1000), width = 1280, height = 720, source = source.id,
    objects = {},
  }
  s.total_frame = math.floor(s.duration_ms * s.fps / 1000)
  M.save_selection(s)
  return s
end

function M.save_selection(s)
  return dict():safe_set("sel:" .. s.session_id, json.encode(s))
end

function M.selection(account, id)
  local raw = dict():get("sel:" .. tostring(id))
  local s = raw and json.decode(raw)
  if not s or s.account ~= account or clock.now_ms() - s.created_ms > M.SESSION_MS then
    return nil
  end
  return s
end

-- ---- custom elements and voices ----

-- Element ids are longs below 2^53 (they travel as JSON numbers); the sequence is never reset.
function M.next_element_id()
  return 800000000000 + ngx.shared.kling_sim_state:incr("kling:element_seq", 1, 0)
end

function M.bind_element(id, task_id)
  dict():set("el:" .. id, task_id)
end

function M.element_known(id)
  return dict():get("el:" .. tostring(id)) ~= nil
end

function M.element(account, id)
  id = tostring(id)
  if dict():get("del:el:" .. id) then
    return nil
  end
  local task_id = dict():get("el:" .. id)
  return succeeded(task_id and store.get(task_id), account)
end

function M.voice(account, id)
  id = tostring(id)
  if dict():get("del:voice:" .. id) then
    return nil
  end
  local t = succeeded(store.by_video(id), account)
  if not t or t.endpoint ~= "general/custom-voices" then
    return nil
  end
  return t
end

function M.delete(kind, id)
  dict():set("del:" .. kind .. ":" .. tostring(id), true)
end

function M.deleted(kind, id)
  return dict():get("del:" .. kind .. ":" .. tostring(id)) ~= nil
end

return M
