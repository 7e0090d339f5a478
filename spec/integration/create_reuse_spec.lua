-- Creates share the client's kept-alive connections (issue 15.5). A kept-alive connection may
-- close just as a create goes out on it; libcurl would then send the create again on a new
-- connection, unasked. The driver refuses that second send, so such a create ends in the
-- lifecycle's uncertain path: looked up by its external id and adopted, one task, one charge.
local sim = require "support.sim"

local POST = "POST /v1/videos/text2video"
local LOOKUP = "GET /v1/videos/text2video?external_task_id"

-- The access log's lines from byte `from` on: {method, path, conn} per request.
local function log_since(from)
  local f = assert(io.open(sim.info().dir .. "/access.log", "rb"))
  f:seek("set", from)
  local out = {}
  for line in f:lines() do
    local method, path = line:match('"(%u+) (%S+) HTTP')
    out[#out + 1] = { method = method, path = path, conn = line:match(" conn=(%S+) ") }
  end
  f:close()
  return out
end

local function log_size()
  local f = assert(io.open(sim.info().dir .. "/access.log", "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

-- The connections the create POSTs went out on, and whether each had carried a request before.
local function create_connections(lines)
  local used, out = {}, {}
  for _, l in ipairs(lines) do
    if l.method == "POST" and l.path == "/v1/videos/text2video" then
      out[#out + 1] = { conn = l.conn, reused = used[l.conn] == true }
    end
    used[l.conn] = true
  end
  return out
end

for _, scheme in ipairs { "http", "https" } do
  describe("a create on a kept-alive connection (" .. scheme .. ")", function()
    before_each(function()
      sim.fresh()
    end)

    after_each(function()
      sim.fresh()
    end)

    it("issue 15.5: goes out on a connection an earlier request left open", function()
      local client = sim.client { base_url = sim.info()[scheme] }
      local from = log_size()
      local warm = client:submit_many { { prompt = "warm-up [sim:seconds=0.2]" } }
      assert.equal(1, client:wait_all(warm, { timeout = 30 }).succeeded)
      local tasks = client:submit_many { { prompt = "second [sim:seconds=0.2]" } }
      assert.equal(1, client:wait_all(tasks, { timeout = 30 }).succeeded)
      local posts = create_connections(log_since(from))
      assert.equal(2, #posts)
      assert.is_true(posts[2].reused, "the second create opened a new connection")
    end)

    it("issue 15.5: whose connection dies after the server read it is sent once, then adopted by external id "
      .. "(one task, one charge)", function()
      local client = sim.client { base_url = sim.info()[scheme] }
      local from = log_size()
      local warm = client:submit_many { { prompt = "warm-up [sim:seconds=0.2]" } }
      assert.equal(1, client:wait_all(warm, { timeout = 30 }).succeeded)
      local charged = sim.charges("kling")
      -- The simulator makes the task, then closes the connection without an answer.
      sim.faults({ { kind = "reset", method = "POST", count = 1, phase = "after" } })
      local tasks = client:submit_many { { prompt = "lost answer [sim:seconds=0.2]" } }
      local res = client:wait_all(tasks, { timeout = 60 })
      local st = sim.stats()
      -- The warm-up's create and this one: libcurl's silent resend would be a third POST.
      assert.equal(2, st.by_route[POST])
      assert.equal(2, st.creates)
      assert.equal(1, st.faults_injected)
      assert.is_true((st.by_route[LOOKUP] or 0) >= 1)
      assert.equal(1, res.succeeded)
      assert.equal(1, client:engine():stats().adopted)
      local posts = create_connections(log_since(from))
      assert.equal(2, #posts)
      assert.is_true(posts[2].reused, "the create whose answer was lost went out on a new connection")
      -- One charge: the task's price once (the warm-up's the same kind and price).
      assert.equal(2 * charged, sim.charges("kling"))
      assert.is_true(charged > 0)
    end)
  end)
end
