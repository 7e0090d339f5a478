-- The lifecycle machine alone (issue 10): every scenario of spec/support/lifecycle_scenarios.lua
-- driven on a fake clock, with no I/O, each reaching its expected end state and money lines.
local core = require "kling.core"
local machine = require "kling.lifecycle.machine"
local providers = require "kling.providers"
local scenarios = require "support.lifecycle_scenarios"

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
end)
