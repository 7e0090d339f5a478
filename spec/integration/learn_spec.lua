-- Tasks without a user estimate against the simulator: a provider's own ETA places the polls.
local sim = require "support.sim"
local files = require "support.files"
local durations_file = require "kling.engine.durations_file"

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

describe("the blocking runner", function()
  it("issue 10: client:run learns and uses learnt durations: the engine's kinds, windows and file", function()
    local path = files.tempdir() .. "/durations.json"
    local polls = {}
    for i = 1, 4 do
      local n = 0
      local c = sim.client { poll_min = 1, poll_max = 15, engine = { learn_file = path }, debug = function(text)
        if text:find("^kling> GET ") then
          n = n + 1
        end
      end }
      local t, err = c:run { prompt = string.format("blk %d [sim:seconds=4]", i) }
      assert.is_table(t, tostring(err))
      polls[i] = n
    end
    local kinds = durations_file.read(path)
    local kind, samples = next(kinds)
    assert.is_nil(next(kinds, kind))
    assert.matches("^kling|127.0.0.1|kling%-v1|videos/text2video|std|5|false$", kind)
    assert.equal(4, #samples)
    assert.is_true(polls[4] <= 3 and polls[1] > polls[4], table.concat(polls, " "))
    -- the engine reads the same kind from the same file
    local c = sim.client { engine = { learn_file = path } }
    assert.is_table(c:engine():expectation(kind))
  end)
end)
