-- API in One (seed 001): its rules, the canonical request in its spelling, its task object.
local P = require "kling.providers.apiinone"
local json = require "kling.json"
local check = require("support.provider_check").for_provider(P)
local rejects, accepts, body = check.rejects, check.accepts, check.body

local IMG = "https://example.com/a.png"
local SHOTS = { { prompt = "one", duration = 2 }, { prompt = "two", duration = 4 } }

describe("apiinone validation", function()
  it("accepts text, image and multi-shot requests", function()
    accepts { prompt = "a cat" }
    accepts { prompt = "a cat", image = IMG }
    accepts { multi_shot = true, multi_prompt = SHOTS }
    accepts { prompt = "a cat", element_list = { { name = "hero" } } }
    accepts { prompt = "a cat", shot_type = "customize", multi_shot = true, multi_prompt = SHOTS }
  end)

  it("checks the documented limits", function()
    rejects({ prompt = "x", duration = 2 }, "duration", "between 3 and 15")
    rejects({ prompt = "x", duration = 16 }, "duration")
    rejects({ prompt = "x", duration = 5.5 }, "duration", "whole")
    rejects({ prompt = string.rep("a", 2501) }, "prompt", "2500")
    rejects({ duration = 5 }, "prompt", "required")
    rejects({ prompt = "x", mode = "max" }, "mode")
    rejects({ prompt = "x", aspect_ratio = "4:3" }, "aspect_ratio")
    rejects({ prompt = "x", sound = "on" }, "sound", "boolean")
    rejects({ prompt = "x", model = "kling-v2-6" }, "model", "kling%-3")
    rejects({ prompt = "x", resolution = "1080p", mode = "std" }, "resolution")
  end)

  it("checks multi-shot shots", function()
    rejects({ multi_shot = true }, "multi_prompt", "1 to 6")
    rejects({ multi_shot = true, duration = 5, multi_prompt = SHOTS }, "multi_prompt", "sum to duration 5")
    local seven = {}
    for i = 1, 7 do
      seven[i] = { prompt = "s" .. i, duration = 2 }
    end
    rejects({ multi_shot = true, multi_prompt = seven }, "multi_prompt", "at most 6")
    rejects({ multi_shot = true, multi_prompt = { { prompt = string.rep("p", 513), duration = 5 } } },
      "multi_prompt[1].prompt", "512")
    rejects({ multi_shot = true, multi_prompt = { { prompt = "p", duration = 0 }, { prompt = "q", duration = 5 } } },
      "multi_prompt[1].duration")
    rejects({ prompt = "x", multi_prompt = SHOTS }, "multi_prompt", "multi_shot")
  end)

  it("refuses by name the features it lacks", function()
    for field, req in pairs {
      last_image = { prompt = "x", image = IMG, last_image = IMG },
      callback_url = { prompt = "x", callback_url = "https://h.example.com/x" },
      external_task_id = { prompt = "x", external_task_id = "e1" },
      voice_list = { prompt = "x", sound = true, voice_list = { "v" } },
      negative_prompt = { prompt = "x", negative_prompt = "blur" },
      cfg_scale = { prompt = "x", cfg_scale = 0.5 },
      camera_control = { prompt = "x", camera_control = { type = "simple" } },
      n = { prompt = "x", n = 2 },
      shot_type = { multi_shot = true, shot_type = "intelligence", prompt = "x" },
    } do
      local err = rejects(req, field, "not supported by provider 'apiinone'")
      assert.matches("apiinone", tostring(err), 1, true)
    end
  end)

  it("wants an image URL on its image-to-video route, and only there", function()
    rejects({ prompt = "x", image = "iVBORw0KGgo=" }, "image")
    rejects({ prompt = "x" }, "image", "required", "videos/image2video")
    rejects({ prompt = "x", image = IMG }, "image", "image2video", "videos/text2video")
  end)
end)

describe("apiinone mapping", function()
  it("spells the request as the gateway does", function()
    local b, call = body { prompt = "x", duration = 7, mode = "pro", sound = false, aspect_ratio = "9:16" }
    assert.are.same({ method = "POST", path = "/api/v1/videos/generations" },
      { method = call.method, path = call.path })
    assert.are.same({ model = "kling-3", prompt = "x", duration = 7, mode = "pro", sound = false,
      aspect_ratio = "9:16" }, b)
  end)

  it("leaves the gateway's defaults alone", function()
    assert.are.same({ model = "kling-3", prompt = "x" }, (body { prompt = "x" }))
  end)

  it("maps resolution to mode, shots, elements and the image", function()
    local b = body { image = IMG, multi_shot = true, multi_prompt = SHOTS, resolution = "1080p",
      element_list = { { name = "hero" } } }
    assert.are.same({ model = "kling-3", image = IMG, mode = "pro", duration = 6, multi_shots = true,
      multi_prompt = { { prompt = "one", duration = 2 }, { prompt = "two", duration = 4 } },
      kling_elements = { { name = "hero" } } }, b)
  end)

  it("has no list, no external ids and no cancel", function()
    assert.is_false(P.capabilities.list)
    assert.is_false(P.capabilities.external_ids)
    assert.is_false(P.capabilities.cancel)
    assert.is_nil(P.external_query_path)
    assert.are.equal("/api/v1/tasks/a%2Fb", P.query_path("videos/text2video", "a/b"))
  end)
end)

describe("apiinone responses", function()
  it("unwraps its envelope and reads errors", function()
    assert.are.same({ task_id = "1" }, P.unwrap({ code = 0, message = "success", data = { task_id = "1" } }, 200))
    local data, code, msg = P.unwrap({ code = 401, message = "invalid API key" }, 401)
    assert.is_nil(data)
    assert.are.equal(401, code)
    assert.are.equal("invalid API key", msg)
    assert.is_false(P.unwrap("nope", 200))
    assert.is_false(P.unwrap({ hello = 1 }, 200))
  end)

  it("reads every status, the video and the credits", function()
    for status, want in pairs { pending = "queued", processing = "running", completed = "succeeded",
      failed = "failed" } do
      assert.are.equal(want, assert(P.parse_task { task_id = "1", status = status }).status)
    end
    local t = assert(P.parse_task { task_id = 42, status = "completed", credits = 300, created_at = 1700000000000,
      output = { videos = { { url = "https://cdn/x.mp4", duration = 5 } } } })
    assert.are.equal("42", t.id)
    assert.are.equal("300", t.charge)
    assert.are.equal(100, t.progress)
    assert.are.equal(1700000000, t.created_at)
    assert.are.same({ { url = "https://cdn/x.mp4", duration = 5 } }, t.videos)
    local f = assert(P.parse_task { task_id = "1", status = "failed", error = { code = "x", message = "risk" } })
    assert.are.equal("risk", f.message)
    assert.are.equal("x", f.fail_code)
  end)

  it("calls an unknown status an error instead of polling on", function()
    local t, err = P.parse_task { task_id = "1", status = "expired" }
    assert.is_nil(t)
    assert.matches("expired", err)
    assert.is_nil((P.parse_task { status = "pending" }))
  end)

  it("parses a POSTed task, bare or in its envelope", function()
    local task = { task_id = "9", status = "completed", output = { videos = { { url = "u" } } } }
    assert.are.equal("9", assert(P.parse_callback(json.encode(task))).id)
    assert.are.equal("9", assert(P.parse_callback(json.encode { code = 0, data = task })).id)
    assert.is_nil((P.parse_callback("{")))
  end)
end)
