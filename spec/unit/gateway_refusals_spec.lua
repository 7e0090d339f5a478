-- Which upstream refusals of a create count toward the account's day (max_failed_daily): the
-- provider's own answer that the request was at fault, never a bare status (a proxy's 404 for
-- a path the upstream does not have answers every client alike: it must not lock them out).
local capacity = require "kling.gateway.capacity"

describe("an upstream refusal of a create", function()
  it("counts when the provider's code says the request was at fault", function()
    assert.is_true(capacity.counts_refusal { kind = "validation", code = 1201, http_status = 400 })
    assert.is_true(capacity.counts_refusal { kind = "content_policy", code = 1301, http_status = 400 })
    assert.is_true(capacity.counts_refusal { kind = "not_found", code = 1203, http_status = 404 })
  end)

  it("does not count a status without the provider's code, nor the gateway's own account's trouble", function()
    assert.is_false(capacity.counts_refusal { kind = "not_found", http_status = 404 })
    assert.is_false(capacity.counts_refusal { kind = "validation", http_status = 400 })
    assert.is_false(capacity.counts_refusal { kind = "rate_limited", code = 1303, http_status = 429 })
    assert.is_false(capacity.counts_refusal { kind = "quota", code = 1102, http_status = 429 })
    assert.is_false(capacity.counts_refusal { kind = "auth", code = 1002, http_status = 401 })
    assert.is_false(capacity.counts_refusal { kind = "server", code = 5000, http_status = 500 })
    assert.is_false(capacity.counts_refusal(nil)) -- refused before anything was sent (unsendable)
  end)
end)
