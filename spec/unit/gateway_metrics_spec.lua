local metrics = require "kling.gateway.metrics"

describe("kling.gateway.metrics", function()
  -- The log phase's route label, read without counting slashes by gsub (issue 12's speed work).
  it("issue 12.5: each request is counted under its route", function()
    for _, c in ipairs {
      { "/v1/videos/text2video", "POST", "create" },
      { "/v1/videos/text2video", "GET", "list" },
      { "/v1/videos/text2video/gwabc", "GET", "query" },
      { "/v1/videos/text2video/", "GET", "query" },
      { "/v1/videos", "GET", "list" },
      { "/gateway/balance", "GET", "balance" },
      { "/kling/callback", "POST", "callback" },
      { "/metrics", "GET", "metrics" },
      { "/gateway/health", "GET", "health" },
      { "/gateway/admin/accounts", "POST", "admin" },
      { "/elsewhere", "GET", "other" },
      { "/x/v1/videos", "GET", "other" },
    } do
      assert.equal(c[3], metrics.route(c[1], c[2]), c[1] .. " " .. c[2])
    end
  end)

  it("issue 12: a request nginx refused before it had a URI (request line too long) is counted, not a raise", function()
    assert.equal("other", metrics.route(nil, "GET"))
  end)

  -- A worker's counts stay in its own table until flushed: a create no longer does five
  -- shared-dict increments (issue 12's speed work).
  it("issue 12.5: counts reach the shared dict when the worker flushes them, added up", function()
    local store = {}
    local fake = { incr = function(_, k, n, init)
      store[k] = (store[k] or init or 0) + n
      return store[k]
    end }
    local saved = rawget(_G, "ngx")
    rawset(_G, "ngx", { shared = { [metrics.DICT] = fake } })
    local ok, err = pcall(function()
      metrics.inc("kling_gateway_creates_forwarded_total")
      metrics.inc("kling_gateway_creates_forwarded_total")
      metrics.inc("kling_gateway_refusals_total", 'reason="balance"', 3)
      metrics.observe("create", 0.02)
      assert.same({}, store) -- nothing in the dict before a flush
      metrics.flush()
      assert.equal(2, store["kling_gateway_creates_forwarded_total{}"])
      assert.equal(3, store['kling_gateway_refusals_total{reason="balance"}'])
      assert.equal(1, store['kling_gateway_upstream_seconds_bucket{op="create",le="0.025"}'])
      assert.equal(1, store['kling_gateway_upstream_seconds_count{op="create"}'])
      assert.equal(0.02, store['kling_gateway_upstream_seconds_sum{op="create"}'])
      metrics.inc("kling_gateway_creates_forwarded_total")
      metrics.flush()
      metrics.flush() -- nothing pending: nothing added twice
      assert.equal(3, store["kling_gateway_creates_forwarded_total{}"])
    end)
    rawset(_G, "ngx", saved)
    assert(ok, err)
  end)
end)

