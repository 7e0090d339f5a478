-- The real client against the real simulator (nginx) over loopback: success, failure,
-- every fault kind, auth, validation, lookups; and never a create sent twice.
local sim = require "support.sim"

local PROMPT = "a lighthouse in a storm, slow dolly in"

local function creates()
  return sim.stats().creates
end

local function route_count(route)
  return sim.stats().by_route[route] or 0
end

describe("client against the simulator", function()
  local client

  setup(function()
    sim.reset()
    sim.config { task_seconds = 1 }
    client = sim.client()
  end)

  after_each(function()
    sim.clear_faults()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)

  it("runs text-to-video end to end and downloads a real video", function()
    local task = assert(client:submit { prompt = PROMPT, duration = 5, mode = "std" })
    assert.is_string(task.id)
    assert.matches("^kl%-", task.external_task_id)
    assert.are.equal("queued", task.status)
    local seen = {}
    local done = assert(task:wait { on_progress = function(t) seen[#seen + 1] = t.status end, timeout = 30 })
    assert.are.equal("succeeded", done.status)
    assert.is_true(#seen >= 1)
    local video = done.videos[1]
    assert.matches("^https?://", video.url)
    assert.are.equal(5, video.duration)
    local path = os.tmpname()
    local _, bytes = assert(client:download(video.url, path))
    assert.is_true(bytes > 1000)
    local f = assert(io.open(path, "rb"))
    local head = f:read(12)
    f:close()
    os.remove(path)
    assert.are.equal("ftyp", head:sub(5, 8))
  end)

  it("runs image-to-video with an inline PNG over HTTPS with the simulator's CA", function()
    local https = sim.client { base_url = sim.info().https }
    local f = assert(io.open(sim.info().dir .. "/media/sample.png", "rb"))
    local png = require("kling.core").b64encode(f:read("a"))
    f:close()
    local done = assert(https:run({ image = "data:image/png;base64," .. png, prompt = "wave", model = "kling-v1-6" },
      { timeout = 30 }))
    assert.are.equal("videos/image2video", done.endpoint)
    assert.are.equal("succeeded", done.status)
  end)

  it("works with a plain API key as the bearer token", function()
    local c = sim.client { api_key = sim.info().api_key }
    assert(c:run({ prompt = PROMPT }, { timeout = 30 }))
  end)

  it("reports a failed task as a typed error", function()
    local task = assert(client:submit { prompt = PROMPT .. " [sim:fail]" })
    local done, err = task:wait { timeout = 30 }
    assert.is_nil(done)
    assert.are.equal("failed", task.status)
    assert.is_true(err.kind == "server" or err.kind == "content_policy")
    assert.are.equal(task, err.task)
  end)

  it("ends with an error on a status it does not know, instead of polling forever", function()
    local task = assert(client:submit { prompt = PROMPT .. " [sim:status=expired]" })
    local done, err = task:wait { timeout = 30 }
    assert.is_nil(done)
    assert.are.equal("protocol", err.kind)
    assert.matches("expired", err.message)
  end)

  it("returns a timeout error and leaves the task alive when wait runs out", function()
    local task = assert(client:submit { prompt = PROMPT .. " [sim:seconds=30]" })
    local done, err = task:wait { timeout = 0.5 }
    assert.is_nil(done)
    assert.are.equal("timeout", err.kind)
    assert.is_true(err.retryable)
    assert.are.equal(task, err.task)
  end)

  it("finds a task by id and by external id, and lists tasks", function()
    local ext = "ext-" .. os.time() .. "-" .. math.random(1e6)
    local task = assert(client:submit { prompt = PROMPT, external_task_id = ext })
    local by_id = assert(client:get_task(task.id))
    assert.are.equal(task.id, by_id.id)
    local by_ext = assert(client:get_task { external_task_id = task.external_task_id })
    assert.are.equal(task.id, by_ext.id)
    local list = assert(client:list_tasks { endpoint = "videos/text2video", page = 1, page_size = 500 })
    local found = false
    for _, t in ipairs(list) do
      found = found or t.id == task.id
    end
    assert.is_true(found)
    local missing, err = client:get_task("no-such-task")
    assert.is_nil(missing)
    assert.are.equal("not_found", err.kind)
  end)

  it("refuses bad input before the network", function()
    local before = sim.stats().requests
    local task, err = client:submit { prompt = "x", duration = 7 }
    assert.is_nil(task)
    assert.are.equal("validation", err.kind)
    assert.are.equal("duration", err.field)
    task, err = client:submit { prompt = "x", provider = "evolink" }
    assert.is_nil(task)
    assert.are.equal("provider", err.field)
    assert.are.equal(before, sim.stats().requests)
  end)

  it("reports auth failures with Kling's codes and never shows the secret", function()
    local bad = sim.client { secret_key = "wrong-secret-value" }
    local task, err = bad:submit { prompt = PROMPT }
    assert.is_nil(task)
    assert.are.equal("auth", err.kind)
    assert.are.equal(401, err.http_status)
    assert.is_true(err.code >= 1000 and err.code <= 1004)
    assert.is_false(err.retryable)
    assert.is_nil(tostring(err):find("wrong-secret-value", 1, true))
    local nokey = sim.client { api_key = "not-the-key" }
    task, err = nokey:submit { prompt = PROMPT }
    assert.is_nil(task)
    assert.are.equal("auth", err.kind)
  end)

  describe("faults while polling are survived", function()
    for _, kind in ipairs { "5xx", "429", "1303", "reset", "stall", "malformed", "content_type" } do
      it(kind, function()
        local c = sim.client { timeout = 1, call_budget = 20 }
        local task = assert(c:submit { prompt = PROMPT })
        sim.faults({ { kind = kind, method = "GET", path = "^/v1/videos/", count = 2, seconds = 3, retry_after = 0 } })
        local done = assert(task:wait { timeout = 40 })
        assert.are.equal("succeeded", done.status)
        local st = sim.stats()
        assert.is_true(st.faults_injected >= 2)
      end)
    end
  end)

  describe("faults on a create are followed up as the engine does: never two tasks (issue 10)", function()
    -- kind -> whether the fault can also strike after the task exists (else it is a refusal:
    -- nothing made, sent again after at least 1 s)
    local cases = { { "5xx", true }, { "reset", true }, { "stall", true }, { "malformed", true },
      { "content_type", true }, { "429", false }, { "1303", false } }
    for _, case in ipairs(cases) do
      local kind, can_follow_create = case[1], case[2]
      for _, phase in ipairs(can_follow_create and { "before", "after" } or { "before" }) do
        it(kind .. " (" .. phase .. " the task is created)", function()
          local retries = {}
          local c = sim.client { timeout = 1, call_budget = 20, on_retry = function(r)
            retries[#retries + 1] = r
          end }
          local posts, lookups = route_count("POST /v1/videos/text2video"),
            route_count("GET /v1/videos/text2video?external_task_id")
          local made = creates()
          sim.faults({ { kind = kind, method = "POST", count = 1, phase = phase, seconds = 3, retry_after = 0 } })
          local task = assert(c:submit { prompt = PROMPT })
          assert.is_string(task.id)
          assert.are.equal(made + 1, creates())
          if not can_follow_create then -- refused: sent again after at least 1 s, said by on_retry
            assert.are.equal(posts + 2, route_count("POST /v1/videos/text2video"))
            assert.are.equal(1, #retries)
            assert.are.equal("rate_limited", retries[1].kind)
            assert.is_true(retries[1].delay_ms >= 1000)
          elseif phase == "after" then -- found by its external id, never sent again
            assert.are.equal(posts + 1, route_count("POST /v1/videos/text2video"))
            assert.is_true(route_count("GET /v1/videos/text2video?external_task_id") > lookups)
          else -- lookups found nothing: sent once more, under the same external id (a stall
            -- before lets the first create through once it ends: then a lookup finds it)
            local sent = route_count("POST /v1/videos/text2video") - posts
            assert.is_true(sent == 2 or (kind == "stall" and sent == 1), sent)
          end
        end)
      end
    end

    it("a lost create not found yet ends uncertain; get_task by its external id takes its hold along", function()
      sim.reset()
      local c = sim.client { budget = { limit = "20", currency = "CNY" } }
      sim.faults({ { kind = "reset", method = "POST", count = 1, phase = "after" },
        { kind = "not_found", method = "GET", path = "^/v1/videos/text2video$", count = 6 } })
      local task, err = c:submit { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "u [sim:seconds=1]" }
      assert.is_nil(task)
      assert.is_true(err.uncertain)
      assert.is_string(err.external_task_id)
      assert.are.equal(2500000, c.ledger:reserved("CNY"))
      sim.clear_faults()
      local found = assert(c:get_task { external_task_id = err.external_task_id })
      local done = assert(found:wait { timeout = 30 })
      assert.are.equal("2.5", done.charge)
      assert.are.equal(0, c.ledger:reserved("CNY"))
      assert.are.equal(2500000, c.ledger:spent("CNY"))
      assert.are.equal(sim.charges("kling"), c.ledger:spent("CNY"))
      assert(found:wait()) -- settled once
      assert.are.equal(2500000, c.ledger:spent("CNY"))
    end)
  end)

  it("retries a create that never left the host", function()
    local c = sim.client { base_url = "http://127.0.0.1:1", max_attempts = 2, retry_base_ms = 1 }
    local task, err = c:submit { prompt = PROMPT }
    assert.is_nil(task)
    assert.are.equal("network", err.kind)
    assert.are.equal(2, err.attempts)
    assert.is_nil(err.uncertain)
  end)

  it("answers 1303 when the parallel limit is reached past the call budget, as a retryable rate limit", function()
    sim.reset() -- tasks of earlier tests would hold slots
    sim.config { max_parallel = 1, task_seconds = 3 }
    local first = assert(client:submit { prompt = PROMPT })
    local second, err = client:with({ call_budget = 1 }):submit { prompt = PROMPT }
    assert.is_nil(second)
    assert.are.equal(1303, err.code)
    assert.are.equal("rate_limited", err.kind)
    assert.is_true(err.retryable)
    assert(first:wait { timeout = 30 })
  end)
end)
