-- Run-time settings (task time, parallel limit, keys, default fault seed): the launch values
-- come from the launcher; POST /_sim/config changes them for every worker; DELETE restores
-- the launch values. Kept in shared memory, decoded once per change per worker.
local json = require "kling.json"

local M = {}

local RULES = {
  task_seconds = { "number", 0, 86400, "seconds in 0..86400" },
  max_parallel = { "integer", 0, 1e6, "an integer >= 0 (0 means no limit)" },
  fault_seed = { "integer", -2 ^ 52, 2 ^ 52, "an integer" },
  access_key = { "string" },
  secret_key = { "string" },
  api_key = { "string" },
  -- Signs the official dialect's callbacks (Standard Webhooks); "" turns signing off.
  webhook_secret = { "webhook_secret" },
}

M.SECRETS = { secret_key = true, api_key = true, webhook_secret = true }

local function state()
  return ngx.shared.kling_sim_state
end

-- check(t) -> t | nil, message naming the key and the rule
function M.check(t)
  if type(t) ~= "table" then
    return nil, "body must be a JSON object of settings"
  end
  for k, v in pairs(t) do
    local rule = RULES[k]
    if not rule then
      local names = {}
      for name in pairs(RULES) do
        names[#names + 1] = name
      end
      table.sort(names)
      return nil, tostring(k) .. ": unknown setting (known: " .. table.concat(names, ", ") .. ")"
    end
    if rule[1] == "string" then
      if type(v) ~= "string" or v == "" then
        return nil, k .. ": must be a non-empty string"
      end
    elseif rule[1] == "webhook_secret" then
      local b64 = type(v) == "string" and v:match("^whsec_(.*)$")
      if type(v) ~= "string" or (b64 and not (b64:match("^[%w+/]+=*$") and ngx.decode_base64(b64))) then
        return nil, k .. ": must be a string: whsec_<base64 key>, another non-empty key, or \"\" for unsigned"
      end
    elseif type(v) ~= "number" or v < rule[2] or v > rule[3] or (rule[1] == "integer" and v ~= math.floor(v)) then
      return nil, k .. ": must be " .. rule[4]
    end
  end
  return t
end

-- Called in init (master): the launch settings; the current ones survive a reload.
function M.init(launch)
  local s = json.encode(launch)
  state():set("config:launch", s)
  state():add("config", s)
  state():add("config:gen", 1)
end

local cache_gen, cache
function M.get()
  local gen = state():get("config:gen")
  if gen ~= cache_gen then
    cache_gen, cache = gen, json.decode(state():get("config"))
  end
  return cache
end

-- Merges checked values into the current settings.
function M.update(t)
  local cur = {}
  for k, v in pairs(M.get()) do
    cur[k] = v
  end
  for k, v in pairs(t) do
    cur[k] = v
  end
  state():set("config", json.encode(cur))
  state():incr("config:gen", 1, 0)
  return cur
end

function M.restore()
  state():set("config", state():get("config:launch"))
  state():incr("config:gen", 1, 0)
end

-- The settings as the admin API shows them: secrets masked.
function M.public()
  local out = {}
  for k, v in pairs(M.get()) do
    out[k] = M.SECRETS[k] and "***" or v
  end
  return out
end

return M
