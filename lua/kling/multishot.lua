--- Storyboards: multi-shot videos, native where the model can, else chained segments.
-- kling.multishot: a storyboard (a list of shots {prompt, duration, image?, elements?}) made
-- into one video.
--
--   local multishot = require "kling.multishot"
--   local r = assert(multishot.run(client, { model = "kling-v3", shots = {
--     { prompt = "a fox wakes up in its den", duration = 4 },
--     { prompt = "the fox trots through snow", duration = 6, elements = { "Fox" } },
--   } }, { out = "out/fox" }))
--   print(r.file)   -- out/fox/storyboard.mp4
--
-- On a provider and model with native multi-shot (kling-v3) a storyboard of at most 6 shots
-- whose durations sum to 3..15 s is ONE request (multi_shot, multi_prompt). A longer one is
-- split into segments that each fit those limits; every segment after the first starts from
-- the last frame of the one before (extracted with ffmpeg) for continuity, unless its first
-- shot brings its own image; the segments are joined with ffmpeg into one file. Without
-- native multi-shot every shot is a segment of its own.
--
-- Segments are journaled (DIR/storyboard.jsonl, kling.journal) like batch rows: running the
-- same storyboard again into the same DIR skips the segments already made and picks up a
-- task in flight by its id or external id instead of paying for it twice. The journal names
-- its storyboard: another one into a DIR that holds a storyboard's run is refused.
-- @module kling.multishot
local core = require "kling.core"
local errors = require "kling.errors"
local json = require "kling.json"
local validate = require "kling.validate"
local journal = require "kling.journal"
local providers = require "kling.providers"
local canonical = require("kling.json").canonical
local ffmpeg = require "kling.ffmpeg"
local output_path = require "kling.output_path"
local local_file = require "kling.local_file"
local file_lock = require "kling.file_lock"

local M = {}

-- The documented limits of one multi-shot request (kling-v3).
M.MAX_SHOTS, M.MIN_TOTAL, M.MAX_TOTAL, M.MAX_PROMPT = 6, 3, 15, 512
-- The official API measures images: a frame smaller than this is scaled up.
M.MIN_FRAME = 300
-- A storyboard's DIR: its journal and the lock its run holds (the first file a run makes).
M.JOURNAL, M.LOCK = "storyboard.jsonl", "storyboard.lock"

local SHOT_FIELDS = { prompt = true, duration = true, image = true, elements = true }

local function fail(field, msg, provider)
  return errors.validation(field, msg, provider)
end

-- ---- the storyboard ----

--- Reads a storyboard file.
-- load(path) -> storyboard | nil, message: a JSON array of shots, or an object {shots = [...],
-- and any canonical request fields shared by every segment (model, mode, aspect_ratio, ...)}.
---@param path string
---@return table|nil storyboard
---@return string|nil err
function M.load(path)
  local text, err = local_file.read_text(path)
  if not text then
    return nil, "cannot read the storyboard: " .. err
  end
  local doc, jerr, dup = json.decode_strict(text)
  if dup then
    return nil, path .. ": " .. jerr
  elseif type(doc) ~= "table" then
    return nil, path .. ": not a JSON storyboard (" .. tostring(jerr or type(doc)) .. ")"
  end
  if doc[1] ~= nil then
    doc = { shots = doc }
  end
  return doc
end

--- Checks a storyboard's shots.
-- check(sb) -> nil | validation error naming the shot and the rule.
---@param sb table
---@return kling.Error|nil err
function M.check(sb)
  if type(sb) ~= "table" or type(sb.shots) ~= "table" or sb.shots[1] == nil then
    return fail("shots", "a storyboard needs a list of shots {prompt, duration, image?, elements?}")
  end
  -- ipairs below stopped at a hole: {a, nil, b} ran as shot a alone
  local at, why = validate.list_problem(sb.shots, "shots")
  if at then
    return fail(at, why)
  end
  for k in pairs(sb) do
    if k == "multi_shot" or k == "multi_prompt" or k == "prompt" or k == "duration" then
      return fail(k, "is made from the shots: give it per shot, not for the whole storyboard")
    end
  end
  for i, shot in ipairs(sb.shots) do
    local where = "shots[" .. i .. "]"
    if type(shot) ~= "table" then
      return fail(where, "must be an object {prompt, duration, image?, elements?}")
    end
    for k in pairs(shot) do
      if not SHOT_FIELDS[k] then
        local near = validate.closest(k, SHOT_FIELDS)
        return fail(where .. "." .. tostring(k), "unknown shot field (a shot has prompt, duration, image, elements)"
          .. (near and ("; did you mean " .. near .. "?") or ""))
      end
    end
    local err = validate.text({}, shot, "prompt", { required = true, max_chars = M.MAX_PROMPT })
    if err then
      err.field = where .. ".prompt"
      return err
    end
    local d = shot.duration
    if type(d) ~= "number" or d ~= math.floor(d) or d < 1 or d > M.MAX_TOTAL then
      return fail(where .. ".duration", "must be a whole number of seconds from 1 to " .. M.MAX_TOTAL
        .. " (got " .. (d == nil and "none" or validate.got(d)) .. ")")
    end
    if shot.image ~= nil and (type(shot.image) ~= "string" or shot.image == "") then
      return fail(where .. ".image", "must be an image URL or base64 data")
    end
    local els = shot.elements
    if els ~= nil and (type(els) ~= "table" or (next(els) ~= nil and els[1] == nil)) then
      return fail(where .. ".elements", "must be a list of element names or ids")
    end
    at, why = validate.list_problem(els or {}, where .. ".elements")
    if at then
      return fail(at, why)
    end
  end
  return nil
end

--- Whether one request can carry several shots.
-- Whether the client's provider makes a multi-shot video in one request with this model.
---@param provider table
---@param model string
---@return boolean
function M.native(provider, model)
  if not provider.capabilities.multi_shot then
    return false
  end
  local m = provider.models and provider.models[model]
  return type(m) ~= "table" or m.multi_shot == true
end

local function sum(shots, a, b)
  local s = 0
  for i = a, b do
    s = s + shots[i].duration
  end
  return s
end

--- Splits a storyboard into segments.
-- plan(sb, native) -> segments | nil, err. Each segment {first, last, duration}: shots
-- first..last. Native: packed greedily (at most 6 shots, 15 s), a shot with its own image
-- opening a new segment; a segment left under 3 s takes shots from the one before.
---@param sb table
---@param native boolean
---@return table[]|nil segments
---@return kling.Error|nil err
function M.plan(sb, native)
  local shots = sb.shots
  local segs = {}
  if not native then
    for i, shot in ipairs(shots) do
      segs[i] = { first = i, last = i, duration = shot.duration }
    end
    return segs
  end
  local cur
  for i, shot in ipairs(shots) do
    if cur and (shot.image ~= nil or cur.last - cur.first + 1 >= M.MAX_SHOTS
      or cur.duration + shot.duration > M.MAX_TOTAL) then
      cur = nil
    end
    if not cur then
      cur = { first = i, last = i - 1, duration = 0 }
      segs[#segs + 1] = cur
    end
    cur.last, cur.duration = i, cur.duration + shot.duration
  end
  for k, seg in ipairs(segs) do
    local prev = segs[k - 1]
    while seg.duration < M.MIN_TOTAL and prev and prev.last > prev.first and shots[seg.first].image == nil
      and seg.last - seg.first + 1 < M.MAX_SHOTS and seg.duration + shots[prev.last].duration <= M.MAX_TOTAL
      and prev.duration - shots[prev.last].duration >= M.MIN_TOTAL do
      local moved = shots[prev.last].duration
      seg.first, seg.duration = prev.last, seg.duration + moved
      prev.last, prev.duration = prev.last - 1, prev.duration - moved
    end
    if seg.duration < M.MIN_TOTAL then
      return nil, fail("shots[" .. seg.first .. "].duration", string.format("a multi-shot request lasts %d to %d s: "
        .. "shots %d..%d make a segment of %d s that cannot be balanced with its neighbours", M.MIN_TOTAL,
        M.MAX_TOTAL, seg.first, seg.last, seg.duration))
    end
  end
  return segs
end

--- The canonical request of one segment.
-- The canonical request of a segment (image: its start frame, if any; elements resolved).
---@param sb table
---@param shots table[]
---@param seg table
---@param native boolean
---@return table request
function M.segment_request(sb, shots, seg, native)
  local req = {}
  for k, v in pairs(sb) do
    if k ~= "shots" and k ~= "provider" then
      req[k] = v
    end
  end
  local elements, seen = {}, {}
  for i = seg.first, seg.last do
    for _, e in ipairs(shots[i].elements or {}) do
      -- an id in its digits: tostring made two ids above 10^14 one ("8.6179663966600e+14")
      local key = type(e) == "table" and canonical(e) or require("kling.providers.common").id_text(e) or tostring(e)
      if not seen[key] then
        seen[key] = true
        elements[#elements + 1] = e
      end
    end
  end
  if #elements > 0 then
    req.element_list = elements
  end
  req.image = shots[seg.first].image or req.image
  if native and seg.last > seg.first then
    req.multi_shot, req.shot_type = true, "customize"
    req.multi_prompt = {}
    for i = seg.first, seg.last do
      req.multi_prompt[#req.multi_prompt + 1] = { prompt = shots[i].prompt, duration = shots[i].duration }
    end
    req.duration = sum(shots, seg.first, seg.last)
  else
    req.prompt, req.duration = shots[seg.first].prompt, shots[seg.first].duration
  end
  return req
end

-- ---- ffmpeg ----

local quote = ffmpeg.quote

--- Whether ffmpeg is on the PATH.
---@return boolean
function M.have_ffmpeg()
  return ffmpeg.have()
end

--- Extracts a video's last frame (ffmpeg).
-- last_frame(video, png) -> true | nil, err: the video's last frame as a PNG, scaled up (the
-- aspect kept) when its short side is under MIN_FRAME pixels so providers accept it.
---@param video string
---@param png string
---@return boolean|nil ok
---@return string|nil err
function M.last_frame(video, png)
  return ffmpeg.last_frame(video, png, M.MIN_FRAME)
end

-- The files a storyboard writes in its directory: each segment, the last frame of each but
-- the last (the next one's start), the joined video and the join's list.
local function segment_path(out, k)
  return string.format("%s/segment-%02d.mp4", out, k)
end

local function frame_path(out, k)
  return string.format("%s/frame-%02d.png", out, k)
end

local function final_path(out)
  return out .. "/storyboard.mp4"
end

--- Why a storyboard of `count` segments could not write one of its files in `out` (a link, a
-- FIFO or a directory planted there, or at its .part; kling.output_path; or a segment or the
-- joined file there that `written`, the journal's, does not show this storyboard wrote: never
-- replaced), or nil: checked before the first create, so that no segment is paid for whose
-- file would be refused. Each write checks its path again (a link may be planted later, a
-- file may appear: kling.output_path.place keeps it).
---@param out string the storyboard's directory
---@param count integer its segments
---@param written? table file names (no directory) the journal says this storyboard wrote
---@return string|nil refusal naming the path
function M.output_refusal(out, count, written)
  written = written or {}
  local paths = { final_path(out), final_path(out) .. ".txt" }
  local mine = { [final_path(out)] = true }
  for k = 1, count do
    paths[#paths + 1] = segment_path(out, k)
    mine[segment_path(out, k)] = true
    if k < count then
      paths[#paths + 1] = frame_path(out, k)
    end
  end
  for k = 1, count do -- a segment is downloaded to its .part, which streams to its own .part
    paths[#paths + 1] = output_path.part(segment_path(out, k))
  end
  for _, p in ipairs(paths) do
    local refused = output_path.refusal(p)
    if refused then
      return refused
    end
    if mine[p] and output_path.size(p) and not written[p:match("([^/]*)$")] then
      return p .. " exists and this storyboard's journal (storyboard.jsonl) has no record of writing it: it is"
        .. " never replaced"
    end
  end
  return nil
end

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function basename(path)
  return path:match("([^/]*)$")
end

-- The journal's key of segment k: what it asks for (its request, element names resolved, before
-- its start frame is put in) and the frame it starts from, named by the file's name alone, so
-- that DIR given as a relative or an absolute path is the same segment (paid once).
local function segment_key(req, k, start_frame)
  return core.sha256_hex(canonical(req) .. "\0" .. tostring(k) .. "\0"
    .. tostring(start_frame and basename(start_frame))):sub(1, 16)
end

-- A path as ffmpeg's concat list must name it: the list resolves relative names against
-- its own directory, not the current one (out/x.mp4 in out/list.txt is out/out/x.mp4).
local function listed(path, list)
  if dirname(path) == dirname(list) then
    return basename(path)
  end
  if path:sub(1, 1) == "/" then
    return path
  end
  local p = io.popen("pwd")
  local cwd = p and p:read("l")
  if p then
    p:close()
  end
  return (cwd or ".") .. "/" .. path
end

-- copy(from, to [, on_place]) -> true | nil, err (through a temporary name, seen by on_place,
-- then moved to `to` only while nothing is there: kling.output_path.place).
local function copy_file(from, to, on_place)
  local src, err = io.open(from, "rb")
  if not src then
    return nil, err
  end
  local dst
  dst, err = output_path.create(output_path.part(to)) -- new, never through a link
  if not dst then
    src:close()
    return nil, err
  end
  while true do
    local chunk = src:read(1048576)
    if not chunk then
      break
    end
    local ok, werr = dst:write(chunk)
    if not ok then
      src:close()
      dst:close()
      return nil, werr
    end
  end
  src:close()
  dst:close()
  if on_place then
    local seen, raised = pcall(on_place, output_path.part(to))
    if not seen then
      os.remove(output_path.part(to))
      error(raised, 0)
    end
  end
  local placed, perr = output_path.place(output_path.part(to), to, false)
  if not placed then
    os.remove(output_path.part(to))
    return nil, perr
  end
  return true
end

--- Joins videos into one (ffmpeg).
-- join(videos, out [, on_place]) -> true | nil, err: one file from the segments in order (stream
-- copy, re-encoded when the segments' streams differ); one segment is copied as it is (no ffmpeg).
-- A file at `out` is never replaced (kling.output_path.place): the join is dropped, the file kept.
-- on_place(tmp) sees the finished file just before its move (the storyboard journals it).
function M.join(videos, out, on_place)
  local refused = output_path.refusal(out)
  if refused then
    return nil, refused
  end
  if #videos == 1 then
    return copy_file(videos[1], out, on_place)
  end
  local list = out .. ".txt"
  local f, err = output_path.create(list)
  if not f then
    return nil, err
  end
  for _, v in ipairs(videos) do
    f:write("file ", quote(listed(v, list)), "\n")
  end
  f:close()
  local done, ok, ferr, kind = pcall(ffmpeg.run, "-f concat -safe 0 -i " .. quote(list) .. " -c copy", out, false,
    on_place)
  if done and not ok and kind ~= "exists" then -- a file there is kept: no second try over it
    done, ok, ferr = pcall(ffmpeg.run, "-f concat -safe 0 -i " .. quote(list) .. " -c:v libx264 -preset veryfast "
      .. "-pix_fmt yuv420p -c:a aac", out, false, on_place)
  end
  os.remove(list)
  if not done then
    error(ok, 0) -- on_place's
  end
  return ok, ferr
end

local function read_b64(path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, err
  end
  local data = f:read("a")
  f:close()
  return core.b64encode(data)
end

-- A frame that does not exist yet, for checking the requests of chained segments before the
-- first is sent: a PNG header (IHDR 640x360) as base64. Never sent anywhere.
local FRAME_STANDIN = core.b64encode("\137PNG\r\n\26\n\0\0\0\13IHDR\0\0\2\128\0\0\1\104\8\2\0\0\0\0\0\0\0")

-- ---- running ----

local Run = {}
Run.__index = Run

-- A record that cannot be written stops the run: raised as the error M.run returns (field
-- `out`), never a create the journal does not know about.
function Run:log(rec)
  local ok, err = self.journal:append(rec)
  if not ok then
    error(errors.validation("out", err), 0)
  end
end

function Run:progress(ev)
  if self.on_progress then
    self.on_progress(ev)
  end
end

-- Removes the file at path when the journal says this storyboard wrote it (to be made again);
-- any other file there is left for kling.output_path.place to keep.
function Run:drop_own(path)
  if self.written[path:match("([^/]*)$")] then
    os.remove(path)
  end
end

-- The task of segment k: the one the journal says is at the provider, else a new create
-- (its intent journaled first).
function Run:task_of(k, req, key)
  local client = self.client
  local h = self.history[key]
  if h and h.task_id then
    return client:get_task(h.task_id, { endpoint = h.endpoint })
  end
  if h and h.ext then
    local t, err = client:get_task({ external_task_id = h.ext })
    if t then
      self:log { t = "created", key = key, task_id = t.id, endpoint = t.endpoint }
      return t
    end
    if err.kind ~= "not_found" then
      return nil, err
    end
    req.external_task_id = h.ext
  elseif h and h.intent then
    return nil, errors.new { kind = "validation", field = "segments[" .. k .. "]", provider = client.provider.name,
      message = "an earlier run sent this segment's create and stopped before its answer; " .. client.provider.name
        .. " cannot look it up: remove " .. self.journal.path .. " to create it again (it may be paid twice)" }
  end
  local endpoint, err = client:check(req)
  if not endpoint then
    return nil, err
  end
  if not req.external_task_id and providers.takes_external_id(client.provider, endpoint) then
    req.external_task_id = "ks-" .. core.random_hex(12)
  end
  self:log { t = "intent", key = key, ext = req.external_task_id }
  self.sent = true
  local t
  t, err = client:submit(req)
  if not t then
    return nil, err
  end
  self:log { t = "created", key = key, task_id = t.id, endpoint = t.endpoint }
  return t
end

-- The request of segment k, element names resolved.
function Run:request(seg)
  local req = M.segment_request(self.sb, self.sb.shots, seg, self.native)
  if req.element_list then -- names from opts.elements, else the default cache kling element create writes
    local list, err = require("kling.element").resolve(req.element_list, { cache = self.elements,
      provider = self.client.provider.name, base_url = self.client.base_url })
    if not list then
      return nil, err
    end
    req.element_list = list
  end
  return req
end

-- err about a segment that starts from the previous one's last frame, sent inline (no
-- frames_base_url): a provider that takes image URLs only refuses it, and the way out is to
-- serve DIR and name where (the Lua option and the flag). -> err
function Run:frame_hint(err)
  if type(err) == "table" and err.field == "image" and not self.frames_base_url then
    err.message = tostring(err.message) .. " (segments start from the previous one's last frame: this provider "
      .. "needs it as a URL: serve " .. self.out .. " and give frames_base_url / --frames-base-url)"
  end
  return err
end

-- Every segment's request checked before the first is sent (a chained segment with a
-- stand-in for the frame it will start from). -> {[key] = k} (each segment's journal key) | nil, err
function Run:check_all(segs, continuity)
  local keys = {}
  for k, seg in ipairs(segs) do
    local req, err = self:request(seg)
    if req then -- the frame Run:all starts it from: the one before's, unless its first shot has an image
      local start = k > 1 and continuity and self.sb.shots[seg.first].image == nil and frame_path(self.out, k - 1)
      keys[segment_key(req, k, start or nil)] = k
    end
    local chained = req and k > 1 and continuity and not req.image
    if chained then
      req.image = self.frames_base_url and (self.frames_base_url .. "/frame.png") or FRAME_STANDIN
    end
    if req then
      local _
      _, err = self.client:check(req)
      if err and chained then
        self:frame_hint(err)
      elseif err and err.field == "image" and self.sb.shots[seg.first].image ~= nil then
        err.field = "shots[" .. seg.first .. "].image" -- the shot's own, as the caller wrote it
      end
    end
    if err then
      if err.field and err.field ~= "element_list" and not err.field:match("^element_list%[") then
        err.message = "segment " .. k .. " (shots " .. seg.first .. ".." .. seg.last .. "): " .. tostring(err.message)
      end
      return nil, err
    end
  end
  return keys
end

-- Why this storyboard may not run in the directory whose journal holds `records`, or nil: the
-- journal is another storyboard's (its "storyboard" record names another one, or, a journal
-- written before that record, its segments' keys are not this one's), whose segments and
-- joined file this run would replace (they are the journal's own). A journal that records
-- nothing made or sent is taken over.
local function other_storyboard(records, identity, keys)
  local named, made = nil, false
  for _, r in ipairs(records) do
    if r.t == "storyboard" then
      named = r.sha256
    elseif r.t ~= nil then
      made = true
    end
  end
  if not made or named == identity then
    return nil
  end
  if named == nil then
    for _, r in ipairs(records) do
      if type(r.key) == "string" and not keys[r.key] then
        return "records segments that are not this storyboard's"
      end
    end
    return nil
  end
  return "names another storyboard (other shots, model, options or provider)"
end

function Run:segment(k, seg, start_frame)
  local req, err = self:request(seg)
  if not req then
    return nil, err
  end
  -- The key names what the segment asks for; a start frame is named by its file (the
  -- frame of the same video is the same frame).
  -- Named by the file's name alone, so that DIR given as a relative or an absolute path is the
  -- same segment (paid once).
  local key = segment_key(req, k, start_frame)
  local path = segment_path(self.out, k)
  local h = self.history[key]
  if h and h.done and ffmpeg.nonempty(path) then
    return { path = path, task_id = h.task_id, skipped = true, charge = h.charge }
  end
  if h and not h.done and h.placed then
    -- moved into place just before the run stopped (its "placing" record names this very file,
    -- its "done" line was never written): the segment's video, kept, not fetched nor paid again
    os.remove(frame_path(self.out, k))
    self:log { t = "done", key = key, task_id = h.placed.task_id, path = path, charge = h.placed.charge }
    return { path = path, task_id = h.placed.task_id, charge = h.placed.charge }
  end
  if start_frame and not req.image then
    if self.frames_base_url then
      req.image = self.frames_base_url:gsub("/+$", "") .. "/" .. start_frame:match("([^/]+)$")
    else
      local b64, rerr = read_b64(start_frame)
      if not b64 then
        return nil, errors.validation("frame", "cannot read " .. start_frame .. ": " .. tostring(rerr))
      end
      req.image = b64
    end
  end
  local t
  t, err = self:task_of(k, req, key)
  if not t then
    return nil, start_frame and self:frame_hint(err) or err
  end
  self:progress { segment = k, segments = self.count, status = t.status, task_id = t.id }
  local done
  done, err = t:wait { timeout = self.timeout, on_progress = function(task)
    self:progress { segment = k, segments = self.count, status = task.status, progress = task.progress,
      task_id = task.id }
  end }
  if not done then
    return nil, err
  end
  local video = done.videos and done.videos[1]
  if not video then
    return nil, errors.new { kind = "protocol", provider = self.client.provider.name,
      message = "segment " .. k .. " (task " .. tostring(done.id) .. ") succeeded without a video" }
  end
  self:drop_own(path) -- an earlier file of ours under this name (the task's video fetched again)
  -- Downloaded whole to the segment's .part (ours), journaled ("placing": its size and inode),
  -- then moved to its name: a run stopped between the move and the "done" line knows the file
  -- for this segment's (kling.output_path.placed), as a batch's row knows its output.
  local staged = output_path.part(path)
  local got, derr = self.client:download(video.url, staged)
  if not got then
    return nil, derr
  end
  local bytes, id = output_path.before_place(staged)
  self:log { t = "placing", key = key, task_id = done.id, path = path, bytes = bytes, id = id, charge = done.charge }
  local placed, perr, kind = output_path.place(staged, path, false) -- never over another's file
  if not placed then
    os.remove(staged)
    return nil, errors.new { kind = "validation", field = "path", exists = kind == "exists" or nil,
      message = tostring(perr) .. (kind == "exists" and " (it appeared there during the download: kept as it is)"
        or "") }
  end
  if core.fsync_path then
    core.fsync_path(path, true) -- the rename itself, durable before the journal says so
  end
  os.remove(frame_path(self.out, k)) -- a new video: its last frame is taken again
  self:log { t = "done", key = key, task_id = done.id, path = path, charge = done.charge }
  return { path = path, task_id = done.id, charge = done.charge }
end

-- The options run takes; any other name raises, naming the closest.
local RUN_OPTIONS = { out = true, native = true, continuity = true, frames_base_url = true, elements = true,
  timeout = true, on_progress = true }

-- Why one of run's option values cannot be used (a validation error naming it), or nil.
local function run_options_problem(opts)
  for _, k in ipairs { "native", "continuity" } do
    if opts[k] ~= nil and type(opts[k]) ~= "boolean" then
      return errors.validation(k, "must be true or false (got " .. validate.type_of(opts[k]) .. ")")
    end
  end
  local problem = opts.timeout ~= nil and validate.seconds_problem(opts.timeout)
  if problem then
    return errors.validation("timeout", problem)
  end
  if opts.on_progress ~= nil and type(opts.on_progress) ~= "function" then
    return errors.validation("on_progress", "must be a function(event) (got " .. validate.type_of(opts.on_progress)
      .. ")")
  end
  -- the element cache's path: elements = 5 ran, to fail (or not) only at a shot naming an element
  if opts.elements ~= nil and (type(opts.elements) ~= "string" or opts.elements == "") then
    return errors.validation("elements", "must be the path of an element cache (got "
      .. (opts.elements == "" and "an empty string" or validate.type_of(opts.elements)) .. ")")
  end
  local cache = opts.elements ~= nil and require("kling.element").cache_problem(opts.elements)
  if cache then
    return errors.validation("elements", cache)
  end
  if opts.frames_base_url ~= nil and type(opts.frames_base_url) ~= "string" then
    return errors.validation("frames_base_url", "must be a URL string (got " .. validate.type_of(opts.frames_base_url)
      .. ")")
  end
  -- frame names are appended to it, as request paths to a base URL (ftp://x or a URL with a
  -- space passed here, and a storyboard of one segment ran with it unchecked)
  problem = opts.frames_base_url ~= nil and validate.base_url_problem(opts.frames_base_url)
  if problem then
    return errors.validation("frames_base_url", problem) -- not echoed: it may hold user info
  end
  return nil
end

local run_locked -- (below M.run, which takes the lock it runs under)

--- Renders a storyboard into one video (`kling storyboard`).
-- run(client, storyboard, opts) -> result | nil, err. opts: out (the directory, required),
-- native (override the provider's multi-shot), continuity (start each segment from the
-- previous one's last frame; default true), frames_base_url (where out/ is served, for
-- providers that take image URLs only), elements (the element cache, for names in shots'
-- elements), timeout (per segment, s), on_progress(event {segment, segments, status,
-- progress, task_id}); another option's name raises, a bad value is a validation error,
-- both before anything is sent. result = {file, native, segments = {{first, last, duration, path,
-- task_id, frame, request}}, duration}.
---@param client kling.Client
---@param sb table `{model =, shots = {{prompt, duration, image?, elements?}}, ...}`
---@param opts table `out` (directory) and the options above
---@return table|nil result `{file, native, segments, duration}`
---@return kling.Error|string|nil err
function M.run(client, sb, opts)
  errors.check_arg("multishot.run", 1, client, "table")
  opts = opts or {}
  validate.options("multishot.run", opts, RUN_OPTIONS)
  if type(opts.out) ~= "string" or opts.out == "" then
    errors.misuse("multishot.run", "opts.out (a directory) is required")
  end
  -- every option's value before anything is sent: on_progress = 5 raised once the first
  -- segment's create had been sent, and a bad timeout was refused by that segment's wait
  local bad = run_options_problem(opts)
  if bad then
    return nil, bad
  end
  local refused = output_path.name_refusal(opts.out)
  if refused then
    return nil, errors.validation("out", refused)
  end
  local err = M.check(sb)
  if err then
    return nil, err
  end
  local model = sb.model or "kling-v3"
  local copy = {}
  for k, v in pairs(sb) do
    copy[k] = v
  end
  copy.model = model
  local native = opts.native
  if native == nil then
    native = M.native(client.provider, model)
  end
  local segs
  segs, err = M.plan(copy, native)
  if not segs then
    return nil, err
  end
  if #segs > 1 and not M.have_ffmpeg() then
    return nil, errors.validation("storyboard", "needs " .. #segs .. " segments, and joining them needs ffmpeg "
      .. "(not found on PATH)")
  end
  local out = opts.out:gsub("(.)/+$", "%1")
  -- The directory and its journal must be writable before anything is sent (nothing paid
  -- for yet: a validation error, exit 2 in the CLI), not found out at the first record.
  local made, merr = core.mkdir_p(out)
  if not made then
    return nil, errors.validation("out", merr)
  end
  -- One process per storyboard directory, as kling run's (an flock the kernel drops however
  -- the process ends): two runs of one DIR each created the segment the other had in flight,
  -- and paid for it twice. Taken before the journal is read, held until the run returns.
  local held, lerr, busy, pid = core.lock_file(out .. "/" .. M.LOCK)
  if not held then
    local e = errors.validation("out", busy and ("another process" .. (pid and (" (pid " .. pid .. ")") or "")
      .. " is running the storyboard in " .. out .. " (nothing was sent)") or lerr)
    e.locked = busy or nil
    return nil, e
  end
  -- Ctrl-C, or a bug, is the caller's, raised again once the lock is given back
  return file_lock.run(held, run_locked, client, copy, native, segs, out, opts)
end

-- M.run's part under the directory's lock.
function run_locked(client, copy, native, segs, out, opts)
  local err, refused
  -- the journal read first: it refuses what is no regular file (kling.journal), where the probe's
  -- open of a FIFO planted at the name blocked the command for good
  local j, records = journal.open(out .. "/" .. M.JOURNAL)
  if not j then
    return nil, errors.validation("out", records)
  end
  local probe, perr = io.open(out .. "/" .. M.JOURNAL, "a")
  if not probe then
    return nil, errors.validation("out", "cannot write " .. tostring(perr))
  end
  probe:close()
  local history, written, sent = {}, {}, false
  local join_placing -- the join's "placing" record not followed by its "joined" line
  for _, r in ipairs(records) do
    sent = sent or r.t ~= "storyboard" -- its name alone: nothing was sent under it
    if r.t == "placing" and r.key == nil then
      join_placing = r
    elseif r.t == "joined" then
      join_placing = nil
    end
    local h = type(r.key) == "string" and (history[r.key] or {}) or {} -- "joined" has none
    if type(r.key) == "string" then
      history[r.key] = h
    end
    if r.t == "intent" then
      h.intent, h.ext = true, r.ext
    elseif r.t == "created" then
      h.task_id, h.endpoint = r.task_id, r.endpoint
    elseif r.t == "done" then
      h.done, h.task_id, h.charge = true, r.task_id, r.charge
    elseif r.t == "placing" and r.key ~= nil then
      h.placing = r
    end
    if (r.t == "done" or r.t == "joined") and type(r.path) == "string" then
      written[r.path:match("([^/]*)$")] = true -- DIR relative or absolute alike
    end
  end
  for _, h in pairs(history) do
    -- a segment moved into place before a stop that lost its "done" line: the file there is
    -- the journal's when it is the very one the "placing" record names (size and inode)
    local p = h.placing
    local name = p and type(p.path) == "string" and p.path:match("([^/]*)$")
    if not h.done and name and output_path.placed(out .. "/" .. name, p.bytes, p.id) then
      h.placed, written[name] = p, true
    end
  end
  local join_name = join_placing and type(join_placing.path) == "string" and join_placing.path:match("([^/]*)$")
  local join_placed = join_name and output_path.placed(out .. "/" .. join_name, join_placing.bytes, join_placing.id)
  if join_placed then
    written[join_name] = true
  end
  local run = setmetatable({ client = client, sb = copy, native = native, out = out, journal = j, history = history,
    count = #segs, timeout = opts.timeout or 1800, on_progress = opts.on_progress, elements = opts.elements,
    frames_base_url = opts.frames_base_url, sent = sent, written = written, join_placed = join_placed }, Run)
  local keys, cerr = run:check_all(segs, opts.continuity ~= false)
  if not keys then
    return nil, cerr
  end
  -- One storyboard per directory: another's journal and files are never taken over nor replaced.
  local identity = core.sha256_hex(canonical { storyboard = copy, native = native,
    continuity = opts.continuity ~= false, provider = client.provider.name })
  local other = other_storyboard(records, identity, keys)
  if other then
    return nil, errors.validation("out", out .. " holds another storyboard's run: its journal " .. j.path .. " "
      .. other .. ", and this one would replace its segments and storyboard.mp4: give another --out, or move "
      .. out .. " away (nothing was sent)")
  end
  refused = M.output_refusal(out, #segs, written)
  if refused then
    return nil, errors.validation("out", refused .. " (nothing was sent: move it away, or give another --out)")
  end
  local named -- the journal names the storyboard it is of, before its first create
  for _, r in ipairs(records) do
    named = r.t == "storyboard" and r.sha256 or named
  end
  if named ~= identity then
    local logged, lerr = j:append { t = "storyboard", sha256 = identity }
    if not logged then
      return nil, errors.validation("out", lerr)
    end
  end
  local done, result
  done, result, err = pcall(run.all, run, segs, opts.continuity ~= false)
  if not done then
    if not errors.is(result) then
      error(result, 0) -- a bug, or Ctrl-C: the caller's
    end
    result, err = nil, result -- Run:log's
  end
  if not result and type(err) == "table" then
    err.sent = run.sent or nil -- segments were (or may have been) paid for: not a usage error
  end
  return result, err
end

-- The segments in order (each from the last frame of the one before), then the join.
function Run:all(segs, continuity)
  local out, copy, native = self.out, self.sb, self.native
  local err
  local frame
  local files = {}
  local total = 0
  for k, seg in ipairs(segs) do
    local r
    r, err = self:segment(k, seg, continuity and frame or nil)
    if not r then
      if type(err) == "table" and err.field == nil then
        err.message = "segment " .. k .. " (shots " .. seg.first .. ".." .. seg.last .. "): " .. tostring(err.message)
      end
      return nil, err
    end
    seg.path, seg.task_id, seg.skipped, seg.charge = r.path, r.task_id, r.skipped, r.charge
    files[k] = r.path
    total = total + seg.duration
    frame = nil
    if k < #segs and copy.shots[segs[k + 1].first].image == nil then
      frame = frame_path(out, k)
      if not ffmpeg.nonempty(frame) then
        local got, ferr = M.last_frame(r.path, frame)
        if not got then
          return nil, errors.validation("frame", "segment " .. k .. ": " .. ferr)
        end
      end
      seg.frame = frame
    end
  end
  local file = final_path(out)
  local made = false
  for _, seg in ipairs(segs) do
    made = made or not seg.skipped
  end
  if made or not ffmpeg.nonempty(file) or not self.written[file:match("([^/]*)$")] then
    self:drop_own(file)
    local joined, jerr = M.join(files, file, function(tmp)
      -- on disk before the move: a file found at its name after a stop is the join's only when it is this one
      local bytes, id = output_path.before_place(tmp)
      self:log { t = "placing", path = file, bytes = bytes, id = id }
    end)
    if not joined then
      return nil, errors.validation("join", jerr)
    end
    self:log { t = "joined", path = file }
  elseif self.join_placed then
    self:log { t = "joined", path = file } -- moved into place just before a stop: its line now
  end
  return { file = file, native = native, segments = segs, duration = total }
end

return M
