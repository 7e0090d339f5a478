local metrics = require "kling.gateway.metrics"

local rendered = require("spec.support.gateway_metrics").rendered

-- The value of one series in an exposition text, or nil.
local function value(text, series)
  return tonumber(text:match("\n" .. series:gsub("%p", "%%%0") .. " (%S+)\n"))
end

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
      { "/gateway/ready", "GET", "ready" },
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

  it("the spend is a counter named as Prometheus names counters, with _total", function()
    local text = rendered()
    assert.equal(2500000, value(text, 'kling_gateway_spent_micros_total{account="alice",currency="CNY"}'), text)
    assert.truthy(text:find("\n# TYPE kling_gateway_spent_micros_total counter\n", 1, true), text)
    -- every counter it writes ends in _total
    for name in text:gmatch("\n# TYPE ([%w_]+) counter") do
      assert.matches("_total$", name)
    end
  end)

  -- With a Redis store the counter named journal_errors counted every failed Redis call, the
  -- reads of a balance or a task included, and said "journal (or Redis store) writes".
  it("one node counts its journal's failed writes; a Redis store its failed calls, by stage", function()
    local one = rendered(nil, { journal_errors = 2, task_journal_errors = 1 })
    assert.equal(3, value(one, "kling_gateway_journal_errors_total"), one)
    assert.is_nil(one:find("store_errors", 1, true))
    local shared = rendered(nil, { store_errors = function() return { connect = 4, call = 5 } end })
    assert.equal(4, value(shared, 'kling_gateway_store_errors_total{stage="connect"}'), shared)
    assert.equal(5, value(shared, 'kling_gateway_store_errors_total{stage="call"}'), shared)
    assert.truthy(shared:find("\n# TYPE kling_gateway_store_errors_total counter\n", 1, true), shared)
    assert.is_nil(shared:find("journal_errors", 1, true), shared)
  end)

  it("a Redis call that fails, a read as much as a write, is counted by its stage", function()
    local gredis = require "kling.gateway.redis"
    local counts = {}
    local errors = { incr = function(_, k, n, init)
      counts[k] = (counts[k] or init or 0) + n
    end, get = function(_, k) return counts[k] end }
    local refuse_connect
    local red = { set_timeout = function() end, get_reused_times = function() return 1 end,
      close = function() end, set_keepalive = function() end,
      connect = function()
        if refuse_connect then
          return nil, "connection refused"
        end
        return true
      end,
      evalsha = function() return nil, "ERR a read refused" end }
    package.loaded["nginx.redis"] = { new = function() return red end }
    local ok, err = pcall(function()
      local r = gredis.new("redis://127.0.0.1:6379/0", { errors = errors })
      r.shas["return redis.call('GET', ARGV[1] .. 'x')"] = "sha"
      local res, rerr = r:run("return redis.call('GET', ARGV[1] .. 'x')")
      assert.is_nil(res)
      assert.matches("a read refused", rerr)
      refuse_connect = true
      assert.is_nil((r:run("return 1")))
      assert.same({ connect = 1, call = 1 }, r:error_counts())
    end)
    package.loaded["nginx.redis"] = nil
    assert(ok, err)
  end)
end)
