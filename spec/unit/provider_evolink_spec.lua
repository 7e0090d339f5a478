-- EvoLink (seed 003 and the notes): model ids by endpoint, quality, model_params, custom
-- elements, callback_url rules, the task object and cancel.
local P = require "kling.providers.evolink"
local json = require "kling.json"
local check = require("support.provider_check").for_provider(P)
local rejects, accepts, body = check.rejects, check.accepts, check.body

local IMG, IMG2 = "https://example.com/a.png", "https://example.com/b.png"
local SHOTS = { { prompt = "one", duration = 2 }, { prompt = "two", duration = 3 } }
local ELEMENT = { model = "kling-custom-element", element_name = "MyCharacter",
  element_description = "A young male character with short hair", reference_type = "image_refer",
  element_image_list = { frontal_image = IMG, refer_images = { { image_url = IMG2 } } } }

local function with(base, changes)
  local t = {}
  for k, v in pairs(base) do
    t[k] = v
  end
  for k, v in pairs(changes) do
    t[k] = v
  end
  return t
end

describe("evolink validation", function()
  it("accepts text, image, first/last frame, multi-shot and elements", function()
    accepts { prompt = "x" }
    accepts { prompt = "x", image = IMG, last_image = IMG2 }
    accepts { multi_shot = true, multi_prompt = SHOTS }
    accepts { multi_shot = true, shot_type = "intelligence", prompt = "x" }
    accepts { prompt = "x", image = IMG, element_list = { "e1", "e2", "e3" } }
    accepts { model = "kling-o3-text-to-video", prompt = "x", element_list = { "e1" } }
    accepts(ELEMENT)
    accepts { model = "kling-custom-element", element_name = "A", element_description = "B",
      reference_type = "video_refer", element_video_list = { video_url = "https://example.com/v.mp4" },
      element_voice_id = "829824295735410756" }
  end)

  it("checks callback_url: https only, no internal address, at most 2048 characters", function()
    accepts { prompt = "x", callback_url = "https://hooks.example.com/done" }
    rejects({ prompt = "x", callback_url = "http://hooks.example.com/done" }, "callback_url", "https")
    for _, host in ipairs { "127.0.0.1", "10.1.2.3", "192.168.0.9", "172.20.0.1", "169.254.169.254", "localhost",
      "[::1]", "metadata.internal", "intranet" } do
      rejects({ prompt = "x", callback_url = "https://" .. host .. "/hook" }, "callback_url", "internal")
    end
    rejects({ prompt = "x", callback_url = "https://hooks.example.com/" .. string.rep("a", 2030) }, "callback_url",
      "2048")
  end)

  it("checks element creation: name <= 20, description <= 100, voice only with video_refer, 1 + 3 images", function()
    rejects(with(ELEMENT, { element_name = string.rep("n", 21) }), "element_name", "20")
    rejects(with(ELEMENT, { element_description = string.rep("d", 101) }), "element_description", "100")
    rejects(with(ELEMENT, { element_voice_id = "1" }), "element_voice_id", "video_refer")
    rejects(with(ELEMENT, { element_image_list = { frontal_image = IMG, refer_images = {
      { image_url = IMG }, { image_url = IMG }, { image_url = IMG }, { image_url = IMG } } } }),
      "element_image_list.refer_images", "1 to 3")
    -- seed 003: optional, 1-3: an empty array was sent, and EvoLink refuses it after the call
    rejects(with(ELEMENT, { element_image_list = { frontal_image = IMG, refer_images = {} } }),
      "element_image_list.refer_images", "1 to 3")
    rejects(with(ELEMENT, { element_image_list = { refer_images = { { image_url = IMG } } } }),
      "element_image_list.frontal_image")
    rejects(with(ELEMENT, { element_image_list = "x" }), "element_image_list")
    rejects(with(ELEMENT, { reference_type = "video_refer" }), "element_image_list")
    rejects(with(ELEMENT, { reference_type = "photo" }), "reference_type")
    local unnamed = with(ELEMENT, {})
    unnamed.element_name = nil
    rejects(unnamed, "element_name", "required")
    rejects(with(ELEMENT, { prompt = "x" }), "prompt", "element")
    rejects(with(ELEMENT, { callback_url = "https://10.0.0.1/x" }), "callback_url")
  end)

  it("checks the video rules", function()
    rejects({ prompt = "x", duration = 2 }, "duration")
    rejects({ prompt = "x", resolution = "4k" }, "resolution")
    rejects({ prompt = "x", image = "http://192.168.1.2/a.png" }, "image", "private")
    rejects({ prompt = "x", last_image = IMG2 }, "image", "required")
    rejects({ prompt = "x", model = "kling-v3-image-to-video" }, "image", "required")
    rejects({ prompt = "x", model = "kling-v9" }, "model")
    rejects({ prompt = "x", model = "kling-v3-image-to-video" }, "model", "image2video", "videos/text2video")
    rejects({ prompt = "x", element_list = { "e" } }, "element_list", "image%-to%-video")
    rejects({ prompt = "x", image = IMG, element_list = { "a", "b", "c", "d" } }, "element_list", "at most 3")
    rejects({ prompt = "x", shot_type = "customize" }, "shot_type", "multi_shot")
    rejects({ multi_shot = true, shot_type = "intelligence" }, "prompt", "required")
    rejects({ multi_shot = true, shot_type = "intelligence", prompt = "x", multi_prompt = SHOTS }, "multi_prompt")
    rejects({ multi_shot = true, duration = 6, multi_prompt = SHOTS }, "multi_prompt", "sum")
  end)

  it("refuses by name the features it lacks", function()
    rejects({ prompt = "x", sound = true, voice_list = { "v" } }, "voice_list", "not supported by provider 'evolink'")
    rejects({ prompt = "x", external_task_id = "e" }, "external_task_id", "not supported")
    rejects({ prompt = "x", cfg_scale = 0.3 }, "cfg_scale", "not supported")
  end)
end)

describe("evolink mapping", function()
  it("picks the model by endpoint and sends quality and sound as the gateway spells them", function()
    local b, call = body { prompt = "x", mode = "pro", sound = true, duration = 8, aspect_ratio = "1:1",
      negative_prompt = "blur" }
    assert.are.equal("/v1/videos/generations", call.path)
    assert.are.same({ model = "kling-v3-text-to-video", prompt = "x", quality = "1080p", sound = "on", duration = 8,
      aspect_ratio = "1:1", negative_prompt = "blur" }, b)
    b = body { prompt = "x", image = IMG, last_image = IMG2, resolution = "720p", sound = false }
    assert.are.same({ model = "kling-v3-image-to-video", prompt = "x", image_start = IMG, image_end = IMG2,
      quality = "720p", sound = "off" }, b)
  end)

  it("puts multi-shot and elements in model_params, keeping the caller's own", function()
    local mine = { watermark = false }
    local b = body { image = IMG, multi_shot = true, multi_prompt = SHOTS, element_list = { "e1" },
      model_params = mine }
    assert.are.same({ model = "kling-v3-image-to-video", image_start = IMG, duration = 5, model_params = {
      watermark = false, multi_shot = true, shot_type = "customize",
      multi_prompt = { { index = 1, prompt = "one", duration = 2 }, { index = 2, prompt = "two", duration = 3 } },
      element_list = { { element_id = "e1" } } } }, b)
    assert.are.same({ watermark = false }, mine)
  end)

  it("sends element creation as kling-custom-element with model_params", function()
    local b, call = body(with(ELEMENT, { callback_url = "https://hooks.example.com/e" }))
    assert.are.equal("general/custom-elements", P.default_endpoint(ELEMENT))
    assert.are.equal("/v1/videos/generations", call.path)
    assert.are.same({ model = "kling-custom-element", callback_url = "https://hooks.example.com/e", model_params = {
      element_name = "MyCharacter", element_description = "A young male character with short hair",
      reference_type = "image_refer", element_image_list = ELEMENT.element_image_list } }, b)
  end)
end)

describe("evolink responses", function()
  local CREATED = { created = 1739500000, id = "task-video-xxxxxxxx", model = "kling-custom-element",
    object = "video.generation.task", progress = 0, status = "pending",
    task_info = { estimated_time = 600, can_cancel = true },
    usage = { credits_reserved = 1, billing_rule = "per_call" } }

  it("reads the seed's create answer: status, eta, can_cancel, charge", function()
    assert.are.same(CREATED, P.unwrap(CREATED, 200))
    local t = assert(P.parse_task(CREATED))
    assert.are.equal("task-video-xxxxxxxx", t.id)
    assert.are.equal("queued", t.status)
    assert.are.equal(600, t.eta)
    assert.is_true(t.can_cancel)
    assert.are.equal("1", t.charge)
    assert.are.equal(0, t.progress)
    assert.are.equal(1739500000, t.created_at)
  end)

  it("reads results, result_data, element ids, failures and cancellations", function()
    local t = assert(P.parse_task { id = "t1", status = "completed", progress = 100, type = "video",
      results = { "https://cdn/v.mp4" }, result_data = { { video_url = "https://cdn/v.mp4", duration = 5 } },
      usage = { credits_reserved = 35.991 } })
    assert.are.same({ { url = "https://cdn/v.mp4", duration = 5 } }, t.videos)
    assert.are.equal("35.991", t.charge)
    assert.are.equal(0, t.eta)
    t = assert(P.parse_task { id = "t2", status = "completed", results = { "https://cdn/i.png" }, type = "image" })
    assert.are.same({ { url = "https://cdn/i.png" } }, t.images)
    t = assert(P.parse_task { id = "t3", status = "completed",
      result_data = { { element_id = 123, element_name = "A" } } })
    assert.are.equal("123", t.element_id)
    assert.is_nil(t.videos)
    t = assert(P.parse_task { id = "t4", status = "failed", error = { code = "content_policy_violation",
      message = "blocked" } })
    assert.are.equal("failed", t.status)
    assert.are.equal("blocked", t.message)
    t = assert(P.parse_task { id = "t5", status = "failed", error = { code = "request_cancelled", message = "c" } })
    assert.are.equal("cancelled", t.status)
    -- seed 003, "Full refund on failure": what a failed or cancelled task had reserved is no charge
    for _, code in ipairs { "request_cancelled", "content_policy_violation" } do
      t = assert(P.parse_task { id = "t8", status = "failed", error = { code = code, message = "m" },
        usage = { credits_reserved = 27, billing_rule = "per_second" } })
      assert.is_nil(t.charge, code)
    end
    assert.are.equal("27", assert(P.parse_task { id = "t9", status = "processing",
      usage = { credits_reserved = 27 } }).charge)
    assert.are.equal("running", assert(P.parse_task { id = "t6", status = "processing", progress = 40 }).status)
    assert.is_nil((P.parse_task { id = "t7", status = "queued_forever" }))
  end)

  it("reads its error object", function()
    local d, code, msg = P.unwrap({ error = { code = "invalid_task_id", message = "Invalid task ID format",
      type = "invalid_request_error", param = "task_id" } }, 400)
    assert.is_nil(d)
    assert.are.equal("invalid_task_id", code)
    assert.are.equal("Invalid task ID format", msg)
  end)

  it("parses a callback carrying the task object", function()
    local t = assert(P.parse_callback(json.encode(CREATED)))
    assert.are.equal("task-video-xxxxxxxx", t.id)
    assert.are.equal("queued", assert(P.parse_callback(json.encode { data = CREATED })).status)
    assert.is_nil((P.parse_callback("[]")))
  end)
end)

describe("evolink cancel", function()
  local function fake_client(answer)
    local calls = {}
    local driver = {}
    function driver.now_ms()
      return 0
    end
    function driver.wall_s()
      return 0
    end
    function driver.sleep_ms() end
    function driver.request(_, req)
      calls[#calls + 1] = req
      return { ok = true, status = 200, headers = { ["content-type"] = "application/json" },
        body = json.encode(answer), sent = true, received = true }
    end
    return { ctx = { core = require "kling.core", driver = driver, provider = P, base_url = "https://gw",
      max_attempts = 1, base_ms = 1, cap_ms = 1, call_budget_ms = 1000, timeout_ms = 1000 } }, calls
  end

  it("posts /v1/tasks/{id}/cancel when the task can be cancelled, and reads the answer", function()
    local client, calls = fake_client { id = "task-unified-1-2", status = "failed",
      error = { code = "request_cancelled", message = "cancelled" }, task_info = { can_cancel = false } }
    local task = { id = "task-unified-1-2", status = "running", can_cancel = true }
    assert(P.cancel(client, task))
    assert.are.equal(1, #calls)
    assert.are.equal("POST", calls[1].method)
    assert.are.equal("https://gw/v1/tasks/task-unified-1-2/cancel", calls[1].url)
  end)

  it("refuses without a call when the task says it cannot be cancelled or has ended", function()
    local client, calls = fake_client {}
    local _, err = P.cancel(client, { id = "t", status = "running", can_cancel = false })
    assert.are.equal("validation", err.kind)
    assert.matches("can_cancel", err.message)
    _, err = P.cancel(client, { id = "t", status = "succeeded", can_cancel = true })
    assert.matches("ended", err.message)
    assert.are.equal(0, #calls)
  end)
end)
