-- The lifecycle scenarios (spec/support/lifecycle_scenarios.lua) through the engine runner
-- (kling.engine: submit, wait_all, deliver, cancel) against the real simulator: each must
-- reach the end the machine alone reaches and leave the same ledger lines in the client's
-- real ledger. The engine has a callback intake (deliver) and takes a cancel, so callbacks
-- before, after and instead of polls and cancels are staged here; a scenario the simulator
-- cannot stage is reported pending, saying why (spec/support/lifecycle_sim.lua).
local json = require "kling.json"
local sim = require "support.sim"
local scenarios = require "support.lifecycle_scenarios"
local staged = require "support.lifecycle_sim"

-- The engine runs the engine profile (uncertain creates looked up, refused ones queued again).
local CAPS = { profiles = { engine = true }, callbacks = true, cancel = true, connect = true, precreate = true }

-- A callback's body as the official API posts it: the task object in the scenario's status.
local STATUS = { processing = "processing", succeed = "succeed", failed = "failed", submitted = "submitted" }
local function callback_body(t, status)
  local d = { task_id = t.id, task_status = STATUS[status], task_status_msg = "", created_at = 1700000000000,
    updated_at = 1700000000000, task_info = { external_task_id = t.external_task_id } }
  if status == "succeed" then
    d.task_result = { videos = { { id = "v-1", url = "https://cdn.example.com/v.mp4", duration = "5.1" } } }
  end
  return assert(json.encode(d))
end

describe("issue 10: the lifecycle scenarios through the engine runner against the simulator", function()
  setup(function()
    sim.reset()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)

  after_each(function()
    sim.clear_faults()
  end)

  for _, sc in ipairs(scenarios.scenarios) do
    local st, why = staged.staging(sc, CAPS)
    if not st then
      pending(sc.name .. " (" .. sc.profile .. "): " .. why)
    else
      it(sc.name .. " (" .. sc.profile .. ")", function()
        local c = staged.client(sc)
        local req = staged.request(sc, st)
        if st.precreate then -- a task already under the external id the engine adopts
          staged.precreate(req)
        end
        local t, e
        local cancel_refused
        staged.stage(c, st, { on_answer = function(n, _, feed)
          for _, cb in ipairs(sc.callbacks or {}) do
            if cb.send == n and cb.at == "before_answer" then
              e:deliver("kling", callback_body(t, cb.status), {})
            end
          end
          feed()
          for _, cb in ipairs(sc.callbacks or {}) do
            if cb.send == n and cb.at == "after_answer" then
              e:deliver("kling", callback_body(t, cb.status), {})
            end
          end
          if sc.cancel_at_wake == n then -- the caller gives the task up once the k-th answer is in
            local ok, cerr = e:cancel(t)
            if not ok and cerr.kind == "validation" then
              cancel_refused = true
            end
          end
        end })
        -- the engine runs on the staged driver
        e = c:engine { callback_silence = 0.5, learn_file = false, min_interval = 0.2, max_interval = 1 }
        if #st.faults > 0 then
          sim.faults(st.faults)
        end
        t = e:submit(req, { timeout = st.timeout_s, adopt = sc.adopt })
        local res = c:wait_all({ t }, { timeout = 60 })
        local expect = sc.expect
        assert.are.equal(0, res.unfinished)
        local err = res[1].error
        if expect.err then
          assert.is_table(err)
          assert.are.equal(expect.err, err.kind)
        else
          assert.is_nil(err)
        end
        if staged.TERMINAL[expect.status] or expect.status == "pending" then
          assert.are.equal(expect.status, t.status)
        else
          assert.is_nil(staged.TERMINAL[t.status]) -- still running at the provider
        end
        if expect.uncertain then
          assert.is_true(err.uncertain)
          assert.are.equal(t.external_task_id, err.ledger_key)
        end
        assert.are.equal(expect.cancel_refused or nil, cancel_refused)
        if expect.sends then
          -- the kinds of request the machine alone sent (how many polls, and whether a task
          -- found by a lookup had already ended, is the simulator's timing)
          local kinds = {}
          for _, p in ipairs(expect.sends) do
            kinds[p] = true
          end
          local stats = e:stats()
          if not kinds.poll then
            assert.are.equal(0, stats.polls)
          end
          assert.are.equal(kinds.lookup or false, stats.lookups > 0)
          assert.are.equal(kinds.create or false, stats.creates > 0)
        end
        assert.are.same(expect.money, staged.ops(c.ledger))
        if expect.money[1] == "reserve" then
          -- the reservation is the estimate; a settle is the price of what was delivered
          local q = assert(c:estimate(req))
          assert.are.equal(q.micros, c.ledger:entries()[1].micros)
        end
      end)
    end
  end
end)
