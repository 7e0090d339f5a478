-- The provider registry: the one list of providers (one Lua file each under kling/providers/)
-- and the contract every provider file keeps, checked when the registry hands a provider out:
-- a file missing a field raises an error naming the field and what it is for.
local errors = require "kling.errors"

local M = {}

-- Names are fixed; each maps to lua/kling/providers/<name>.lua. Everything that lists the
-- providers (kling.billing's quote order among them) reads this list.
M.names = { "kling", "apiinone", "apimodels", "evolink", "compat" }

local known = {}
for _, name in ipairs(M.names) do
  known[name] = true
end

-- The fields every provider declares: {name, Lua type, what it is for}. Optional ones (a
-- provider has them when it has the feature) are listed in docs/internals.md.
M.CONTRACT = {
  { "name", "string", "the provider's name, as in kling.providers.names" },
  { "title", "string", "the name shown to people" },
  { "auth", "table", "the credentials it takes: {jwt = true, api_key = true}" },
  { "capabilities", "table", "the features it has (text_to_video, callbacks, ...)" },
  { "endpoints", "table", "its endpoints: path -> {kind, async, ...}" },
  { "default_endpoint", "function", "the endpoint of a request that names none" },
  { "validate", "function", "validation of a canonical request before anything is sent" },
  { "build", "function", "the mapping of a canonical request to its own spelling" },
  { "unwrap", "function", "the parser of its response envelope" },
  { "parse_task", "function", "the parser of a task object into canonical fields" },
  { "parse_callback", "function", "the parser of a callback body" },
  { "query_path", "function", "the path that polls a task" },
  { "statuses", "table", "its status map: its status -> canonical status" },
  { "codes", "userdata", "its business-code table for the retry decision: core.codes{...}" },
  { "renew_token_codes", "table", "the codes that mean 'token expired: renew and resend once' (a set)" },
  { "slot_full_codes", "table", "the codes that mean 'no free parallel slot, nothing created' (a set)" },
  { "prices", "string", "the module of its dated price catalog (kling.prices.<name>)" },
  { "media_inputs", "table", "what its media fields take for a local file: field -> \"base64\" | \"url\""
    .. " (fixed once loaded: kling.local_file compiles it once)" },
}

-- check(P [, name]) -> true | nil, message naming the first field missing or of the wrong type.
function M.check(P, name)
  name = name or (type(P) == "table" and P.name) or "?"
  if type(P) ~= "table" then
    return nil, "provider '" .. tostring(name) .. "' is not a table (got " .. type(P) .. ")"
  end
  for _, f in ipairs(M.CONTRACT) do
    local field, want, what = f[1], f[2], f[3]
    local v = P[field]
    if v == nil then
      return nil, "provider '" .. name .. "' is missing " .. field .. " (" .. want .. ": " .. what .. ")"
    end
    if type(v) ~= want or (want == "userdata" and not tostring(v):find("^kling%.codes")) then
      return nil, "provider '" .. name .. "': " .. field .. " must be " .. (want == "userdata" and "a kling.codes"
        or "a " .. want) .. " (" .. what .. "), got " .. type(v)
    end
  end
  if P.name ~= name then
    return nil, "provider '" .. name .. "' names itself '" .. P.name .. "'"
  end
  return true
end

-- Provider modules already checked (a memo: a module does not change once loaded).
local checked = setmetatable({}, { __mode = "k" })

-- The validation error for a provider name that is not one: the closest known name, the list.
function M.unknown(name)
  local validate = require "kling.validate"
  local best = validate.closest(name, M.names)
  return errors.validation("provider", "unknown provider " .. (type(name) == "string"
    and ("'" .. validate.brief(name) .. "'") or validate.got(name)) .. " (" .. (best and ("did you mean "
    .. best .. "? ") or "") .. "known: " .. table.concat(M.names, ", ") .. ")")
end

-- Returns the provider module, or nil and a validation error for a name that is not one.
-- A provider file that breaks the contract is a bug of this module: that raises.
function M.get(name)
  name = name or "kling"
  if type(name) ~= "string" or not known[name] then
    return nil, M.unknown(name)
  end
  local ok, mod = pcall(require, "kling.providers." .. name)
  if not ok then
    return nil, errors.validation("provider", "provider '" .. name .. "' is not available: " .. tostring(mod))
  end
  if not checked[mod] then
    local fine, why = M.check(mod, name)
    if not fine then
      error("kling.providers: " .. why, 2)
    end
    checked[mod] = true
  end
  return mod
end

-- The dialect's rules a runner acts on, read from a failure f = {status, code, ...} (what
-- transport.read_result returns). Each provider declares the codes (renew_token_codes,
-- slot_full_codes); the runners (kling.transport, the engine) ask here, so each rule is
-- written once.

-- True when the provider says the request's token expired: renew it and resend once.
function M.token_expired(P, f)
  local code = tonumber(f.code)
  return code ~= nil and P.renew_token_codes[code] == true
end

-- True when the provider refused a create for want of a free parallel slot (nothing was
-- created): one of its slot codes, or a 429 without a business code.
function M.slot_full(P, f)
  local code = tonumber(f.code)
  if code == nil then
    return f.status == 429
  end
  return P.slot_full_codes[code] == true
end

-- The names of provider P's asynchronous endpoints of a kind ("video", "image", "audio",
-- "voice": each endpoint's `kind`), sorted: what get_task asks without an endpoint, and what
-- a task looked for and found on none of those is said to need.
function M.task_endpoints(P, kind)
  local names = {}
  for name, e in pairs(P.endpoints) do
    if e.async and e.kind == kind then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  return names
end

-- True when the provider keeps a task list the module can read (client:list_tasks, kling tasks).
function M.lists_tasks(P)
  return P.capabilities.list and P.list_path ~= nil or false
end

-- The endpoint a request goes to on provider P: its own, else the provider's choice for it
-- (what the lifecycle machine sends to, and what a hold is priced at).
function M.endpoint(P, req)
  return req.endpoint or P.default_endpoint(req)
end

-- True when the provider, on this endpoint, takes an external task id (what makes a create
-- whose answer was lost findable again).
function M.takes_external_id(P, endpoint)
  if not P.capabilities.external_ids then
    return false
  end
  return not P.takes or P.takes(endpoint, "external_task_id") and true or false
end

return M
