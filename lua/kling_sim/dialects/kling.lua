-- The official Kling API ("/v1" style), as documented, every endpoint of seed 000: creates,
-- query by task id or external id and lists for the asynchronous ones; the synchronous ones
-- (identify-face, image-recognize, tts, custom-elements) answer their result at once; the
-- free management calls (selections, presets, deletes). Envelope {code, message,
-- request_id, data}; JWT or API-key bearer auth with codes 1001-1004; errors with the
-- documented HTTP status and code. Tasks with a callback_url get a callback on each status
-- change (kling_sim.official.notify). Endpoint keys in the store: the path after
-- /v1/videos/ for video endpoints ("text2video", "avatar/image2video"), after /v1/ for the
-- others ("audio/tts", "images/generations", "general/custom-voices").
-- luacheck: ignore 122 (ngx.ctx, ngx.status and ngx.header are meant to be written)
local json = require "kling.json"
local auth = require "kling_sim.auth"
local clock = require "kling_sim.clock"
local fate = require "kling_sim.fate"
local media = require "kling_sim.media"
local params = require "kling_sim.params"
local reply = require "kling_sim.reply"
local settings = require "kling_sim.settings"
local store = require "kling_sim.store"
local units = require "kling_sim.units"
local general_rules = require "kling_sim.official.general_rules"
local library = require "kling_sim.official.library"
local notify = require "kling_sim.official.notify"
local plan = require "kling_sim.official.plan"
local views = require "kling_sim.official.views"

-- The ledger books CNY: seed 000 prices in yuan (one unit of final_unit_deduction per yuan).
local M = { name = "kling", currency = "CNY" }

-- One account holds the configured access/secret key pair and the API key.
local ACCOUNT = "main"

local AUTH = {
  missing = { 1001, "Authorization is empty" },
  invalid = { 1002, "Authorization is invalid" },
  not_yet_valid = { 1003, "Authorization is not yet valid" },
  expired = { 1004, "Authorization has expired" },
  internal = { 1000, "Authentication failed" },
}

function M.error_response(status, code, message)
  return reply.json(status, { code = code, message = message, request_id = ngx.ctx.request_id })
end

local function ok(data)
  return reply.json(200, { code = 0, message = "SUCCEED", request_id = ngx.ctx.request_id, data = data })
end

local function fail(err)
  return M.error_response(err.status, err.code, err.message)
end

function M.sample_body()
  return json.encode { code = 0, message = "SUCCEED", request_id = ngx.ctx.request_id,
    data = { task_id = "000000000000000000", task_status = "submitted", task_info = {} } }
end

function M.not_found(req)
  return M.error_response(404, 1202, "the requested method is invalid: no API at " .. req.uri)
end

function M.method_not_allowed(req)
  return M.error_response(404, 1202, "the requested method is invalid: " .. req.method .. " is not allowed on "
    .. req.uri)
end

function M.authenticate(req)
  notify.ensure()
  local cfg = settings.get()
  local kind, reason = auth.check(req:header("authorization"), cfg, ngx.time())
  if kind then
    ngx.ctx.auth = kind
    return ACCOUNT
  end
  ngx.ctx.auth = "failed"
  local e = AUTH[reason] or AUTH.internal
  return nil, M.error_response(401, e[1], e[2])
end

-- The documented status names; a [sim:status=NAME] task reports NAME when it would finish.
function M.task_status(t, now_ms)
  local phase, updated = store.phase(t, now_ms)
  if phase ~= "done" then
    return phase, nil, updated
  end
  local outcome = t.fate.outcome
  if outcome == "succeed" then
    return "succeed", t.units, updated
  elseif outcome == "failed" then
    return "failed", nil, updated
  end
  return t.fate.status, nil, updated
end

-- The task object at now_ms, with result URLs under base.
function M.view(t, base, now_ms)
  local status, billed, updated = M.task_status(t, now_ms)
  return views.task(t, base, status, billed, updated)
end

-- Prompt markers may sit in any text of the body (prompt, text, a URL, a shot's prompt), so
-- that endpoints without a prompt can be steered too.
local function marker_text(v, depth, out)
  if type(v) == "string" then
    if v:find("[sim:", 1, true) then
      out[#out + 1] = v
    end
  elseif type(v) == "table" and depth < 4 then
    for _, x in pairs(v) do
      marker_text(x, depth + 1, out)
    end
  end
  return out
end

local function body_of(req)
  local body = req:json()
  if type(body) ~= "table" then
    return nil, { status = 400, code = 1200, message = "the request body must be a JSON object" }
  end
  return body
end

-- Validation, markers and plan shared by every create -> r, fate, seconds, plan | nil, err
local function prepare(key, req, account)
  local body, err = body_of(req)
  if not body then
    return nil, err
  end
  local r
  r, err = params.validate(key, body, ngx.decode_base64)
  if not r then
    return nil, err
  end
  local f, seconds = fate.parse(table.concat(marker_text(body, 0, {}), " "))
  if not f then
    return nil, { status = 400, code = 1201, message = seconds }
  end
  local known
  known, err = plan.elements(body, account)
  if not known then
    return nil, err
  end
  local p
  p, err = plan.plan(key, r, account)
  if not p then
    return nil, err
  end
  return r, f, seconds, p, body
end

local function record(key, account, r, f, total_ms, p, base)
  return {
    dialect = M.name, endpoint = key, account = account, external_task_id = r.external_task_id, total_ms = total_ms,
    fate = f, units = p.units, micros = units.micros(p.units), slots = p.slots, out = p.out, base_url = base,
    request = { model = r.model, mode = r.mode, duration = r.duration, duration_str = r.duration_str,
      sound = r.sound, watermark = r.watermark, callback_url = r.callback_url, effect = r.effect, n = r.n },
  }
end

local function store_error(why, r)
  if why == "parallel_limit" then
    return M.error_response(429, 1303, "parallel task over resource pack limit")
  elseif why == "duplicate" then
    return M.error_response(400, 1201, "external_task_id " .. r.external_task_id .. " already exists")
  end
  return M.error_response(500, 5000, "Server internal error: the simulator's task store is " .. why)
end

-- An asynchronous create: the task starts "submitted" on the accelerated clock.
local function create(key)
  return function(req, _, account)
    local r, f, seconds, p = prepare(key, req, account)
    if not r then
      return fail(f)
    end
    local cfg = settings.get()
    local t, why = store.create(record(key, account, r, f, math.floor((seconds or cfg.task_seconds) * 1000), p,
      req.base_url), cfg.max_parallel)
    if not t then
      return store_error(why, r)
    end
    ngx.ctx.task_id = t.id
    if r.callback_url then
      notify.watch(t)
    end
    return ok {
      task_id = t.id, task_status = "submitted", created_at = t.created_ms, updated_at = t.created_ms,
      task_info = { external_task_id = t.external_task_id },
    }
  end
end

-- ---- synchronous endpoints: the answer is the result; charged at once ----

local RECOGNIZED = { "object_seg", "head_seg", "face_seg", "cloth_seg" }

local ANSWERS = {}

ANSWERS["identify-face"] = function(t, base)
  local faces = json.array {}
  for i, f in ipairs(t.out.faces) do
    faces[i] = { face_id = f.face_id, face_image = views.cdn(base, "faces", t.id .. "-" .. f.face_id, "png"),
      start_time = f.start_time, end_time = f.end_time }
  end
  return { session_id = t.id, final_unit_deduction = units.format(t.units), face_data = faces }
end

ANSWERS["image-recognize"] = function(t, base)
  local images = json.array {}
  for i, kind in ipairs(RECOGNIZED) do
    images[i] = { type = kind, is_contain = true, url = views.cdn(base, "recognize", t.id .. "-" .. kind, "png") }
  end
  return { final_unit_deduction = units.format(t.units), task_result = { images = images } }
end

ANSWERS["audio/tts"] = function(t, base, now)
  return M.view(t, base, now)
end

ANSWERS["general/custom-elements"] = function(t, base)
  return views.element(t, base)
end

-- What a new custom element keeps: its fields, with URLs kept and inline images served by us.
local function element_out(p, body, base)
  local id = library.next_element_id()
  local function url_or_ours(v, name)
    return type(v) == "string" and v:match("^https?://") and v or views.cdn(base, "elements", name, "png")
  end
  local refs = {}
  for i, item in ipairs(body.element_refer_list) do
    refs[i] = url_or_ours(item.image_url, id .. "-" .. i)
  end
  local tags = {}
  for i, tag in ipairs(body.tag_list or {}) do
    local name = general_rules.TAGS[tag.tag_id]
    tags[i] = { id = tag.tag_id, name = name, description = name }
  end
  local out = p.out
  out.element_id, out.element_name, out.element_description = id, body.element_name, body.element_description
  out.frontal_url, out.refer_urls, out.tags = url_or_ours(body.element_frontal_image, tostring(id)), refs, tags
  return id
end

local function create_sync(key)
  return function(req, _, account)
    local r, f, _, p, body = prepare(key, req, account)
    if not r then
      return fail(f)
    end
    if f.outcome == "failed" then
      return M.error_response(400, 1301, f.message)
    elseif f.outcome == "status" and key ~= "audio/tts" then
      return M.error_response(400, 1201, "prompt marker [sim:status=NAME] needs an endpoint that answers a task")
    end
    local element_id = key == "general/custom-elements" and element_out(p, body, req.base_url)
    local t, why = store.create(record(key, account, r, f, 0, p, req.base_url), nil)
    if not t then
      return store_error(why, r)
    end
    if element_id then
      library.bind_element(element_id, t.id)
    end
    ngx.ctx.task_id = t.id
    return ok(ANSWERS[key](t, req.base_url, clock.now_ms()))
  end
end

-- ---- queries and lists ----

local function find(account, ep, key)
  local t = store.get(key)
  if not (t and t.account == account and t.endpoint == ep and t.dialect == M.name) then
    t = store.by_external(account, key)
  end
  if t and t.endpoint == ep and t.dialect == M.name then
    return t
  end
  return nil
end

local function answer_task(req, account, ep, key)
  local t = find(account, ep, key)
  if not t then
    return M.error_response(404, 1203, "task " .. key .. " does not exist")
  end
  ngx.ctx.task_id = t.id
  return ok(M.view(t, req.base_url, clock.now_ms()))
end

local function page_arg(args, name, default, max)
  local v = args[name]
  if v == nil then
    return default
  end
  local n = type(v) == "string" and v:match("^%d+$") and tonumber(v)
  if not n or n < 1 or n > max then
    return nil, name .. " must be an integer in 1.." .. max
  end
  return n
end

-- -> page, size | nil, error response
local function paging(req)
  local args = req:args()
  local page, err = page_arg(args, "pageNum", 1, 1000)
  local size
  if page then
    size, err = page_arg(args, "pageSize", 30, 500)
  end
  if not size then
    return nil, M.error_response(400, 1201, err)
  end
  return page, size
end

-- Tasks the list leaves out: custom voices deleted since.
local function listed(t)
  return not (t.endpoint == "general/custom-voices" and library.deleted("voice", t.video_id))
end

local function list(ep)
  return function(req, _, account)
    local ext = req:args().external_task_id
    if ext ~= nil then
      if type(ext) ~= "string" or ext == "" then
        return M.error_response(400, 1201, "external_task_id must be a non-empty string")
      end
      return answer_task(req, account, ep, ext)
    end
    local page, size = paging(req)
    if not page then
      return size
    end
    local now, out = clock.now_ms(), json.array {}
    for _, t in ipairs(store.list(account, ep, page, size)) do
      if listed(t) then
        out[#out + 1] = M.view(t, req.base_url, now)
      end
    end
    return ok(out)
  end
end

local function query(ep)
  return function(req, caps, account)
    return answer_task(req, account, ep, caps[1])
  end
end

-- A static list, paged.
local function page_of(items, page, size, fn)
  local out = json.array {}
  for i = (page - 1) * size + 1, math.min(page * size, #items) do
    out[#out + 1] = fn(items[i])
  end
  return out
end

local function custom_elements(req, _, account)
  local page, size = paging(req)
  if not page then
    return size
  end
  local out = json.array {}
  for _, t in ipairs(store.list(account, "general/custom-elements", page, size)) do
    if library.element(account, t.out.element_id) then
      out[#out + 1] = views.element(t, req.base_url)
    end
  end
  return ok(out)
end

local function presets_elements(req)
  local page, size = paging(req)
  if not page then
    return size
  end
  return ok(page_of(views.PRESET_ELEMENTS, page, size, function(p)
    return views.preset_element(p, req.base_url, general_rules.TAGS)
  end))
end

local function presets_voices(req)
  local page, size = paging(req)
  if not page then
    return size
  end
  return ok(page_of(views.PRESET_VOICES, page, size, function(p)
    return views.preset_voice(p, req.base_url, 1722769557708)
  end))
end

local PRESET_ELEMENT, PRESET_VOICE = {}, {}
for _, p in ipairs(views.PRESET_ELEMENTS) do
  PRESET_ELEMENT[tostring(p.element_id)] = true
end
for _, p in ipairs(views.PRESET_VOICES) do
  PRESET_VOICE[p.voice_id] = true
end

-- delete-elements / delete-voices (POST as the docs show, or DELETE as seed 000 lists them).
local function delete(key, kind, field)
  return function(req, _, account)
    local body, err = body_of(req)
    if not body then
      return fail(err)
    end
    local r
    r, err = params.validate(key, body, ngx.decode_base64)
    if not r then
      return fail(err)
    end
    local id = r[field]
    local presets = kind == "el" and PRESET_ELEMENT or PRESET_VOICE
    if presets[id] then
      return M.error_response(400, 1201, field .. " " .. id .. " is an official preset; only custom ones can be "
        .. "deleted")
    end
    local found = kind == "el" and library.element(account, id) or (kind == "voice" and library.voice(account, id))
    if not found then
      return M.error_response(404, 1203, field .. " " .. id .. " does not exist")
    end
    library.delete(kind, id)
    return ok { task_id = store.new_id(), task_status = "succeed" }
  end
end

-- ---- multi-elements selections (synchronous, free) ----

local function same_points(a, b)
  if #a ~= #b then
    return false
  end
  for i = 1, #a do
    if a[i].x ~= b[i].x or a[i].y ~= b[i].y then
      return false
    end
  end
  return true
end

local function selection_session(req, account, key)
  local body, err = body_of(req)
  if not body then
    return nil, fail(err)
  end
  local r
  r, err = params.validate(key, body, ngx.decode_base64)
  if not r then
    return nil, fail(err)
  end
  local s = library.selection(account, r.session_id)
  if not s then
    return nil, M.error_response(400, 1201, "session_id " .. tostring(r.session_id) .. " does not exist or has "
      .. "expired (init-selection makes one)")
  end
  if r.frame_index and r.frame_index >= s.total_frame then
    return nil, M.error_response(400, 1201, "frame_index must be below total_frame " .. s.total_frame)
  end
  return s, r
end

local function mask_list(s, frame)
  local png = media.file("sample.png")
  local masks = json.array {}
  for i, o in ipairs(s.objects) do
    if o.frame_index == frame then
      masks[#masks + 1] = { object_id = i - 1, rle_mask = { size = json.array { s.height, s.width },
        counts = "0" .. s.width * s.height }, png_mask = { size = json.array { s.height, s.width },
        base64 = ngx.encode_base64(png.body) } }
    end
  end
  return masks
end

local SELECTIONS = {}

SELECTIONS["init-selection"] = function(req, _, account)
  local body, err = body_of(req)
  if not body then
    return fail(err)
  end
  local r
  r, err = params.validate("init-selection", body, ngx.decode_base64)
  if not r then
    return fail(err)
  end
  local src = { seconds = plan.UNKNOWN_MEDIA_S }
  if r.video_id then
    local t, s = library.video(account, r.video_id)
    if not t then
      return M.error_response(400, 1201, "video_id " .. tostring(r.video_id) .. " does not exist in this account")
    end
    src = { id = t.video_id, seconds = s }
  end
  if not ((src.seconds >= 2 and src.seconds <= 5) or (src.seconds >= 7 and src.seconds <= 10)) then
    return M.error_response(400, 1201, "the video lasts " .. library.seconds(src.seconds) .. " s; multi-elements "
      .. "takes 2 to 5 s or 7 to 10 s")
  end
  local s = library.new_selection(account, src)
  return ok { status = 0, session_id = s.session_id, final_unit_deduction = "0", fps = s.fps,
    original_duration = s.duration_ms, width = s.width, height = s.height, total_frame = s.total_frame,
    normalized_video = src.id and views.video_url(req.base_url, src.id) or (req.base_url .. "/media/sample.mp4") }
end

SELECTIONS["add-selection"] = function(req, _, account)
  local s, r = selection_session(req, account, "add-selection")
  if not s then
    return r
  end
  s.objects[#s.objects + 1] = { frame_index = r.frame_index, points = r.points }
  library.save_selection(s)
  return ok { status = 0, session_id = s.session_id, final_unit_deduction = "0",
    res = { frame_index = r.frame_index, rle_mask_list = mask_list(s, r.frame_index) } }
end

SELECTIONS["delete-selection"] = function(req, _, account)
  local s, r = selection_session(req, account, "delete-selection")
  if not s then
    return r
  end
  for i, o in ipairs(s.objects) do
    if o.frame_index == r.frame_index and same_points(o.points, r.points) then
      table.remove(s.objects, i)
      library.save_selection(s)
      return ok { status = 0, session_id = s.session_id, final_unit_deduction = "0",
        res = { frame_index = r.frame_index, rle_mask_list = mask_list(s, r.frame_index) } }
    end
  end
  return M.error_response(400, 1201, "no selection at frame_index " .. r.frame_index .. " with exactly these "
    .. "points (they must match the ones added)")
end

SELECTIONS["clear-selection"] = function(req, _, account)
  local s, r = selection_session(req, account, "clear-selection")
  if not s then
    return r
  end
  s.objects = {}
  library.save_selection(s)
  return ok { status = 0, session_id = s.session_id, final_unit_deduction = "0" }
end

SELECTIONS["preview-selection"] = function(req, _, account)
  local s, r = selection_session(req, account, "preview-selection")
  if not s then
    return r
  end
  if #s.objects == 0 then
    return M.error_response(400, 1201, "session " .. s.session_id .. " has no selection to preview (add-selection)")
  end
  local base = req.base_url
  return ok { status = 0, session_id = s.session_id, final_unit_deduction = "0",
    res = { video = base .. "/media/sample.mp4", video_cover = base .. "/media/sample.png",
      tracking_output = base .. "/media/sample.mp4" } }
end

-- ---- result files other than videos: /cdn/{kind}/{name}.{ext} ----

local CDN_KINDS = { images = "png", faces = "png", recognize = "png", elements = "png", audios = "audio",
  voices = "audio" }

local function cdn(req, caps)
  local kind, name, ext = caps[1], caps[2], caps[3]
  local want = CDN_KINDS[kind]
  local okext = want and (want == "audio" and (ext == "mp3" or ext == "wav") or ext == want)
  local id = name:match("^([%w_]+)")
  local known = id and (store.get(id) or store.by_video(id) or PRESET_ELEMENT[id] or PRESET_VOICE[id]
    or library.element_known(id))
  if not okext or not known then
    return reply.json(404, { code = 404, message = "no such file" })
  end
  return media.response(media.file("sample." .. ext), req.method, req:header("range"))
end

-- ---- routes ----

local ASYNC = {
  { "videos/text2video", "text2video" }, { "videos/image2video", "image2video" },
  { "videos/omni-video", "omni-video" }, { "videos/multi-image2video", "multi-image2video" },
  { "videos/motion-control", "motion-control" }, { "videos/multi-elements", "multi-elements" },
  { "videos/video-extend", "video-extend" }, { "videos/avatar/image2video", "avatar/image2video" },
  { "videos/effects", "effects" }, { "videos/advanced-lip-sync", "advanced-lip-sync" },
  { "audio/text-to-audio", "audio/text-to-audio" }, { "audio/video-to-audio", "audio/video-to-audio" },
  { "images/generations", "images/generations" }, { "images/omni-image", "images/omni-image" },
  { "images/multi-image2image", "images/multi-image2image" }, { "images/editing/expand", "images/editing/expand" },
  { "general/custom-voices", "general/custom-voices" },
}
local SYNC = {
  { "videos/identify-face", "identify-face" }, { "videos/image-recognize", "image-recognize" },
  { "audio/tts", "audio/tts" }, { "general/custom-elements", "general/custom-elements" },
}
M.ASYNC, M.SYNC = ASYNC, SYNC

local function escape(path)
  return (path:gsub("%-", "%%-"))
end

M.routes = {}
local routes = M.routes
local function route(method, path, handler, name, extra)
  local r = { method = method, pattern = "^/v1/" .. escape(path) .. (extra or "") .. "$", handler = handler,
    name = name or (method .. " /v1/" .. path) }
  routes[#routes + 1] = r
  return r
end

for _, e in ipairs(ASYNC) do
  local path, key = e[1], e[2]
  local base = "/v1/" .. path
  route("POST", path, create(key))
  route("GET", path, list(key), function(_, req)
    return "GET " .. base .. (req:args().external_task_id and "?external_task_id" or "")
  end)
  route("GET", path, query(key), "GET " .. base .. "/{id}", "/([^/]+)")
end
for _, e in ipairs(SYNC) do
  route("POST", e[1], create_sync(e[2]))
end
for name, handler in pairs(SELECTIONS) do
  route("POST", "videos/multi-elements/" .. name, handler)
end
route("GET", "general/custom-elements", custom_elements)
route("GET", "general/presets-elements", presets_elements)
route("GET", "general/presets-voices", presets_voices)
for _, method in ipairs { "POST", "DELETE" } do
  route(method, "general/delete-elements", delete("general/delete-elements", "el", "element_id"))
  route(method, "general/delete-voices", delete("general/delete-voices", "voice", "voice_id"))
end
for _, method in ipairs { "GET", "HEAD" } do
  routes[#routes + 1] = { method = method, pattern = "^/cdn/(%a+)/([%w_%-]+)%.(%w+)$", handler = cdn, auth = false,
    name = method .. " /cdn/{file}" }
end

notify.init(M)

return M
