-- Which of the gateway's accounts an upstream id belongs to. Every client shares the gateway's
-- one upstream account, so an id the upstream hands out (a task's, its videos', audios' and
-- voices', a face session's, a custom element's) could be named in another client's create
-- (video-extend's video_id, avatar's audio_id, lip-sync's session_id, ...) to use that
-- client's media. The gateway records the owner of every id it shows a client and refuses a
-- create naming an id another account owns, and, in the same words, one no account was shown
-- but where the provider's own ids (its preset voices and elements) may be named (SHARED).
local M = {}

local tasks = require "kling.resty.tasks"

local unpack = table.unpack or unpack -- luacheck: ignore 143 (LuaJIT's global)

M.DICT = "kling_gateway_tasks" -- its keys: "o:<upstream id>" -> "<account>|<task id>" (kling.resty.tasks has
-- none such); an owner written before the task id was kept is "<account>" alone

local function key(id)
  return "o:" .. id
end

-- account, task id (nil for an owner written without it) of an owner's value
local function parse(v)
  if type(v) ~= "string" then
    return nil
  end
  local bar = v:find("|", 1, true) -- account names have no "|" (kling.gateway.config)
  if not bar then
    return v
  end
  return v:sub(1, bar - 1), v:sub(bar + 1)
end

-- The upstream ids an ended record shows its client -> ids (owned while the record is kept),
-- lasting (owned for good: its custom voices' and elements' ids). A custom voice lives upstream until it is
-- deleted, which the gateway forwards to no one: owned only for retention_days, like a task's
-- videos, it passed as an id the gateway "never showed" once its task's record expired, and
-- another account spoke with a client's cloned voice.
local LASTING = { voices = true, elements = true, ["general/custom-elements"] = true }
local function ids_of(rec)
  local out, lasting = {}, {}
  local function add(list, v)
    if type(v) == "string" or type(v) == "number" then
      list[#list + 1] = M.id_text(v)
    end
  end
  -- A custom element lives upstream until it is deleted too: its record's upstream id is the
  -- element's (a synchronous answer), kept for good, or it was any account's 30 days on.
  add(LASTING[rec.endpoint] and lasting or out, rec.upstream_id)
  local r = type(rec.result) == "table" and rec.result or {}
  for _, name in ipairs { "videos", "audios", "voices", "elements" } do
    local list = r[name]
    local into = LASTING[name] and lasting or out
    for _, x in ipairs(type(list) == "table" and list or {}) do
      if type(x) == "table" then
        add(into, x.id)
        add(into, x.voice_id)
        add(into, x.element_id)
      end
    end
  end
  return out, lasting
end

-- How long the upstream keeps the ids a record shows, by kind, from its end (../shared's API
-- notes): a face session (identify-face's id) 24 h, a task's and its media's 30 days (results
-- are deleted after 30 days). An owner lives at least that long, whatever retention_days says:
-- kept for retention_days alone (an operator's 1), an id the upstream still served was free to
-- any account once its owner expired, and another client extended or lip-synced a client's video.
M.UPSTREAM_LIFE_S = { session = 86400, media = 30 * 86400 }

-- keep_s(G, rec) -> the seconds the owners of rec's ids (but its lasting ones) are kept from its end.
function M.keep_s(G, rec)
  local life = rec.endpoint == "videos/identify-face" and M.UPSTREAM_LIFE_S.session or M.UPSTREAM_LIFE_S.media
  return math.max(G.cfg.retention_days * 86400, life)
end

-- record(G, rec [, ttl]) -> true | nil, message: the ids of an ended record are its account's
-- (kept keep_s from its end, or ttl seconds; its custom voices' for good; ttl false: those
-- only, for a record past keep_s). The first owner stays: an upstream that hands out an id
-- twice (another task's answer, an id reused) does not take it from the account that was
-- shown it first.
function M.record(G, rec, ttl)
  local ids, lasting = ids_of(rec)
  if ttl == false then
    ids = {}
  end
  if #ids + #lasting == 0 or type(rec.account) ~= "string" then
    return true
  end
  ttl = math.max(1, math.floor(ttl or M.keep_s(G, rec))) -- 0 would keep them for good
  -- The task too: a video-extend is priced by the model and mode its source video was made with.
  local value = rec.account .. "|" .. tostring(rec.id)
  if G.redis then
    local r = G.redis
    return r:with(function(red)
      red:init_pipeline()
      for _, id in ipairs(ids) do
        red:set(r.prefix .. key(id), value, "EX", ttl, "NX")
      end
      for _, id in ipairs(lasting) do
        red:set(r.prefix .. key(id), value, "NX")
      end
      return red:commit_pipeline()
    end)
  end
  local function put(id, life)
    local ok, err = G.tasks.shm:write("safe_add", key(id), value, life) -- the tasks' dict (M.DICT)
    if not ok and err == "exists" then
      local first = parse(G.tasks.dict:get(key(id)))
      if first ~= rec.account then
        ngx.log(ngx.WARN, "kling gateway: upstream id ", id, " of task ", tostring(rec.id), " (", rec.account,
          ") was shown to ", tostring(first), " first: it stays theirs")
      end
    elseif not ok then
      return nil, err
    end
    return true
  end
  for _, id in ipairs(ids) do
    local ok, err = put(id, ttl)
    if not ok then
      return nil, err
    end
  end
  for _, id in ipairs(lasting) do
    local ok, err = put(id, 0)
    if not ok then
      return nil, err
    end
  end
  return true
end

-- kept(dict, now_ms) -> {{id, owner, expires_ms (nil: for good), task id (nil: not kept)}, ...}:
-- the owners in the tasks' dict, by id: what a compaction writes as "owner" lines
-- (kling.gateway.compact), as their tasks' records, past retention_days, are dropped while the
-- upstream still keeps their ids (keep_s) or for good (custom voices).
function M.kept(dict, now_ms)
  local out = {}
  for _, k in ipairs(dict:get_keys(0)) do
    local id = k:match("^o:(.+)$")
    local ttl = id and dict:ttl(k)
    if ttl then
      local v = dict:get(k)
      if type(v) == "string" then
        out[#out + 1] = { id, v, ttl > 0 and now_ms + math.ceil(ttl * 1000) or nil, select(2, parse(v)) }
      end
    end
  end
  table.sort(out, function(a, b)
    return a[1] < b[1]
  end)
  return out
end

-- restore(G, entries) -> true | nil, message: after a restart (shared memory only), the owners
-- of the journal's ended records (every one must land, or an id would be free for anyone).
-- The records are given their ids in the order they ended (the first shown keeps an id,
-- record says why), not the journal's: a compacted journal lists ended tasks in no such order,
-- and two restarts gave a duplicated id to the account shown it second.
function M.restore(G, entries)
  local now_s = ngx.time()
  local ended, seen = {}, {}
  for _, e in ipairs(entries) do
    if e.op == "owner" then -- a compacted journal's owner (M.kept): first shown, until it expires
      local left = type(e.expires_ms) == "number" and math.floor((e.expires_ms - ngx.now() * 1000) / 1000)
      if type(e.id) == "string" and type(e.owner) == "string" and (not left or left > 0) then
        local ok, err = G.tasks.shm:write("safe_add", key(e.id), e.owner, left or 0)
        if not ok and err ~= "exists" then
          return nil, "the shared dict cannot hold the owners of the journal's ids (" .. tostring(err) .. ")"
        end
      end
    end
    -- kept for what is left of keep_s since their task's end; past it, but for its lasting
    -- ids (record's ttl false). A task's first final record is its end: a later one (an
    -- operator's amendment) is not.
    local rec = e.record
    local left = type(rec) == "table" and rec.final and not seen[rec.id] and tasks.left(rec, M.keep_s(G, rec), now_s)
    if left then
      seen[rec.id] = true
      ended[#ended + 1] = { rec = rec, left = left > 0 and left, at = tonumber(rec.updated_at) or 0, i = #ended + 1 }
    end
  end
  table.sort(ended, function(a, b)
    if a.at ~= b.at then
      return a.at < b.at
    end
    return a.i < b.i
  end)
  for _, x in ipairs(ended) do
    local ok, err = M.record(G, x.rec, x.left)
    if not ok then
      return nil, "the shared dict cannot hold the owners of the journal's ids (" .. tostring(err) .. ")"
    end
  end
  return true
end

-- An id as the upstream wrote it: a number the client sent in its digits (860000000000000000),
-- never tostring's "8.6e+17", which no owner is recorded under. One spelling for every lookup.
function M.id_text(v)
  if type(v) == "number" and v % 1 == 0 and v >= 0 and v < 2 ^ 63 then
    return string.format("%.0f", v)
  end
  return tostring(v)
end

-- The one text form of an id a client's request may name: the form ids are handed out in.
-- Kling's (a task's, its video's and audio's, a face session's) are decimal digits without
-- sign or leading zero ("851796586942000002"; a face "0"); preset voices and elements, other
-- providers' and the gateway's own ("gw" and hex) are letters, digits, '_' and '-'. Owners are
-- looked up byte for byte while an upstream may read "0851...", "+851...", " 851...", "0x...",
-- "851e0" or "8_51" as the number it names: another account's id past the check. Refused, so
-- that the text the check looks up is the id the upstream reads.
M.ID_MAX = 256

-- id_problem(id) -> nil | the rule it breaks (a message without the field name)
function M.id_problem(id)
  if type(id) ~= "string" or #id == 0 or #id > M.ID_MAX then
    return "must be an id of 1.." .. M.ID_MAX .. " characters, as the API hands them out"
  elseif not id:find("^[%w][%w_-]*$") then
    return "must be an id as the API hands them out: letters, digits, '_' and '-', starting with a letter or"
      .. " digit (no sign, space, dot or other character)"
  end
  -- Written as a number: only as the API writes one (hex, an exponent or '_' between digits
  -- are other spellings of it).
  local numeric = id:find("^[%d_]+$") or id:find("^0[xX]%x+$") or id:find("^%d+[eE]%d+$")
  if numeric and id ~= "0" and not id:find("^[1-9]%d*$") then
    return "must be an id as the API hands them out: a number in decimal digits without a leading zero"
      .. " (\"851796586942000002\", not \"0851796586942000002\")"
  end
  return nil
end

--- Whether a request's field names an upstream id (a field called *_id at any depth: video_id,
-- audio_id, session_id, element_list[].element_id, ...; not external_task_id, the client's own):
-- the one rule for the ids a client must own (here) and the ids read in their digits
-- (kling.gateway.official).
function M.names_id(field)
  return type(field) == "string" and field ~= "external_task_id" and field:sub(-3) == "_id"
end

-- Lists whose items may be bare ids (element_list = {"829..."}, voice_list = {"v1"}: the
-- dialects read such an item as {element_id = ...}, {voice_id = ...}, kling.providers.common
-- id_list): a bare item is read as that field. Read as its list's name, which names no id, a
-- bare id was never looked up, and another account's voice or element passed as ["<its id>"].
M.ID_LISTS = { element_list = "element_id", voice_list = "voice_id" }

--- The field a value is read as: its key's name, or for an array's item its list's (a bare
-- id's, for the lists of ID_LISTS). The one rule of the owner check (here) and of the ids read
-- in their digits (kling.gateway.official).
function M.field_of(k, list_field)
  if type(k) == "string" then
    return k
  end
  return M.ID_LISTS[list_field] or list_field
end

-- The ids a request names: string or number values of the fields names_id says.
local function named(v, field, out)
  if type(v) == "table" then
    for k, x in pairs(v) do
      named(x, M.field_of(k, field), out)
    end
  elseif M.names_id(field) and (type(v) == "string" or type(v) == "number") then
    out[#out + 1] = { field = field, id = M.id_text(v) }
  end
end

-- values(G, ids) -> the stored owner of each upstream id (nil where none) | nil, message (the
-- store cannot say): one round trip in Redis.
local function values(G, ids)
  local out = {}
  if G.redis then
    local r, keys = G.redis, {}
    for i, id in ipairs(ids) do
      keys[i] = r.prefix .. key(id)
    end
    local v, err = r:with(function(red)
      return red:mget(unpack(keys))
    end)
    if type(v) ~= "table" then
      return nil, err or "no answer"
    end
    for i = 1, #ids do
      out[i] = type(v[i]) == "string" and v[i] or nil
    end
    return out
  end
  local d = ngx.shared[M.DICT]
  for i, id in ipairs(ids) do
    local v, err = d:get(key(id))
    if v == nil and err then
      return nil, err
    end
    out[i] = v
  end
  return out
end

-- The fields whose ids the upstream has for every account (its preset voices and elements,
-- their tags) or that number the parts of an id checked beside them (a face of the session
-- named): an id of theirs that no account was shown passes. In any other field (video_id,
-- audio_id, session_id, ...) the upstream's ids are the gateway's tasks', each shown to one
-- account: one that no account was shown is refused as another account's is, in the same
-- words, since forwarded it got the upstream's "does not exist", and the difference told a
-- client which ids other accounts have.
M.SHARED = { voice_id = true, element_id = true, tag_id = true, face_id = true }

-- foreign(G, account, req) -> field, id (the first id req names that is not the account's:
-- another account's, or in a field not SHARED one that no account was shown)
-- | field, id, nil, rule (an id not written as ids are handed out: id_problem) | nil | nil,
-- nil, message (the store cannot say).
function M.foreign(G, account, req)
  local list = {}
  named(req, nil, list)
  if #list == 0 then
    return nil
  end
  local ids = {}
  for i, n in ipairs(list) do
    local why = M.id_problem(n.id)
    if why then
      return n.field, n.id, nil, why
    end
    ids[i] = n.id
  end
  local owners, err = values(G, ids)
  if not owners then
    return nil, nil, err
  end
  for i, n in ipairs(list) do
    local owner = parse(owners[i])
    if owner ~= account and (owner or not M.SHARED[n.field]) then
      return n.field, n.id
    end
  end
  return nil
end

-- origin(G, id) -> account, task id (of the gateway's task that showed the upstream id id; the
-- task id nil for an owner written before it was kept) | nil (never shown) | nil, message (the
-- store cannot say).
function M.origin(G, id)
  local v, err = values(G, { id })
  if not v then
    return nil, err
  end
  return parse(v[1])
end

return M
