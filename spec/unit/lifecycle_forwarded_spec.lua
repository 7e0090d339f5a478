-- The lifecycle machine's forwarded create (issue 10): a create its runner prepared and sends
-- itself (the gateway's: admitted, priced and held first; sent by the location's proxy_pass
-- once, or by the OpenResty runner). Everything its answer means is the machine's: made,
-- ended at once, refused (released), or uncertain (the tracker's to follow up).
local machine = require "kling.lifecycle.machine"
local providers = require "kling.providers"
local scenarios = require "support.lifecycle_scenarios"

local kling = assert(providers.get("kling"))
local A = scenarios.ANSWERS
local CALL = { method = "POST", path = "/v1/videos/text2video", body = "{}" }

-- A forwarded create's machine; call given: the runner sends it (and may again).
local function forwarded(call, o)
  o = o or {}
  local p = machine.profile { provider = kling, requeue_refused = false, max_attempts = call and 3 or 1,
    create_budget_ms = 10000 }
  return machine.forwarded({ task = { external_task_id = scenarios.EXT, endpoint = "videos/text2video",
    status = "queued" },
    key = "gw-1", now = 1000, call = call, record = o.record }, p)
end

-- The action types, in order.
local function types(acts)
  local out = {}
  for _, a in ipairs(acts) do
    out[#out + 1] = a.type == "journal" and ("journal:" .. a.what) or a.type
  end
  return out
end

local function find(acts, ty)
  for _, a in ipairs(acts) do
    if a.type == ty then
      return a
    end
  end
end

describe("issue 10: the gateway's create answer is the lifecycle machine's to decide", function()
  it("issue 10.1: a task in the answer is created; ended at once, it is settled or released", function()
    local m = forwarded()
    local acts = m:answer(1100, A.submitted(), 1700000000)
    assert.are.same({ "journal:created", "created" }, types(acts))
    assert.are.equal("t-1", acts[2].task.id)
    assert.are.equal(scenarios.EXT, acts[2].task.external_task_id) -- the answer's own word
    assert.are.equal("created", m.state)

    acts = forwarded():answer(1100, A.succeed(), 1700000000)
    assert.are.same({ "journal:created", "created", "settle", "done" }, types(acts))
    assert.are.equal("gw-1", acts[3].key)
    assert.is_nil(acts[4].err)

    acts = forwarded():answer(1100, A.failed(), 1700000000)
    assert.are.same({ "journal:created", "created", "release", "done" }, types(acts))
    assert.are.equal("server", acts[4].err.kind)
  end)

  it("an answer about another create (it echoes another external_task_id) is uncertain: looked up, never taken",
    function()
      local m = machine.forwarded({ task = { external_task_id = "gw-2", endpoint = "videos/text2video",
        status = "queued" }, key = "gw-2", now = 1000 }, machine.profile { provider = kling, requeue_refused = false,
        max_attempts = 1, create_budget_ms = 10000 })
      local acts = m:answer(1100, A.submitted(), 1700000000) -- about scenarios.EXT's task
      assert.are.same({ "journal:uncertain" }, types(acts))
      assert.is_nil(m.task.id)
      assert.are.equal("gw-2", m.task.external_task_id)
      assert.is_truthy(find(acts, "journal").err.message:find("about external_task_id " .. scenarios.EXT
        .. ", not gw-2", 1, true))
    end)

  it("issue 10.2: an answer after which the task may exist is uncertain: the tracker's, the hold kept", function()
    for _, kind in ipairs { "5xx", "reset", "stall", "malformed", "content_type" } do
      local m = forwarded()
      local acts = m:answer(1100, A[kind](), 1700000000)
      assert.are.same({ "journal:uncertain" }, types(acts), kind) -- no lookup sent, no money moved, no end
      assert.is_true(acts[1].err.uncertain, kind)
      assert.are.equal(scenarios.EXT, acts[1].err.external_task_id, kind)
      assert.are.equal("lookup_wait", m.state, kind)
      assert.is_nil(m.wake_at, kind)
    end
  end)

  it("issue 10.3: a refused create (nothing made) is released and ends with its error, never sent again", function()
    for kind, want in pairs { ["429"] = "rate_limited", ["1303"] = "rate_limited", not_found_dup = "validation",
      auth = "auth", connect = "network" } do
      local acts = forwarded():answer(1100, A[kind](), 1700000000)
      assert.is_nil(find(acts, "send"), kind)
      assert.is_nil(find(acts, "wake"), kind)
      assert.are.equal("gw-1", find(acts, "release").key, kind)
      assert.are.equal(want, find(acts, "done").err.kind, kind)
    end
    -- a refusal for want of a slot says so (the slot limiter's business)
    assert.is_true(find(forwarded():answer(1100, A["1303"](), 1700000000), "refused").slot_full)
  end)

  it("issue 10.4: a token expired in flight: renewed; a proxied create ends (auth), a sent one goes again", function()
    local acts = forwarded():answer(1100, A["1004"](), 1700000000)
    assert.are.same({ "renew_token", "release", "done" }, types(acts))
    assert.are.equal("auth", acts[3].err.kind)

    local m = forwarded(CALL)
    acts = m:answer(1100, A["1004"](), 1700000000)
    assert.are.same({ "renew_token", "send" }, types(acts))
    assert.are.equal("create", acts[2].purpose)
    assert.are.equal(CALL.body, acts[2].body)
    assert.are.same({ "journal:created", "created" }, types(m:answer(1200, A.submitted(), 1700000000)))
  end)

  it("issue 10.4: a create the runner sends that never left is sent again after the machine's delay", function()
    local m = forwarded(CALL)
    local acts = m:answer(1100, A.connect(), 1700000000)
    assert.are.same({ "retry", "wake" }, types(acts))
    assert.are.same({ "journal:create", "send" }, types(m:timer(acts[2].at)))
    assert.are.same({ "journal:created", "created" }, types(m:answer(acts[2].at + 50, A.submitted(), 1700000000)))
    assert.is_nil(m.wake_at) -- nothing more to wait for: the runner stops
  end)

  it("issue 10.4: the status line alone, before the body: refused, or made or maybe made", function()
    local m = forwarded()
    assert.is_nil(m:create_status(200))
    assert.is_nil(m:create_status(500)) -- may exist: looked up
    assert.is_nil(m:create_status(504))
    assert.are.equal("validation", m:create_status(400).kind)
    assert.are.equal("rate_limited", m:create_status(429).kind)
    assert.are.equal("auth", m:create_status(401).kind)
    assert.are.equal("creating", m.state) -- a question, not an event
  end)

  it("issue 10.4: a create its runner cannot send (its body cannot be encoded) is refused and released", function()
    local acts = forwarded():refuse(1000, { kind = "validation", message = "cannot be encoded" })
    assert.are.same({ "release", "done" }, types(acts))
    assert.are.equal("gw-1", acts[1].key)
  end)

  it("issue 10.4: the runner's record table becomes the machine (no second table per create)", function()
    local rec = {}
    local m = forwarded(nil, { record = rec })
    assert.are.equal(rec, m)
    assert.are.equal("creating", rec.state)
  end)
end)
