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

  describe("faults on a create are typed errors and the create is never sent twice", function()
    -- kind -> error kind, whether the fault can also strike after the task exists, and whether
    -- the client can know that no task was made (a definite refusal) or not (uncertain).
    local cases = {
      { "5xx", "server", true, true }, { "reset", "network", true, true }, { "stall", "timeout", true, true },
      { "malformed", "protocol", true, true }, { "content_type", "protocol", true, true },
      { "429", "rate_limited", false, false }, { "1303", "rate_limited", false, false },
    }
    for _, case in ipairs(cases) do
      local kind, err_kind, can_follow_create, uncertain = case[1], case[2], case[3], case[4]
      for _, phase in ipairs(can_follow_create and { "before", "after" } or { "before" }) do
        it(kind .. " (" .. phase .. " the task is created)", function()
          local c = sim.client { timeout = 1, call_budget = 10 }
          local posts = route_count("POST /v1/videos/text2video")
          local made = creates()
          sim.faults({ { kind = kind, method = "POST", count = 1, phase = phase, seconds = 3, retry_after = 0 } })
          local task, err = c:submit { prompt = PROMPT }
          assert.is_nil(task)
          assert.are.equal(err_kind, err.kind)
          assert.is_string(err.external_task_id)
          assert.are.equal(posts + 1, route_count("POST /v1/videos/text2video"))
          assert.are.equal(uncertain, err.uncertain == true)
          if phase == "after" then
            assert.are.equal(made + 1, creates())
            -- A lost answer is recovered by looking the task up, not by sending it again.
            local found = assert(c:get_task { external_task_id = err.external_task_id })
            assert.is_string(found.id)
          else
            assert.are.equal(made, creates())
          end
        end)
      end
    end
  end)

  it("retries a create that never left the host", function()
    local c = sim.client { base_url = "http://127.0.0.1:1", max_attempts = 2, retry_base_ms = 1 }
    local task, err = c:submit { prompt = PROMPT }
    assert.is_nil(task)
    assert.are.equal("network", err.kind)
    assert.are.equal(2, err.attempts)
    assert.is_nil(err.uncertain)
  end)

  it("answers 1303 when the parallel limit is reached, as a retryable rate limit", function()
    sim.reset() -- tasks of earlier tests would hold slots
    sim.config { max_parallel = 1, task_seconds = 3 }
    local first = assert(client:submit { prompt = PROMPT })
    local second, err = client:submit { prompt = PROMPT }
    assert.is_nil(second)
    assert.are.equal(1303, err.code)
    assert.are.equal("rate_limited", err.kind)
    assert.is_true(err.retryable)
    assert(first:wait { timeout = 30 })
  end)
end)
