-- kling.gateway.forward's body filter (the proxy_pass path of a create): the upstream's answer
-- arrives in chunks and is kept only up to the driver's cap (kling.resty.http max_body, 2 MiB).
-- It kept up to 4 MiB, twice what the capture and cosocket paths take, before giving up;
-- past the cap it now keeps nothing more and hands the create's machine a too_large result (a
-- protocol error: the create is looked up by its external id, never taken from a cut body).
local forward = require "kling.gateway.forward"
local api = require "kling.gateway.api"
local metrics = require "kling.gateway.metrics"
local http = require "kling.resty.http"

describe("kling.gateway.forward body_filter", function()
  local saved_ngx, saved_outcome, saved_record, saved_observe
  local fake -- the ngx the filter sees

  setup(function()
    saved_ngx = rawget(_G, "ngx")
    saved_outcome, saved_record, saved_observe = api.outcome, api.record, metrics.observe
    api.outcome = function()
      return "created", { status = 200, code = 0, message = "SUCCEED", data_json = "{}" }
    end
    api.record = function() end
    metrics.observe = function() end
  end)
  teardown(function()
    _G.ngx = saved_ngx -- luacheck: ignore 122
    api.outcome, api.record, metrics.observe = saved_outcome, saved_record, saved_observe
  end)

  -- A create in flight as access phase left it, with a machine that keeps what it was fed.
  local function create()
    local c = { sent = true, answered = true, upstream_status = 200, content_type = "application/json",
      sent_at = 0 }
    c.m = { answer = function(_, _, res)
      c.fed = res
      return {}
    end }
    fake = { ctx = { kling_create = c }, arg = {}, update_time = function() end, now = function() return 0 end,
      time = function() return 0 end, log = function() end, ERR = 4 }
    _G.ngx = fake -- luacheck: ignore 122
    return c
  end

  local function kept(c)
    if c.buf then
      local n = 0
      for _, b in ipairs(c.buf) do
        n = n + #b
      end
      return n
    end
    return #(c.body or "")
  end

  -- Feeds the chunks, then the end; returns the largest number of bytes the filter kept meanwhile.
  local function feed(c, chunks)
    local most = 0
    for _, chunk in ipairs(chunks) do
      fake.arg[1], fake.arg[2] = chunk, false
      forward.body_filter({})
      assert.is_nil(fake.arg[1]) -- nothing of the upstream's reaches the client
      most = math.max(most, kept(c))
    end
    fake.arg[1], fake.arg[2] = "", true
    forward.body_filter({})
    return most
  end

  it("keeps a usual answer as it came and hands it to the machine", function()
    local c = create()
    local body = '{"code":0,"message":"SUCCEED","data":{"task_id":"t1","task_status":"submitted"}}'
    feed(c, { body })
    assert.is_true(c.fed.ok)
    assert.equal(body, c.fed.body)
    assert.matches('"code":0', fake.arg[1], 1, true) -- the gateway's own answer
  end)

  it("keeps no more than max_body of a longer answer and reads it as too large (a protocol error)", function()
    local max = http.DEFAULTS.max_body
    local c = create()
    local piece = string.rep("x", 64 * 1024)
    local chunks = { '{"code":0,"message":"SUCCEED","data":{"task_id":"t1","task_status":"submitted","pad":"' }
    for i = 2, 48 do -- 3 MiB: between the cap and the 4 MiB kept before
      chunks[i] = piece
    end
    chunks[#chunks + 1] = '"}}'
    local most = feed(c, chunks)
    assert.is_true(most <= max, most .. " bytes kept")
    assert.is_false(c.fed.ok)
    assert.equal("too_large", c.fed.error)
    assert.is_true(c.fed.sent)
    assert.is_true(c.fed.received)
    assert.is_nil(c.fed.body)
    assert.is_nil(c.body)
    assert.is_nil(c.buf)
  end)
end)
