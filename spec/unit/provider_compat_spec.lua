-- The OpenAI-style gateway (seed 004): model ids that carry mode and sound, extra_body, first
-- and last frame, and the seed's list of common errors refused before the network.
local P = require "kling.providers.compat"
local json = require "kling.json"
local check = require("support.provider_check").for_provider(P)
local rejects, accepts, body = check.rejects, check.accepts, check.body

local IMG, IMG2 = "https://example.com/start-frame.png", "https://example.com/last-frame.png"
local SHOTS = { { prompt = "one", duration = 3 }, { prompt = "two", duration = 3 } }

describe("compat model ids", function()
  it("encode mode and sound: sound = false picks the silent model", function()
    assert.are.equal("kling-v3-std-silent", P.model_id { prompt = "x" })
    assert.are.equal("kling-v3-std-silent", P.model_id { prompt = "x", sound = false })
    assert.are.equal("kling-v3-std-audio", P.model_id { prompt = "x", sound = true })
    assert.are.equal("kling-v3-pro-silent", P.model_id { prompt = "x", mode = "pro" })
    assert.are.equal("kling-v3-pro-audio", P.model_id { prompt = "x", resolution = "1080p", sound = true })
  end)

  it("given directly, must agree with sound and mode (silent output wanted from an audio model)", function()
    accepts { model = "kling-v3-pro-audio", prompt = "x" }
    accepts { model = "kling-v3-pro-audio", prompt = "x", sound = true, mode = "pro" }
    rejects({ model = "kling-v3-pro-audio", prompt = "x", sound = false }, "sound", "kling%-v3%-pro%-silent")
    rejects({ model = "kling-v3-std-silent", prompt = "x", sound = true }, "sound", "kling%-v3%-std%-audio")
    rejects({ model = "kling-v3-std-silent", prompt = "x", mode = "pro" }, "mode")
    rejects({ model = "kling-v2-6", prompt = "x" }, "model")
  end)
end)

describe("compat validation: seed 004's common errors", function()
  it("refuses prompt together with extra_body.multi_prompt in image mode", function()
    accepts { image = IMG, multi_shot = true, multi_prompt = SHOTS }
    rejects({ image = IMG, prompt = "x", multi_shot = true, multi_prompt = SHOTS }, "prompt", "multi_prompt")
  end)

  it("refuses durations outside 3-15", function()
    rejects({ prompt = "x", duration = 2 }, "duration", "3 and 15")
    rejects({ prompt = "x", duration = 16 }, "duration", "3 and 15")
    accepts { prompt = "x", duration = 3 }
    accepts { prompt = "x", duration = 15 }
  end)

  it("refuses private media URLs", function()
    for _, url in ipairs { "http://127.0.0.1/a.png", "http://10.0.0.8/a.png", "https://192.168.1.4/a.png",
      "http://localhost:8080/a.png", "http://172.16.5.5/a.png", "http://[::1]/a.png", "http://[fd00::1]/a.png",
      "http://printer.local/a.png" } do
      rejects({ prompt = "x", image = url }, "image", "private")
      rejects({ prompt = "x", image = IMG, last_image = url }, "last_image", "private")
    end
    rejects({ prompt = "x", image = "iVBORw0KGgo=" }, "image", "URL")
  end)
end)

describe("compat validation", function()
  it("checks the other rules", function()
    accepts { prompt = "x", image = IMG, last_image = IMG2, duration = 8 }
    rejects({ prompt = "x", last_image = IMG2 }, "image", "required")
    rejects({ multi_shot = true, multi_prompt = SHOTS }, "multi_prompt", "image")
    rejects({ image = IMG, multi_shot = true, multi_prompt = { { prompt = "a", duration = 1 } }, duration = 5 },
      "multi_prompt", "sum")
    rejects({ prompt = "x", shot_type = "smart" }, "shot_type")
    rejects({ prompt = "x", cfg_scale = 1.5 }, "cfg_scale")
    rejects({ duration = 5 }, "prompt", "required")
  end)

  it("refuses by name the features it lacks", function()
    rejects({ prompt = "x", callback_url = "https://h.example.com/x" }, "callback_url", "not supported by provider")
    rejects({ prompt = "x", sound = true, voice_list = { "v" } }, "voice_list", "not supported")
    rejects({ prompt = "x", external_task_id = "e" }, "external_task_id", "not supported")
  end)
end)

describe("compat mapping", function()
  it("builds the seed's text-to-video example", function()
    local b, call = body { prompt = "A wide cinematic shot", aspect_ratio = "16:9", duration = 5, cfg_scale = 0.5,
      shot_type = "customize", negative_prompt = "blur, low detail" }
    assert.are.equal("/v1/video/generations", call.path)
    assert.are.same({ model = "kling-v3-std-silent", prompt = "A wide cinematic shot", aspect_ratio = "16:9",
      duration = 5,
      extra_body = { cfg_scale = 0.5, shot_type = "customize", negative_prompt = "blur, low detail" } }, b)
  end)

  it("builds the image and first/last frame examples, spelling intelligence as intelligent", function()
    local b = body { model = "kling-v3-pro-audio", prompt = "writes", image = IMG, duration = 6, cfg_scale = 0.6,
      shot_type = "intelligence" }
    assert.are.same({ model = "kling-v3-pro-audio", prompt = "writes", image = IMG, duration = 6,
      extra_body = { cfg_scale = 0.6, shot_type = "intelligent" } }, b)
    b = body { mode = "pro", prompt = "turns", image = IMG, last_image = IMG2, duration = 8 }
    assert.are.same({ model = "kling-v3-pro-silent", prompt = "turns", image = IMG, last_image = IMG2,
      duration = 8 }, b)
  end)

  it("puts shots and elements in extra_body, keeping the caller's own extra_body fields", function()
    local b = body { image = IMG, multi_shot = true, multi_prompt = SHOTS, element_list = { "e1" },
      extra_body = { seed = 3 } }
    assert.are.same({ model = "kling-v3-std-silent", image = IMG, duration = 6, extra_body = { seed = 3,
      shot_type = "customize", element_list = { { element_id = "e1" } },
      multi_prompt = { { index = 1, prompt = "one", duration = 3 }, { index = 2, prompt = "two", duration = 3 } } } },
      b)
  end)

  it("queries GET /v1/videos/{id}", function()
    assert.are.equal("/v1/videos/task_xxx", P.query_path("videos/text2video", "task_xxx"))
  end)
end)

describe("compat responses", function()
  it("reads the seed's job object", function()
    local job = { id = "task_xxx", task_id = "task_xxx", object = "video.generation.job", model = "kling-v3-pro-audio",
      status = "completed", progress = 100, video_url = "https://example.com/output.mp4" }
    assert.are.same(job, P.unwrap(job, 200))
    local t = assert(P.parse_task(job))
    assert.are.equal("task_xxx", t.id)
    assert.are.equal("succeeded", t.status)
    assert.are.same({ { url = "https://example.com/output.mp4" } }, t.videos)
    assert.are.equal("task_xxx", assert(P.parse_callback(json.encode(job))).id)
  end)

  it("reads OpenAI-style statuses and errors", function()
    for status, want in pairs { queued = "queued", in_progress = "running", failed = "failed",
      cancelled = "cancelled", pending = "queued", processing = "running" } do
      assert.are.equal(want, assert(P.parse_task { id = "j", status = status }).status)
    end
    assert.is_nil((P.parse_task { id = "j", status = "weird" }))
    local t = assert(P.parse_task { id = "j", status = "failed", error = { code = "x", message = "nope" } })
    assert.are.equal("nope", t.message)
    local d, code, msg = P.unwrap({ error = { message = "Incorrect API key provided", type = "authentication_error",
      code = "invalid_api_key" } }, 401)
    assert.is_nil(d)
    assert.are.equal("invalid_api_key", code)
    assert.are.equal("Incorrect API key provided", msg)
  end)
end)
