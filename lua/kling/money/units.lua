--- Units of money: every currency is its own, never added to another without a rate.
-- CNY, USD and each gateway's credits (API in One's and EvoLink's "credits" are different
-- money: "apiinone-credits", "evolink-credits") are distinct units; a ledger keeps a budget per
-- unit and the quote groups prices by unit.
-- @module kling.money.units
local M = {}

--- The unit a quote's money is counted in (a ledger's budgets are per unit).
-- The unit a quote's money is counted in: an ISO code (CNY, USD) stands for itself; a
-- provider's own unit ("credits") is that provider's ("evolink-credits"). A name already
-- qualified (with a "-") is kept. unit(quote) or unit(currency, provider).
---@param x kling.Quote|string a quote, or a currency name
---@param provider? string the provider whose unit a bare currency is (with a currency name)
---@return string|nil unit nil when there is no currency
function M.unit(x, provider)
  local currency = x
  if type(x) == "table" then
    currency, provider = x.currency, x.provider
  end
  if type(currency) ~= "string" or currency == "" then
    return nil
  end
  if currency:match("^%u%u%u$") or currency:find("-", 1, true) or type(provider) ~= "string" then
    return currency
  end
  return provider .. "-" .. currency
end

--- The unit a quote's money is in, as a name that can be compared ("evolink-credits").
-- A currency as money that can be compared: each gateway's credits are its own money (API in
-- One's and EvoLink's "credits" are different units), so a bare "credits" is qualified.
---@param q kling.Quote
---@return string currency "CNY", "USD", or PROVIDER-credits
function M.currency_id(q)
  if q.currency == "credits" then
    return q.provider .. "-credits"
  end
  return q.currency
end

return M
