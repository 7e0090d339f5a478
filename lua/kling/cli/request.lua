-- A canonical request from command-line options, for the commands that take one request
-- (estimate, quote): options name canonical fields; --json/--file give the whole request,
-- and an option may add a field it does not give, never give one it gives (refused by name).
local json = require "kling.json"
local flags = require "kling.cli.flags"
local validate = require "kling.validate"

local M = {}

local function decode(what)
  return function(text)
    local req, err, dup = json.decode_strict(text)
    if dup then
      return nil, what .. ": " .. err
    elseif type(req) ~= "table" or req[1] ~= nil or text:match("^%s*%[") then
      -- an array decodes to a table too: its items would be read as fields named 1, 2, ..., and
      -- [] as {}, a request of defaults only
      local got = type(req) == "table" and "got an array" or ("got " .. require("kling.validate").type_of(req))
      return nil, what .. ": the request must be a JSON object (" .. tostring(err or got) .. ")"
    end
    return req
  end
end

local function read_json(path)
  local text, err = require("kling.local_file").read_text(path)
  if not text then
    return nil, "cannot read --file: " .. err
  end
  return decode("--file " .. path)(text)
end

-- "3,4,5" -> the shots of a multi-shot request; each duration by the number flags' rule
-- (validate.decimal: tonumber took " 5" and "0x5")
-- Every item is a shot: an empty one ("3,,4") was skipped and a shot of no or negative seconds
-- taken, to be priced as the others' sum.
local function shots(v)
  local list = {}
  for d in (v .. ","):gmatch("([^,]*),") do
    local n = validate.decimal(d)
    if not n or n ~= math.floor(n) or n < 1 then
      return nil, "--shots takes whole seconds from 1, separated by commas (got '" .. v .. "')"
    end
    list[#list + 1] = { prompt = "shot " .. (#list + 1), duration = n }
  end
  return list
end

-- Options naming a canonical field that takes a string.
local STRING = {
  { "provider", "P", "kling | apiinone | apimodels | evolink | compat (default KLING_PROVIDER, else kling)" },
  { "endpoint", "E", "path after /v1/, e.g. videos/omni-video" },
  { "model", "M", "e.g. kling-v3" }, { "mode", "std|pro" }, { "resolution", "720p|1080p" },
  { "image", "URL", "the first frame" }, { "last_image", "URL", "the last frame" },
  { "aspect_ratio", "R", "e.g. 16:9" }, { "prompt", "TEXT" }, { "effect_scene", "NAME" },
}

-- define(cmd [, every_provider]): the request's options, in a group of their own; without
-- --provider for a command that asks every provider (kling quote took it and dropped it).
function M.define(cmd, every_provider)
  local group = {
    cmd:option("--json", "the whole request (the options below may add a field\n"
      .. "it does not give; one it gives is refused)"):argname("'{...}'"):convert(decode "--json")
      :target "request_json",
    cmd:option("--file", "the whole request from a JSON file"):argname("REQUEST.json"):convert(read_json)
      :target "request_file",
  }
  cmd:mutex(group[1], group[2])
  for _, s in ipairs(STRING) do
    if not (every_provider and s[1] == "provider") then
      group[#group + 1] = cmd:option("--" .. s[1]:gsub("_", "-"), s[3]):argname(s[2]):target("field_" .. s[1])
    end
  end
  group[#group + 1] = cmd:option("--duration", "seconds"):argname("SECONDS")
    :convert(flags.number("--duration")):target "field_duration"
  group[#group + 1] = cmd:option("--n", "how many outputs"):argname("COUNT"):convert(flags.number("--n"))
    :target "field_n"
  local sound, no_sound = cmd:flag("--sound", "with sound"), cmd:flag("--no-sound", "without sound")
  cmd:mutex(sound, no_sound)
  group[#group + 1], group[#group + 2] = sound, no_sound
  group[#group + 1] = cmd:option("--voice", "a voice id (repeatable)"):argname("ID"):count("*"):target "voice_list"
  group[#group + 1] = cmd:option("--element", "an element id (repeatable)"):argname("ID"):count("*")
    :target "element_list"
  group[#group + 1] = cmd:option("--shots", "multi-shot durations, e.g. 3,4,5"):argname("S,S,..."):convert(shots)
  cmd:group("Request", table.unpack(group))
end

-- build(args) -> the canonical request the parsed options describe | nil, message. A field given
-- both in --json/--file and by an option is refused, naming both: the option silently won
-- (`--json '{"duration": 10}' --duration 5` was priced at 5 s), which neither help nor README said.
function M.build(args)
  local req = args.request_json or args.request_file or {}
  local whole = args.request_json and "--json" or "--file"
  local function set(field, flag, v)
    if v == nil then
      return true
    end
    if req[field] ~= nil then
      return nil, flag .. " and " .. whole .. "'s \"" .. field .. "\" both give " .. field .. ": give it one way"
    end
    req[field] = v
    return true
  end
  local ok, err = true, nil
  local function each(field, flag, v)
    if ok then
      ok, err = set(field, flag, v)
    end
  end
  for _, s in ipairs(STRING) do
    each(s[1], "--" .. s[1]:gsub("_", "-"), args["field_" .. s[1]])
  end
  each("duration", "--duration", args.field_duration)
  each("n", "--n", args.field_n)
  if args.sound or args.no_sound then
    each("sound", args.sound and "--sound" or "--no-sound", args.sound == true)
  end
  each("voice_list", "--voice", flags.list(args.voice_list))
  each("element_list", "--element", flags.list(args.element_list))
  if args.shots then
    each("multi_shot", "--shots", true)
    each("multi_prompt", "--shots", args.shots)
  end
  if not ok then
    return nil, err
  end
  return req
end

-- Fields a request given whole (--json, --file) may hold that configure a client, not the request
-- (what a kling run manifest row names beside its request: kling.batch.manifest.META). estimate
-- and quote send nothing and make no client: each is refused by name, never dropped (the output
-- was the same with or without it, and a key in the request looked like one in use). A key's
-- value is never shown.
local SECRETS = {}
for k in pairs(require("kling.batch.manifest").SECRETS) do
  SECRETS[#SECRETS + 1] = k
end
table.sort(SECRETS)

-- unused(req, args, command, fields) -> nil | message naming the first field of req (given whole
-- by --json or --file) that `command` cannot use: a key (api_key, access_key, secret_key), then
-- those of `fields` ({{field, why}, ...}, in order; why says what to do instead).
function M.unused(req, args, command, fields)
  local whole = args.request_json and "--json" or "--file"
  for _, k in ipairs(SECRETS) do
    if req[k] ~= nil then
      return string.format("%s's \"%s\" is a credential: it is a client's (--%s or KLING_%s), never a field of a "
        .. "request, and %s sends nothing and needs none; remove it (nothing was priced; the value is not shown)",
        whole, k, (k:gsub("_", "-")), k:upper(), command)
    end
  end
  for _, u in ipairs(fields) do
    if req[u[1]] ~= nil then
      return string.format("%s's \"%s\": %s (nothing was priced)", whole, u[1], u[2])
    end
  end
  return nil
end

return M
