-- kling: generate Kling AI videos, images and audio from Lua, through the official API and
-- the gateways that resell it. See README.md for the API.
local core = require "kling.core"
local client = require "kling.client"
local errors = require "kling.errors"
local providers = require "kling.providers"
local billing = require "kling.billing"

local M = {
  version = core.version,
  errors = errors,
  providers = providers.names,
}

-- kling.new{provider =, ...} -> client | nil, err (see kling.client)
M.new = client.new

-- Prices (see kling.billing): a request's price before it is sent, the charge for what was
-- delivered, the comparison across providers, and ledgers with hard-cap budgets.
M.estimate = billing.estimate
M.settle = billing.settle
M.quote = billing.quote
M.ledger = billing.ledger
M.set_catalog = billing.set_catalog

-- Callbacks: kling.webhook.parse(provider, raw_body, headers, {secret =}) -> canonical task fields.
M.webhook = require "kling.webhook"

return M
