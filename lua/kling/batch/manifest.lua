-- A batch manifest: JSONL (one canonical request per line, an optional `id`; a first line
-- {"defaults": {...}} sets fields every row starts from) or CSV with a header row. Each row
-- becomes {id, index, line, request, meta, hash}: meta holds what is not sent to the provider
-- (provider, base_url, keys, ca_file, name template), request the canonical request, hash a
-- digest of both (keys excluded) that the journal keeps to notice a manifest edited under a
-- running batch.
local core = require "kling.core"
local json = require "kling.json"
local local_file = require "kling.local_file"
local validate = require "kling.validate"

local M = {}

-- Lua 5.4 keeps integers apart; LuaJIT has one number type (whole numbers print as such).
local tointeger = math.tointeger or function(x)
  return x == math.floor(x) and x or nil
end

-- Row fields that configure the row instead of being sent.
M.META = { id = true, provider = true, base_url = true, access_key = true, secret_key = true, api_key = true,
  ca_file = true, name = true }
M.SECRETS = { access_key = true, secret_key = true, api_key = true }

-- How CSV cells and --set values are typed (JSONL is typed already). Only a field whose value
-- is a list or an object is read as JSON: a prompt "[Wide shot] A dog runs" stays text.
local NUMBERS = { duration = true, n = true, cfg_scale = true, estimate = true }
local BOOLEANS = { sound = true, multi_shot = true, keep_original_sound = true }
-- Lists given as JSON or as "a;b" (names or ids).
local LISTS = { element_list = true, voice_list = true, tag_list = true }
-- Lists and objects of the canonical request and of seed 000's endpoints: JSON cells.
local STRUCTURED = { multi_prompt = true, camera_control = true, image_list = true, video_list = true,
  dynamic_masks = true, input = true, model_params = true, extra_body = true, face_choose = true,
  element_image_list = true, element_video_list = true, element_refer_list = true, subject_image_list = true,
  images = true }

local function fail(where, msg)
  return nil, where .. ": " .. msg
end

local function finite(n)
  return n == n and n ~= math.huge and n ~= -math.huge
end

-- cell(field, text) -> value | nil (empty: no value), err
function M.cell(field, text)
  if text == nil or text == "" then
    return nil
  end
  local first = text:match("^%s*(.)")
  if STRUCTURED[field] or (LISTS[field] and first == "[") then
    local v, err, dup = json.decode_strict(text)
    if dup then
      return nil, err
    elseif type(v) ~= "table" then
      return nil, "must be JSON (a list or an object): " .. tostring(err or ("got " .. type(v)))
    end
    return v
  end
  if NUMBERS[field] then
    -- by the rule of the command line's number flags: tonumber took "0x5", " 5" and "1e1"
    local n = validate.decimal(text)
    if not n then
      return nil, "must be a number in decimal digits, e.g. 5 or 0.5 (got '" .. validate.brief(text) .. "')"
    end
    return n
  end
  if BOOLEANS[field] then
    -- true or false, in any letter case (a spreadsheet writes TRUE); yes, on, 1 and the like
    -- are refused, never read as a guess
    local l = text:lower()
    if l == "true" or l == "false" then
      return l == "true"
    end
    return nil, "must be true or false (in any letter case: TRUE, False), got '" .. text .. "'"
  end
  if LISTS[field] then
    local list = {}
    for item in text:gmatch("[^;]+") do
      list[#list + 1] = item:match("^%s*(.-)%s*$")
    end
    return list
  end
  return text
end

-- RFC 4180 CSV: quoted fields with "" escapes, commas and newlines inside quotes, CRLF or LF.
-- Returns records (arrays of strings) with the line each began on, or nil and a message.
function M.parse_csv(text)
  local records, rec, field = {}, {}, {}
  local i, n, line, rec_line = 1, #text, 1, 1
  local quoted = false
  local function end_field()
    rec[#rec + 1] = table.concat(field)
    field = {}
  end
  local function end_record()
    end_field()
    if not (#rec == 1 and rec[1] == "") then
      rec.line = rec_line
      records[#records + 1] = rec
    end
    rec = {}
    rec_line = line
  end
  while i <= n do
    local c = text:sub(i, i)
    if quoted then
      if c == '"' then
        if text:sub(i + 1, i + 1) == '"' then
          field[#field + 1] = '"'
          i = i + 1
        else
          quoted = false
        end
      else
        if c == "\n" then
          line = line + 1
        end
        field[#field + 1] = c
      end
    elseif c == '"' then
      if #field > 0 then
        return nil, "line " .. line .. ": a quote inside an unquoted field (quote the whole field)"
      end
      quoted = true
    elseif c == "," then
      end_field()
    elseif c == "\n" or c == "\r" then
      if c == "\r" and text:sub(i + 1, i + 1) == "\n" then
        i = i + 1
      end
      line = line + 1
      end_record()
    else
      field[#field + 1] = c
    end
    i = i + 1
  end
  if quoted then
    return nil, "line " .. rec_line .. ": a quoted field is not closed"
  end
  if #field > 0 or #rec > 0 then
    end_record()
  end
  return records
end

local function csv_rows(text, path)
  local records, err = M.parse_csv(text)
  if not records then
    return nil, path .. ": " .. err
  end
  local header = table.remove(records, 1)
  if not header then
    return nil, path .. ": empty (a CSV manifest needs a header row naming the fields)"
  end
  local seen = {}
  for i, name in ipairs(header) do
    name = name:match("^%s*(.-)%s*$") -- (a byte order mark before the first is load's to remove)
    if name == "" then
      return nil, path .. ": header column " .. i .. " has no name"
    end
    if seen[name] then
      return nil, path .. ": header names '" .. name .. "' twice"
    end
    seen[name] = true
    header[i] = name
  end
  local rows = {}
  for _, rec in ipairs(records) do
    -- Fewer cells as well as more: a row short of a comma has every later cell under the
    -- wrong column (an empty cell is written as nothing between two commas).
    if #rec ~= #header then
      return nil, string.format("%s:%d: %d cells, the header has %d", path, rec.line, #rec, #header)
    end
    local row = {}
    for i, name in ipairs(header) do
      local v, cerr = M.cell(name, rec[i])
      if cerr then
        return nil, string.format("%s:%d: %s: %s", path, rec.line, name, cerr)
      end
      row[name] = v
    end
    rows[#rows + 1] = { fields = row, line = rec.line }
  end
  return rows, {}
end

-- A line that holds nothing but {"defaults": ...}.
local function only_defaults(v)
  local k = next(v)
  return k == "defaults" and next(v, k) == nil
end

-- A UTF-8 byte order mark (U+FEFF) is taken at the start of the file only (local_file.read_text
-- removes it there, as from every file a user gives); anywhere else it is an error, named.
local BOM = local_file.BOM

local function jsonl_rows(text, path)
  local rows, defaults = {}, {}
  local n, defaults_line = 0, nil
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local s = line:gsub("\r$", "")
    if s:find("%S") and not s:match("^%s*#") and not s:match("^%s*//") then
      local v, err, dup = json.decode_strict(s)
      local bom = err and s:find(BOM, 1, true)
      if dup then
        return nil, string.format("%s:%d: %s", path, n, err)
      elseif bom then
        return nil, string.format("%s:%d: a byte order mark (U+FEFF, bytes EF BB BF) at byte %d: one is taken only "
          .. "at the start of the file (remove it, or save the file as UTF-8 without BOM)", path, n, bom)
      elseif type(v) ~= "table" or (v[1] ~= nil) or s:match("^%s*%[") then
        -- [] decodes as {} does: read as an empty row, the defaults alone would make a task of it
        return nil, string.format("%s:%d: each line must be a JSON object (%s)", path, n,
          tostring(err or (type(v) == "table" and "got an array" or "got " .. validate.type_of(v))))
      end
      if v.defaults ~= nil and not only_defaults(v) then
        -- "defaults" is no request field: a row holding it beside others was meant as the defaults
        -- line, and run as a row the other rows would go without those defaults (and be charged so).
        local others = {}
        for k in pairs(v) do
          if k ~= "defaults" then
            others[#others + 1] = tostring(k)
          end
        end
        table.sort(others)
        return nil, string.format("%s:%d: a defaults line holds {\"defaults\": {...}} alone (this one also has %s: "
          .. "put such fields inside defaults)", path, n, table.concat(others, ", "))
      elseif only_defaults(v) then
        if #rows > 0 then
          return nil, string.format("%s:%d: a defaults line must come before the first row", path, n)
        elseif defaults_line then
          -- merged, a field both give was kept last (a model or mode swapped without a word)
          return nil, string.format("%s:%d: a manifest has one defaults line, and line %d is one (put its fields "
            .. "in one object)", path, n, defaults_line)
        end
        defaults_line = n
        if type(v.defaults) ~= "table" then
          return nil, string.format("%s:%d: defaults must be an object, got %s", path, n, validate.type_of(v.defaults))
        end
        for k, x in pairs(v.defaults) do
          defaults[k] = x
        end
      else
        rows[#rows + 1] = { fields = v, line = n }
      end
    end
  end
  return rows, defaults
end

-- The path of the first number in v that is not finite (JSON has no such numbers: 1e999
-- decodes to infinity and could be neither journaled nor sent), or nil.
local function infinite(v, path)
  if type(v) == "number" then
    return not finite(v) and path or nil
  end
  if type(v) == "table" then
    for k, x in pairs(v) do
      local bad = infinite(x, path .. (type(k) == "number" and ("[" .. k .. "]") or ("." .. tostring(k))))
      if bad then
        return bad
      end
    end
  end
  return nil
end

-- A row's id is printed in progress lines and the report, and tells rows apart: a name a
-- reader sees as it is (U+202E turned a progress line around; "a" and "a" + U+200B printed alike).
M.ID_MAX_CHARS = 128

-- Two rows that give one external_task_id (or one that is another's retry name: its given id
-- and -N, kling.batch.rows): a provider keeps one task per external id, and a create whose
-- answer was lost is looked up by it, so one row adopted the other's task, its video and its
-- charge (counted twice). -> "LINE: message" | nil
local function ext_clash(rows)
  local by_ext = {}
  for _, r in ipairs(rows) do
    local e = r.request.external_task_id
    if type(e) == "string" then
      if by_ext[e] then
        return string.format("%d: external_task_id '%s' is also row '%s''s (line %d): a provider keeps one task "
          .. "per external id, and a lookup by it would give this row that row's task", r.line, e, by_ext[e].id,
          by_ext[e].line)
      end
      by_ext[e] = r
    end
  end
  for _, r in ipairs(rows) do
    local e = r.request.external_task_id
    local base, n
    if type(e) == "string" then
      base, n = e:match("^(.+)%-(%d+)$")
    end
    local other = base and by_ext[base]
    if other and tonumber(n) >= 2 then
      return string.format("%d: external_task_id '%s' is the one row '%s' (line %d, '%s') takes for its attempt "
        .. "%s: a lookup by it would give one row the other's task", r.line, e, other.id, other.line, base, n)
    end
  end
  return nil
end

local FORMAT_NAME = { jsonl = "JSON Lines", csv = "CSV" }

-- A manifest that the format given (or its extension's) could not read and that looks like the
-- other format (a first line, past comments, opening a JSON object is JSON Lines), said so with
-- the format to use, or nil: a JSON Lines manifest read as CSV said only "a quote inside an
-- unquoted field". `ext` is the extension the format came from, nil when it was given.
function M.format_hint(body, path, format, ext)
  local first -- the first line that is not blank nor a comment (JSON Lines skips those)
  for line in body:gmatch("[^\r\n]+") do
    if line:find("%S") and not line:match("^%s*#") and not line:match("^%s*//") then
      first = line:match("^%s*(.-)%s*$")
      while first:sub(1, #BOM) == BOM do -- a stray one is the format's own message to give
        first = first:sub(#BOM + 1)
      end
      break
    end
  end
  -- a JSON array ([...]) is neither: the format's own message says what a line must be
  local looks = first and (first:match("^{") and "jsonl" or not first:match("^%[") and "csv")
  if not looks or looks == format then
    return nil
  end
  return string.format("%s: read as %s (%s), but it looks like %s (its first line %s): give format %s "
    .. "(kling run --format %s)%s", path, FORMAT_NAME[format], ext and ("by its ." .. ext .. " extension")
    or ("format " .. format .. " given"), FORMAT_NAME[looks], looks == "jsonl" and "opens a JSON object"
    or ("is not a JSON object: a CSV header, " .. validate.quoted(validate.brief(first, 60))), looks, looks,
    ext and (", or name it ." .. looks) or ", or none to take it by extension, else by content")
end

-- load(path, {defaults =, format = "jsonl"|"csv"}) -> rows, info | nil, message.
-- Defaults apply under each row (the row wins): the manifest's defaults line first, then
-- opts.defaults (flags) over them. info = {format, sha256, rows}.
function M.load(path, opts)
  opts = opts or {}
  local text, err = local_file.read_text(path)
  if not text then
    return nil, "cannot read the manifest: " .. err
  end
  local body = text -- without its BOM (JSONL and CSV alike)
  local format, by_ext = opts.format, nil
  if not format then
    local ext = path:lower():match("%.(%w+)$")
    if ext == "csv" then
      format = "csv"
    elseif ext == "jsonl" or ext == "ndjson" or ext == "json" then
      format = "jsonl"
    else
      format = body:match("^%s*{") and "jsonl" or "csv"
    end
    by_ext = ext
  end
  local raw, defaults
  if format == "csv" then
    raw, defaults = csv_rows(body, path)
  elseif format == "jsonl" then
    raw, defaults = jsonl_rows(body, path)
  else
    return nil, "format must be jsonl or csv (got " .. tostring(format) .. ")"
  end
  if not raw then
    return nil, M.format_hint(body, path, format, by_ext) or defaults
  end
  for k, v in pairs(opts.defaults or {}) do
    defaults[k] = v
  end
  if defaults.id ~= nil then
    -- a row's id is its own: one in the defaults (a defaults line, --defaults, --set id=x) was
    -- dropped without a word, the rows named row-N
    return nil, path .. ": id is each row's own name, not a default (the defaults give it "
      .. validate.got(defaults.id) .. "): give ids in the rows"
  end
  if #raw == 0 then
    return nil, path .. ": no rows"
  end
  local rows, by_id = {}, {}
  for i, r in ipairs(raw) do
    local where = path .. ":" .. r.line
    local merged = {}
    for k, v in pairs(defaults) do
      merged[k] = v
    end
    for k, v in pairs(r.fields) do
      if v ~= json.null then
        merged[k] = v
      end
    end
    local id = r.fields.id
    if id == nil then
      id = "row-" .. i
    elseif type(id) == "number" then
      id = tointeger(id) and string.format("%d", id) or tostring(id)
    end
    local why = validate.name_problem(id, M.ID_MAX_CHARS)
    if why then
      return fail(where, "id " .. why)
    end
    if by_id[id] then
      return fail(where, "id '" .. id .. "' is also the id of the row on line " .. by_id[id].line)
    end
    local request, meta, hashed = {}, {}, {}
    for k, v in pairs(merged) do
      local bad = infinite(v, k)
      if bad then
        return fail(where, bad .. " must be a finite number")
      end
      if M.META[k] then
        if k ~= "id" then
          if type(v) ~= "string" or v == "" then
            return fail(where, k .. " must be a non-empty string")
          end
          meta[k] = v
        end
        if not M.SECRETS[k] then
          hashed[k] = v
        end
      else
        request[k] = v
        hashed[k] = v
      end
    end
    hashed.id = id
    local row = { id = id, index = i, line = r.line, request = request, meta = meta,
      hash = core.sha256_hex(json.canonical(hashed)):sub(1, 16) }
    rows[i] = row
    by_id[id] = row
  end
  local clash = ext_clash(rows)
  if clash then
    return nil, path .. ":" .. clash
  end
  return rows, { format = format, sha256 = core.sha256_hex(text), rows = #rows, by_id = by_id }
end

return M
