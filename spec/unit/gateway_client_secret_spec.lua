-- The secret an account's forwarded callbacks are signed with (kling.gateway.deliveries
-- client_secret, shown to the client in GET /gateway/balance) is derived for the account AND the
-- keys it signs in with: derived from the name alone it outlived a leaked key replaced by PATCH
-- (or in the file), so whoever held the leaked key had read it and could go on signing task ends
-- that the client's receiver took for the gateway's.
local deliveries = require "kling.gateway.deliveries"

local G = { cfg = { client_webhook_secret = "whsec_" .. string.rep("c", 32) } }

describe("gateway client callback secret", function()
  local carol = { name = "carol", api_key = "gw-carol-key-1" }

  it("is the same for the same account and keys, and a Standard Webhooks secret", function()
    local s = deliveries.client_secret(G, carol)
    assert.matches("^whsec_[%w+/]+=*$", s)
    assert.equal(s, deliveries.client_secret(G, { name = "carol", api_key = "gw-carol-key-1" }))
  end)

  it("changes when a key is replaced (a leaked key no longer knows it)", function()
    local s = deliveries.client_secret(G, carol)
    assert.not_equal(s, deliveries.client_secret(G, { name = "carol", api_key = "gw-carol-key-2" }))
    local pair = { name = "carol", access_key = "ak-carol", secret_key = "sk-carol-1" }
    assert.not_equal(deliveries.client_secret(G, pair),
      deliveries.client_secret(G, { name = "carol", access_key = "ak-carol", secret_key = "sk-carol-2" }))
  end)

  it("differs between accounts, and a key cannot stand in for another part", function()
    assert.not_equal(deliveries.client_secret(G, carol),
      deliveries.client_secret(G, { name = "dave", api_key = "gw-carol-key-1" }))
    assert.not_equal(deliveries.client_secret(G, { name = "e", api_key = "k1234567" }),
      deliveries.client_secret(G, { name = "e", access_key = "k1234567", secret_key = "" }))
  end)

  it("is none without client_webhook_secret", function()
    assert.is_nil(deliveries.client_secret({ cfg = {} }, carol))
  end)
end)
