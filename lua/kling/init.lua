-- kling: generate Kling AI videos, images and audio from Lua, through the official API and
-- the gateways that resell it. See README.md for the API.
local core = require "kling.core"
local client = require "kling.client"
local errors = require "kling.errors"
local providers = require "kling.providers"

local M = {
  version = core.version,
  errors = errors,
  providers = providers.names,
}

-- kling.new{provider =, ...} -> client | nil, err (see kling.client)
M.new = client.new

return M
