-- The lifecycle machine alone (issue 10): every scenario of spec/support/lifecycle_scenarios.lua
-- driven on a fake clock, with no I/O, each reaching its expected end state and money lines.
local core = require "kling.core"
local machine = require "kling.lifecycle.machine"
local providers = require "kling.providers"
local scenarios = require "support.lifecycle_scenarios"

local effects = require "kling.lifecycle.effects"
local json = require "kling.json"

local kling = assert(providers.get("kling"))

describe("issue 10: the lifecycle machine alone, on a fake clock", function()
  for _, sc in ipairs(scenarios.scenarios) do
    it(sc.name .. " (" .. sc.profile .. ")", function()
      local out = scenarios.drive(sc, machine, kling, core)
      local e = sc.expect
      assert.are.equal(e.status, out.status)
      if e.err then
        assert.is_table(out.err)
        assert.are.equal(e.err, out.err.kind)
      else
        assert.is_nil(out.err)
      end
      if e.sends then
        assert.are.same(e.sends, out.sends)
      end
      assert.are.same(e.money, out.money)
      assert.are.equal(1, out.done) -- one end, announced once
      if e.uncertain then
        assert.is_true(out.err.uncertain)
        assert.are.equal(scenarios.EXT, out.err.external_task_id)
        assert.are.equal(scenarios.EXT, out.err.ledger_key)
      end
      assert.are.equal(e.renewals or 0, out.renewals)
      if e.refused then
        assert.are.same(e.refused, out.refused)
      end
      assert.are.equal(e.cancel_refused or nil, out.cancel_refused)
    end)
  end

  it("reads no clock: the same scenario gives the same times twice", function()
    local sc = scenarios.scenarios[1]
    local a = scenarios.drive(sc, machine, kling, core)
    local b = scenarios.drive(sc, machine, kling, core)
    assert.are.equal(a.now, b.now)
  end)

  it("a success is settled once however many times its end is heard", function()
    local out = scenarios.drive({ name = "dup", profile = "engine", callback = true,
      callbacks = { { at = "after_answer", send = 1, status = "succeed" } } }, machine, kling, core)
    local acts = out.machine:callback(out.now, { id = "t-1", status = "succeeded" })
    assert.are.same({}, acts)
    assert.are.same({}, out.machine:news(out.now, { id = "t-1", status = "succeeded" }))
  end)

  it("issue 10: the external id is given only where the endpoint takes one (the engine did not ask)", function()
    local function create_body(P)
      local n = 0
      local m = machine.new { provider = P, request = scenarios.REQUEST, random = function(nb)
        n = n + 1
        return string.rep("0", nb * 2 - 1) .. n
      end }
      for _, a in ipairs(m:start(0)) do
        if a.type == "send" then
          return json.decode(a.body), m
        end
      end
    end
    local body, m = create_body(kling)
    assert.are.equal(scenarios.EXT, body.external_task_id)
    assert.are.equal(scenarios.EXT, m.task.external_task_id)
    -- the same dialect with an endpoint that takes none
    local refusing = setmetatable({ takes = function() return false end }, { __index = kling })
    body, m = create_body(refusing)
    assert.is_nil(body.external_task_id)
    assert.is_nil(m.task.external_task_id)
  end)

  it("issue 10: token renewal is one rule for every runner: each request resends once, the token is "
    .. "signed afresh at most once a second per client", function()
    local ctx = { auth = core.auth { access_key = "ak", secret_key = "sk" } }
    local t1 = ctx.auth:bearer(1000)
    assert.are.equal(t1, ctx.auth:bearer(1001)) -- cached
    effects.renew_token(ctx, 50000)
    local t2 = ctx.auth:bearer(1002)
    assert.are_not.equal(t1, t2)
    effects.renew_token(ctx, 50500) -- another request saw the same expiry within the second
    assert.are.equal(t2, ctx.auth:bearer(1003))
    effects.renew_token(ctx, 51600)
    assert.are_not.equal(t2, ctx.auth:bearer(1004))
  end)

  it("issue 10: a journal line announces the create before it is sent, and the id once known", function()
    local out = {}
    local m = machine.new { provider = kling, request = scenarios.REQUEST, random = function(nb)
      return string.rep("0", nb * 2 - 1) .. "1"
    end }
    for _, a in ipairs(m:start(0)) do
      out[#out + 1] = a.type .. (a.what and (":" .. a.what) or "")
    end
    for _, a in ipairs(m:answer(50, scenarios.ANSWERS.submitted(), 0)) do
      out[#out + 1] = a.type .. (a.what and (":" .. a.what) or "")
    end
    assert.are.same({ "journal:create", "send", "journal:created", "created" }, out)
    assert.are.equal("t-1", m.task.id)
  end)

  it("issue 10: a callback older than what a poll told (submitted after processing) moves nothing back", function()
    local m = machine.new { provider = kling, request = scenarios.REQUEST, random = function(nb)
      return string.rep("0", nb * 2 - 1) .. "1"
    end, callback = true }
    local sched = core.sched { min_interval_ms = 1000, max_interval_ms = 15000, seed = 1 }
    m:watch(0, sched, 600000)
    m:start(0)
    m:answer(50, scenarios.ANSWERS.processing(), 0)
    assert.are.equal("running", m.task.status)
    local acts = m:callback(100, assert(kling.parse_task(json.decode(scenarios.ANSWERS.submitted().body).data)))
    assert.are.equal("running", m.task.status)
    for _, a in ipairs(acts) do
      assert.are_not.equal("news", a.type)
    end
  end)
end)
