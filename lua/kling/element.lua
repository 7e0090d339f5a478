--- Custom elements: created once, cached, then used by name.
-- kling.element: custom elements (a subject kept consistent across videos) made once and
-- used by name.
--
--   local element = require "kling.element"
--   local e = assert(element.create(client, {
--     name = "Mia", description = "a young woman with short red hair",
--     images = { "https://.../front.jpg", "https://.../side.jpg" },   -- the first is frontal
--   }, { on_progress = function(t) print(t.status, t.progress) end }))
--   client:submit { model = "kling-v3", image = ..., element_list = element.resolve({ "Mia" }, ...) }
--
-- A spec is {name, description, images = {frontal, up to 3 more} | video = URL [, voice_id],
-- tags = {"o_101", ...} (official only)}. It is checked against every documented rule
-- before anything is sent. The official API (general/custom-elements) answers at once and
-- takes images only; EvoLink (kling-custom-element) takes images or a video (with an
-- optional voice) and works for about ten minutes: create() waits, with progress.
--
-- The element's id is cached (a JSON file: $XDG_CACHE_HOME/kling/elements.json, or
-- ~/.cache/kling/elements.json, or opts.cache) under a hash of its inputs (a local image by
-- the digest of its bytes, a URL by the URL), provider, base URL and account, so that
-- creating the same element again returns the cached id and pays nothing. A create in flight
-- is in the cache too (its task id, or a "creating" mark), so a run killed while waiting picks
-- the same task up instead of paying for a second one.
-- @module kling.element
local core = require "kling.core"
local durable_file = require "kling.durable_file"
local file_lock = require "kling.file_lock"
local errors = require "kling.errors"
local json = require "kling.json"
local local_file = require "kling.local_file"
local validate = require "kling.validate"
local tables = require "kling.tables"
local id_text = require("kling.providers.common").id_text

local M = {}

local build -- (below M.request, which uses it)

local TAGS = {}
for i = 101, 108 do
  TAGS["o_" .. i] = true
end

-- The fields of an element's spec (M.check refuses any other by name).
local SPEC_FIELDS = { name = true, description = true, images = true, video = true, voice_id = true, tags = true }
-- what the CLI's flags (--voice, --image, --tag) would have a caller write
local SPEC_ALIASES = { voice = "voice_id", image = "images", tag = "tags" }

local function fail(field, msg, provider)
  return errors.validation(field, msg, provider)
end

-- ---- the spec ----

-- The spec's field a request's field comes from (M.request builds one from the other), with
-- what it is to the caller when that is not the whole field.
local SPEC_FIELD = {
  element_name = { "name" }, element_description = { "description" }, image = { "images[1]" },
  element_frontal_image = { "images[1]" }, tag_list = { "tags" }, element_video_list = { "video" },
  element_voice_id = { "voice_id" }, element_image_list = { "images" },
  element_refer_list = { "images", "the views after the frontal image (images[2..], the API's element_refer_list)" },
}

-- A provider's refusal of an element's request, naming the spec's field (images[3], not
-- element_refer_list[2].image_url), so that a caller (and kling element create's flags) can
-- tell which input to fix.
local function spec_error(err)
  local field = type(err.field) == "string" and err.field or ""
  -- evolink's spelling: element_image_list.frontal_image, .refer_images[N].image_url
  local refer = field:match("^element_image_list%.refer_images%[(%d+)%]")
  if refer or field:match("^element_image_list%.frontal_image") then
    err.field = "images[" .. (refer and tonumber(refer) + 1 or 1) .. "]"
    return err
  end
  local base, index = field:match("^([%w_]+)%[(%d+)%]")
  local to = SPEC_FIELD[base or field]
  if not to then
    return err
  end
  if base == "element_refer_list" then
    err.field = "images[" .. (tonumber(index) + 1) .. "]"
  elseif base == "tag_list" then
    err.field = "tags[" .. index .. "]"
  else
    err.field = to[1]
    err.message = to[2] and (to[2] .. ": " .. err.message) or err.message
  end
  return err
end

--- Checks an element's spec.
-- check(spec [, provider_name]) -> nil | validation error naming the field and the rule.
---@param spec table `{name, description, images | video, voice_id?, tags?}`
---@param provider? string
---@return kling.Error|nil err
function M.check(spec, provider)
  if type(spec) ~= "table" then
    return fail("element", "a table {name, description, images | video} is required", provider)
  end
  -- a field the spec does not have was dropped: `voice = ID` (voice_id's) made an element
  -- without its voice, and paid for it
  for k in pairs(spec) do
    if not SPEC_FIELDS[k] then
      local near = SPEC_ALIASES[k] or validate.closest(k, SPEC_FIELDS)
      return fail(validate.brief(k), "unknown field of an element (it has name, description, images, video, "
        .. "voice_id, tags)" .. (near and ("; did you mean " .. near .. "?") or ""), provider)
    end
  end
  local c = { provider = provider }
  local err = validate.text(c, spec, "name", { required = true, max_chars = 20, line = true })
    or validate.text(c, spec, "description", { required = true, max_chars = 100, line = true })
    or validate.text(c, spec, "video", {}) or validate.text(c, spec, "voice_id", {})
  if err then
    return err
  end
  -- an element is found again by its name (the cache, a storyboard's elements): one spelling each
  local decomposed = validate.decomposed_problem(spec.name)
  if decomposed then
    return fail("name", "must be spelt composed (got " .. decomposed .. ")", provider)
  end
  local images, video = spec.images, spec.video
  if (images == nil) == (video == nil) then
    return fail("images", "give either images (one frontal and up to 3 more) or a video, not both", provider)
  end
  if images ~= nil then
    if type(images) ~= "table" or images[1] == nil then
      return fail("images", "must be a list: the frontal image first, then up to 3 more views", provider)
    end
    local at, why = validate.list_problem(images, "images")
    if at then
      return fail(at, why, provider)
    end
    if #images > 4 then
      return fail("images", "one frontal image and at most 3 more (got " .. #images .. ")", provider)
    end
    for i, img in ipairs(images) do
      if type(img) ~= "string" or img == "" then
        return fail("images[" .. i .. "]", "must be an image URL or base64 data", provider)
      end
    end
    if spec.voice_id ~= nil then
      return fail("voice_id", "goes with a video: an element made from images has no voice", provider)
    end
  elseif not validate.is_url(video) then
    return fail("video", "must be an http(s) URL of a video showing the subject's face", provider)
  end
  if spec.tags ~= nil then
    if type(spec.tags) ~= "table" then
      return fail("tags", "must be a list of tag ids o_101 .. o_108", provider)
    end
    local at, why = validate.list_problem(spec.tags, "tags")
    if at then
      return fail(at, why, provider)
    end
    for i, t in ipairs(spec.tags) do
      if not TAGS[t] then
        return fail("tags[" .. i .. "]", "must be one of o_101 .. o_108 (got " .. tostring(t) .. ")", provider)
      end
    end
  end
  return nil
end

--- The canonical request that creates an element.
-- request(spec, provider) -> the canonical request that creates the element on provider.
---@param spec table
---@param provider string
---@return table request
function M.request(spec, provider)
  local name = provider.name
  if not (provider.endpoints and provider.endpoints["general/custom-elements"]) then
    return nil, errors.unsupported(name, "custom elements", "the official API (kling) and evolink make them")
  end
  local err = M.check(spec, name)
  if err then
    return nil, err
  end
  local req
  req, err = build(spec, provider)
  if not req then
    return nil, err
  end
  -- a local file is read as client:submit reads it (kling.local_file), so that the rules see
  -- the file, not its path: a directory named `adir` was taken for base64 data and refused as
  -- not a JPG or PNG, and a JPG's path as not a URL, while submit reads the very same fields
  local files, ferr = local_file.inline(provider, req)
  if ferr then
    return nil, spec_error(ferr)
  end
  -- the provider's own rules (the official API's 1 to 3 views after the frontal one), named
  -- by the spec's fields: the caller gave images, not element_refer_list
  req = local_file.apply(req, files)
  err = provider.validate(req, "general/custom-elements")
  if err then
    return nil, spec_error(err)
  end
  -- the files' bytes as read, not their paths: what is sent is what the cache is keyed by
  -- (M.create), however the files change after
  return req
end

-- The images a request built from a spec sends, in the spec's order (the inverse of build).
local function sent_images(req)
  local list = req.element_image_list or {}
  local out = { req.image or list.frontal_image }
  for _, r in ipairs(req.element_refer_list or list.refer_images or {}) do
    out[#out + 1] = r.image_url
  end
  return out
end

-- The spec as its cache key sees it: a local image by the digest of its bytes (as the request
-- sends them), never by its path; URLs and base64 data as given. Editing front.jpg and running
-- again returned the element made from the old picture, paying nothing and making nothing.
local function keyed_spec(spec, req)
  if not spec.images then
    return spec
  end
  local sent, images, changed = sent_images(req), {}, false
  for i, img in ipairs(spec.images) do
    images[i] = img
    if local_file.is_path(img) and type(sent[i]) == "string" and sent[i] ~= img then
      images[i] = "sha256:" .. core.sha256_hex(core.b64decode(sent[i]))
      changed = true
    end
  end
  if not changed then
    return spec
  end
  local copy = tables.clone(spec)
  copy.images = images
  return copy
end

-- The canonical request of a checked spec on `provider` (which makes elements). -> req | nil, err
function build(spec, provider)
  local name = provider.name
  local images = spec.images or {}
  if name == "kling" then
    if spec.video then
      return nil, errors.unsupported(name, "video", "the official custom-elements endpoint makes elements "
        .. "from images (evolink takes a video)")
    end
    local refs = {}
    for i = 2, #images do
      refs[#refs + 1] = { image_url = images[i] }
    end
    return { endpoint = "general/custom-elements", element_name = spec.name, element_description = spec.description,
      image = images[1], element_refer_list = #refs > 0 and refs or nil, tag_list = spec.tags }
  end
  if spec.tags then
    return nil, errors.unsupported(name, "tags", "element tags are the official API's")
  end
  local req = { endpoint = "general/custom-elements", model = provider.ELEMENT_MODEL,
    element_name = spec.name, element_description = spec.description }
  if spec.video then
    req.reference_type = "video_refer"
    req.element_video_list = { video_url = spec.video }
    req.element_voice_id = spec.voice_id
  else
    local refs = {}
    for i = 2, #images do
      refs[#refs + 1] = { image_url = images[i] }
    end
    req.reference_type = "image_refer"
    req.element_image_list = { frontal_image = images[1], refer_images = #refs > 0 and refs or nil }
  end
  return req
end

-- ---- the cache ----

--- The default cache path ($XDG_CACHE_HOME/kling/elements.json).
---@return string
function M.default_cache()
  local base = os.getenv("XDG_CACHE_HOME")
  if not base or base == "" then
    local home = os.getenv("HOME")
    base = (home and home ~= "" and home or ".") .. "/.cache"
  end
  return base .. "/kling/elements.json"
end

--- A short, non-reversible account name.
-- account_of(key_text) -> a short, non-reversible name for the account a key belongs to
-- (`kling.client.account_of`; a client's own is `client:account()`).
M.account_of = require("kling.client").account_of

--- The cache key of an element.
-- key(spec, {provider =, base_url =, account =}) -> hex digest of everything that makes the
-- element: the same inputs on the same account give the same key. create keys a local image
-- by its content: the spec's path replaced by "sha256:" and the hex digest of the file's bytes.
---@param spec table
---@param where {provider: string, base_url: string, account: string}
---@return string hex
function M.key(spec, where)
  return core.sha256_hex(json.canonical {
    provider = where.provider, base_url = where.base_url or "", account = where.account or "",
    name = spec.name, description = spec.description, images = spec.images or json.array {},
    video = spec.video or "", voice_id = spec.voice_id or "", tags = spec.tags or json.array {},
  })
end

-- The largest element cache read: the most of any file the user names (kling.local_file).
local MAX_CACHE_BYTES = require("kling.local_file").MAX_TEXT

--- Reads the cache.
---@param path string
---@return table doc
function M.load(path)
  -- only a regular file is read, its type checked before any open (kling.core.read_regular):
  -- io.open of a FIFO given as the cache blocked `kling element` and `kling run --elements`
  local text, rerr, kind, missing = core.read_regular(path, MAX_CACHE_BYTES + 1)
  if kind or (not text and not missing) then -- there but unreadable: no empty cache (made again: paid again)
    return nil, "element cache " .. path .. " is not readable (" .. tostring(rerr) .. ")"
  elseif not text then
    return { version = 1, elements = {} }
  elseif #text > MAX_CACHE_BYTES then
    return nil, "element cache " .. path .. " is not readable (over " .. MAX_CACHE_BYTES .. " bytes)"
  end
  local doc, err = json.decode_strict(text) -- a hand-edited cache may name an element twice
  if type(doc) ~= "table" or type(doc.elements) ~= "table" then
    return nil, "element cache " .. path .. " is not readable (" .. tostring(err or "no elements") .. ")"
  end
  return doc
end

--- Why a cache named on purpose (`--elements FILE`, batch.run's `element_cache`, multishot's
-- `elements`) cannot be read, or nil: a mistyped path was read only at the first element name,
-- so that a batch or storyboard naming none ran with the typo unsaid.
---@param path string
---@return string|nil problem
function M.cache_problem(path)
  local _, _, kind, missing = core.read_regular(path, 0)
  if missing and not kind then
    return "element cache " .. path .. " does not exist"
  end
  local doc, err = M.load(path)
  return not doc and err or nil
end

local function mkdir_for(path)
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" then
    core.mkdir_p(dir) -- a failure shows as the write's own error
  end
end

--- Writes the cache durably.
-- save(path, doc): a temporary file made durable, then renamed (never half a cache).
---@param path string
---@param doc table
---@return boolean|nil ok
---@return string|nil err
function M.save(path, doc)
  mkdir_for(path)
  local text, err = json.encode(doc)
  if not text then
    return nil, err
  end
  local ok, werr = durable_file.replace(path, text .. "\n")
  if not ok then
    return nil, "cannot write the element cache: " .. tostring(werr)
  end
  return true
end

-- Reads the cache, applies fn(doc), writes it back.
local function update(path, fn)
  local doc, err = M.load(path)
  if not doc then
    return nil, err
  end
  fn(doc)
  return M.save(path, doc)
end

-- ---- creating ----

-- An element's id as text, as a task's is (common.id_text: a number in its digits, where
-- LuaJIT's tostring wrote 8.6179663966600e+14 and the cache kept an id no element has).
local function element_id_of(t)
  if t.element_id ~= nil then
    return id_text(t.element_id)
  end
  local e = type(t.elements) == "table" and t.elements[1]
  if e and (e.element_id or e.id) then
    return id_text(e.element_id or e.id)
  end
  return nil
end

-- The official API keeps a list of the account's elements: a create whose answer was lost
-- is found there by name and description.
local function find_listed(client, spec)
  if not client.provider.capabilities.element_list then
    return nil
  end
  for page = 1, 20 do
    local list = client:call("general/custom-elements", { page = page, page_size = 500 })
    if not list or #list == 0 then
      return nil
    end
    for _, e in ipairs(list) do
      if e.element_name == spec.name and e.element_description == spec.description then
        return id_text(e.element_id)
      end
    end
    if #list < 500 then
      return nil
    end
  end
  return nil
end

-- The options create takes; any other name raises, naming the closest.
local CREATE_OPTIONS = { cache = true, account = true, timeout = true, on_progress = true, force = true }

--- Creates a custom element once (`kling element create`).
-- create(client, spec, opts) -> entry, cached | nil, err. entry = {id, name, provider,
-- base_url, key, created_s}; cached is true when nothing was created (the cache had it).
-- opts: cache (a path; false: no cache), account (client:account(): see account_of), timeout (s, 1200),
-- on_progress(task), force (create a new element even when the cache has one for this spec, which
-- the new one replaces once it is made: a create refused or failed leaves the cached one, or when an
-- earlier create's fate is unknown; a create whose task was made and is not yet done is waited
-- for, not sent again). The create's lock file (beside the cache) is gone when it returns.
---@param client kling.Client
---@param spec table `{name, description, images | video, voice_id?, tags?}`
---@param opts? {cache: string|false, account: string, timeout: number, on_progress: fun(t: kling.Task), force: boolean}
---@return table|nil entry `{id, name, provider, base_url, key, created_s}`
---@return boolean|kling.Error cached_or_err true when the cache had it (nothing paid), or the error
function M.create(client, spec, opts)
  errors.check_arg("element.create", 1, client, "table")
  opts = opts or {}
  validate.options("element.create", opts, CREATE_OPTIONS)
  -- the wait's options before the create is sent: a wait that refused them once it was sent
  -- took the task for failed and dropped it from the cache, so the next run paid again
  local bad = require("kling.task").wait_problem(client, { timeout = opts.timeout, on_progress = opts.on_progress })
  if bad then
    return nil, bad
  end
  -- an empty path made the create's lock file in the working directory (".<key>.lock")
  if opts.cache ~= nil and opts.cache ~= false and (type(opts.cache) ~= "string" or opts.cache == "") then
    return nil, errors.validation("cache", "must be a path or false (got " .. validate.type_of(opts.cache) .. ")")
  end
  -- force = "no" is true to Lua: it created (and paid) a second element over an interrupted one
  if opts.force ~= nil and type(opts.force) ~= "boolean" then
    return nil, errors.validation("force", "must be true or false (got " .. validate.type_of(opts.force) .. ")")
  end
  -- the cache key's account: a number keyed the element apart from the same account's string
  if opts.account ~= nil and type(opts.account) ~= "string" then
    return nil, errors.validation("account", "must be a string, client:account()'s (got "
      .. validate.type_of(opts.account) .. ")")
  end
  local req, err = M.request(spec, client.provider)
  if not req then
    return nil, err
  end
  local where = { provider = client.provider.name, base_url = client.base_url, account = opts.account }
  local keyed = keyed_spec(spec, req)
  local key = M.key(keyed, where)
  -- the key an earlier version gave the same spec, by its files' paths: not a match (what the
  -- files held then is unknown); the entry is replaced once this create has made its element
  local by_path = keyed ~= spec and M.key(spec, where) or nil
  local path = opts.cache
  if path == nil then
    path = M.default_cache()
  end
  -- The cache's entry for this spec holds a create in flight (its "creating" mark, then its task
  -- id), so that a run killed while waiting picks the same task up instead of paying again. One
  -- that replaces a made element (force) keeps them in the entry's `pending`, beside that
  -- element's id: the made element stays the cache's until the new one exists (a create the
  -- provider refused left the cache without either, the old element lost from it).
  local function in_flight(e)
    if e.id then
      return e.pending or {}
    end
    return e
  end
  -- The create in flight's fields (creating, task_id), written where in_flight reads them.
  local function mark(fields)
    if not path then
      return true
    end
    return update(path, function(doc)
      local e = doc.elements[key] or {}
      e.name, e.provider, e.base_url = spec.name, where.provider, where.base_url
      local into = e
      if e.id then
        e.pending = e.pending or {}
        into = e.pending
      end
      for k, v in pairs(fields) do
        into[k] = v
      end
      doc.elements[key] = e
    end)
  end
  -- The create in flight made nothing (refused, or its task failed: nothing is owed): its marks
  -- go, and the entry with them unless it names a made element.
  local function forget()
    if path then
      update(path, function(doc)
        local e = doc.elements[key]
        if e and e.id then
          e.pending = nil
        else
          doc.elements[key] = nil
        end
      end)
    end
  end
  -- The element made: the entry names it (and what it replaces is gone: an element made before,
  -- the entry an earlier version keyed by the files' paths).
  local function cache_made(id, task_id)
    local made_s = core.wall_s()
    if not path then
      return made_s
    end
    local ok, uerr = update(path, function(doc)
      if by_path then
        doc.elements[by_path] = nil
      end
      doc.elements[key] = { id = id, name = spec.name, provider = where.provider, base_url = where.base_url,
        created_s = made_s, creating = false, task_id = task_id }
    end)
    if not ok then
      return nil, uerr
    end
    return made_s
  end
  local entry = {}
  if path then
    local doc, lerr = M.load(path)
    if not doc then
      return nil, errors.validation("cache", lerr)
    end
    entry = doc.elements[key] or {}
  end
  -- force: a fresh element for a user who asked for one (the cached one deleted on the
  -- provider, say), not the cached id; made, it replaces the cache's entry
  if entry.id and not opts.force then
    return entry, true
  end
  local function made()
    local base = { name = spec.name, provider = where.provider, base_url = where.base_url, key = key }
    local flight = in_flight(entry)
    local t
    if flight.task_id then
      -- A create already made this task: wait for it rather than pay again.
      t, err = client:get_task(flight.task_id, { endpoint = "general/custom-elements" })
      if not t then
        return nil, err
      end
    else
      if flight.creating and not opts.force then -- (not beside a made element: that one was returned)
        local found = find_listed(client, spec)
        if found then
          base.id = found
          base.created_s = assert(cache_made(found))
          return base, true
        end
        -- the advice by what the provider can show: EvoLink lists no elements
        local P = client.provider
        local check = P.capabilities.element_list
          and "It is not in " .. P.title .. "'s element list yet: check that list again later"
          or P.title .. " keeps no element list to look it up in: check the account's usage on " .. P.title
            .. "'s site"
        return nil, errors.new { kind = "validation", field = "element", provider = where.provider,
          message = "an earlier create of element '" .. spec.name .. "' was interrupted before its answer came: it "
            .. "may exist (and be paid). " .. check .. "; create again with force to risk a second one" }
      end
      local ok, cerr = mark { creating = core.wall_s() }
      if not ok then
        return nil, errors.validation("cache", tostring(cerr))
      end
      t, err = client:submit(req)
      if not t then
        if not err.uncertain then
          forget() -- refused: nothing was made, nothing is owed
        end
        return nil, err
      end
      if not t:is_terminal() then
        mark { task_id = t.id }
      end
    end
    if not t:is_terminal() then
      local done
      done, err = t:wait { timeout = opts.timeout or 1200, on_progress = opts.on_progress }
      if not done then
        -- only a task the provider ended failed is forgotten; one a poll could not follow (a timeout, a key
        -- refused, the network) exists and may succeed: the next run waits for it instead of paying again
        if t:is_terminal() then
          forget() -- the task failed: free, and may be tried again
        end
        return nil, err
      end
      t = done
    elseif t.status ~= "succeeded" then
      forget()
      return nil, t:failure()
    end
    local id = element_id_of(t)
    if not id then
      return nil, errors.new { kind = "protocol", provider = where.provider,
        message = "the element was made but its answer names no element_id (task " .. tostring(t.id) .. ")" }
    end
    base.id, base.task_id = id, t.id ~= id and t.id or nil
    local made_s, serr = cache_made(id, base.task_id)
    if not made_s then
      return nil, errors.validation("cache", "element " .. id .. " was made but cannot be cached: " .. tostring(serr))
    end
    base.created_s = made_s
    return base, false
  end
  -- Not locked for a task already made (it is waited for, never sent again).
  if not path or in_flight(entry).task_id then
    return made()
  end
  -- One process creates an element at a time, from its "creating" mark to its end (an flock the
  -- kernel drops however the process ends, so a lock is never stale): a second create while the
  -- first was still sending said the first "was interrupted". The lock's file goes when the
  -- create ends, however it ends (made, refused, failed, Ctrl-C): none is left beside the cache.
  mkdir_for(path)
  local lock_path = path .. "." .. key:sub(1, 16) .. ".lock"
  local lock, lerr, busy, pid = core.lock_file(lock_path)
  if not lock then
    if not busy then -- the cache's directory cannot be written: the cache's error, as its write's would be
      return nil, errors.validation("cache", "cannot lock the element cache: " .. tostring(lerr))
    end
    local e = errors.validation("element", "another process" .. (pid and (" (pid " .. pid .. ")") or "")
      .. " is creating element '" .. spec.name .. "' now: let it end, then run the same create again (it finds "
      .. "the element in the cache; nothing was sent)")
    e.locked = true
    return nil, e
  end
  return file_lock.run_removing(lock, lock_path, function()
    -- read again under the lock: the process that held it may have made the element meanwhile
    local doc, lerr2 = M.load(path)
    if not doc then
      return nil, errors.validation("cache", lerr2)
    end
    entry = doc.elements[key] or {}
    if entry.id and not opts.force then
      return entry, true
    end
    return made()
  end)
end

-- ---- using ----

--- The cached elements (`kling element list`).
-- list(path) -> entries (with their key), newest first.
---@param path? string the cache
---@return table[] entries
function M.list(path)
  local doc, err = M.load(path or M.default_cache())
  if not doc then
    return nil, err
  end
  local out = {}
  for key, e in pairs(doc.elements) do
    e.key = key
    out[#out + 1] = e
  end
  table.sort(out, function(a, b)
    return (a.created_s or a.creating or 0) > (b.created_s or b.creating or 0)
  end)
  return out
end

local RESOLVE_OPTIONS = { cache = true, provider = true, base_url = true }

--- Element names in an element_list resolved to ids.
-- resolve(list, {cache =, provider =, base_url =}) -> element_list | nil, err. Entries that
-- are ids (numbers, strings of digits, tables) pass through; any other string is an
-- element's name, looked up in the cache (made on the same provider and base URL; the newest
-- of that name).
---@param list table an element_list
---@param opts? {cache: string, provider: string, base_url: string}
---@return table|nil element_list
---@return kling.Error|nil err
function M.resolve(list, opts)
  -- its options by name and type: resolve(list, {cahce = "mine.json"}) looked the names up in
  -- the default cache, and gave the ids of other elements of the same names
  if opts ~= nil then
    errors.check_arg("element.resolve", 2, opts, "table")
    validate.options("element.resolve", opts, RESOLVE_OPTIONS)
    for _, k in ipairs { "cache", "provider", "base_url" } do
      if opts[k] ~= nil and type(opts[k]) ~= "string" then
        return nil, errors.validation(k, "must be a string (got " .. validate.type_of(opts[k]) .. ")")
      end
    end
  end
  if type(list) ~= "table" then
    return nil, errors.validation("element_list", "must be a list of element ids or names")
  end
  -- by the one rule of a request's arrays: an object ({"a": "Mia"} in a manifest's row) was
  -- walked as an empty list, and the row sent without its elements (and paid)
  local aerr = validate.array({ provider = opts and opts.provider }, { element_list = list }, "element_list")
  if aerr then
    return nil, aerr
  end
  opts = opts or {}
  local entries
  local out = {}
  for i, item in ipairs(list) do
    if type(item) == "string" and not item:match("^%d+$") then
      local decomposed = validate.decomposed_problem(item)
      if decomposed then -- named as no element is (their names are composed: M.check)
        return nil, errors.validation("element_list[" .. i .. "]", "'" .. validate.shown(item) .. "' must be spelt "
          .. "composed (got " .. decomposed .. ")")
      end
      if not entries then
        local err
        entries, err = M.list(opts.cache)
        if not entries then
          return nil, errors.validation("element_list", err)
        end
      end
      local id
      for _, e in ipairs(entries) do
        if e.id and e.name == item and (not opts.provider or e.provider == opts.provider)
          and (not opts.base_url or e.base_url == opts.base_url) then
          id = e.id
          break
        end
      end
      if not id then
        local path = opts.cache or M.default_cache()
        local f = io.open(path, "rb")
        if f then
          f:close()
        else -- a mistyped --elements path read as an empty cache said only that the name was missing
          return nil, errors.validation("element_list[" .. i .. "]", "no element named '" .. item .. "': the "
            .. "element cache " .. path .. " does not exist (make the element with kling element create, or name "
            .. "the cache it was made in)")
        end
        -- one of that name made elsewhere (the simulator's http URL and its https one, another
        -- provider) was not told apart from none: `kling element list` showed it, the row said "make it"
        local other
        for _, e in ipairs(entries) do
          if e.id and e.name == item then
            other = e
            break
          end
        end
        return nil, errors.validation("element_list[" .. i .. "]", "no element named '" .. item .. "' in the cache "
          .. path .. (opts.provider and (" for " .. opts.provider) or "")
          .. (opts.base_url and (" at " .. opts.base_url) or "")
          .. (other and (" (it has one made on " .. tostring(other.provider) .. " at " .. tostring(other.base_url)
            .. ": elements are kept per provider and base URL; make it for this one with kling element create)")
            or " (make it with kling element create)"))
      end
      out[i] = { element_id = id }
    elseif type(item) == "table" and item.element_id == nil and type(item.name) == "string" then
      local r, err = M.resolve({ item.name }, opts)
      if not r then
        return nil, err
      end
      out[i] = r[1]
    else
      out[i] = item
    end
  end
  return out
end

return M
