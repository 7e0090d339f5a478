-- A canonical request from command-line flags, for the commands that take one request
-- (estimate, quote, ...). Flags name canonical fields; --json/--file give the whole request,
-- and flags given as well override its fields.
local json = require "kling.json"

local M = {}

M.USAGE = [[
request:  --json '{"model":"kling-v3","duration":10,...}' | --file REQUEST.json, and/or
          --provider P  --endpoint E (path after /v1/, e.g. videos/omni-video)  --model M
          --mode std|pro  --duration SECONDS  --resolution 720p|1080p  --sound | --no-sound
          --n COUNT  --image URL  --last-image URL  --voice ID (repeatable)  --element ID (repeatable)
          --aspect-ratio R  --prompt TEXT  --shots "3,4,5" (multi-shot durations)]]

local STRING = { "provider", "endpoint", "model", "mode", "resolution", "image", "last_image", "aspect_ratio",
  "prompt", "effect_scene" }
local NUMBER = { "duration", "n" }
local LIST = { voice = "voice_list", element = "element_list" }

local function flag_of(field)
  return "--" .. field:gsub("_", "-")
end

local STRING_FLAGS, NUMBER_FLAGS = {}, {}
for _, f in ipairs(STRING) do
  STRING_FLAGS[flag_of(f)] = f
end
for _, f in ipairs(NUMBER) do
  NUMBER_FLAGS[flag_of(f)] = f
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, err
  end
  local s = f:read("a")
  f:close()
  return s
end

-- parse(args, extra) -> request, options | nil, message. `extra` maps further flags of the
-- command to option names ({["--out"] = "out"}; a name ending in "?" takes no value).
function M.parse(args, extra)
  local req, opts, overrides = nil, {}, {}
  local i = 1
  local function value(flag)
    local v = args[i + 1]
    if v == nil then
      return nil, flag .. " needs a value"
    end
    i = i + 1
    return v
  end
  while i <= #args do
    local a = args[i]
    local v, err
    if a == "--json" or a == "--file" then
      v, err = value(a)
      if not v then
        return nil, err
      end
      local text = v
      if a == "--file" then
        text, err = read_file(v)
        if not text then
          return nil, "cannot read " .. v .. ": " .. tostring(err)
        end
      end
      req, err = json.decode(text)
      if type(req) ~= "table" then
        return nil, "the request must be a JSON object: " .. tostring(err or type(req))
      end
    elseif STRING_FLAGS[a] then
      v, err = value(a)
      if not v then
        return nil, err
      end
      overrides[STRING_FLAGS[a]] = v
    elseif NUMBER_FLAGS[a] then
      v, err = value(a)
      if not v then
        return nil, err
      end
      local n = tonumber(v)
      if not n then
        return nil, a .. " must be a number (got " .. v .. ")"
      end
      overrides[NUMBER_FLAGS[a]] = math.tointeger(n) or n
    elseif a == "--sound" or a == "--no-sound" then
      overrides.sound = a == "--sound"
    elseif a == "--shots" then
      v, err = value(a)
      if not v then
        return nil, err
      end
      local shots = {}
      for d in v:gmatch("[^,]+") do
        local n = math.tointeger(tonumber(d))
        if not n then
          return nil, "--shots takes whole seconds separated by commas (got " .. v .. ")"
        end
        shots[#shots + 1] = { prompt = "shot " .. (#shots + 1), duration = n }
      end
      overrides.multi_shot, overrides.multi_prompt = true, shots
    elseif a:match("^%-%-") and LIST[a:sub(3)] then
      v, err = value(a)
      if not v then
        return nil, err
      end
      local field = LIST[a:sub(3)]
      overrides[field] = overrides[field] or {}
      table.insert(overrides[field], v)
    elseif extra and (extra[a] or extra[a .. "?"]) then
      if extra[a .. "?"] then
        opts[extra[a .. "?"]] = true
      else
        v, err = value(a)
        if not v then
          return nil, err
        end
        opts[extra[a]] = v
      end
    else
      return nil, "unknown option " .. a
    end
    i = i + 1
  end
  req = req or {}
  for k, v in pairs(overrides) do
    req[k] = v
  end
  return req, opts
end

return M
