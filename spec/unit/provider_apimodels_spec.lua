-- apimodels (seed 002): its rules, its spelling, its {code, msg, data} envelope and its
-- callbacks whose data.param and data.resultJson are JSON strings.
local P = require "kling.providers.apimodels"
local json = require "kling.json"
local check = require("support.provider_check").for_provider(P)
local rejects, accepts, body = check.rejects, check.accepts, check.body

local IMG = "https://example.com/a.png"

describe("apimodels validation", function()
  it("accepts the documented requests", function()
    accepts { prompt = "x" }
    accepts { model = "kling-v2-6", prompt = "x", duration = 10, mode = "pro", sound = true,
      voice_list = { "v1" } }
    accepts { model = "kling-v3", prompt = "x", duration = 13, sound = true }
    accepts { image = IMG }
    accepts { image = IMG, motion_video = "https://example.com/m.mp4", resolution = "1080p" }
    accepts { prompt = "x", callback_url = "https://hooks.example.com/k" }
  end)

  it("checks durations per model", function()
    rejects({ model = "kling-v2-6", prompt = "x", duration = 7 }, "duration", "5, 10")
    rejects({ model = "kling-v3", prompt = "x", duration = 2 }, "duration", "between 3 and 15")
    rejects({ model = "kling-v3", prompt = "x", duration = 16 }, "duration")
    rejects({ image = IMG, motion_video = "https://example.com/m.mp4", duration = 31 }, "duration")
  end)

  it("checks sound, voices, models and URLs", function()
    rejects({ model = "kling-v2-6", prompt = "x", sound = true }, "sound", "pro")
    rejects({ model = "kling-v2-6", prompt = "x", mode = "pro", voice_list = { "v" } }, "voice_list", "sound")
    rejects({ model = "kling-v3", prompt = "x", sound = true, voice_list = { "v" } }, "voice_list", "kling%-v2%-6")
    rejects({ model = "kling-v9", prompt = "x" }, "model")
    rejects({ prompt = "x", callback_url = "ftp://x" }, "callback_url")
    rejects({ image = "iVBORw0KGgo=" }, "image", "URL")
    rejects({ motion_video = "https://example.com/m.mp4" }, "image", "required")
    rejects({ image = IMG, motion_video = "https://example.com/m.mp4", sound = true }, "sound")
    rejects({ model = "kling-v3", image = IMG, motion_video = "https://example.com/m.mp4" }, "model")
    rejects({ duration = 5 }, "prompt", "required")
  end)

  it("refuses by name the features it lacks", function()
    for field, req in pairs {
      last_image = { image = IMG, last_image = IMG },
      multi_shot = { multi_shot = true, prompt = "x" },
      multi_prompt = { prompt = "x", multi_prompt = { { prompt = "a", duration = 5 } } },
      element_list = { prompt = "x", element_list = { "e" } },
      external_task_id = { prompt = "x", external_task_id = "e" },
      negative_prompt = { prompt = "x", negative_prompt = "blur" },
    } do
      rejects(req, field, "not supported by provider 'apimodels'")
    end
  end)
end)

describe("apimodels mapping", function()
  it("sends duration as a string and sound as on/off", function()
    local b, call = body { model = "kling-v2-6", prompt = "x", duration = 10, resolution = "1080p", sound = true,
      voice_list = { "v1" }, callback_url = "https://h.example.com/k" }
    assert.are.equal("/api/v1/video/generations", call.path)
    assert.are.same({ model = "kling-v2-6", prompt = "x", duration = "10", mode = "pro", sound = "on",
      voice_list = { { voice_id = "v1" } }, callback_url = "https://h.example.com/k" }, b)
  end)

  it("uses the seed's example model when none is given, and the image for image-to-video", function()
    assert.are.same({ model = "kling-v2-6", image = IMG, prompt = "p" }, (body { image = IMG, prompt = "p" }))
  end)

  it("sends motion control as kling-motion-control with a resolution", function()
    local b = body { image = IMG, motion_video = "https://example.com/m.mp4", mode = "pro" }
    assert.are.same({ model = "kling-motion-control", image = IMG, motion_video = "https://example.com/m.mp4",
      resolution = "1080p" }, b)
  end)

  it("queries by task_id", function()
    assert.are.equal("/api/v1/video/generations?task_id=cl%20x", P.query_path("videos/text2video", "cl x"))
  end)
end)

describe("apimodels responses", function()
  it("unwraps {code = 200, msg, data} and reads its errors", function()
    assert.are.same({ taskId = "c" }, P.unwrap({ code = 200, msg = "success", data = { taskId = "c" } }, 200))
    local d, code, msg = P.unwrap({ code = 402, msg = "余额不足", data = json.null }, 402)
    assert.is_nil(d)
    assert.are.equal(402, code)
    assert.are.equal("余额不足", msg)
    assert.is_false(P.unwrap({ message = "x" }, 500))
  end)

  it("reads the seed's three task examples", function()
    local t = assert(P.parse_task { taskId = "clxxx", state = "pending", model = "kling-video/kling-v2-6" })
    assert.are.equal("queued", t.status)
    t = assert(P.parse_task { taskId = "clxxx", state = "completed", model = "kling-video/kling-v2-6",
      resultUrls = { "https://x/video.mp4" }, createTime = 1705123450000, completeTime = 1705123500000 })
    assert.are.equal("succeeded", t.status)
    assert.are.same({ { url = "https://x/video.mp4" } }, t.videos)
    assert.are.equal(1705123450, t.created_at)
    t = assert(P.parse_task { taskId = "clxxx", state = "failed", failMsg = "Content policy violation" })
    assert.are.equal("failed", t.status)
    assert.are.equal("Content policy violation", t.message)
    assert.are.equal("running", assert(P.parse_task { taskId = "c", state = "processing" }).status)
    assert.is_nil((P.parse_task { taskId = "c", state = "done" }))
  end)

  it("parses a callback whose param and resultJson are JSON strings", function()
    local raw = json.encode { code = 200, msg = "success", data = {
      taskId = "clxxx", model = "kling-video/kling-v2-6", state = "completed",
      param = json.encode { model = "kling-v2-6", prompt = "p" },
      resultJson = json.encode { resultUrls = { "https://r2/x.mp4" }, videoDuration = 5, videoSize = "1280x720",
        thumbnailUrl = "https://r2/x.jpg" },
      failCode = json.null, failMsg = json.null, costTime = 12345, completeTime = 1705123500000,
      createTime = 1705123450000 } }
    local t = assert(P.parse_callback(raw))
    assert.are.equal("clxxx", t.id)
    assert.are.equal("succeeded", t.status)
    assert.are.same({ { url = "https://r2/x.mp4", duration = 5, size = "1280x720",
      thumbnail_url = "https://r2/x.jpg" } }, t.videos)
    assert.are.equal("p", t.request_param.prompt)
    assert.are.equal(12345, t.cost_ms)
    assert.is_nil(t.message)
  end)

  it("parses a failed callback with a null or empty resultJson", function()
    for _, result in ipairs { json.null, json.encode { resultUrls = json.array {} } } do
      local t = assert(P.parse_callback(json.encode { code = 200, msg = "success", data = {
        taskId = "c1", state = "failed", param = "{}", resultJson = result, failCode = "X", failMsg = "bad" } }))
      assert.are.equal("failed", t.status)
      assert.are.equal("bad", t.message)
      assert.are.equal("X", t.fail_code)
      assert.is_nil(t.videos)
    end
  end)

  it("refuses a callback whose JSON strings are not JSON", function()
    local t, err = P.parse_callback(json.encode { code = 200, data = { taskId = "c", state = "completed",
      param = "{", resultJson = "{}" } })
    assert.is_nil(t)
    assert.matches("param", err)
    assert.is_nil((P.parse_callback(json.encode { code = 200 })))
  end)
end)
