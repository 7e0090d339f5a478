-- When a tracked task's create may still be in flight, and its tracking's deadline: from the
-- creating node's wait kept in the record, not from the node that polls (an attacker review:
-- a poll leader with shorter timeouts looked up a create still waiting for its answer, found
-- nothing, released its hold, and the upstream made and billed the task).
local track = require "kling.gateway.track"

describe("kling.gateway.track.window", function()
  -- a node whose own wait is 14 s (timeout 1, connect_timeout 1) and whose lookups take 10 s
  local G = { cfg = { poll = { deadline = 4 } }, creating_grace_ms = 14000, lookups_ms = 10000 }

  it("a create still creating is not looked up before its creating node's wait, longer than this node's", function()
    local deadline, in_flight_until = track.window(G, { created_at = 1000, state = "creating", in_flight_ms = 29000 },
      2000)
    assert.are.equal(30000, in_flight_until)
    assert.are.equal(40000, deadline) -- the lookups get their time after it
  end)

  it("a record that keeps no wait (written before it was kept) gets this node's", function()
    local deadline, in_flight_until = track.window(G, { created_at = 1000, state = "creating" }, 2000)
    assert.are.equal(15000, in_flight_until)
    assert.are.equal(25000, deadline)
  end)

  it("a shorter wait in the record does not shorten this node's own", function()
    local _, in_flight_until = track.window(G, { created_at = 1000, state = "creating", in_flight_ms = 3000 }, 2000)
    assert.are.equal(15000, in_flight_until)
  end)

  it("a create being looked up keeps its lookups' time; a created task has only the poll deadline", function()
    local deadline, in_flight_until = track.window(G, { created_at = 1000, state = "lookup", in_flight_ms = 29000 },
      2000)
    assert.is_nil(in_flight_until)
    assert.are.equal(40000, deadline)
    deadline, in_flight_until = track.window(G, { created_at = 1000, state = "active", in_flight_ms = 29000 }, 2000)
    assert.is_nil(in_flight_until)
    assert.are.equal(5000, deadline)
  end)
end)

describe("kling.gateway.proxy.stale", function()
  local proxy = require "kling.gateway.proxy"
  local function cfg(base_url, timeout, connect_timeout)
    return { upstream = { base_url = base_url, timeout = timeout, connect_timeout = connect_timeout } }
  end

  it("is nothing while the config says what the conf was written for (whole seconds, as written)", function()
    local r = proxy.rendered(cfg("https://API.example.com/v1", 29.5, 5))
    assert.are.same({ origin = "https://api.example.com", timeout = 30, connect_timeout = 5 }, r)
    assert.is_nil(proxy.stale(cfg("https://api.example.com", 30, 5), r))
  end)

  it("names the field that a reload cannot change, with both values", function()
    local r = proxy.rendered(cfg("http://127.0.0.1:8080", 30, 5))
    assert.matches("upstream.timeout is 2 in the config but the nginx conf was written for 30",
      proxy.stale(cfg("http://127.0.0.1:8080", 2, 5), r), 1, true)
    assert.matches("upstream.base_url is http://127.0.0.1:9090", proxy.stale(cfg("http://127.0.0.1:9090", 30, 5), r),
      1, true)
    assert.matches("upstream.connect_timeout", proxy.stale(cfg("http://127.0.0.1:8080", 30, 1), r), 1, true)
  end)
end)
