-- Whose a custom voice is, for good. Every client shares the gateway's one upstream account, and a
-- custom voice (a clone of a client's own voice) lives upstream until it is deleted, which the
-- gateway forwards to no one. Its owner was recorded for retention_days, as a task's videos are:
-- then its id passed as one the gateway never showed, and another account made speech with it.
-- A gateway started by `kling gateway start` with a retention of about 2.6 s, on one node (its
-- owner kept across two restarts: the journal as it was written, then as compacted) and on a
-- Redis store. A simulator and a redis-server of their own.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local g = h.launched("gateway-owners")
local redis = h.redis(g.base .. "/redis")
local sim
local RETENTION_DAYS = 0.00003 -- 2.6 s

local function cleanup()
  g.stop()
  redis.stop()
  h.tidy(g.base, g.sim_dir)
end

local function config(store)
  local doc = {
    upstream = { provider = "kling", base_url = sim.http, access_key = sim.access_key, secret_key = sim.secret_key },
    admin_key = "admin-0123456789abcdef", retention_days = RETENTION_DAYS,
    poll = { min_interval = 0.2, max_interval = 0.4 },
    accounts = { { name = "alice", api_key = "gw-alice-key", credit = "10" },
      { name = "bob", api_key = "gw-bob-key", credit = "10" } },
  }
  if store then
    doc.store = { redis = "redis://127.0.0.1:" .. redis.port .. "/0" }
  else
    doc.journal = g.journal
  end
  return doc
end

local gw
local function call(method, path, key, body)
  return h.request(method, gw.http .. path, { headers = { authorization = "Bearer " .. key }, body = body })
end

-- One of bob's tasks, made at path with body and ended -> the id of its first output (at
-- task_result[outputs][1][field]), the task's id.
local function bobs(path, body, outputs, field)
  local res = call("POST", path, "gw-bob-key", body)
  local id = assert(res.json and res.json.data and res.json.data.task_id, res.body)
  local limit = h.now() + 30
  while h.now() < limit do
    local d = call("GET", path .. "/" .. id, "gw-bob-key").json
    local list = d and d.data and d.data.task_status == "succeed" and d.data.task_result[outputs]
    if list then
      return assert(list[1][field], json.encode(d)), id
    end
    h.sleep(0.2)
  end
  error("bob's task at " .. path .. " did not end: " .. id)
end

-- A custom voice of bob's, made and ended -> its voice_id, the task's id
local function bobs_voice()
  return bobs("/v1/general/custom-voices", '{"voice_name":"bob","voice_url":"https://example.com/bob.mp3"}',
    "voices", "voice_id")
end

-- A video of bob's, made and ended -> its video id, the task's id
local function bobs_video()
  return bobs("/v1/videos/text2video", '{"model_name":"kling-v1","mode":"std","duration":"5","prompt":"bob\'s boat"}',
    "videos", "id")
end

-- Waits until a node just started on a Redis store has opened the file's accounts (until then
-- their keys are answered 503, never "unknown key").
local function opened()
  local limit = h.now() + 30
  while call("GET", "/gateway/balance", "gw-bob-key").status == 503 and h.now() < limit do
    h.sleep(0.1)
  end
end

-- A custom element of bob's (synchronous: its id is the answer's) -> its element_id, as ids are
-- looked up (a number in its digits)
local function bobs_element()
  local res = call("POST", "/v1/general/custom-elements", "gw-bob-key", json.encode { element_name = "bob's dog",
    element_description = "a red dog", element_frontal_image = "https://example.com/dog.png",
    element_refer_list = { { image_url = "https://example.com/dog-1.png" } } })
  local id = res.json and res.json.data and res.json.data.element_id
  assert(id ~= nil, res.body)
  return type(id) == "number" and ("%.0f"):format(id) or id
end

-- Waits until the task's record is gone (past retention_days).
local function forgotten(id, path)
  local limit = h.now() + 30
  while h.now() < limit do
    if call("GET", (path or "/v1/general/custom-voices/") .. id, "gw-bob-key").status == 404 then
      return true
    end
    h.sleep(0.5)
  end
  return false
end

local function speech(key, voice)
  return call("POST", "/v1/audio/tts", key, json.encode { text = "hello there", voice_id = voice,
    voice_language = "en" })
end

local function refused(res, voice, field)
  return res.status == 400 and res.json and res.json.code == 1201
    and res.json.message == (field or "voice_id") .. ": " .. voice .. " is not one of this account's"
end

-- Whose a video is outlives retention_days (here 2.6 s) as long as the upstream keeps it (30
-- days): kept for retention_days alone, bob's video was any account's to clone a voice from (or
-- to lip-sync, to give a sound) once its owner expired.
local function extend(key, video)
  return call("POST", "/v1/general/custom-voices", key, json.encode { voice_name = "alice", video_id = video })
end

h.main(function()
  sim = h.sim_start(g.sim_dir, { task_seconds = 1 })
  -- one node
  gw = g.start(config(false))
  local voice, task = bobs_voice()
  h.check("one node: alice naming bob's custom voice is refused (400, 1201)", refused(speech("gw-alice-key", voice),
    voice))
  h.check("... bob's voice task is forgotten past retention_days (its query 404)", forgotten(task))
  local res = speech("gw-alice-key", voice)
  h.check("one node: past retention_days alice naming bob's custom voice is still refused", refused(res, voice),
    res.body)
  h.check("... bob still speaks with it", speech("gw-bob-key", voice).status == 200)
  local video, vtask = bobs_video()
  h.check("one node: bob's video task is forgotten past retention_days (its query 404)",
    forgotten(vtask, "/v1/videos/text2video/"))
  res = extend("gw-alice-key", video)
  h.check("one node: past retention_days alice naming bob's video (the upstream keeps it 30 days) is still refused",
    refused(res, video, "video_id"), res.body)
  g.stop()
  gw = g.start(config(false)) -- the journal as written: the voice's task, past its retention
  res = speech("gw-alice-key", voice)
  h.check("one node: after a restart, still refused", refused(res, voice), res.body)
  res = extend("gw-alice-key", video)
  h.check("... and bob's video too", refused(res, video, "video_id"), res.body)
  local text = h.read(g.journal) or ""
  h.check("... its compaction kept the owner as a line of its own (the voice's task dropped)",
    text:find('"op":"owner"', 1, true) and text:find(voice, 1, true) and not text:find('"id":"' .. task, 1, true))
  local line = ""
  for l in text:gmatch("[^\n]+") do
    line = l:find('"op":"owner"', 1, true) and l:find('"' .. video .. '"', 1, true) and l or line
  end
  local expires = tonumber(line:match('"expires_ms":(%d+)'))
  h.check("... and the video's owner with its expiry, 29 to 31 days from now (its task dropped)", expires
    and expires > (os.time() + 29 * 86400) * 1000 and expires < (os.time() + 31 * 86400) * 1000
    and not text:find('"id":"' .. vtask, 1, true), line)
  g.stop()
  gw = g.start(config(false)) -- the journal as the last start compacted it (its task dropped)
  res = speech("gw-alice-key", voice)
  h.check("one node: after a second restart (a compacted journal), still refused", refused(res, voice), res.body)
  res = extend("gw-alice-key", video)
  h.check("... and bob's video too", refused(res, video, "video_id"), res.body)
  h.check_no_lua_error(g.srv())
  g.stop()
  -- Redis
  redis.start()
  gw = g.start(config(true))
  opened()
  voice, task = bobs_voice()
  h.check("Redis: bob's voice task is forgotten past retention_days (its query 404)", forgotten(task))
  res = speech("gw-alice-key", voice)
  h.check("Redis: past retention_days alice naming bob's custom voice is still refused", refused(res, voice),
    res.body)
  h.check("... bob still speaks with it", speech("gw-bob-key", voice).status == 200)
  video, vtask = bobs_video()
  h.check("Redis: bob's video task is forgotten past retention_days (its query 404)",
    forgotten(vtask, "/v1/videos/text2video/"))
  res = extend("gw-alice-key", video)
  h.check("Redis: past retention_days alice naming bob's video is still refused", refused(res, video, "video_id"),
    res.body)
  local ttl = tonumber((redis.cli("TTL", "kgw:o:" .. video):match("%-?%d+")))
  h.check("... its owner's key lives 29 to 30 days", ttl and ttl > 29 * 86400 and ttl <= 30 * 86400, tostring(ttl))
  h.check_no_lua_error(g.srv())
  -- A custom element lives upstream until it is deleted, as a custom voice does. Seed 000 gives
  -- its creation no price (refused), EvoLink's catalog does: a store of its own for that unit.
  g.stop()
  local doc = config(true)
  doc.price_provider, doc.store.prefix = "evolink", "kgwe:"
  gw = g.start(doc)
  opened()
  local element = bobs_element()
  ttl = tonumber((redis.cli("TTL", "kgwe:o:" .. element):match("%-?%d+")))
  h.check("Redis: bob's custom element's owner is kept for good, as a custom voice's (TTL -1): kept 30 days, any"
    .. " account could use it after", ttl == -1, tostring(ttl))
end, function()
  return g.srv()
end, cleanup)
