-- Strict input (issue 11, points 2, 3, 15 and 21): a provider's own spelling of a canonical
-- field is refused by name, unknown fields and options are refused naming the closest known
-- one, wrong types are named, and billing never raises on them. Pure: nothing is sent.
local kling = require "kling"
local billing = require "kling.billing"
local providers = require "kling.providers"
local check = require "spec.support.provider_check"

local IMG = "https://example.com/a.png"

local function provider(name)
  return check.for_provider((providers.get(name)))
end

describe("strict input", function()
  local official = provider("kling")

  it("issue 11.2: model_name is refused by name as model on every official endpoint that takes a model", function()
    local P = providers.get("kling")
    local n = 0
    for endpoint, def in pairs(P.endpoints) do
      local err = P.validate({ model_name = "kling-v2-6" }, endpoint)
      assert.is_not_nil(err, endpoint)
      assert.are.equal("model_name", err.field, endpoint)
      assert.matches("use model", err.message, 1, true)
      n = n + (def.takes.model and 1 or 0)
    end
    assert.is_true(n >= 10)
    -- The API's end frame and motion-control's image_url, likewise.
    official.rejects({ prompt = "x", image = IMG, image_tail = IMG }, "image_tail", "use last_image",
      "videos/image2video")
    official.rejects({ image_url = IMG, video_url = IMG, character_orientation = "image", mode = "std" },
      "image_url", "use image", "videos/motion-control")
  end)

  it("issue 11.2: the gateways' own spellings point at the canonical field", function()
    provider("apiinone").rejects({ prompt = "x", multi_shots = true }, "multi_shots", "use multi_shot")
    provider("apiinone").rejects({ prompt = "x", kling_elements = { {} } }, "kling_elements", "use element_list")
    provider("evolink").rejects({ prompt = "x", quality = "1080p" }, "quality", "use resolution")
    provider("evolink").rejects({ prompt = "x", image_start = IMG }, "image_start", "use image")
    provider("evolink").rejects({ prompt = "x", image = IMG, image_end = IMG }, "image_end", "use last_image",
      "videos/image2video")
    for _, name in ipairs { "apiinone", "apimodels", "evolink", "compat" } do
      provider(name).rejects({ prompt = "x", model_name = "kling-v3" }, "model_name", "use model")
    end
    -- A gateway's own container never carries a canonical field the mapping would overwrite.
    provider("compat").rejects({ prompt = "x", extra_body = { negative_prompt = "blur" } },
      "extra_body.negative_prompt", "use negative_prompt")
    provider("evolink").rejects({ prompt = "x", model_params = { element_list = { "e" } } },
      "model_params.element_list", "use element_list")
    provider("compat").accepts { prompt = "x", extra_body = { seed = 1 } }
  end)

  it("issue 11.2: a client refuses model_name before anything is sent", function()
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9" })
    local t, err = c:submit { model_name = "kling-v2-6", mode = "pro", duration = 5, prompt = "x" }
    assert.is_nil(t)
    assert.are.equal("validation", err.kind)
    assert.are.equal("model_name", err.field)
  end)

  -- The id a create names its task by is how an uncertain create is looked up again: a create
  -- took "job/7 a", CR/LF and 256 characters, which get_task{external_task_id =} then refused.
  it("a create's external_task_id takes the lookup's rule, before anything is sent", function()
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9" })
    for _, bad in ipairs { "job/7 a", "a\r\nb", "a\0b", "x?y", ("x"):rep(201), "..", "" } do
      local t, err = c:submit { model = "kling-v1", mode = "std", duration = 5, prompt = "x", external_task_id = bad }
      assert.is_nil(t, bad)
      assert.are.equal("validation", err.kind, bad)
      assert.are.equal("external_task_id", err.field, bad)
      if bad ~= "" then -- get_task raises on an empty id: a misuse, not input
        local _, lerr = c:get_task { external_task_id = bad }
        assert.are.equal("validation", lerr.kind, bad)
        assert.is_nil(lerr.message:find("%c"), lerr.message) -- shown escaped: one line
      end
    end
    official.rejects({ prompt = "x", external_task_id = 7 }, "external_task_id", "must be a string")
    assert.is_nil(providers.get("kling").validate({ prompt = "x", external_task_id = ("x"):rep(200) },
      "videos/text2video"))
  end)

  it("kling.estimate, settle, quote and ledger refuse a misspelt option naming the closest", function()
    local req = { provider = "kling", model = "kling-v1", mode = "std", duration = 5, prompt = "x" }
    local cases = {
      { function() return kling.estimate(req, { catalgo = {} }) end, "'catalgo'; did you mean catalog?" },
      { function() return kling.settle(req, { duraton = 10 }) end, "'duraton'; did you mean duration?" },
      { function() return kling.settle(req, { duration = 10 }, { providr = "kling" }) end, "did you mean provider?" },
      { function() return kling.quote(req, { rate = {} }) end, "'rate'; did you mean rates?" },
      { function() return kling.ledger { limit = "5", currency = "CNY", rats = {} } end, "did you mean rates?" },
    }
    for i, case in ipairs(cases) do
      local ok, err = pcall(case[1])
      assert.is_false(ok, i)
      assert.matches(case[2], err, 1, true)
    end
    -- the settle the misspelling hid: the usage's 10 s, not the request's 5
    assert.are_not.equal(kling.estimate(req).amount, kling.settle(req, { duration = 10 }).amount)
  end)

  it("a list call refuses the API's pageNum/pageSize and unknown parameters by name (they were dropped)", function()
    local P = providers.get("kling")
    for params, want in pairs {
      [{ pageNum = 2, pageSize = 5 }] = { "use page", "use page_size" },
      [{ page_sise = 5 }] = { "did you mean page_size?" },
      [{ foo = 2 }] = { "takes page and page_size only" },
    } do
      local spec, err = P.call_spec("general/custom-voices", params)
      assert.is_nil(spec)
      local hit = false
      for _, w in ipairs(want) do
        hit = hit or err.message:find(w, 1, true) ~= nil
      end
      assert.is_true(hit, err.message)
    end
    local spec = assert(P.call_spec("general/custom-voices", { page = 2, page_size = 5 }))
    assert.matches("pageNum=2&pageSize=5", spec.path, 1, true)
  end)

  -- {element_id = "e", elemnt_id = "f"} and any other name a call does not take went to the provider
  it("a call that is not a list refuses a field it does not take by name, with the closest", function()
    local P = providers.get("kling")
    for _, case in ipairs {
      { "general/delete-elements", { element_id = "e", elemnt_id = "f" }, "elemnt_id", "did you mean element_id?" },
      { "general/delete-voices", { voice_id = "v", id = "v" }, "id", "(it takes voice_id)" },
      { "videos/multi-elements/init-selection", { video_id = "v", video_ulr = "https://x.example/v.mp4" }, "video_ulr",
        "did you mean video_url?" },
      { "videos/multi-elements/add-selection", { session_id = "s", frame_index = 0, points = { { x = 0, y = 0 } },
        frame = 1 }, "frame", "(it takes session_id, frame_index, points)" },
      { "videos/multi-elements/clear-selection", { session_id = "s", [1] = "x" }, "1", "(it takes session_id)" },
    } do
      local spec, err = P.call_spec(case[1], case[2])
      assert.is_nil(spec, case[3])
      assert.are.same({ "validation", case[3] }, { err.kind, err.field })
      assert.matches("unknown field of " .. case[1], err.message, 1, true)
      assert.matches(case[4], err.message, 1, true)
    end
    local _, err = P.call_spec("videos/multi-elements/add-selection", { session_id = "s", frame_index = 0,
      points = { { x = 0, y = 1 }, { x = 0.5, y = 0.5, xx = 1 } } })
    assert.are.same({ "validation", "points[2].xx" }, { err.kind, err.field })
    assert.matches("did you mean x?", err.message, 1, true)
    assert(P.call_spec("videos/multi-elements/add-selection", { session_id = "s", frame_index = 0,
      points = { { x = 0, y = 1 } } }))
    assert(P.call_spec("general/delete-elements", { element_id = "e" }))
  end)

  it("kling.new refuses a base_url with CR/LF, spaces, user info or a query, and a ca_file it cannot read", function()
    for _, bad in ipairs { "https://x.com/\r\nHost: y", "https://x .com", "https://user:pw@x.com",
      "https://x.com/v1?a=b", "https://x.com/#f", "ftp://x.com", "https://" } do
      local c, err = kling.new { api_key = "k", base_url = bad }
      assert.is_nil(c, bad)
      assert.are.equal("base_url", err.field, bad)
      assert.is_nil(err.message:find("\n", 1, true), err.message) -- the bad URL is shown escaped
    end
    -- The refused URL is echoed without its credentials: the message reaches journals and reports.
    for _, bad in ipairs { "http://user:SECRETPASS@127.0.0.1:9", "http://127.0.0.1:9/?token=SECRETTOKEN" } do
      local _, err = kling.new { api_key = "k", base_url = bad }
      assert.are.equal("base_url", err.field)
      assert.is_nil(tostring(err):find("SECRET", 1, true), tostring(err))
      assert.matches("127.0.0.1:9", tostring(err), 1, true)
    end
    assert.is_not_nil(kling.new { api_key = "k", base_url = "https://user.example.com:8443/kling/" })
    -- a base URL ending in the provider's own route prefix sent every request to /v1/v1/...: refused,
    -- saying what to give
    for _, case in ipairs { { "kling", "https://api-singapore.klingai.com/v1/", "https://api-singapore.klingai.com" },
      { "apimodels", "https://apimodels.app/api/v1", "https://apimodels.app" },
      { "evolink", "https://proxy.example/evo/V1", "https://proxy.example/evo" } } do
      local bad, err = kling.new { provider = case[1], api_key = "k", base_url = case[2] }
      assert.is_nil(bad, case[2])
      assert.are.equal("base_url", err.field)
      assert.matches("request paths already start with: give " .. case[3] .. " (got", err.message, 1, true)
    end
    assert.is_not_nil(kling.new { api_key = "k", base_url = "https://x.example/v1x/" })
    local c, err = kling.new { api_key = "k", base_url = "https://x.com", ca_file = "/nonexistent/ca.pem" }
    assert.is_nil(c)
    assert.are.equal("ca_file", err.field)
    assert.matches("cannot be read", err.message, 1, true)
  end)

  -- ca_file was io.open'ed: a directory passed (to fail later as libcurl's "Problem with the SSL
  -- CA cert", which `kling run` took for a network error to run again for), and a FIFO's open
  -- blocked kling.new, so every command given --ca-file FIFO hung (`timeout` only keeps this
  -- spec from hanging on it).
  it("a ca_file that is a directory or a FIFO is refused by kling.new, naming what it is; nothing blocks", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir '" .. dir .. "' && mkfifo '" .. dir .. "/ca.fifo'"))
    local c, err = kling.new { api_key = "k", base_url = "https://x.com", ca_file = dir }
    assert.is_nil(c)
    assert.are.equal("ca_file", err.field)
    assert.matches("cannot be read: " .. dir .. " is a directory, not a file of CA certificates", err.message, 1,
      true)
    local p = io.popen("timeout 60 lua5.4 bin/kling status 1 --api-key k --base-url https://x.com --ca-file '" .. dir
      .. "/ca.fifo' 2>&1; echo \"exit=$?\"")
    local out = p:read("a")
    p:close()
    os.execute("rm -rf '" .. dir .. "'")
    assert.matches("exit=2%s*$", out)
    assert.matches(dir .. "/ca.fifo is a FIFO (named pipe), not a file of CA certificates", out, 1, true)
  end)

  -- One rule for every provider (and the gateway's clients): EvoLink took user info and
  -- %0d%0a, the official API took user info, and CR/LF was refused as "must be an http(s) URL".
  it("a callback_url with CR/LF, %0d%0a or user info is refused by one rule on every provider", function()
    local cases = { ["https://h.example/cb\r\nX: y"] = "control characters",
      ["https://h.example/cb%0d%0aX:%20y"] = "percent%-encoded control",
      ["https://user:pw@h.example/cb"] = "user info", ["https://h.example:0/cb"] = "port" }
    for url, rule in pairs(cases) do
      official.rejects({ prompt = "x", callback_url = url }, "callback_url", rule)
      provider("evolink").rejects({ prompt = "x", callback_url = url }, "callback_url", rule)
      provider("apimodels").rejects({ prompt = "x", callback_url = url }, "callback_url", rule)
    end
    -- a client's own loopback receiver stays allowed (the simulator calls back there)
    assert.is_nil(providers.get("kling").validate({ prompt = "x", callback_url = "http://127.0.0.1:8080/cb" },
      "videos/text2video"))
  end)

  it("a catalog for a provider that is not one is refused naming the provider, not its rules", function()
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9" })
    local ok, err = c:set_catalog("nope", { rules = {}, date = "2026-01-01" })
    assert.is_nil(ok)
    assert.are.equal("provider", err.field)
    assert.matches("unknown provider 'nope'", err.message, 1, true)
  end)

  it("a misspelt provider is refused with the closest known one", function()
    local c, err = kling.new { provider = "evolnk", api_key = "k" }
    assert.is_nil(c)
    assert.are.equal("provider", err.field)
    assert.matches("unknown provider 'evolnk' (did you mean evolink? known: kling,", err.message, 1, true)
  end)

  it("a NaN cfg_scale is named NaN with the range, not 'must be a number, got number'", function()
    official.rejects({ prompt = "x", cfg_scale = 0 / 0 }, "cfg_scale", "between 0 and 1, got NaN")
  end)

  it("issue 11.3: unknown request fields are refused naming the closest known one", function()
    local err = official.rejects({ prompt = "x", cfg_scal = 0.5 }, "cfg_scal", "unknown field")
    assert.matches("did you mean cfg_scale", err.message, 1, true)
    official.rejects({ prompt = "x", seed = 7 }, "seed", "documents no such field")
    -- Documented own fields of an endpoint still pass through, and only there.
    official.accepts({ model = "kling-v1", prompt = "x", camera_control = { type = "down_back" } },
      "videos/text2video")
    assert.are.same({ type = "down_back" }, providers.get("kling").build({ model = "kling-v1", prompt = "x",
      camera_control = { type = "down_back" } }, "videos/text2video").body.camera_control)
    official.rejects({ prompt = "x", static_mask = IMG }, "static_mask", "unknown field", "videos/text2video")
    for _, name in ipairs { "apiinone", "apimodels", "evolink", "compat" } do
      err = provider(name).rejects({ prompt = "x", promt = "y" }, "promt", "unknown field")
      assert.matches("did you mean prompt", err.message, 1, true)
    end
  end)

  -- A new user's trial: kling.estimate priced {sond = true} as a request without sound, while
  -- `kling estimate` refused it ("did you mean sound?"). One rule for both (quote.cannot_honour).
  it("kling.estimate refuses an unknown request field by name, as kling estimate does", function()
    local req = { provider = "kling", endpoint = "videos/text2video", model = "kling-v2-6", mode = "pro",
      duration = 5, sond = true }
    local q, err = kling.estimate(req)
    assert.is_nil(q)
    assert.are.same({ "validation", "sond" }, { err.kind, err.field })
    assert.matches("unknown field for videos/text2video", err.message, 1, true)
    assert.matches("did you mean sound?", err.message, 1, true)
    -- named before "unpriced" (kling-v2-6 has no std price): the request is to be fixed first
    req.mode = nil
    q, err = kling.estimate(req)
    assert.are.same({ "validation", "sond" }, { err.kind, err.field }, tostring(q))
    req.mode = "pro"
    -- the same request spelt right is priced; a prompt or image left out is stood in for
    req.sond, req.sound = nil, true
    assert.are.equal("kling", assert(kling.estimate(req)).provider)
    assert(kling.estimate { provider = "kling", endpoint = "videos/image2video", model = "kling-v2-6", mode = "pro",
      duration = 5 })
    -- another provider's field name is refused on that provider alone
    q, err = kling.estimate { provider = "evolink", model = "kling-v2-6", mode = "pro", duration = 5,
      promt = "x" }
    assert.are.same({ "validation", "promt" }, { err.kind, err.field }, tostring(q))
  end)

  -- An image the endpoint takes none of (audio/text-to-audio) was passed over, and the provider's
  -- check stopped there: an unknown field after it (an api_key) was never looked at, and the request
  -- priced (kling quote then exited 0 with a key in the request). And the request's `estimate`
  -- (its expected seconds), which client:check refuses when it is no number of seconds, was priced.
  it("kling.estimate checks the fields after an image it passes over, and the request's estimate", function()
    local req = { provider = "kling", endpoint = "audio/text-to-audio", prompt = "rain", duration = 5,
      image = "https://example.com/a.png", api_key = "sk-1" }
    local q, err = kling.estimate(req)
    assert.is_nil(q)
    assert.are.same({ "validation", "api_key" }, { err.kind, err.field })
    req.api_key = nil
    assert(kling.estimate(req)) -- the image alone is still passed over, as before
    -- an image2video left without its image, or given as a local file, is priced: an image is stood in for
    local i2v = { provider = "kling", endpoint = "videos/image2video", model = "kling-v2-6", mode = "pro",
      duration = 5 }
    assert(kling.estimate(i2v))
    i2v.image = "/tmp/front.png"
    assert(kling.estimate(i2v))
    i2v.bogus = 1 -- checked after that image too
    q, err = kling.estimate(i2v)
    assert.are.same({ "validation", "bogus" }, { err.kind, err.field }, tostring(q))
    q, err = kling.estimate { provider = "kling", model = "kling-v2-6", mode = "pro", duration = 5, estimate = "x" }
    assert.is_nil(q)
    assert.are.same({ "validation", "estimate" }, { err.kind, err.field })
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9" })
    local _, check_err = c:check { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "x", estimate = "x" }
    assert.are.equal(check_err.message, err.message) -- the same words as a create's check
    assert(kling.estimate { provider = "kling", model = "kling-v2-6", mode = "pro", duration = 5, estimate = 90 })
  end)

  -- A new user's trial: {max_bytes = -1} raised, where every other bad value of download (and
  -- of the module) is returned as a validation error naming it; a timeout of -1 was not checked.
  it("client:download returns a bad max_bytes, expected_bytes or timeout as a validation error naming it",
    function()
      local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9" })
      for _, case in ipairs {
        { { max_bytes = -1 }, "max_bytes", "must be a whole number of bytes >= 1 (got -1)" },
        { { max_bytes = 0 }, "max_bytes", "(got 0)" },
        { { max_bytes = 1.5 }, "max_bytes", "(got 1.5)" },
        { { max_bytes = "5" }, "max_bytes", '(got a string ("5"))' },
        { { expected_bytes = -1 }, "expected_bytes", "must be a whole number of bytes >= 0 (got -1)" },
        { { timeout = -1 }, "timeout", "must be a positive number of seconds" },
        { { timeout = "5" }, "timeout", '(got a string ("5"))' },
      } do
        local path = os.tmpname()
        os.remove(path)
        local ok, got, err = pcall(c.download, c, "http://127.0.0.1:9/x.mp4", path, case[1])
        assert.is_true(ok, tostring(got))
        assert.is_nil(got)
        assert.are.same({ "validation", case[2] }, { err.kind, err.field })
        assert.matches(case[3], err.message, 1, true)
        assert.is_nil(io.open(path)) -- nothing written, nothing sent (port 9 would say network)
      end
    end)

  it("kling.new refuses a misspelt key of its budget by name, as kling.ledger does (it was dropped unseen)",
    function()
    local c, err = kling.new { provider = "kling", api_key = "k",
      budget = { limit = "5", currency = "CNY", limt = "9" } }
    assert.is_nil(c)
    assert.are.same({ "validation", "budget.limt" }, { err.kind, err.field })
    assert.matches("did you mean limit?", err.message, 1, true)
    c, err = kling.new { provider = "kling", api_key = "k", budget = { budgets = { { limit = "5", currency = "CNY",
      curency = "USD" } } } }
    assert.is_nil(c)
    assert.are.equal("budget.budgets[1].curency", err.field)
    -- a list's misspelt key is named before the limit it hides, and so are the list and rates
    c, err = kling.new { provider = "kling", api_key = "k", budget = { budgets = { { limit = "5", currency = "CNY" },
      { limt = "5", currency = "USD" } } } }
    assert.is_nil(c)
    assert.are.same({ "validation", "budget.budgets[2].limt" }, { err.kind, err.field })
    assert.matches("did you mean limit?", err.message, 1, true)
    c, err = kling.new { provider = "kling", api_key = "k", budget = { budgets = {} } }
    assert.is_nil(c)
    assert.are.same({ "validation", "budget.budgets" }, { err.kind, err.field })
    assert(kling.new { provider = "kling", api_key = "k", budget = { limit = "5", currency = "CNY" } })
  end)

  it("kling.ledger refuses an unknown key of a budgets item by name (it was dropped unseen)", function()
    local l, err = kling.ledger { budgets = { { limit = "5", currency = "CNY" }, { limt = "9", currency = "USD" } } }
    assert.is_nil(l)
    assert.are.same({ "validation", "budgets[2].limt" }, { err.kind, err.field })
    assert.matches("did you mean limit?", err.message, 1, true)
    l, err = kling.ledger { budgets = { { limit = "5", currency = "CNY", note = "x" } } }
    assert.is_nil(l)
    assert.are.same({ "validation", "budgets[1].note" }, { err.kind, err.field })
    assert.matches("unknown field", err.message, 1, true)
    l = assert(kling.ledger { budgets = { { limit = "5", currency = "CNY" }, { limit = "9", currency = "USD" } } })
    assert.are.same({ "CNY", "USD" }, l:currencies())
  end)

  it("client:estimate refuses an unknown request field by name, as kling.estimate does", function()
    local c = assert(kling.new { provider = "kling", api_key = "k", base_url = "http://127.0.0.1:9" })
    local q, err = c:estimate { model = "kling-v2-6", mode = "pro", duration = 5, sond = true }
    assert.is_nil(q)
    assert.are.same({ "validation", "sond" }, { err.kind, err.field })
    assert.matches("did you mean sound?", err.message, 1, true)
    assert.are.equal("kling", assert(c:estimate { model = "kling-v2-6", mode = "pro", duration = 5, sound = true })
      .provider)
  end)

  it("issue 11.3: unknown options are errors naming the closest known option", function()
    local function raises(pattern, fn)
      local ok, msg = pcall(fn)
      assert.is_false(ok)
      assert.matches(pattern, tostring(msg))
    end
    raises("unknown option 'timeuot'; did you mean timeout%?", function()
      kling.new { timeuot = 5, api_key = "k" }
    end)
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9" })
    local t = require("kling.task").new(c, { id = "1", status = "running", endpoint = "videos/text2video" })
    raises("task:wait: unknown option 'timout'; did you mean timeout%?", function()
      t:wait { timout = 1 }
    end)
    raises("submit_many: unknown option 'max_paralel'; did you mean max_parallel%?", function()
      c:submit_many({}, { max_paralel = 2 })
    end)
    raises("wait_all: unknown option 'on_progres'; did you mean on_progress%?", function()
      c:wait_all({}, { on_progres = print })
    end)
    raises("wait_any: unknown option 'timeot'", function()
      c:wait_any({}, { timeot = 1 })
    end)
    raises("download: unknown option 'max_byte'; did you mean max_bytes%?", function()
      c:download("http://127.0.0.1:9/x", os.tmpname(), { max_byte = 1 })
    end)
    raises("engine.new: unknown option 'max_request'", function()
      require("kling.engine").new(c, { max_request = 1 })
    end)
    -- kling.new's engine option is checked when the client is made, not at its first submit_many
    raises("new{engine}: unknown option 'learn_fil'; did you mean learn_file%?", function()
      kling.new { api_key = "k", base_url = "http://127.0.0.1:9", engine = { learn_fil = "x" } }
    end)
    local _, eerr = kling.new { api_key = "k", base_url = "http://127.0.0.1:9", engine = 5 }
    assert.are.equal("engine", eerr and eerr.field)
    assert.matches("must be a table of kling.engine.new's options %(got a number %(5%)%)", tostring(eerr))
    raises("get_task: unknown option 'endpont'; did you mean endpoint%?", function()
      c:get_task("1", { endpont = "videos/text2video" })
    end)
    raises("list_tasks: unknown option 'pagesize'; did you mean page_size%?", function()
      c:list_tasks { pagesize = 2 }
    end)
    raises("call: unknown option 'methd'; did you mean method%?", function()
      c:call("general/custom-elements", {}, { methd = "GET" })
    end)
  end)

  it("a bad time setting or key is returned as a validation error naming it, not raised from inside", function()
    local function refused(opts, field, pattern)
      opts.base_url = "http://127.0.0.1:9"
      local c, err = kling.new(opts)
      assert.is_nil(c)
      assert.are.equal("validation", err.kind)
      assert.are.equal(field, err.field)
      assert.matches(pattern, err.message)
      assert.is_nil(tostring(err):find("%.lua:%d+:"), tostring(err))
    end
    local rule = "must be a positive number of seconds, at most 2147483"
    refused({ api_key = "k", timeout = 1 / 0 }, "timeout", rule)
    refused({ api_key = "k", timeout = -1 }, "timeout", rule)
    refused({ api_key = "k", connect_timeout = 0 / 0 }, "connect_timeout", rule)
    refused({ api_key = "k", poll_max = 0 }, "poll_max", rule)
    refused({ api_key = "k", wait_timeout = 3e6 }, "wait_timeout", rule)
    refused({ api_key = "k", max_download_bytes = 0 }, "max_download_bytes", "whole number of bytes")
    -- "(got 5)" read as the number 5 being refused: the string is shown as one, as duration's is
    refused({ api_key = "k", timeout = "5" }, "timeout", rule .. ' %(got a string %("5"%)%)$')
    refused({ api_key = "k", poll_min = "1\n" }, "poll_min", '%(got a string %("1\\n"%)%)$')
    refused({ api_key = "k", wait_timeout = true }, "wait_timeout", "%(got a boolean %(true%)%)$")
    refused({ api_key = "k", max_download_bytes = "5" }, "max_download_bytes", '%(got a string %("5"%)%)$')
    -- a whole number is shown in its digits, as the rule says them ("2147483648.0" read as a fraction)
    refused({ api_key = "k", max_download_bytes = 2 ^ 31 }, "max_download_bytes", "to 2147483647 %(got 2147483648%)$")
    refused({ api_key = "k", timeout = 1e15 }, "timeout", "%(got 1000000000000000%)$")
    -- A key goes into a header as it is: a space, tab or CR in it is the caller's to fix.
    refused({ api_key = "a\tb" }, "api_key", "printable ASCII without spaces")
    refused({ api_key = "a b" }, "api_key", "printable ASCII without spaces")
    -- The access key goes into the token's claims unescaped; a key read with its newline, or
    -- with a space, would only show as the provider's "invalid signature".
    refused({ access_key = "a\nb", secret_key = "s" }, "access_key", "printable ASCII without spaces, quotes")
    refused({ access_key = "a b", secret_key = "s" }, "access_key", "printable ASCII without spaces")
    refused({ access_key = 'a","exp":1,"x":"', secret_key = "s" }, "access_key", "quotes or backslashes")
    refused({ access_key = "a", secret_key = "s\r\nX: y" }, "secret_key", "printable ASCII without spaces")
    refused({ access_key = "a", secret_key = "s\n" }, "secret_key", "printable ASCII without spaces")
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9" })
    local t = require("kling.task").new(c, { id = "1", status = "running", endpoint = "videos/text2video" })
    for _, o in ipairs { { timeout = 0 / 0 }, { timeout = -1 }, { poll_min = 1 / 0 } } do
      local done, err = t:wait(o)
      assert.is_nil(done)
      assert.are.equal("validation", err.kind)
      assert.are.equal(next(o), err.field)
      assert.matches(rule, err.message, 1, true)
    end
    -- client:with raises (as its unknown names do), at its caller, naming the option.
    local ok, msg = pcall(function()
      local child = c:with { timeout = 1 / 0 }
      return child
    end)
    assert.is_false(ok)
    assert.matches("kling.with: timeout " .. rule, msg, 1, true)
    assert.matches("strict_input_spec.lua", msg, 1, true)
  end)

  it("kling.new refuses ca_file and user_agent beside a driver of its own, naming them", function()
    -- They are the libcurl driver's, which driver = replaces: kling.new took them and dropped
    -- them (inside nginx a ca_file verified nothing, lua_ssl_trusted_certificate did).
    local driver = { request = function() return { ok = false, kind = "network", message = "none" } end }
    for _, o in ipairs { { ca_file = "/etc/ssl/certs/ca-certificates.crt" }, { user_agent = "me/1" } } do
      local field = next(o)
      o.api_key, o.base_url, o.driver = "k", "http://127.0.0.1:9", driver
      local c, err = kling.new(o)
      assert.is_nil(c, field)
      assert.are.equal("validation", err.kind)
      assert.are.equal(field, err.field)
      assert.matches("is the libcurl driver's, which driver = replaces", err.message, 1, true)
    end
    assert.is_table((kling.new { api_key = "k", base_url = "http://127.0.0.1:9", driver = driver }))
  end)

  it("kling.new checks every per-call option by client:with's rule: nil, err naming it, not a raise later", function()
    -- kling.new took max_attempts = "3" or 0, retry_base_ms = 1.5, on_retry = 5, driver = 5 unchecked: the first
    -- call raised from the C core or transport.lua; local_files = "no" read files (a string is true); a
    -- user_agent with CR/LF was sent as a header line of its own (libcurl writes it as it is)
    local function refused(opts, field, pattern)
      opts.api_key, opts.base_url = "k", "http://127.0.0.1:9"
      local c, err = kling.new(opts)
      assert.is_nil(c, field)
      assert.are.equal("validation", err.kind)
      assert.are.equal(field, err.field)
      assert.matches(pattern, err.message)
      assert.is_nil(tostring(err):find("%.lua:%d+:"), tostring(err))
    end
    refused({ max_attempts = "3" }, "max_attempts", 'whole number of tries from 1 .*%(got a string %("3"%)%)$')
    refused({ max_attempts = 0 }, "max_attempts", "whole number of tries from 1")
    refused({ max_attempts = 1.5 }, "max_attempts", "whole number of tries from 1")
    refused({ retry_base_ms = -1 }, "retry_base_ms", "whole number of milliseconds from 0")
    refused({ retry_cap_ms = 1.5 }, "retry_cap_ms", "whole number of milliseconds from 0")
    refused({ on_retry = 5 }, "on_retry", "must be a function")
    refused({ auto_external_id = "no" }, "auto_external_id", "must be a boolean")
    refused({ local_files = "no" }, "local_files", "must be a boolean")
    refused({ user_agent = "me\r\nX-Evil: 1" }, "user_agent", "no control characters")
    refused({ user_agent = 5 }, "user_agent", "printable ASCII")
    refused({ driver = 5 }, "driver", "a table with a request method")
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9", max_attempts = 2, retry_base_ms = 0,
      user_agent = "me/1", local_files = false, auto_external_id = false })
    assert.are.equal(2, c.ctx.max_attempts)
    -- client:with raises by the same rule, naming the option
    for _, o in ipairs { { max_attempts = "3" }, { retry_cap_ms = -1 }, { auto_external_id = "no" } } do
      local ok, msg = pcall(c.with, c, o)
      assert.is_false(ok)
      assert.matches("kling.with: " .. next(o) .. " must be", msg, 1, true)
    end
  end)

  it("a positive time under a millisecond is 1 ms, never a raise from the driver", function()
    -- kling.new{timeout = 1e-9} (positive, so taken) raised "kling.http: field 'timeout_ms' must be an
    -- integer between 1 and 2147483647" from the libcurl driver; so did client:with and client:download
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9", timeout = 1e-9,
      connect_timeout = 4e-4, call_budget = 1e-9, max_attempts = 1 })
    assert.are.equal(1, c.ctx.timeout_ms)
    assert.are.equal(1, c.ctx.connect_timeout_ms)
    local quick = c:with { timeout = 1e-9 }
    assert.are.equal(1, quick.ctx.timeout_ms)
    local tmp = os.tmpname()
    os.remove(tmp)
    local got, err = c:download("http://127.0.0.1:9/x.mp4", tmp .. ".mp4", { timeout = 1e-9 })
    assert.is_nil(got)
    assert.are.equal("network", err.kind)
  end)

  -- kling.estimate checked the price facts first (durations, model, sound) and the provider's
  -- rules after: a multi-shot request on apimodels (no multi-shot) with a wrong duration was
  -- "duration: 99 s differs from the sum of the shots' durations" there, and "multi_prompt: not
  -- supported by provider 'apimodels'" at submit.
  it("an estimate names the same first error as submit (one validation order)", function()
    local shots = { { prompt = "a", duration = 2 }, { prompt = "b", duration = 3 } }
    local cases = {
      { "apimodels", { duration = 99 } }, { "apimodels", { duration = "x" } }, { "apimodels", { model = 5 } },
      { "apimodels", { sound = "yes" } }, { "evolink", { duration = 10 } }, { "kling", { duration = -1 } },
      { "compat", { multi_prompt = { { prompt = "a", duration = 20 } } } }, { "evolink", { mode = "ultra" } },
    }
    for _, case in ipairs(cases) do
      local name, over = case[1], case[2]
      local req = { model = "kling-v3", mode = "pro", duration = 5, multi_shot = true, multi_prompt = shots }
      for k, v in pairs(over) do
        req[k] = v
      end
      local c = assert(kling.new { provider = name, api_key = "k", base_url = "http://127.0.0.1:9" })
      local _, want = c:check(req)
      assert.is_table(want, name)
      local with = { provider = name }
      for k, v in pairs(req) do
        with[k] = v
      end
      local _, got = kling.estimate(with)
      local _, mine = c:estimate(req)
      assert.are.equal(tostring(want), tostring(got))
      assert.are.equal(tostring(want), tostring(mine))
    end
  end)

  -- 0/0 was shown as tostring gives it, "-nan" on x86-64 (a new-user trial)
  it("names NaN as NaN in its messages, whatever its sign bit", function()
    local c = assert(kling.new { provider = "kling", api_key = "k", base_url = "http://127.0.0.1:9" })
    for _, nan in ipairs { 0 / 0, -(0 / 0) } do
      local _, err = c:check { model = "kling-v2-6", prompt = "x", duration = nan }
      assert.matches("duration: must be a whole number, got NaN", tostring(err), 1, true)
      _, err = kling.new { provider = "kling", api_key = "k", base_url = "http://127.0.0.1:9", timeout = nan }
      assert.matches("(got NaN)", tostring(err), 1, true)
      _, err = c:check { model = "kling-v2-6", prompt = "x", cfg_scale = nan }
      assert.is_nil(tostring(err):find("nan", 1, true), tostring(err))
    end
  end)

  it("the engine's times become milliseconds by kling.validate's one rule", function()
    -- kling.engine.args.ms rounded 4e-4 s to 0 ms beside validate.seconds_ms's 1 ms (an engine
    -- timeout or callback_silence of 0 ms, a min_interval the scheduler takes as none)
    local args = require "kling.engine.args"
    local validate = require "kling.validate"
    for _, s in ipairs { 1e-9, 4e-4, 5e-4, 0.0015, 1, 2.5, 60, validate.MAX_SECONDS } do
      assert.are.equal(validate.seconds_ms(s), args.ms("engine.new", "timeout", s))
    end
    assert.are.equal(1, args.ms("engine.new", "timeout", 4e-4))
    for _, bad in ipairs { 0, -1, 0 / 0, "5", validate.MAX_SECONDS + 1 } do
      local ok, msg = pcall(args.ms, "engine.new", "timeout", bad)
      assert.is_false(ok)
      assert.matches("engine.new: timeout must be a positive number of seconds", msg, 1, true)
    end
    assert.are.equal(0, args.ms("engine:wait", "progress_interval", 0, 1000, true))
    assert.are.equal(1, args.ms("engine:wait", "progress_interval", 4e-4, 1000, true))
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9", poll_min = 4e-4, poll_max = 4e-4 })
    local e = c:engine { learn_file = false, timeout = 4e-4, callback_silence = 4e-4 }
    assert.are.equal(1, e.task_timeout_ms)
    assert.are.equal(1, e.silence_ms)
  end)

  it("a first poll interval longer than the longest is refused by kling.new, client:with and task:wait", function()
    -- core.sched would raise the longest to the first without a word: 20 s then 15 s is a mistake.
    local order = "is longer than poll_max (15 s): the first poll interval may not exceed the longest"
    local c, err = kling.new { api_key = "k", base_url = "http://127.0.0.1:9", poll_min = 20 }
    assert.is_nil(c)
    assert.are.same({ "validation", "poll_min" }, { err.kind, err.field })
    assert.matches("poll_min (20 s) " .. order, err.message, 1, true)
    c, err = kling.new { api_key = "k", base_url = "http://127.0.0.1:9", poll_max = 0.5 }
    assert.is_nil(c)
    assert.are.same({ "validation", "poll_max" }, { err.kind, err.field })
    c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9" })
    local ok, msg = pcall(function()
      local child = c:with { poll_min = 20 }
      return child
    end)
    assert.is_false(ok)
    assert.matches("kling.with: poll_min (20 s) " .. order, msg, 1, true)
    local t = require("kling.task").new(c, { id = "1", status = "running", endpoint = "videos/text2video" })
    local done
    done, err = t:wait { poll_min = 20, timeout = 1 }
    assert.is_nil(done)
    assert.are.same({ "validation", "poll_min" }, { err.kind, err.field })
    assert.truthy(c:with { poll_min = 20, poll_max = 30 })
  end)

  it("a budget's currency is an upper-case ISO code or a provider's unit, never a made-up one", function()
    -- "cny" became the currency "kling-cny" and every submit failed "no budget in CNY".
    for cur, said in pairs { cny = '"cny" is not a currency code: codes are upper case (CNY)',
      [" CNY"] = '" CNY" is not a currency', ["CNY\n"] = '"CNY\\x0a" is not a currency' } do
      local c, err = kling.new { api_key = "k", base_url = "http://127.0.0.1:9",
        budget = { limit = "5", currency = cur } }
      assert.is_nil(c, cur)
      assert.are.same({ "validation", "budget.currency" }, { err.kind, err.field })
      assert.matches(said, err.message, 1, true)
    end
    local ledger, err = kling.ledger { limit = "5", currency = "credits" }
    assert.is_nil(ledger)
    assert.matches("not one currency: name the provider's unit, such as evolink-credits", err.message, 1, true)
    -- a client's bare "credits" is its provider's own unit
    local c = assert(kling.new { provider = "evolink", api_key = "k", base_url = "http://127.0.0.1:9",
      budget = { limit = "5", currency = "credits" } })
    assert.are.equal("evolink-credits", c.ledger.currency)
  end)

  -- A new user's trial: {currency = "RMB"} was accepted, and the first submit failed "no budget
  -- in CNY (the budget is in RMB)". kling run refuses --budget 50XYZ by the same rule.
  it("kling.new refuses a budget in a currency no provider charges in, naming it and the known ones", function()
    local units = "(the providers' units: CNY, USD, apiinone-credits, evolink-credits)"
    local function refused(b, field, named)
      local c, err = kling.new { api_key = "k", base_url = "http://127.0.0.1:9", budget = b }
      assert.is_nil(c)
      assert.are.same({ "validation", field }, { err.kind, err.field })
      assert.matches("no provider charges in " .. named .. " and no budget.rates converts it", err.message, 1, true)
      assert.matches(units, err.message, 1, true)
    end
    refused({ limit = "5", currency = "RMB" }, "budget.currency", "RMB")
    -- "credits" on the official API is kling-credits: no one charges in those either
    refused({ limit = "5", currency = "credits" }, "budget.currency", "kling-credits")
    refused({ budgets = { { limit = "5", currency = "CNY" }, { limit = "1", currency = "XYZ" } } },
      "budget.budgets[2].currency", "XYZ")
    -- a currency the rates convert, and one a client's own catalog charges in, count
    assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9", budget = { budgets = {
      { limit = "5", currency = "EUR" } }, rates = { currency = "EUR", rates = { CNY = "0.13" } } } })
    local cat = {}
    for k, v in pairs(require "kling.prices.kling") do
      cat[k] = v
    end
    cat.currency = "RMB"
    assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9", catalogs = { kling = cat },
      budget = { limit = "5", currency = "RMB" } })
  end)

  -- kling quote --rates CYN=... and kling run's --rates file refused a rate for a currency no provider
  -- charges in; kling.quote and kling.new's budget.rates took it: one rule (kling.money.hold.unrated)
  -- engine = {webhook_secret = "whsec_!!!"} was taken and every deliver() then raised in C: refused when
  -- the client is made, by the rule the gateway config and kling sim start use (kling.webhook.secret_problem)
  it("kling.new refuses an engine webhook_secret that cannot verify anything, naming it", function()
    for _, bad in ipairs { "whsec_!!!", "", 5 } do
      local c, err = kling.new { api_key = "k", base_url = "http://127.0.0.1:9", engine = { webhook_secret = bad } }
      assert.is_nil(c, tostring(bad))
      assert.are.same({ "validation", "engine.webhook_secret" }, { err.kind, err.field })
    end
    local _, err = kling.new { api_key = "k", base_url = "http://127.0.0.1:9",
      engine = { webhook_secret = "whsec_!!!" } }
    assert.matches("after whsec_ must come the key in base64", err.message, 1, true)
    assert.is_nil(err.message:find("!!!", 1, true)) -- a secret is never shown
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9", engine = {
      webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" } })
    local ok, msg = pcall(require("kling.engine").new, c, { webhook_secret = "whsec_!!!" })
    assert.is_false(ok)
    assert.matches("kling.engine.new: webhook_secret after whsec_", msg, 1, true)
  end)

  -- README: kling.new's engine option is "checked by name and value when the client is made"; its values
  -- were taken and raised at the first submit_many (engine = {timeout = 1e300}, slots = 5 as "attempt to
  -- index a number value"), or never (estimate = -1, webhook_tolerance = -1, on_create = 5)
  it("kling.new refuses an engine option's bad value when the client is made, naming it", function()
    for _, c in ipairs {
      { { timeout = 1e300 }, "engine.timeout", "must be a positive number of seconds, at most 2147483" },
      { { min_interval = -1 }, "engine.min_interval", "must be a positive number of seconds" },
      { { callback_silence = "x" }, "engine.callback_silence", "must be a positive number of seconds" },
      { { estimate = -1 }, "engine.estimate", "must be a positive number of seconds" },
      { { deadline = -5 }, "engine.deadline", "; or 0" },
      { { max_parallel = 0 }, "engine.max_parallel", "must be a whole number from 1 to 1000000" },
      { { max_parallel = { ["kling-v2-6"] = 1.5 } }, "engine.max_parallel[kling-v2-6]", "must be a whole number" },
      { { max_requests = 0 }, "engine.max_requests", "must be a whole number from 1 to 100000" },
      { { lookups = 1000 }, "engine.lookups", "must be a whole number from 1 to 100" },
      { { callbacks = "yes" }, "engine.callbacks", "must be true or false" },
      { { learn_file = 42 }, "engine.learn_file", "must be a path or false" },
      { { webhook_tolerance = -1 }, "engine.webhook_tolerance", "must be a whole number of seconds from 0" },
      { { on_create = 5 }, "engine.on_create", "must be a function" },
      { { jitter = "x" }, "engine.jitter", "must be a number" },
      { { backoff = 0.5 }, "engine.backoff", "backoff must be a factor between 1 and 4" },
      { { slots = 5 }, "engine.slots", "must be a table" },
      { { slots = { decrease = 7 } }, "engine.slots", "decrease must be a factor strictly between 0 and 1" },
    } do
      local ok, cl, err = pcall(kling.new, { api_key = "k", base_url = "http://127.0.0.1:9", engine = c[1] })
      assert.is_true(ok, tostring(cl))
      assert.is_nil(cl, c[2])
      assert.are.same({ "validation", c[2] }, { err.kind, err.field })
      assert.matches(c[3], err.message, 1, true)
    end
    local cl = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9", engine = { timeout = 60,
      max_parallel = { ["kling-v2-6"] = 2 }, jitter = 0.2, backoff = 2, seed = 3, slots = {}, deadline = 0,
      webhook_tolerance = 0, learn_file = false, on_create = function() end } })
    assert(cl:engine())
  end)

  -- get_task{external_task_id = "x", id = "1"} looked the task up by "x" alone, the id unseen
  it("get_task refuses a key of its table reference other than external_task_id, by name", function()
    local fake = require "support.fake_kling"
    local f = fake.new()
    local c = fake.client(f)
    assert.has_error(function()
      c:get_task { external_task_id = "x", id = "1" }
    end, "kling.get_task: unknown key 'id' of the task reference {external_task_id = ...}")
    assert.has_error(function()
      c:get_task { external_task_id = "x", external_task_i = "1" }
    end, "kling.get_task: unknown key 'external_task_i' of the task reference {external_task_id = ...}; "
      .. "did you mean external_task_id?")
    assert.are.equal(0, f.stats.requests)
  end)

  -- call("general/delete-elements", {element_id = "a\r\nX"}) sent CR and LF to the provider
  it("client:call refuses a control character in any of its fields, by name, before anything is sent", function()
    local sent = 0
    local driver = { now_ms = function() return 0 end, sleep_ms = function() end, wall_s = function() return 0 end }
    function driver.request()
      sent = sent + 1
      return nil, "not sent in this test"
    end
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9", driver = driver, max_attempts = 1 })
    for _, case in ipairs {
      { "general/delete-elements", { element_id = "a\r\nX" }, "element_id", "U+000D at byte 2" },
      { "general/delete-voices", { voice_id = "v\tw" }, "voice_id", "U+0009 at byte 2" },
      { "general/delete-voices", { voice_id = "v\0" }, "voice_id", "a NUL character at byte 2" },
      { "videos/multi-elements/init-selection", { video_url = "https://x.example/a\194\155" }, "video_url",
        "U+009B at byte 20" },
      { "videos/multi-elements/clear-selection", { session_id = "s\27[2J" }, "session_id", "U+001B at byte 2" },
    } do
      local r, err = c:call(case[1], case[2])
      assert.is_nil(r, case[3])
      assert.are.same({ "validation", case[3] }, { err.kind, err.field })
      assert.matches("must not contain control characters (got " .. case[4] .. ")", err.message, 1, true)
    end
    local _, err = c:call("videos/multi-elements/add-selection", { ["session\r"] = "s", frame_index = 0,
      points = { { x = 0.1, y = 0.2 } } }) -- a name the call does not take: refused by name, shown escaped
    assert.are.same({ "validation", "session\\r" }, { err.kind, err.field })
    assert.are.equal(0, sent)
    c:call("general/delete-elements", { element_id = "a-1 b" }) -- a clean one is sent
    assert.are.equal(1, sent)
  end)

  -- call("general/custom-element") said only "unknown call", where every other name the library
  -- refuses comes with the closest known one
  it("client:call names an unknown call with the closest one, or lists them all, before anything is sent", function()
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9" })
    local _, err = c:call("general/custom-element")
    assert.are.same({ "validation", "endpoint" }, { err.kind, err.field })
    assert.are.equal("unknown call 'general/custom-element'; did you mean general/custom-elements?", err.message)
    _, err = c:call("videos/multi-elements/init-selections")
    assert.matches("did you mean videos/multi-elements/init-selection?", err.message, 1, true)
    _, err = c:call("zzz")
    assert.matches("unknown call 'zzz' (known: general/custom-elements, general/custom-voices, ", err.message, 1, true)
  end)

  -- call(e, p, {method = 5}) raised "attempt to index a number value" from inside the provider
  it("client:call names a method that is not a string, as it names one the call does not take", function()
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9" })
    for _, m in ipairs { 5, true, {} } do
      local ok, r, err = pcall(c.call, c, "general/delete-elements", { element_id = "a" }, { method = m })
      assert.is_true(ok, tostring(r))
      assert.are.same({ "validation", "method" }, { err.kind, err.field })
      assert.matches("must be an HTTP method's name, such as \"POST\" (got ", err.message, 1, true)
    end
    local _, err = c:call("general/delete-elements", { element_id = "a" }, { method = "PUT" })
    assert.are.same({ "validation", "method" }, { err.kind, err.field })
  end)

  -- submit_many(reqs, {adopt = 5}) was taken as adopt = true; a bad submit_timeout raised only once
  -- every create had been queued (the next wait sent them); a bad estimate failed each task alone
  it("submit_many refuses a bad option value by name before any request is taken in", function()
    local fake = require "support.fake_kling"
    local f = fake.new()
    local c = fake.client(f)
    local reqs = { { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "x" } }
    for _, case in ipairs {
      { { adopt = 5 }, "adopt must be a boolean (true or false) (got 5)" },
      { { adopt = "yes" }, "adopt must be a boolean" },
      { { submit_timeout = -1 }, "submit_timeout must be a positive number of seconds" },
      { { submit_timeout = "5" }, "submit_timeout must be a positive number of seconds" },
      { { timeout = 0 }, "timeout must be a positive number of seconds" },
      { { estimate = -3 }, "estimate must be a positive number of seconds" },
      { { max_parallel = 2.5 }, "max_parallel must be a whole number of slots from 1 to 1000000" },
      { { max_parallel = "2" }, "max_parallel must be a whole number of slots" },
      { { engine = 5 }, "engine must be a table of kling.engine.new's options" },
      { { engine = { timeout = -1 } }, "engine.timeout must be a positive number of seconds" },
      { { engine = { max_request = 2 } }, "submit_many{engine}: unknown option 'max_request'" },
    } do
      local ok, msg = pcall(c.submit_many, c, reqs, case[1])
      assert.is_false(ok, case[2])
      assert.matches("kling." .. (case[2]:find("^submit_many") and "" or "submit_many: ") .. case[2], msg, 1, true)
    end
    c:engine() -- made: the engine option is not used any more, and still checked
    assert.has_error(function()
      c:submit_many(reqs, { engine = { slots = 5 } })
    end, "kling.submit_many: engine.slots must be a table {decrease, recover_after, recover_ms, cooldown_ms} "
      .. "(got a number (5))")
    -- a request that is not a table is refused before the ones before it are taken in
    assert.has_error(function()
      c:submit_many({ reqs[1], 5 })
    end, "kling.submit_many: reqs[2] must be a request table")
    assert.are.equal(0, c:engine():stats().active)
    c:wait_all({}, { timeout = 1 })
    assert.are.equal(0, f.stats.requests)
    local tasks = c:submit_many(reqs, { adopt = false, submit_timeout = 5, max_parallel = 2, estimate = 1 })
    assert.is_string(tasks[1].id)
    assert.are.equal(1, f.stats.creates)
  end)

  -- An options table that is not one was read as no options: get_task(id, "videos/image2video")
  -- asked the video endpoints, list_tasks("videos/image2video") listed text2video's, run(req, 60)
  -- sent the create and waited by the client's defaults, task:wait("60") likewise.
  it("get_task, list_tasks, run and task:wait refuse options that are not a table, before anything is sent",
    function()
    local fake = require "support.fake_kling"
    local f = fake.new()
    local c = fake.client(f)
    local t = require("kling.task").new(c, { id = "1", status = "running", endpoint = "videos/text2video" })
    assert.has_error(function()
      c:get_task("1", "videos/image2video")
    end, "kling.get_task: bad argument #2 (table expected, got string)")
    assert.has_error(function()
      c:list_tasks "videos/image2video"
    end, "kling.list_tasks: bad argument #1 (table expected, got string)")
    assert.has_error(function()
      c:run({ model = "kling-v2-6", mode = "pro", duration = 5, prompt = "x" }, "60")
    end, "kling.run: bad argument #2 (table expected, got string)")
    assert.has_error(function()
      t:wait "60"
    end, "kling.task:wait: bad argument #1 (table expected, got string)")
    assert.are.equal(0, f.stats.requests)
  end)

  -- A bad progress_interval raised from inside the wait's loop as "kling.engine:wait", once the
  -- tasks were under watch: wait_all and wait_any check it, and timeout, with their names first
  it("wait_all and wait_any refuse a bad progress_interval or timeout by their own name, before watching", function()
    local fake = require "support.fake_kling"
    local f = fake.new()
    local c = fake.client(f)
    local tasks = c:submit_many { { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "x" } }
    local polls = f.stats.polls
    for _, fn in ipairs { "wait_all", "wait_any" } do
      for _, o in ipairs { { progress_interval = "x" }, { progress_interval = -1 }, { timeout = 1e300 } } do
        local ok, msg = pcall(c[fn], c, tasks, o)
        assert.is_false(ok)
        assert.matches("kling." .. fn .. ": " .. next(o) .. " must be a positive number of seconds", msg, 1, true)
      end
    end
    assert.are.equal(polls, f.stats.polls)
    assert.is_table(c:wait_all(tasks, { progress_interval = 0, timeout = 0.001 }))
  end)

  -- engine:submit took {adpot = true} and {adopt = 5} (read as true) without a word; track any name
  it("engine:submit and engine:track refuse an unknown option by name and a wrong-typed adopt or key", function()
    local fake = require "support.fake_kling"
    local f = fake.new()
    local c = fake.client(f)
    local e = c:engine()
    local req = { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "x" }
    for _, case in ipairs {
      { { adpot = true }, "kling.engine:submit: unknown option 'adpot'; did you mean adopt?" },
      { { adopt = 5 }, "kling.engine:submit: adopt must be true or false (got 5)" },
      { { key = 7 }, "kling.engine:submit: key must be a non-empty string, the ledger key of the task's hold (got 7)" },
    } do
      assert.has_error(function()
        e:submit(req, case[1])
      end, case[2])
    end
    local t = require("kling.task").new(c, { id = "1", status = "running", endpoint = "videos/text2video" })
    assert.has_error(function()
      e:track(t, { adopt = true })
    end, "kling.engine:track: unknown option 'adopt'")
    assert.has_error(function()
      e:track(t, 5)
    end, "kling.engine:track: bad argument #2 (table expected, got number)")
    assert.are.equal(0, e:stats().active)
    assert.is_table(e:submit(req, { adopt = false, key = "row-1#1", estimate = 1 }))
  end)

  -- kling.new{api_key = 5} raised "kling.core: field 'api_key' must be a string"; an access_key of
  -- the wrong type beside an api_key was dropped unseen
  it("kling.new returns a key that is not a string as a validation error naming it, never its value", function()
    for _, case in ipairs {
      { { api_key = 12345 }, "api_key", "a number" },
      { { access_key = 12345, secret_key = "s" }, "access_key", "a number" },
      { { api_key = "k", access_key = true }, "access_key", "a boolean" },
      { { access_key = "a", secret_key = { "s3cr3t" } }, "secret_key", "a table" },
    } do
      local o = case[1]
      o.base_url = "http://127.0.0.1:9"
      local ok, c, err = pcall(kling.new, o)
      assert.is_true(ok, tostring(c))
      assert.is_nil(c)
      assert.are.same({ "validation", case[2] }, { err.kind, err.field })
      assert.are.equal("must be a string (got " .. case[3] .. ")", err.message:match("must be .*$"))
      assert.is_nil(err.message:find("12345", 1, true))
    end
  end)

  -- client:run sent its create and only then refused its wait's options: each paid for a task it
  -- would not wait for (on_progress = 5 raised "attempt to call a number value" after the create)
  -- A request's own estimate (seconds, never sent): "x" passed check and submit unread, and
  -- submit_many raised "attempt to mul a 'string' with a 'number'" from inside the engine.
  it("a request's estimate is refused by its rule in check, submit and submit_many, naming it, nothing sent",
    function()
      local fake = require "support.fake_kling"
      local f = fake.new()
      local c = fake.client(f)
      for _, v in ipairs { "x", -1, 0 / 0 } do
        local req = { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "x", estimate = v }
        for _, call in ipairs { c.check, c.submit } do
          local ok, t, err = pcall(call, c, req)
          assert.is_true(ok, tostring(t))
          assert.is_nil(t)
          assert.are.same({ "validation", "estimate" }, { err.kind, err.field })
          assert.matches("must be a positive number of seconds", err.message, 1, true)
        end
        local ok, tasks = pcall(c.submit_many, c, { req })
        assert.is_true(ok, tostring(tasks))
        assert.are.same({ "validation", "estimate" }, { tasks[1].error.kind, tasks[1].error.field })
      end
      assert.are.equal(0, f.stats.requests)
      local tasks = c:submit_many { { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "x", estimate = 60 } }
      assert.is_string(tasks[1].id, tostring(tasks[1].error))
    end)

  it("client:run refuses its wait options before the create is sent", function()
    local fake = require "support.fake_kling"
    local f = fake.new()
    local c = fake.client(f)
    local req = { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "x" }
    for _, o in ipairs {
      { { timeout = -1 }, "timeout" }, { { poll_min = 20, poll_max = 5 }, "poll_min" },
      { { on_progress = 5 }, "on_progress" },
    } do
      local ok, t, err = pcall(c.run, c, req, o[1])
      assert.is_true(ok, tostring(t))
      assert.is_nil(t)
      assert.are.same({ "validation", o[2] }, { err.kind, err.field })
    end
    assert.has_error(function()
      c:run(req, { timout = 5 })
    end, "kling.task:wait: unknown option 'timout'; did you mean timeout?")
    assert.are.equal(0, f.stats.creates)
  end)

  it("kling.quote and kling.new's budget.rates refuse a rate for a currency no provider charges in", function()
    local ok, msg = pcall(kling.quote, { model = "kling-v2-6", duration = 5 }, { rates = { CYN = "0.14" } })
    assert.is_false(ok)
    assert.matches("kling.quote: rates.CYN: no provider charges in CYN, so its rate could never apply; "
      .. "did you mean CNY?", msg, 1, true)
    local c, err = kling.new { api_key = "k", base_url = "http://127.0.0.1:9", budget = { limit = "5", currency = "CNY",
      rates = { currency = "CNY", rates = { XYZ = "0.1" } } } }
    assert.is_nil(c)
    assert.are.same({ "validation", "budget.rates.rates.XYZ" }, { err.kind, err.field })
    assert.matches("no provider charges in XYZ, so its rate could never apply", err.message, 1, true)
    assert(kling.quote({ model = "kling-v2-6", duration = 5 }, { rates = { CNY = "0.14" } }))
    assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9", budget = { limit = "5", currency = "CNY",
      rates = { currency = "CNY", rates = { USD = "7.1" } } } })
  end)

  it("a misuse raised deep inside the module names the caller's line, never a kling/*.lua one", function()
    local c = assert(kling.new { api_key = "k", base_url = "http://127.0.0.1:9" })
    for name, fn in pairs {
      with_attempts = function() local x = c:with { max_attempts = 0 }; return x end,
      with_bytes = function() local x = c:with { max_download_bytes = 0 }; return x end,
      wait_all = function() local x = c:wait_all({}, { timeout = -1 }); return x end,
      submit_many = function() local x = c:submit_many({}, { max_parallel = 0 }); return x end,
      engine = function() local x = require("kling.engine").new(c, { max_requests = 0 }); return x end,
    } do
      local ok, msg = pcall(fn)
      assert.is_false(ok, name)
      assert.matches("^[^\n]*strict_input_spec%.lua:%d+: kling%.", msg, nil, name)
      -- the library's files (a checkout may itself be named kling/)
      assert.is_nil(msg:find("lua/kling/[%w_/]+%.lua:%d+:"), msg)
    end
  end)

  it("issue 11.21: duration \"5\" names the type it got", function()
    local err = official.rejects({ prompt = "x", duration = "5" }, "duration", "must be a number, got a string")
    assert.matches('"5"', err.message, 1, true)
    provider("apimodels").rejects({ prompt = "x", duration = "5" }, "duration", "got a string")
  end)

  -- A new user's {model = {"kling-v2-6"}} got "unknown model 'an array'"; a prompt said "got table" where
  -- mode said "got an array".
  it("a model of the wrong type says the type rule, on every provider; every field names types one way", function()
    local c = assert(kling.new { provider = "kling", base_url = "http://127.0.0.1:9", access_key = "a",
      secret_key = "b" })
    for _, case in ipairs {
      { { "kling-v2-6" }, "an array" }, { 26, "a number (26)" }, { true, "a boolean (true)" },
      { { name = "kling-v2-6" }, "an object" },
    } do
      local _, err = c:check { model = case[1], mode = "pro", duration = 5, prompt = "a boat" }
      assert.are.equal("model", err.field)
      assert.are.equal("must be a string, got " .. case[2], err.message)
      for _, name in ipairs { "apimodels", "evolink", "apiinone", "compat" } do
        provider(name).rejects({ model = case[1], prompt = "x", duration = 5 }, "model",
          (("^must be a string, got " .. case[2] .. "$"):gsub("[%(%)]", "%%%0")))
      end
      local _, qerr = kling.estimate { provider = "kling", model = case[1], mode = "pro", duration = 5 }
      assert.are.equal("must be a string, got " .. case[2], qerr.message)
    end
    for field, case in pairs {
      prompt = { { "x" }, "must be a string, got an array" },
      negative_prompt = { 5, "must be a string, got a number (5)" },
      duration = { { 5 }, "must be a number, got an array" },
      cfg_scale = { "0.5", 'must be a number, got a string ("0.5")' },
      sound = { "yes", 'must be a boolean (true or false), got a string ("yes")' },
      mode = { { "pro" }, "must be one of pro, std (got an array)" },
      external_task_id = { { 1 }, "must be a string, got an array" },
      callback_url = { { 1 }, "must be an http(s) URL string, got an array" },
      image = { { 1 }, "must be an image URL or base64 data, got an array" },
    } do
      local req = { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "a boat" }
      req[field] = case[1]
      local _, err = c:check(req)
      assert.are.equal(field, err.field)
      assert.are.equal(case[2], err.message)
      assert.is_nil(err.message:find("table", 1, true), field)
    end
  end)

  it("issue 11.17: a duration beyond int64 is refused as itself, neither raising nor echoed as INT64_MIN", function()
    for _, d in ipairs { 9.22e18, 2 ^ 63, -9.3e18, 1e300 } do
      local err = official.rejects({ prompt = "x", model = "kling-v2-6", mode = "pro", duration = d }, "duration",
        "must be")
      assert.is_nil(err.message:find("-9223372036854775808", 1, true))
      local q, qerr = kling.estimate { provider = "kling", prompt = "x", model = "kling-v2-6", mode = "pro",
        duration = d }
      assert.is_nil(q)
      assert.are.equal("validation", qerr.kind)
    end
  end)

  it("issue 11.21: an end frame without image is refused by name, never sent to text2video", function()
    local P = providers.get("kling")
    -- The API's spelling is refused by name wherever it would go...
    official.rejects({ prompt = "x", image_tail = IMG }, "image_tail", "use last_image")
    -- ...and the canonical one goes to image2video, which needs the first frame.
    assert.are.equal("videos/image2video", P.default_endpoint { prompt = "x", last_image = IMG })
    official.rejects({ prompt = "x", last_image = IMG }, "last_image", "needs image")
  end)

  it("issue 11.15: estimate and settle return a validation error for a model or mode that is not a string", function()
    for _, req in ipairs {
      { provider = "kling", model = { "kling-v1" }, duration = 5 },
      { provider = "kling", mode = 1, duration = 5 },
      { provider = "kling", endpoint = "videos/effects", effect_scene = "hug", input = { model_name = 7 } },
    } do
      for _, call in ipairs {
        function() return billing.estimate(req) end,
        function() return billing.settle(req, { duration = 5 }) end,
      } do
        local ok, q, err = pcall(call)
        assert.is_true(ok, tostring(q))
        assert.is_nil(q)
        assert.are.equal("validation", err.kind)
        assert.matches("must be a string, got", err.message)
        assert.is_string(err.field)
      end
    end
  end)

  it("issue 14.1: no credentials inside nginx says that nginx.conf must name the variable (env KLING_API_KEY;)",
    function()
    local getenv = os.getenv
    os.getenv = function(name) -- luacheck: ignore 122
      return not name:match("^KLING_") and getenv(name) or nil
    end
    local ok, c, err = pcall(kling.new, { provider = "kling", base_url = "http://127.0.0.1:9" })
    local plain = ok and not c and err.message
    rawset(_G, "ngx", {})
    ok, c, err = pcall(kling.new, { provider = "kling", base_url = "http://127.0.0.1:9" })
    rawset(_G, "ngx", nil)
    os.getenv = getenv -- luacheck: ignore 122
    assert.is_true(ok, tostring(c))
    assert.is_nil(c)
    assert.are.equal("auth", err.kind)
    assert.matches("env KLING_API_KEY;", err.message, 1, true)
    assert.not_matches("nginx", plain)
  end)

  it("issue 14.1: a model or mode sent as a JSON array or object is named by its kind, not by an address", function()
    for _, name in ipairs { "kling", "evolink", "compat", "apimodels", "apiinone" } do
      local c = assert(kling.new { provider = name, api_key = "k", base_url = "http://127.0.0.1:9" })
      local _, err = c:check { model = { "kling-v3" }, prompt = "x" }
      assert.are.equal("model", err.field, name)
      assert.are.equal("must be a string, got an array", err.message, name)
    end
    local c = assert(kling.new { provider = "kling", api_key = "k", base_url = "http://127.0.0.1:9" })
    local _, err = c:check { model = "kling-v2-6", mode = { a = 1 }, prompt = "x" }
    assert.are.equal("mode", err.field)
    assert.matches("(got an object)", err.message, 1, true)
  end)
end)

-- A client of the gateway sent a field named with a megabyte of 'k': its suggestion (an edit
-- distance to every known name) held the worker 11 s, and the answer echoed the megabyte.
describe("a text field", function()
  it("takes line breaks and tabs, never a NUL (a C string upstream ends at it)", function()
    local c = kling.new { provider = "kling", api_key = "x", base_url = "http://127.0.0.1:9" }
    assert.is_truthy(c:check { model = "kling-v1", prompt = "line1\r\nline2\tz" })
    local ok, err = c:check { model = "kling-v1", prompt = "x\0y" }
    assert.is_nil(ok)
    assert.are.equal("prompt", err.field)
    assert.matches("(got a NUL character at byte 2)", err.message, 1, true)
  end)

  -- ESC, BEL, DEL and the other controls went upstream in a prompt (and into every log and
  -- listing that echoes it: "\27]0;owned\7" retitles a terminal)
  it("refuses ESC, BEL, DEL and the other controls but tab, LF and CR, by name, before any call", function()
    local sent = 0
    local function debug() -- called with each request the client sends
      sent = sent + 1
    end
    for _, name in ipairs { "kling", "evolink", "apimodels", "apiinone", "compat" } do
      local c = assert(kling.new { provider = name, api_key = "x", base_url = "http://127.0.0.1:9", debug = debug,
        max_attempts = 1 })
      local model = name == "kling" and "kling-v2-6" or name == "apimodels" and "kling-v2-6" or "kling-v3"
      for _, case in ipairs { { "\27[2J", "U+001B" }, { "bell\7", "U+0007" }, { "del\127", "U+007F" },
        { "bs\8", "U+0008" }, { "vt\11", "U+000B" }, { "ff\12", "U+000C" }, { "csi\194\155", "U+009B" } } do
        local t, err = c:submit { model = model, mode = "std", duration = 5, prompt = "a fox " .. case[1] }
        assert.is_nil(t, name)
        assert.are.equal("prompt", err.field, name .. ": " .. tostring(err))
        assert.matches("control characters other than tab, line feed and carriage return (got " .. case[2],
          err.message, 1, true)
        if name == "kling" then
          _, err = c:check { model = model, prompt = "ok", negative_prompt = "x" .. case[1] }
          assert.are.equal("negative_prompt", err.field)
          _, err = kling.estimate { provider = name, model = model, mode = "std", duration = 5, prompt = case[1] }
          assert.are.equal("prompt", err.field)
        end
      end
      assert.is_truthy(c:check { model = model, mode = "std", duration = 5, prompt = "line1\r\nline2\tz é" })
    end
    assert.are.equal(0, sent)
    local err = require("kling.multishot").check { shots = { { prompt = "a\27b", duration = 3 } } }
    assert.are.equal("shots[1].prompt", err.field)
  end)
end)

-- Under LuaJIT (a gateway's every create) the control check is a loop of its own, not the
-- patterns Lua 5.4 runs: loaded here as under LuaJIT (a `jit` global), it must find what they
-- find, at the same byte, for every byte and every two-byte sequence after a letter.
describe("the control check under LuaJIT", function()
  it("finds what the patterns find, byte for byte", function()
    local validate = require "kling.validate"
    local jitted = require("support.as_luajit")("kling.validate")
    assert.are_not.equal(validate, jitted)
    local samples = { "", "a fox", "line1\r\nline2\tz \195\169", "\194", "x\194" }
    for a = 0, 255 do
      samples[#samples + 1] = "ab" .. string.char(a)
      for _, b in ipairs { 0, 9, 127, 128, 159, 160, 191 } do
        samples[#samples + 1] = "ab" .. string.char(a, b) .. "c"
      end
    end
    for _, s in ipairs(samples) do
      assert.are.equal(validate.text_control(s), jitted.text_control(s), ("%q"):format(s))
      assert.are.equal(validate.text_control(s, true), jitted.text_control(s, true), ("strict %q"):format(s))
    end
    assert.are.equal("U+009B at byte 3", jitted.text_control("ab\194\155"))
    assert.are.equal("U+000D at byte 6", jitted.text_control("line1\r\nline2\tz", true)) -- ids: no lines
    assert.are.equal("a NUL character at byte 2", jitted.text_control("a\0\27"))
  end)
end)

describe("an unknown name of any length", function()
  local validate = require "kling.validate"

  -- Runs fn under a budget of Lua VM instructions (deterministic, not a timing).
  local function within(instructions, fn)
    local over = setmetatable({}, { __tostring = function() return "over the instruction budget" end })
    debug.sethook(function()
      error(over)
    end, "", instructions)
    local ok, res = pcall(fn)
    debug.sethook()
    assert(ok, tostring(res))
    return res
  end

  it("is compared only with known names of a length that could be suggested", function()
    local long = string.rep("k", 1000000)
    assert.is_nil(within(100000, function()
      return validate.closest(long, { "model", "prompt", "negative_prompt", "callback_url" })
    end))
    assert.are.equal("prompt", validate.closest("promtp", { "model", "prompt" })) -- still suggested
    local P = providers.get("kling")
    local err = within(1000000, function()
      return P.validate({ prompt = "x", [long] = 1 }, "videos/text2video")
    end)
    assert.are.equal(long, err.field)
  end)

  it("is echoed cut short", function()
    local s = validate.brief(string.rep("k", 1000000))
    assert.are.equal(string.rep("k", 64) .. "... (1000000 bytes)", s)
    assert.are.equal("a\\nb", validate.brief("a\nb"))
    local api = require "kling.gateway.api"
    local answer = api.upstream_error { kind = "validation", field = string.rep("k", 100000),
      message = "unknown field" }
    assert.is_true(#answer.message < 200, #answer.message)
  end)

  it("is echoed as valid UTF-8: a byte that is not part of a character is shown \\xHH, a cut keeps characters whole",
    function()
      assert.are.equal("\\xFF\\xFE", validate.brief("\255\254"))
      -- a lone continuation byte, an overlong form, a surrogate, a truncated character; a good one kept
      assert.are.equal("\\x80 \\xC0\\x80 \\xED\\xA0\\x80 \\xE2\\x82 \226\130\172",
        validate.shown("\128 \192\128 \237\160\128 \226\130 \226\130\172"))
      local s = validate.brief(string.rep("\226\130\172", 30)) -- 90 bytes: 21 whole euros fit in 64
      assert.are.equal(string.rep("\226\130\172", 21) .. "... (90 bytes)", s)
      assert.is_not_nil(validate.utf8_len(validate.brief("x\226\130\172" .. string.rep("\255", 100))))
      -- a bidi override, a line separator and a C1 control turn or break the line they are echoed in
      assert.are.equal("task \\u202Ex \\u2028 \\u0085 \195\169",
        validate.shown("task \226\128\174x \226\128\168 \194\133 \195\169"))
    end)
end)

-- A JSON null where a request names its provider or endpoint (cjson.null, from a request table
-- built from decoded JSON) was echoed as 'userdata: NULL': it is named null, as every field's
-- wrong type is (kling.validate.type_of).
describe("a JSON null for provider or endpoint", function()
  local null = require("kling.json").null

  it("is named null in the refusal, never as a userdata", function()
    local c = assert(kling.new { provider = "kling", access_key = "a", secret_key = "s",
      base_url = "http://127.0.0.1:9" })
    local _, err = c:submit { provider = null, prompt = "a cat" }
    assert.equal("provider", err.field)
    assert.matches("the request names null", err.message, 1, true)
    _, err = c:submit { endpoint = null, prompt = "a cat" }
    assert.equal("endpoint", err.field)
    assert.matches("unknown endpoint null", err.message, 1, true)
    _, err = c:get_task("1", { endpoint = null })
    assert.equal("endpoint", err.field)
    assert.matches("unknown endpoint null", err.message, 1, true)
    for _, p in ipairs { "apimodels", "apiinone", "evolink", "compat" } do
      local g = assert(kling.new { provider = p, api_key = "k", base_url = "http://127.0.0.1:9" })
      _, err = g:submit { endpoint = null, prompt = "a cat" }
      assert.equal("endpoint", err.field, p)
      assert.not_matches("userdata", err.message, 1, true)
      assert.matches("null", err.message, 1, true)
    end
  end)
end)

-- element_list = {a, nil, b} went to the API as [a] (JSON holds the items before a hole alone),
-- and multi_prompt = {s1, s2, x = 1} as [s1, s2]: a request paid for without what was dropped.
describe("a request's array with a hole or a stray key", function()
  it("is refused by name on every provider, before anything is sent", function()
    local function client(p)
      local o = { provider = p, base_url = "http://127.0.0.1:9" .. (p == "kling" and "" or ("/" .. p)) }
      if p == "kling" then
        o.access_key, o.secret_key = "ak", "sk"
      else
        o.api_key = "k"
      end
      return assert(kling.new(o))
    end
    local c = client("kling")
    local shot = { prompt = "a", duration = 3 }
    for _, case in ipairs {
      { { multi_prompt = { shot, nil, shot }, duration = 6 }, "multi_prompt[2]",
        "is missing (nil), before [3]: a list has no holes" },
      { { multi_prompt = { shot, shot, x = 1 }, duration = 6 }, "multi_prompt.x",
        "is not an index: a list has keys 1..n only" },
      { { element_list = { { element_id = "1" }, nil, { element_id = "2" } } }, "element_list[2]", "is missing (nil)" },
    } do
      local req = { model = "kling-v3", mode = "std", prompt = "a", duration = 5 }
      for k, v in pairs(case[1]) do
        req[k] = v
      end
      if req.multi_prompt then
        req.multi_shot, req.shot_type, req.prompt = true, "customize", nil
      end
      local none, err = c:check(req)
      assert.is_nil(none, case[2])
      assert.are.same({ "validation", case[2] }, { err.kind, err.field })
      assert.matches(case[3], err.message, 1, true)
    end
    local _, err = c:check { model = "kling-v2-6", mode = "pro", prompt = "a", duration = 5, sound = true,
      voice_list = { { voice_id = "1" }, nil, { voice_id = "2" } } }
    assert.are.equal("voice_list[2]", err.field)
    _, err = c:check { endpoint = "videos/multi-image2video", model = "kling-v1-6", prompt = "a",
      image_list = { { image = "https://e.com/a.png" }, nil, { image = "https://e.com/b.png" } } }
    assert.are.equal("image_list[2]", err.field)
    -- an array inside an item: a motion brush's trajectories
    local px = { x = 1, y = 1 }
    _, err = c:check { endpoint = "videos/image2video", model = "kling-v1", mode = "std", duration = 5, prompt = "a",
      image = "https://e.com/a.png", dynamic_masks = { { mask = "https://e.com/m.png",
      trajectories = { px, px, nil, { x = 0.5, y = 1 } } } } }
    assert.are.same({ "validation", "dynamic_masks[1].trajectories[3]" }, { err.kind, err.field })
    -- a call's (not a task's) array: {p1, nil, p2} left p2 unchecked, and went as a JSON object
    local pt = { x = 0.5, y = 0.5 }
    _, err = c:call("videos/multi-elements/add-selection", { session_id = "s", frame_index = 0,
      points = { pt, nil, { x = 7, y = 0.5 } } })
    assert.are.same({ "validation", "points[2]" }, { err.kind, err.field })
    for _, p in ipairs { "evolink", "apiinone", "compat" } do
      _, err = client(p):check { model = "kling-v3", mode = "std", prompt = "a", duration = 5,
        element_list = { { element_id = "1" }, nil, { element_id = "2" } } }
      assert.are.equal("element_list[2]", err.field, p)
    end
  end)
end)

-- A Lua list given with keys of its own ({{image = ...}, foo = 1}, {shot, shot, n = 2}) kept only
-- its items: every reader walks 1..#list, so the other keys were dropped without a word. They
-- are refused by the list's name and the key, as an unknown field is; so is a gap ({a, nil, c}:
-- the items after it were dropped).
describe("a list with keys besides its items", function()
  local official = provider("kling")
  local shots = function(extra)
    local list = { { prompt = "a", duration = 2 }, { prompt = "b", duration = 3 } }
    for k, v in pairs(extra or {}) do
      list[k] = v
    end
    return list
  end
  local function with(list, k, v)
    list[k] = v
    return list
  end

  it("is refused by the list's name and the key, on every provider", function()
    local mi = { model = "kling-v1-6", prompt = "x", image_list = { { image = IMG } } }
    official.accepts(mi, "videos/multi-image2video")
    mi.image_list.foo = 1
    official.rejects(mi, "image_list.foo", "is not an index", "videos/multi-image2video")
    local v3 = { model = "kling-v3", multi_shot = true, shot_type = "customize", duration = 5, multi_prompt = shots() }
    official.accepts(v3)
    official.rejects(with(v3, "multi_prompt", shots { n = 2 }), "multi_prompt.n", "is not an index")
    official.rejects({ model = "kling-v3", prompt = "x", element_list = with({ 123 }, "name", "cat") },
      "element_list.name", "is not an index")
    for _, p in ipairs { "evolink", "compat", "apiinone" } do
      local req = { model = p == "compat" and "kling-v3" or nil, image = p == "compat" and IMG or nil,
        multi_shot = true, shot_type = "customize", duration = 5, multi_prompt = shots() }
      provider(p).accepts(req)
      req.multi_prompt = shots { n = 2 }
      provider(p).rejects(req, "multi_prompt.n", "is not an index")
    end
  end)

  it("is refused inside an item too (a mask's trajectories, an effect's images)", function()
    local points = { { x = 1, y = 1 }, { x = 2, y = 2 } }
    local masked = { model = "kling-v1", prompt = "x", image = IMG, dynamic_masks = { { mask = IMG,
      trajectories = points } } }
    official.accepts(masked, "videos/image2video")
    points.z = 3
    official.rejects(masked, "dynamic_masks[1].trajectories.z", "is not an index", "videos/image2video")
    local hug = { effect_scene = "hug", model = "kling-v1", mode = "std", duration = 5, images = { IMG, IMG } }
    official.accepts(hug, "videos/effects")
    hug.images.left = IMG
    official.rejects(hug, "images.left", "is not an index", "videos/effects")
    local refs = { { image_url = IMG } }
    local element = { model = "kling-custom-element", element_name = "Cat", element_description = "a cat",
      reference_type = "image_refer", element_image_list = { frontal_image = IMG, refer_images = refs } }
    provider("evolink").accepts(element, "general/custom-elements")
    refs.more = { image_url = IMG }
    provider("evolink").rejects(element, "element_image_list.refer_images.more", "is not an index",
      "general/custom-elements")
  end)

  it("is refused in a storyboard's shots and an element's images and tags (a Lua caller's own tables)", function()
    local multishot = require "kling.multishot"
    local element = require "kling.element"
    local sb = { shots = { { prompt = "a", duration = 3 } } }
    assert.is_nil(multishot.check(sb))
    sb.shots.n = 1
    local err = multishot.check(sb)
    assert.equal("shots.n", err.field)
    assert.matches("is not an index", err.message, 1, true)
    sb.shots.n, sb.shots[1].elements = nil, { "cat", main = "dog" }
    err = multishot.check(sb)
    assert.equal("shots[1].elements.main", err.field)
    assert.matches("is not an index", err.message, 1, true)
    local spec = { name = "Cat", description = "a cat", images = { IMG }, tags = { "o_101" } }
    assert.is_nil(element.check(spec))
    spec.images.back = IMG
    err = element.check(spec)
    assert.equal("images.back", err.field)
    assert.matches("is not an index", err.message, 1, true)
    spec.images.back, spec.tags.other = nil, "o_102"
    err = element.check(spec)
    assert.equal("tags.other", err.field)
    assert.matches("is not an index", err.message, 1, true)
  end)

  it("with a gap is refused naming the missing item, before anything is sent", function()
    local c = assert(kling.new { provider = "kling", access_key = "a", secret_key = "s",
      base_url = "http://127.0.0.1:9" })
    local list = { { image = IMG }, { image = IMG }, { image = IMG } }
    list[2] = nil
    local _, err = c:submit { endpoint = "videos/multi-image2video", model = "kling-v1-6", prompt = "x",
      image_list = list }
    assert.equal("image_list[2]", err.field)
    assert.matches("is missing (nil), before [3]", err.message, 1, true)
    -- a JSON array is a list of items only
    local decoded = require("kling.json").decode('[{"image":"' .. IMG .. '"}]')
    assert.is_nil(require("kling.validate").list_problem(decoded))
  end)
end)

describe("a client's option given in a request", function()
  local function client(name)
    return assert(kling.new { provider = name, api_key = "k", base_url = "http://127.0.0.1:9" })
  end

  it("is refused by name on check, submit and kling.estimate, saying it goes to kling.new, a key unshown", function()
    for _, name in ipairs(providers.names) do
      local c = client(name)
      local req = c:estimate { prompt = "x" } and { prompt = "x" } or { prompt = "x", model = "kling-v2-6" }
      for _, field in ipairs { "base_url", "api_key", "access_key", "secret_key", "ca_file", "timeout", "budget" } do
        local r = {}
        for k, v in pairs(req) do
          r[k] = v
        end
        r[field] = "SEKRIT-VALUE"
        for _, how in ipairs { "check", "submit", "estimate" } do
          local ok, err = c[how](c, r)
          assert.is_nil(ok, name .. " " .. how .. " " .. field)
          assert.are.equal(field, err.field, name .. " " .. how)
          assert.matches("is a client option, not a request field: give it to kling.new{" .. field .. " = ...}",
            err.message, 1, true)
          assert.is_nil(tostring(err):find("SEKRIT", 1, true))
        end
        local _, eerr = kling.estimate((function() r.provider = name return r end)())
        assert.are.equal(field, eerr.field)
        r.provider = nil
      end
    end
  end)

  it("is told apart from a credential, and a request's own provider is still checked against the client's", function()
    local c = client("kling")
    local _, err = c:check { prompt = "x", api_key = "SEKRIT" }
    assert.matches("a credential: its value is not shown", err.message, 1, true)
    _, err = c:check { prompt = "x", base_url = "http://x.example" }
    assert.is_nil(err.message:find("credential", 1, true))
    assert.are.equal("videos/text2video", c:check { prompt = "x", provider = "kling" })
  end)
end)
