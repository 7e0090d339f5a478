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
end)
