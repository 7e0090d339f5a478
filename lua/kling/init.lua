--- The kling module: `kling.new` makes a client; prices, ledgers and callbacks.
-- kling: generate Kling AI videos, images and audio from Lua, through the official API and
-- the gateways that resell it. See README.md for the API.
-- @module kling
local core = require "kling.core"
local client = require "kling.client"
local errors = require "kling.errors"
local providers = require "kling.providers"
local billing = require "kling.billing"
local quote = require "kling.money.quote"

--- The module table: `kling.new`, the billing functions, and these fields.
---@class kling.module
---@field version string the C core's version
---@field errors table `kling.errors` (`errors.kinds`: every error kind and what it means)
---@field providers string[] the provider names, official first
---@field webhook table `kling.webhook`: callbacks as canonical task fields
local M = {
  version = core.version,
  errors = errors,
  providers = providers.names,
}

--- Makes a client of one provider (see `kling.client.new` for every option).
-- kling.new{provider =, ...} -> client | nil, err (see kling.client)
---@param opts? kling.ClientOptions provider, credentials, base URL, timeouts, budget
---@return kling.Client|nil client
---@return kling.Error|nil err unknown provider, missing credentials, bad base URL or budget
-- @function new
M.new = client.new

--- The price of a request before it is sent (see `kling.billing.estimate`).
-- Prices (see kling.billing): a request's price before it is sent, the charge for what was
-- delivered, the comparison across providers, and ledgers with hard-cap budgets.
-- What the provider would refuse (an unknown field such as `sond`, another provider's field
-- name, a value out of range) is refused by name, as `kling estimate` (which calls this) and
-- `kling quote` do (kling.money.quote.cannot_honour): no price for a request no create would
-- send. A prompt or image left out is stood in for: a price needs neither. The provider's
-- rules come first, in submit's order (the same first error as submit); then an error of a
-- price fact itself is billing.estimate's, which looks at those facts only; `unpriced` comes
-- after the request is known to be sendable.
---@param req table a canonical request (its `provider`, default "kling", picks the catalog)
---@param opts? table `catalog` to price with another catalog
---@return kling.Quote|nil quote `amount` (decimal string), `micros`, `currency`, `rule`, `breakdown`
---@return kling.Error|nil err kind `validation` or `unpriced`
-- @function estimate
function M.estimate(req, opts)
  local q, err = billing.estimate(req, opts)
  return quote.strict(opts and opts.provider or type(req) == "table" and req.provider or nil, req, q, err)
end
--- The charge for what a task delivered (see `kling.billing.settle`).
-- What the provider would refuse of the request (`sond`, a duration no create takes) is refused
-- by name, as kling.estimate refuses it: a task was made from a sendable request, and one
-- misspelt was priced as if the field were absent (`kling estimate --actual-duration`).
---@param req table the canonical request the task was made from
---@param usage table `duration` (seconds, number or decimal string) and `count` actually delivered
---@param opts? table `catalog`
---@return kling.Quote|nil quote the charge, same shape as an estimate
---@return kling.Error|nil err
-- @function settle
function M.settle(req, usage, opts)
  local q, err = billing.settle(req, usage, opts)
  return quote.strict(opts and opts.provider or type(req) == "table" and req.provider or nil, req, q, err)
end
--- A request priced on every provider, grouped by currency (see `kling.billing.quote`).
-- Each currency is ranked cheapest first on its own; the list is one ranking across
-- currencies only with a rate (USD per unit) for each of them.
---@param req table a canonical request
---@param opts? table `providers` (names to ask), `rates` ({CNY = "0.14", ["evolink-credits"] = "0.01"})
---@return kling.Quotes quotes with `groups`, `ranked`, `note`, `assumed`, `unavailable`
-- @function quote
M.quote = billing.quote
--- A ledger with a hard-cap budget per currency (see `kling.billing.ledger`).
---@param opts table `limit` (decimal string) and `currency`, or `budgets = {{limit =, currency =}, ...}`; `rates`
---@return kling.Ledger|nil ledger
---@return kling.Error|nil err
-- @function ledger
M.ledger = billing.ledger
--- Replaces a provider's price catalog for this process (nil restores it).
---@param provider string a provider name
---@param catalog table|nil a catalog shaped like lua/kling/prices/PROVIDER.lua
---@return boolean|nil ok
---@return kling.Error|nil err what is wrong with the catalog
-- @function set_catalog
M.set_catalog = billing.set_catalog

-- Callbacks: kling.webhook.parse(provider, raw_body, headers, {secret =}) -> canonical task fields.
M.webhook = require "kling.webhook"

return M
