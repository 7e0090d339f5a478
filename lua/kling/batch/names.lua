-- Where a batch puts each output: a name template under DIR, with placeholders
--   {id} the row's id   {row} its position in the manifest   {n} the output's number
--   {kind} video|image|audio   {ext} from the URL (else by kind)   {task_id}   {model}
-- Default "{id}.{ext}"; a row with several outputs gets "-{n}" before the extension when the
-- template has no {n}. Values are made safe for file names; the template may name
-- subdirectories but never leave DIR.
local core = require "kling.core"
local output_path = require "kling.output_path"
local durable_file = require "kling.durable_file"

local M = {}

M.DEFAULT = "{id}.{ext}"

-- The files the batch keeps in DIR beside the outputs (kling.batch and kling.batch.report name
-- them from here): an output under one of these names, or under a temporary name of one, would
-- be taken for it ("a file already in place is kept") or overwritten by it, a paid output lost.
M.JOURNAL, M.LOCK, M.SUMMARY, M.REPORT = "journal.jsonl", ".lock", "summary.json", "report.html"
M.POSTERS = "posters" -- the report's poster frames: DIR/posters/<output>.jpg
local OWN = { [M.JOURNAL] = "the batch's journal", [M.LOCK] = "the batch's lock", [M.SUMMARY] = "the batch's summary",
  [M.REPORT] = "the batch's report", [M.POSTERS] = "the directory of the report's poster frames" }

-- What the file systems outputs land on take (Linux's, and most others'): a file name of at most
-- NAME_MAX bytes, a path under PATH_MAX (which counts the terminating NUL).
M.NAME_MAX, M.PATH_MAX = 255, 4096
-- {task_id} is known only after the create: its names are checked with this many bytes for it
-- (the task ids of the providers and of the gateway are digits, a UUID or a short token: under
-- 40 characters); the download checks the name again with the id it got.
M.TASK_ID_MAX = 64

local KNOWN = { id = true, row = true, n = true, kind = true, ext = true, task_id = true, model = true }
-- The media extensions an output's name may take from its URL, each with the kind it is.
local EXTS = { mp4 = "video", mov = "video", webm = "video", mkv = "video", png = "image", jpg = "image",
  jpeg = "image", webp = "image", gif = "image", mp3 = "audio", wav = "audio", m4a = "audio", aac = "audio",
  ogg = "audio", flac = "audio" }
local BY_KIND = { video = "mp4", image = "png", audio = "mp3" }
local OTHER_EXT = "bin"

-- The longest value of each placeholder known only after the create, as a stand-in of that
-- many bytes: what a name is measured with before the create.
local function longest(set, least)
  local n = #least
  for k in pairs(set) do
    n = math.max(n, #k)
  end
  return n
end
local LATER = { ext = ("x"):rep(longest(EXTS, OTHER_EXT)), kind = ("x"):rep(longest(BY_KIND, "")),
  task_id = ("x"):rep(M.TASK_ID_MAX) }

-- check(template) -> template | nil, message naming the rule.
function M.check(t)
  if type(t) ~= "string" or t == "" then
    return nil, "the name template must be a non-empty string"
  end
  local refused = output_path.name_refusal(t)
  if refused then
    return nil, "the name template (--name) " .. refused
  end
  if t:sub(1, 1) == "/" then
    return nil, "the name template must be relative to the output directory (got " .. t .. ")"
  end
  for seg in t:gmatch("[^/]+") do
    if seg == ".." or seg == "." then
      return nil, "the name template must stay inside the output directory (no '.' or '..' segments)"
    end
  end
  for name in t:gmatch("{([^}]*)}") do
    if not KNOWN[name] then
      return nil, "unknown placeholder {" .. name .. "} in the name template (known: id, row, n, kind, ext, "
        .. "task_id, model)"
    end
  end
  -- a brace outside a placeholder is a typo ({id}.{ext without its }): it was kept as text, the
  -- outputs named r0.{ext, with no extension
  local stray = t:gsub("{[^{}]*}", ""):find("[{}]")
  if stray then
    return nil, "the name template has a '{' or '}' outside a placeholder {name} (got " .. t .. ")"
  end
  if not (t:find("{id}", 1, true) or t:find("{row}", 1, true) or t:find("{task_id}", 1, true)) then
    return nil, "the name template must contain {id}, {row} or {task_id}, or every row would get the same name"
  end
  return t
end

-- A placeholder's value as a name: letters, digits, '-', '_' and '.', never a leading '.' (an
-- id "../evil" or ".cat" made a hidden file that ls does not show: a paid output "missing").
function M.safe(s)
  s = tostring(s or ""):gsub("[^%w%-%._]", "_"):gsub("^%.", "_")
  if s == "" then
    s = "_"
  end
  return s
end

-- The kind ("video", "image", "audio") of a media extension (any case), or nil.
function M.ext_kind(ext)
  return type(ext) == "string" and EXTS[ext:lower()] or nil
end

-- The extension of an output's file: its URL's, else the format the output is said to be in
-- (an audio's mp3 or wav: kling.task's files), else its kind's.
function M.ext_of(url, kind, format)
  local e = type(url) == "string" and url:match("^[^?#]*%.(%w+)$")
  e = e and e:lower()
  if e and EXTS[e] then
    return e
  end
  return EXTS[format] == kind and format or BY_KIND[kind] or OTHER_EXT
end

-- The template of a row with `count` outputs: "-{n}" before the extension when it has no {n}.
local function numbered(t, count)
  if count > 1 and not t:find("{n}", 1, true) then
    local with, k = t:gsub("%.{ext}$", "-{n}.{ext}")
    t = k > 0 and with or (t .. "-{n}")
  end
  return t
end

-- name(template, row, n, output, count) -> relative path
function M.name(template, row, n, o, count)
  local t = numbered(template, count)
  local vars = { id = M.safe(row.id), row = tostring(row.index), n = tostring(n), kind = o.kind or "video",
    ext = M.ext_of(o.url, o.kind, o.format), task_id = M.safe(row.task_id), model = M.safe(row.request.model or "") }
  return (t:gsub("{([%w_]+)}", vars))
end

--- Why rel, a path a journal read back names (an output's), is not one under DIR, or nil: a
-- journal line naming "../x" or "/x" had the run download the row's output there again (a
-- journal in a directory others can write is theirs to edit).
---@param rel any
---@return string|nil
function M.rel_refusal(rel)
  if type(rel) ~= "string" or rel == "" or rel:sub(1, 1) == "/" then
    return "is not a path relative to the output directory"
  end
  for seg in rel:gmatch("[^/]+") do
    if seg == ".." or seg == "." then
      return "has a '" .. seg .. "' segment: it would leave the output directory"
    end
  end
  return output_path.name_refusal(rel)
end

-- The poster frame of the video output at rel (relative to DIR, as rel is).
function M.poster(rel)
  return M.POSTERS .. "/" .. rel .. ".jpg"
end

-- What a row's outputs are named before any task exists: the template with the row's values,
-- one name per output it asks for (its `n`, else one); the placeholders whose values come
-- after the create ({kind}, {ext}, {task_id}) left as they are, or given `later`'s values.
local function stems(template, row, later)
  local count = math.min(16, math.max(1, math.floor(tonumber(row.request.n) or 1)))
  local t = numbered(template, count)
  local list = {}
  for n = 1, count do
    local vars = { id = M.safe(row.id), row = tostring(row.index), n = tostring(n),
      model = M.safe(row.request.model or "") }
    list[n] = t:gsub("{([%w_]+)}", function(k)
      return vars[k] or (later and later[k])
    end)
  end
  return list
end

-- What the batch keeps of its own at rel (an output there would be taken for it or overwrite
-- it), or nil.
local function own_file(rel)
  local top = rel:match("^[^/]*")
  local of = durable_file.temp_of(top)
  local what = OWN[top] or (of and OWN[of] and ("a temporary name of " .. OWN[of]))
  for seg in rel:gmatch("[^/]+") do
    if not what and output_path.is_part(seg) then
      what = "a download's temporary name (.part)"
    end
  end
  return what
end

-- The files the output at rel makes: the output, its download's temporary name, its poster.
local function written(rel)
  return { { rel, "the output" }, { output_path.part(rel), "its temporary download (.part)" },
    { M.poster(rel), "its poster frame (" .. M.poster("<output>") .. ")" } }
end

--- The files (relative to DIR) the output at rel makes, each with what it is: the output, its
-- download's temporary name and, for a video, its poster frame; what a row's checks before its
-- create and at its download look at.
---@param rel string
---@param kind string|nil video|image|audio (nil: as a video, every file)
---@return table[] {path, what} pairs
function M.files(rel, kind)
  local list = written(rel)
  if kind ~= nil and kind ~= "video" then
    list[3] = nil -- the report makes poster frames of videos only
  end
  return list
end

-- Why a file system would refuse a file the output at rel makes under out (a file name over
-- NAME_MAX bytes, a path of PATH_MAX or more), or nil. Before the create rel is as long as it
-- may be: stems with LATER.
local function length_refusal(out, rel)
  for _, f in ipairs(written(rel)) do
    local segs = {}
    for seg in f[1]:gmatch("[^/]+") do
      segs[#segs + 1] = seg
    end
    for k, seg in ipairs(segs) do
      if #seg > M.NAME_MAX then
        return string.format("%s would have a %s of %d bytes, over the %d a file name may have (NAME_MAX)", f[2],
          k < #segs and "directory name" or "file name", #seg, M.NAME_MAX)
      end
    end
    local path = out .. "/" .. f[1]
    if #path >= M.PATH_MAX then
      return string.format("%s would have a path of %d bytes (%d of them the output directory's), over the %d a path "
        .. "may have (PATH_MAX, %d, counts its terminating NUL)", f[2], #path, #out + 1, M.PATH_MAX - 1, M.PATH_MAX)
    end
  end
  return nil
end

-- What a message about a name says of the placeholders measured by their longest values.
local function measured_as(template)
  local parts = {}
  for _, k in ipairs { "task_id", "kind", "ext" } do
    if template:find("{" .. k .. "}", 1, true) then
      parts[#parts + 1] = "{" .. k .. "} as " .. #LATER[k] .. " bytes"
    end
  end
  return #parts > 0 and (" (counted with " .. table.concat(parts, ", ") .. ": known only after the create)") or ""
end

--- Why the batch cannot keep its own files in `out` (the directory's path leaves no room for
-- the longest, a temporary name of its report), or nil: checked before anything is sent, as the
-- outputs' names are; the run wrote them at its end, its tasks paid.
---@param out string
---@return string|nil
function M.dir_refusal(out)
  local own = 0
  for name in pairs(OWN) do
    own = math.max(own, #name)
  end
  local path = #out + 1 + own + #".0123456789abcdef.tmp"
  if path >= M.PATH_MAX then
    return string.format("the output directory's path (%d bytes) leaves no room for the batch's own files (%d bytes"
      .. " with their temporary names; a path may have %d): give a shorter --out", #out, path, M.PATH_MAX - 1)
  end
  return nil
end

--- Why the output at rel (relative to out, every value known: at the download) may not be
-- written: the batch's own file there, or a name the file system would refuse; nil when it may.
---@param out string the batch directory
---@param rel string
---@return string|nil
function M.path_refusal(out, rel)
  local own = own_file(rel)
  if own then
    return rel .. " is " .. own
  end
  local long = length_refusal(out, rel)
  return long and (rel .. ": " .. long)
end

--- Why the manifest's rows cannot have their outputs named by `template` under `out`, as
-- "LINE: message" naming the first row and the rule, or nil. Checked before anything is sent
-- (and again at each download, M.path_refusal): an output named as one of the batch's own
-- files (journal, lock, summary, report, poster frames, their temporary names, a .part) is taken
-- for it or overwritten by it; a name the file system refuses (over NAME_MAX, PATH_MAX: each
-- file the output makes, its .part and poster included) fails at the download, after the task
-- was paid; two rows named alike (ids that differ only in what M.safe replaces, or a template
-- that drops what tells them apart) share one file, the second row taking the first's for its
-- own. Names with {task_id} are apart by it.
---@param template string
---@param rows table[] the manifest's rows (kling.batch.manifest.load)
---@param out string the batch directory, as the run writes under it
---@return string|nil
function M.refusal(template, rows, out)
  local by = {}
  local apart = template:find("{task_id}", 1, true)
  for _, row in ipairs(rows) do
    local measured = stems(template, row, LATER)
    for n, s in ipairs(stems(template, row)) do
      local own = own_file(s)
      if own then
        return string.format("%d: id '%s' names its output %s, %s: give the row another id, or name the outputs "
          .. "otherwise (--name '{id}.{ext}')", row.line, row.id, s, own)
      end
      local why = length_refusal(out, measured[n])
      if why then
        return string.format("%d: id '%s' names its output %s: %s%s: give the row a shorter id, or a shorter --name "
          .. "or --out", row.line, row.id, s, why, measured_as(template))
      end
      local other = not apart and by[s]
      if other and other ~= row then
        return string.format("%d: id '%s' names its output %s, as does id '%s' on line %d (a file name keeps only "
          .. "letters, digits, '-', '_' and '.'; a row's several outputs are numbered -1, -2, ...): give one of them "
          .. "another id", row.line, row.id, s, other.id, other.line)
      end
      by[s] = row
    end
  end
  return nil
end

-- The paths (relative to DIR) a row's outputs will take, as far as they are known before its
-- task exists: `count` outputs of `kind`, each with its kind's extension (a URL's own extension
-- is only known at the download, which checks its path again). nil when the template names
-- the task ({task_id}). With `formats` each output is that many files in turn, one per format
-- (an audio's mp3 and wav: kling.task's files), each numbered as a file of its own.
---@param template string
---@param row table
---@param kind string|nil video|image|audio
---@param count integer the files
---@param formats string[]|nil
---@return string[]|nil
function M.expected(template, row, kind, count, formats)
  if template:find("{task_id}", 1, true) then
    return nil
  end
  local list = {}
  for n = 1, count do
    list[n] = M.name(template, row, n, { kind = kind, format = formats and formats[(n - 1) % #formats + 1] }, count)
  end
  return list
end

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end
M.quote = quote

-- mkdir -p without a shell (kling.core); true or nil, message (the path and why). With
-- check_only nothing is made: whether it could be.
function M.mkdir_p(dir, check_only)
  return core.mkdir_p(dir, check_only)
end

function M.dirname(path)
  return path:match("^(.*)/[^/]*$")
end

return M
