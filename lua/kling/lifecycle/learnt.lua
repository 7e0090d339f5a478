--- What the runners' learnt durations are kept by (the kind of a task), shared by the engine
-- (kling.engine.learn) and the blocking runner, so both read and write the same kinds of the
-- same cache file (kling.engine.durations_file).
-- @module kling.lifecycle.learnt
local quote = require "kling.money.quote"

local M = {}

--- A task's kind: "provider|host|model|endpoint|mode|duration|sound", read from the product
-- the request asks for after the provider's defaults (kling.money.quote.product), so a mode
-- left at its default and the same mode written out are one kind. A request the catalog
-- cannot read (an unpriced provider) keeps its own fields.
---@param client kling.Client
---@param model string the model (the engine's slot key)
---@param endpoint string
---@param req table the canonical request
function M.kind(client, model, endpoint, req)
  local f = quote.product(req, { provider = client.provider.name, catalogs = client.catalogs }) or req
  return table.concat({ client.provider.name, tostring(client.base_url):match("^%a+://([^/:]+)") or "", model,
    tostring(endpoint), tostring(f.mode), tostring(f.duration), tostring(f.sound) }, "|")
end

return M
