-- Tasks without a user estimate against the simulator: a provider's own ETA places the polls.
local sim = require "support.sim"

local function polls_per_task(client, n, seconds)
  local reqs = {}
  for i = 1, n do
    reqs[i] = { prompt = string.format("eta %d [sim:seconds=%g]", i, seconds) }
  end
  local tasks = client:submit_many(reqs, { engine = { learn = false } })
  local res = client:wait_all(tasks, { timeout = seconds * 4 })
  assert.equal(n, res.succeeded)
  local e, polls = client:engine(), 0
  for _, t in ipairs(tasks) do
    polls = polls + e:polls_of(t)
  end
  return polls / n
end

describe("the engine without estimates", function()
  it("issue 15.2: EvoLink's task_info.estimated_time puts the next poll near the end", function()
    local evolink = sim.gateway("evolink", { access_key = false, secret_key = false, poll_min = 1, poll_max = 15 })
    local kling = sim.client { poll_min = 1, poll_max = 15 }
    local with_eta = polls_per_task(evolink, 3, 10)
    local backing_off = polls_per_task(kling, 3, 10)
    assert.is_true(with_eta <= 3, "EvoLink: " .. with_eta .. " polls a task")
    assert.is_true(backing_off > with_eta, "Kling (no ETA): " .. backing_off .. " vs EvoLink " .. with_eta)
  end)
end)
