-- A request priced by what its source task was made with. The provider bills a video-extend
-- by the model and mode of the video it extends, whatever the request declares (it sends
-- neither), so a client that declared kling-v1 std to extend a kling-v1-6 pro video was held
-- and charged the cheaper price while the upstream billed the dearer. The endpoint's
-- definition names the source field and the fields that follow it (`follows`); the gateway
-- knows the source from the record of the task that showed its id (kling.gateway.owners).
local billing = require "kling.billing"
local owners = require "kling.gateway.owners"
local validate = require "kling.validate"

local M = {}

M.MAX_ID = 256 -- bytes of a source id looked up (a longer one is the checks' to refuse)

-- What an ended task keeps of its request: every field, but a string longer than KEPT_BYTES
-- (a prompt, an inline image in base64) as a note of its length. What it was made with
-- (endpoint, model, mode, what it was given) is what a follower is priced by (apply); the rest
-- was kept for as long as the record (retention_days: 30 days of prompts and images of up to
-- 20 MB a create), and a compaction dropped the request whole, after which an extend of a
-- video made before the restart was refused as unpriced.
M.KEPT_BYTES = 256
local function kept(v, depth)
  if type(v) == "string" and #v > M.KEPT_BYTES then
    return "(" .. #v .. " bytes)"
  elseif type(v) ~= "table" or depth > 8 then
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    out[k] = kept(x, depth + 1)
  end
  return setmetatable(out, getmetatable(v)) -- an array stays one (kling.json's mark)
end

-- source_form(request) -> what an ended record keeps of it (nil stays nil)
function M.source_form(request)
  return kept(request, 1)
end

-- apply(G, account, def, req) -> true | nil, field, message (refused: a declared field that
-- differs from the source's, or a source whose fields cannot be known) | nil, nil, message
-- (the store cannot say). Fills the following fields the request left out with the source's.
function M.apply(G, account, def, req)
  local f = def and def.follows
  local id = f and req[f.field]
  if type(id) == "number" then
    id = owners.id_text(id)
  end
  if type(id) ~= "string" or id == "" or #id > M.MAX_ID then
    return true -- no source named (the endpoint's own checks say what is wrong)
  end
  local form = owners.id_problem(id) -- looked up as the upstream reads it, or not at all
  if form then
    return nil, f.field, form .. " (got \"" .. validate.brief(id) .. "\")"
  end
  local owner, task_id = owners.origin(G, id)
  if owner == nil and task_id then
    return nil, nil, task_id -- the store's message
  end
  -- Another account's is answered as one never made: which ids exist is no client's to learn.
  if owner == nil or owner ~= account then
    return nil, f.field, id .. " is not a video this account made here (its " .. table.concat(f.fields, " and ")
      .. " price this request, and only the record of the task that made it holds them)"
  end
  local src, serr
  if task_id then
    src, serr = G.tasks:get(task_id)
    if src == false then
      return nil, nil, serr -- Redis cannot be read now
    end
  end
  local made = type(src) == "table" and type(src.request) == "table" and src.request
  if not made then
    return nil, f.field, "the task that made " .. id .. " is no longer recorded here, and its "
      .. table.concat(f.fields, " and ") .. " price this request"
  end
  -- What it was made with: a field its request left out is the provider's default (a video
  -- made without model_name is kling-v1's), as the catalog that priced it says.
  local facts = billing.product(made, { provider = made.provider or G.cfg.price_provider }) or made
  -- A source this endpoint cannot take is refused here, naming it, not forwarded to be refused
  -- (nor a model the client never named refused as the client's).
  if f.from and made.endpoint and not f.from[made.endpoint] then
    return nil, f.field, id .. " was made by " .. tostring(made.endpoint) .. ", and this endpoint takes only what "
      .. validate.list_words(f.from) .. " made"
  elseif def.models and facts.model and not def.models[facts.model] then
    return nil, f.field, id .. " was made with " .. tostring(facts.model) .. ", and this endpoint takes only videos of "
      .. validate.list_words(def.models)
  end
  for _, name in ipairs(f.fields) do
    local v = facts[name]
    if req[name] == nil then
      req[name] = v
    elseif v ~= nil and req[name] ~= v then
      return nil, name, "must be " .. tostring(v) .. ", the " .. name .. " " .. id .. " was made with (the provider"
        .. " bills this request by it)"
    end
  end
  return true
end

return M
