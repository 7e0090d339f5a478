-- Issue 14 (Lua API) against the simulator in real nginx: client:tasks walks every page,
-- client:with shares the connections and its options take effect, local files are sent as
-- base64 (or refused where a URL is needed), and debug printing hides every secret.
local sim = require "support.sim"

-- The connection ids of the `n` requests whose request line holds `mark`, from the access log
-- (nginx writes a line after the answer has gone: wait a little for the last one).
local function connections(mark, n)
  local out
  for _ = 1, 100 do
    out = {}
    for line in io.lines(sim.info().dir .. "/access.log") do
      if line:find(mark, 1, true) then
        out[#out + 1] = line:match(" conn=(%S+) ")
      end
    end
    if #out >= n then
      break
    end
    require("kling.core").sleep_ms(20)
  end
  return out
end

local function seconds_since(t0)
  return (require("kling.core").now_ms() - t0) / 1000
end

-- What a script that asks the simulator for a task that does not exist prints (stdout and
-- stderr) with KLING_DEBUG=value in its environment and no debug option given.
local function get_task_with_debug_env(value)
  local i = sim.info()
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(string.format([[
local c = assert(require("kling").new { provider = "kling", api_key = %q, base_url = %q })
c:get_task("no-such-task", { endpoint = "videos/text2video" })
]], i.api_key, i.http))
  f:close()
  local p = assert(io.popen(string.format("KLING_DEBUG=%s LUA_PATH='%s' LUA_CPATH='%s' lua5.4 %s 2>&1", value,
    package.path, package.cpath, script)))
  local text = p:read("a")
  p:close()
  os.remove(script)
  return text
end

describe("the Lua API of issue 14 against the simulator", function()
  setup(function()
    sim.reset()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)
  teardown(function()
    sim.clear_faults()
    sim.reset()
  end)

  it("issue 14.1: client:tasks walks every page of the task list, each task once", function()
    local lines = {}
    local client = sim.client { debug = function(text)
      lines[#lines + 1] = text
    end }
    local made = {}
    for i = 1, 7 do
      local t = assert(client:submit { model = "kling-v1-6", duration = 5, prompt = "list me " .. i })
      made[#made + 1] = t.id
    end
    local got = {}
    for t, err in client:tasks { page_size = 3 } do
      assert.is_truthy(t, tostring(err))
      assert.are.equal("videos/text2video", t.endpoint)
      got[#got + 1] = t.id
    end
    -- newest first, every one of them, no more
    local want = {}
    for i = #made, 1, -1 do
      want[#want + 1] = made[i]
    end
    assert.are.same(want, got)
    local pages = 0
    for _, text in ipairs(lines) do
      if text:match("^kling> GET [^\n]*pageNum=%d+&pageSize=3") then
        pages = pages + 1
      end
    end
    assert.are.equal(3, pages) -- 3 + 3 + 1: the short page ends the walk

    local page2 = {}
    for t in client:tasks { page = 2, page_size = 3 } do
      page2[#page2 + 1] = t.id
    end
    assert.are.same({ want[4], want[5], want[6] }, page2)
  end)

  -- A bad page came back as the loop's first step, `false, err`: read as a failure of the
  -- provider's list, and only once the loop ran. Refused at the call, as an unknown name is.
  it("a bad option value of client:tasks raises at the call, naming the option and its rule, nothing sent", function()
    local client = sim.client {}
    local before = sim.stats().requests
    for _, case in ipairs {
      { { page = "x" }, "kling.tasks: page must be a whole number between 1 and 1000 (got a string (\"x\"))" },
      { { page = 0 }, "kling.tasks: page must be a whole number between 1 and 1000 (got 0)" },
      { { page_size = 501 }, "kling.tasks: page_size must be a whole number between 1 and 500 (got 501)" },
      { { page_size = 2.5 }, "kling.tasks: page_size must be a whole number between 1 and 500 (got 2.5)" },
      { { endpoint = "audio/tts" }, "kling.tasks: endpoint audio/tts answers at once and keeps no task list" },
      { { endpoint = "videos/text2vide" }, "kling.tasks: endpoint unknown endpoint 'videos/text2vide'" },
    } do
      local ok, msg = pcall(client.tasks, client, case[1])
      assert.is_false(ok)
      assert.matches(case[2], msg, 1, true)
    end
    assert.are.equal(before, sim.stats().requests)
  end)

  it("issue 14.1: a failure is given once as false, err and ends the walk", function()
    local client = sim.client {}
    local gateway = sim.client { provider = "evolink", base_url = sim.info().providers.evolink,
      api_key = sim.info().api_key }
    local n, first = 0, nil
    for t, err in gateway:tasks() do
      n, first = n + 1, { t, err }
    end
    assert.are.equal(1, n)
    assert.is_false(first[1])
    assert.are.equal("validation", first[2].kind)
    assert.matches("not supported by provider 'evolink'", first[2].message, 1, true)

    local ok, msg = pcall(client.tasks, client, { page_sise = 2 })
    assert.is_false(ok)
    assert.matches("kling.tasks: unknown option 'page_sise'; did you mean page_size?", msg, 1, true)
  end)

  it("issue 14.1: a task in the list with an unknown status ends the walk with a protocol error", function()
    sim.reset()
    local client = sim.client {}
    local ok1 = assert(client:submit { model = "kling-v1-6", duration = 5, prompt = "fine" })
    local odd = assert(client:submit { model = "kling-v1-6", duration = 5, prompt = "odd [sim:status=expired]" })
    local ok2 = assert(client:submit { model = "kling-v1-6", duration = 5, prompt = "fine too" })
    local deadline = require("kling.core").now_ms() + 10000
    repeat -- until the odd one reports its unknown status
      require("kling.core").sleep_ms(200)
      local _, err = client:get_task(odd.id, { endpoint = "videos/text2video" })
    until err or require("kling.core").now_ms() > deadline
    local steps = {}
    for t, err in client:tasks { page_size = 10 } do
      steps[#steps + 1] = t and t.id or err
    end
    assert.are.equal(3, #steps)
    assert.are.same({ ok2.id, ok1.id }, { steps[1], steps[2] }) -- the readable ones first
    assert.are.equal("protocol", steps[3].kind)
    assert.matches("expired", steps[3].message, 1, true)
    assert.is_table(steps[3].raw)
  end)

  it("issue 14.2: client:with shares the parent's kept-alive connection; a new client does not", function()
    local parent = sim.client {}
    local child = parent:with { timeout = 5 }
    local t = assert(parent:submit { model = "kling-v1-6", duration = 5, prompt = "pool" })
    assert(parent:get_task(t.id, { endpoint = "videos/text2video" }))
    assert(child:get_task(t.id, { endpoint = "videos/text2video" }))
    assert(sim.client {}:get_task(t.id, { endpoint = "videos/text2video" }))
    local conns = connections("GET /v1/videos/text2video/" .. t.id .. " ", 3)
    assert.are.equal(3, #conns)
    assert.are.equal(conns[1], conns[2]) -- the child reused the parent's connection
    assert.are_not.equal(conns[1], conns[3]) -- a client of its own opened another
    assert.are.equal(parent.ledger, child.ledger)
    assert.are.equal(parent.catalogs, child.catalogs)
  end)

  it("issue 14.2: with{timeout =} takes effect on the child only", function()
    local parent = sim.client { max_attempts = 1 }
    local t = assert(parent:submit { model = "kling-v1-6", duration = 5, prompt = "slow" })
    local path = "/v1/videos/text2video/" .. t.id .. "$"
    local child = parent:with { timeout = 0.3 }
    sim.faults { { kind = "stall", path = path, seconds = 5, count = 1 } }
    local t0 = require("kling.core").now_ms()
    local _, err = child:get_task(t.id, { endpoint = "videos/text2video" })
    assert.are.equal("timeout", err and err.kind, tostring(err))
    assert.is_true(seconds_since(t0) < 4) -- gave up long before the stalled answer (slack for valgrind)
    sim.faults { { kind = "stall", path = path, seconds = 0.6, count = 1 } }
    t0 = require("kling.core").now_ms()
    assert(parent:get_task(t.id, { endpoint = "videos/text2video" })) -- its own 60 s timeout
    assert.is_true(seconds_since(t0) >= 0.5)
    assert.are.equal(60000, parent.ctx.timeout_ms)
    sim.clear_faults()
  end)

  it("issue 14.2: with{max_attempts =} takes effect against injected 5xx answers", function()
    local parent = sim.client {}
    local t = assert(parent:submit { model = "kling-v1-6", duration = 5, prompt = "flaky" })
    local path = "/v1/videos/text2video/" .. t.id .. "$"
    local once = parent:with { max_attempts = 2 }
    sim.faults { { kind = "5xx", status = 503, path = path, count = 3 } }
    local _, err = once:get_task(t.id, { endpoint = "videos/text2video" })
    assert.are.equal("server", err and err.kind, tostring(err))
    assert.are.equal(2, err.attempts)
    sim.faults { { kind = "5xx", status = 503, path = path, count = 3 } }
    local retries = 0
    local patient = parent:with { on_retry = function()
      retries = retries + 1
    end }
    assert(patient:get_task(t.id, { endpoint = "videos/text2video" })) -- the parent's 5 attempts
    assert.are.equal(3, retries)
    sim.clear_faults()
    local ok, msg = pcall(parent.with, parent, { max_atempts = 2 })
    assert.is_false(ok)
    assert.matches("kling.with: unknown option 'max_atempts'; did you mean max_attempts?", msg, 1, true)
    ok, msg = pcall(parent.with, parent, { max_attempts = 0 })
    assert.is_false(ok)
    assert.matches("max_attempts must be a whole number of tries from 1", msg, 1, true)
    assert.are.equal(5, parent.ctx.max_attempts) -- the parent is unchanged
  end)

  it("issue 14.3: a local PNG is sent as base64 and the simulator takes it (client and engine)", function()
    local png = sim.info().dir .. "/media/sample.png"
    local client = sim.client {}
    local done = assert(client:run({ image = png, prompt = "wave", model = "kling-v1-6" }, { timeout = 30 }))
    assert.are.equal("videos/image2video", done.endpoint)
    assert.are.equal("succeeded", done.status)
    assert.are.equal(png, done.request.image) -- the task keeps the path, not the bytes
    local tasks = client:submit_many { { image = png, prompt = "wave again", model = "kling-v1-6" } }
    local r = client:wait_all(tasks, { timeout = 30 })
    assert.are.equal(1, r.succeeded, tostring(r[1].error))
  end)

  it("issue 14.3: a gateway that needs a URL refuses a local file before the network", function()
    local before = sim.stats().requests
    local gw = sim.client { provider = "compat", base_url = sim.info().providers.compat, api_key = sim.info().api_key }
    local _, err = gw:submit { image = sim.info().dir .. "/media/sample.png", prompt = "x", model = "kling-v3",
      duration = 5 }
    assert.are.equal("image", err.field)
    assert.matches("this provider needs a URL", err.message, 1, true)
    assert.are.equal(before, sim.stats().requests)
  end)

  it("issue 14.4: debug prints every request and answer, never a key, secret or token", function()
    local i = sim.info()
    for _, creds in ipairs { { access_key = i.access_key, secret_key = i.secret_key }, { api_key = i.api_key } } do
      local out = {}
      local opts = { debug = function(text)
        out[#out + 1] = text
      end }
      for k, v in pairs(creds) do
        opts[k] = v
      end
      local client = sim.client(opts)
      local t = assert(client:submit { model = "kling-v1-6", duration = 5, prompt = "debug me",
        callback_url = "https://hooks.example.com/cb?token=cb-secret-123" })
      assert(client:get_task(t.id, { endpoint = "videos/text2video" }))
      local many = client:submit_many { { model = "kling-v1-6", duration = 5, prompt = "engine path" } }
      client:wait_all(many, { timeout = 30 })
      local text = table.concat(out, "\n")
      local bearer = client.ctx.auth:bearer(client.driver:wall_s()):match("^Bearer (.*)$")
      for _, secret in ipairs { i.access_key, i.secret_key, i.api_key, bearer, "cb-secret-123" } do
        assert.is_nil(text:find(secret, 1, true), "leaked: " .. secret)
      end
      assert.matches("kling> POST " .. i.http .. "/v1/videos/text2video\n", text, 1, true)
      assert.matches("authorization: Bearer [redacted]", text, 1, true)
      assert.matches("kling< 200 POST " .. i.http .. "/v1/videos/text2video in %d+ ms", text)
      assert.matches("kling> GET " .. i.http .. "/v1/videos/text2video/" .. t.id, text, 1, true)
      assert.matches("kling< 200 GET " .. i.http .. "/v1/videos/text2video/" .. many[1].id, text, 1, true)
      assert.matches('"prompt":"debug me"', text, 1, true)
    end
  end)

  it("issue 14.4: client:with{debug =} prints for the child only, on the parent's connections", function()
    local parent_out, child_out = {}, {}
    local parent = sim.client { debug = function(text)
      parent_out[#parent_out + 1] = text
    end }
    local t = assert(parent:submit { model = "kling-v1-6", duration = 5, prompt = "who prints" })
    local n = #parent_out
    local loud = parent:with { debug = function(text)
      child_out[#child_out + 1] = text
    end }
    assert(loud:get_task(t.id, { endpoint = "videos/text2video" }))
    assert.are.equal(n, #parent_out)
    assert.are.equal(2, #child_out) -- the request and its answer
    assert.is_nil(table.concat(child_out):find(sim.info().secret_key, 1, true))
    assert(parent:with({ debug = false }):get_task(t.id, { endpoint = "videos/text2video" }))
    assert.are.equal(n, #parent_out)
    assert.are.equal(2, #child_out)
    local conns = connections("GET /v1/videos/text2video/" .. t.id .. " ", 2)
    assert.are.equal(conns[1], conns[2]) -- one pool under both
  end)

  it("issue 14.4: KLING_DEBUG=1 prints to stderr when the option is not given", function()
    local i = sim.info()
    local text = get_task_with_debug_env("1")
    assert.matches("kling> GET " .. i.http .. "/v1/videos/text2video/no-such-task", text, 1, true)
    assert.matches("kling< 404 GET", text, 1, true)
    assert.is_nil(text:find(i.api_key, 1, true))
  end)
  it("issue 14: KLING_DEBUG=off (or false, no) prints nothing", function()
    for _, v in ipairs { "off", "false", "No" } do
      assert.are.equal("", get_task_with_debug_env(v), v)
    end
  end)

  it("issue 14: get_task, list_tasks and cancel_task refuse a bad endpoint by name, nothing sent", function()
    local c = sim.client {}
    local evo = sim.gateway("evolink")
    local before = sim.stats().requests
    for _, e in ipairs { "../../x", "videos/text2video?x=1", "videos/text2video\r\nX-Evil: 1", "videos/text2video/",
      "audio/tts", "nosuch", 42 } do
      for _, call in ipairs {
        function() return c:get_task("123", { endpoint = e }) end,
        function() return c:list_tasks { endpoint = e } end,
      } do
        local t, err = call()
        assert.is_nil(t, tostring(e))
        assert.are.equal("validation", err.kind, tostring(e) .. ": " .. tostring(err))
        assert.are.equal("endpoint", err.field)
        assert.is_nil(tostring(err):find("[\r\n]"))
      end
    end
    local _, err = c:get_task("123", { endpoint = "audio/tts" })
    assert.matches("answers at once", err.message, 1, true)
    _, err = c:get_task("123", { endpoint = "videos/text2vidoe" })
    assert.matches("did you mean videos/text2video", err.message, 1, true)
    _, err = evo:get_task({ external_task_id = "e1" }, { endpoint = "../x" })
    assert.are.equal("endpoint", err.field)
    assert.are.equal(before, sim.stats().requests)
  end)

  it("issue 14: task ids '.', '..' and ids that are not one path segment are refused, nothing sent", function()
    local c = sim.client {}
    local evo = sim.gateway("evolink")
    local before = sim.stats().requests
    for _, id in ipairs { ".", "..", "a/..", "12?x=1", "12#y", "1 2", "%2e%2e", "x\n" } do
      local t, err = c:get_task(id, { endpoint = "videos/text2video" })
      assert.is_nil(t, id)
      assert.are.equal("validation", err.kind, id)
      assert.are.equal("task_id", err.field, id)
      _, err = c:get_task(id)
      assert.are.equal("task_id", err.field, id)
      _, err = evo:get_task(id)
      assert.are.equal("task_id", err.field, id)
      _, err = evo:get_task { external_task_id = id }
      assert.are.equal("external_task_id", err.field, id)
      _, err = evo:cancel_task { id = id, status = "running", can_cancel = true }
      assert.are.equal("task_id", err.field, id)
    end
    local _, err = c:get_task("..")
    assert.matches("'.' or '..'", err.message, 1, true)
    assert.are.equal(before, sim.stats().requests)
    -- An ordinary id with dots inside is one segment: asked, and not found.
    _, err = c:get_task("1.2", { endpoint = "videos/text2video" })
    assert.are.equal("not_found", err.kind)
  end)

  -- task:wait{timeout = -1} (or on_progress = 5) on a task that had ended returned it as if
  -- the options were fine: a script passed against a synchronous endpoint's finished task and
  -- failed on its first asynchronous one
  it("task:wait refuses a bad option value on a finished task too, as on a running one", function()
    local c = sim.client {}
    local t = assert(c:submit { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "a fox" })
    local bad = { { timeout = -1 }, { poll_min = 0 / 0 }, { on_progress = 5 }, { poll_min = 9, poll_max = 2 } }
    local fields = { "timeout", "poll_min", "on_progress", "poll_min" }
    for _, opts in ipairs(bad) do
      local none, err = t:wait(opts)
      assert.is_nil(none)
      assert.are.equal("validation", err.kind)
    end
    assert(t:wait { timeout = 120 })
    assert.are.equal("succeeded", t.status)
    for i, opts in ipairs(bad) do
      local none, err = t:wait(opts)
      assert.is_nil(none, fields[i])
      assert.are.equal("validation", err.kind)
      assert.are.equal(fields[i], err.field)
    end
  end)
end)
