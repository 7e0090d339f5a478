-- The official provider beyond text2video and image2video: every endpoint of seed 000 is in
-- the catalogue, each refuses canonical fields it does not take by name, checks its
-- documented rules, and maps the canonical request to Kling's spelling.
local P = require "kling.providers.kling"
local core = require "kling.core"
local images = require "support.images"

local URL, URL2, VID = "https://e.com/a.png", "https://e.com/b.png", "https://e.com/v.mp4"

local function png(w, h)
  return core.b64encode(images.png(w, h))
end

local check = require("support.provider_check").for_provider(P)
local accepts = check.accepts
local function rejects(req, endpoint, field, pattern)
  check.rejects(req, field, pattern, endpoint)
end

local function body(req, endpoint)
  accepts(req, endpoint)
  local call = P.build(req, endpoint)
  assert.are.equal("POST", call.method)
  assert.are.equal("/v1/" .. endpoint, call.path)
  return call.body
end

describe("official catalogue", function()
  it("has every endpoint of seed 000, with the synchronous ones marked", function()
    local async = { "videos/text2video", "videos/image2video", "videos/omni-video", "videos/multi-image2video",
      "videos/motion-control", "videos/multi-elements", "videos/video-extend", "videos/avatar/image2video",
      "videos/effects", "videos/advanced-lip-sync", "audio/text-to-audio", "audio/video-to-audio",
      "images/generations", "images/omni-image", "images/multi-image2image", "images/editing/expand",
      "general/custom-voices" }
    for _, ep in ipairs(async) do
      assert.is_true(P.endpoints[ep] and P.endpoints[ep].async, ep)
    end
    for _, ep in ipairs { "videos/identify-face", "videos/image-recognize", "audio/tts", "general/custom-elements" } do
      assert.is_true(P.endpoints[ep] and P.endpoints[ep].sync, ep)
      assert.is_falsy(P.endpoints[ep].async)
    end
    for _, ep in ipairs { "general/custom-elements", "general/presets-elements", "general/delete-elements",
      "general/custom-voices", "general/presets-voices", "general/delete-voices",
      "videos/multi-elements/init-selection", "videos/multi-elements/add-selection",
      "videos/multi-elements/delete-selection", "videos/multi-elements/clear-selection",
      "videos/multi-elements/preview-selection" } do
      assert.is_table(P.calls[ep], ep)
    end
  end)

  it("refuses a canonical field an endpoint lacks by provider and field, never dropping it", function()
    rejects({ text = "hi", voice_id = "v", prompt = "x" }, "audio/tts", "prompt", "audio/tts has no prompt")
    rejects({ text = "hi", voice_id = "v", callback_url = "https://e.com/h" }, "audio/tts", "callback_url")
    rejects({ video_url = VID, external_task_id = "x" }, "videos/identify-face", "external_task_id")
    rejects({ prompt = "x", aspect_ratio = "1:1", sound = true }, "videos/omni-video", "sound")
    rejects({ prompt = "x", n = 2 }, "videos/text2video", "n")
    accepts({ prompt = "x", n = 1, sound = false }, "videos/text2video")
    local err = P.validate({ prompt = "x", aspect_ratio = "1:1", multi_shot = true }, "videos/omni-video")
    assert.are.equal("kling", err.provider)
    assert.matches("not supported by provider 'kling'", tostring(err))
  end)

  it("points management calls to client:call and unknown ones to an error", function()
    rejects({}, "general/presets-voices", "endpoint", "client:call")
    rejects({}, "videos/nope", "endpoint", "unknown endpoint")
  end)
end)

describe("omni-video", function()
  local EP = "videos/omni-video"
  it("needs a prompt and, without a first frame or a video to edit, an aspect ratio", function()
    rejects({ aspect_ratio = "1:1" }, EP, "prompt", "required")
    rejects({ prompt = "x" }, EP, "aspect_ratio", "required")
    rejects({ prompt = "x", image = URL, aspect_ratio = "1:1" }, EP, "aspect_ratio", "first frame")
    accepts({ prompt = "x", image = URL }, EP)
    accepts({ prompt = "x", video_list = { { video_url = VID, refer_type = "base" } } }, EP)
  end)

  it("takes 3-10 s, but only 5 or 10 for text-to-video and first-frame, none when editing", function()
    rejects({ prompt = "x", aspect_ratio = "1:1", duration = 7 }, EP, "duration", "5, 10")
    rejects({ prompt = "x", image = URL, duration = 7 }, EP, "duration", "5, 10")
    accepts({ prompt = "x", aspect_ratio = "1:1", image_list = { URL }, duration = 7 }, EP)
    rejects({ prompt = "x", aspect_ratio = "1:1", image_list = { URL }, duration = 11 }, EP, "duration", "3 and 10")
    rejects({ prompt = "x", aspect_ratio = "1:1", image_list = { URL }, duration = 2 }, EP, "duration")
    rejects({ prompt = "x", video_list = { { video_url = VID } }, duration = 5 }, EP, "duration", "edited video")
  end)

  it("counts references: 7 without a video, 4 with one; an end frame needs a first and at most 2 images", function()
    local seven = { URL, URL, URL, URL, URL, URL, URL }
    accepts({ prompt = "x", aspect_ratio = "1:1", image_list = seven }, EP)
    rejects({ prompt = "x", aspect_ratio = "1:1", image_list = seven, element_list = { 1 } }, EP, "image_list", "7")
    rejects({ prompt = "x", aspect_ratio = "1:1", image_list = { URL, URL, URL, URL },
      video_list = { { video_url = VID, refer_type = "feature" } }, element_list = { 1 } }, EP, "image_list", "4")
    rejects({ prompt = "x", last_image = URL }, EP, "last_image", "first frame")
    rejects({ prompt = "x", image = URL, last_image = URL2, image_list = { URL } }, EP, "last_image", "2 images")
    rejects({ prompt = "x", aspect_ratio = "1:1", video_list = { { video_url = VID }, { video_url = VID } } }, EP,
      "video_list", "at most 1")
    rejects({ prompt = "x", video_list = { { video_url = "ftp://x" } } }, EP, "video_list[1].video_url")
    rejects({ prompt = "x", model = "kling-v1" }, EP, "model", "kling%-video%-o1")
  end)

  it("maps frames, references and booleans to Kling's spelling", function()
    local b = body({ prompt = "p", image = "data:image/png;base64," .. png(400, 400), last_image = URL2,
      element_list = { 7 }, resolution = "1080p", duration = 10 }, EP)
    assert.are.equal("kling-video-o1", b.model_name)
    assert.are.equal("pro", b.mode)
    assert.are.equal("10", b.duration)
    assert.are.same({ { image_url = png(400, 400), type = "first_frame" }, { image_url = URL2, type = "end_frame" } },
      b.image_list)
    assert.are.same({ { element_id = "7" } }, b.element_list)
    assert.is_nil(b.image)
    assert.is_nil(b.last_image)
    b = body({ prompt = "p", video_list = { { video_url = VID, refer_type = "base", keep_original_sound = false } } },
      EP)
    assert.are.same({ { video_url = VID, refer_type = "base", keep_original_sound = "no" } }, b.video_list)
    assert.is_nil(b.duration)
  end)
end)

describe("other video endpoints", function()
  it("multi-image2video: 1 to 4 images, kling-v1-6, 5 or 10 s", function()
    local EP = "videos/multi-image2video"
    rejects({ prompt = "x" }, EP, "image_list", "required")
    rejects({ prompt = "x", image_list = { URL, URL, URL, URL, URL } }, EP, "image_list", "at most 4")
    rejects({ prompt = "x", image_list = { "nope" } }, EP, "image_list[1]")
    rejects({ prompt = "x", image_list = { URL }, duration = 7 }, EP, "duration")
    rejects({ prompt = "x", image_list = { URL }, image = URL }, EP, "image", "has no image")
    local b = body({ prompt = "x", image_list = { URL, { image = URL2 } }, mode = "pro" }, EP)
    assert.are.same({ { image = URL }, { image = URL2 } }, b.image_list)
    assert.are.equal("5", b.duration)
    assert.are.equal("kling-v1-6", b.model_name)
  end)

  it("motion-control: image, video_url, orientation and mode are required; model and duration only price it",
    function()
      local EP = "videos/motion-control"
      local ok = { image = URL, video_url = VID, character_orientation = "video", mode = "pro" }
      accepts(ok, EP)
      for _, field in ipairs { "image", "video_url", "character_orientation", "mode" } do
        local req = {}
        for k, v in pairs(ok) do
          req[k] = v
        end
        req[field] = nil
        rejects(req, EP, field, "required")
      end
      rejects({ image = URL, video_url = VID, character_orientation = "image", mode = "std", duration = 12 }, EP,
        "duration", "between 3 and 10")
      accepts({ image = URL, video_url = VID, character_orientation = "video", mode = "std", duration = 25 }, EP)
      rejects({ image = URL, video_url = VID, character_orientation = "video", mode = "std", model = "kling-v1" },
        EP, "model")
      local b = body({ image = URL, video_url = VID, character_orientation = "image", resolution = "720p",
        keep_original_sound = true, model = "kling-v2-6", duration = 5 }, EP)
      assert.are.same({ image_url = URL, video_url = VID, character_orientation = "image", mode = "std",
        keep_original_sound = "yes" }, b)
    end)

  it("multi-elements: session, edit mode and its image count", function()
    local EP = "videos/multi-elements"
    rejects({ prompt = "x", edit_mode = "swap" }, EP, "session_id", "required")
    rejects({ prompt = "x", session_id = "s" }, EP, "edit_mode", "required")
    rejects({ prompt = "x", session_id = "s", edit_mode = "merge" }, EP, "edit_mode")
    rejects({ prompt = "x", session_id = "s", edit_mode = "swap" }, EP, "image_list", "1 image")
    rejects({ prompt = "x", session_id = "s", edit_mode = "addition", image_list = { URL, URL, URL } }, EP,
      "image_list", "1 to 2")
    rejects({ prompt = "x", session_id = "s", edit_mode = "removal", image_list = { URL } }, EP, "image_list", "0")
    local b = body({ prompt = "x", session_id = "s", edit_mode = "swap", image_list = { URL }, duration = 10 }, EP)
    assert.are.same({ { image = URL } }, b.image_list)
    assert.are.equal("10", b.duration)
    assert.are.equal("s", b.session_id)
  end)

  it("video-extend: a video_id; model, mode and 4-5 s price it and are not sent", function()
    local EP = "videos/video-extend"
    rejects({ prompt = "x" }, EP, "video_id", "required")
    rejects({ video_id = "v", duration = 6 }, EP, "duration", "4 and 5")
    rejects({ video_id = "v", model = "kling-v2-6" }, EP, "model")
    rejects({ video_id = "v", cfg_scale = 2 }, EP, "cfg_scale")
    local b = body({ video_id = "v", model = "kling-v1", mode = "pro", duration = 5, prompt = "more", cfg_scale = 0.3 },
      EP)
    assert.are.same({ video_id = "v", prompt = "more", cfg_scale = 0.3 }, b)
  end)

  it("effects: two-person scenes take 2 images, the classic ones a model and mode", function()
    local EP = "videos/effects"
    rejects({ image = URL }, EP, "effect_scene", "required")
    rejects({ effect_scene = "pet_lion" }, EP, "image", "required")
    rejects({ effect_scene = "pet_lion", image = URL, duration = 7 }, EP, "duration", "5 or 10")
    rejects({ effect_scene = "hug", images = { URL } }, EP, "images", "exactly 2")
    rejects({ effect_scene = "hug", images = { URL, URL2 } }, EP, "model", "kling%-v1%-6")
    rejects({ effect_scene = "fight", images = { URL, URL2 }, model = "kling-v1", mode = "std" }, EP, "model")
    rejects({ effect_scene = "hug_pro", images = { URL, URL2 }, duration = 10 }, EP, "duration", "5 for hug_pro")
    local b = body({ effect_scene = "hug", images = { URL, URL2 }, model = "kling-v1-6", mode = "pro" }, EP)
    assert.are.same({ effect_scene = "hug", input = { images = { URL, URL2 }, model_name = "kling-v1-6", mode = "pro",
      duration = "5" } }, b)
    b = body({ effect_scene = "pet_lion", image = URL, duration = 10, external_task_id = "e" }, EP)
    assert.are.same({ image = URL, duration = "10" }, b.input)
    assert.are.equal("e", b.external_task_id)
  end)

  it("avatar: a portrait and exactly one of audio_id and sound_file", function()
    local EP = "videos/avatar/image2video"
    rejects({ audio_id = "a" }, EP, "image", "required")
    rejects({ image = URL }, EP, "audio_id", "required")
    rejects({ image = URL, audio_id = "a", sound_file = "https://e.com/a.mp3" }, EP, "audio_id", "sound_file")
    rejects({ image = URL, audio_id = "a", duration = 301 }, EP, "duration", "2 and 300")
    -- "URL or base64": what is neither is refused before anything is sent (a URL behind a
    -- character the gateway's media check does not skip passed as "base64" to an upstream that
    -- may trim it into a URL and fetch it)
    for _, v in ipairs { "\u{a0}http://10.0.0.1/a.mp3", "\x1chttp://127.0.0.1/a.mp3",
      "\u{3000}https://169.254.169.254/", "//127.0.0.1/a.mp3", "data:audio/mp3;base64,AAAA", "AAA", "AA AA" } do
      rejects({ image = URL, sound_file = v }, EP, "sound_file", "neither")
    end
    accepts({ image = URL, sound_file = "SUQzBAAAAAAA", duration = 5 }, EP)
    accepts({ image = URL, sound_file = "https://e.com/a.mp3", duration = 5 }, EP)
    local b = body({ image = URL, audio_id = "a", resolution = "1080p", duration = 12 }, EP)
    assert.are.same({ image = URL, audio_id = "a", mode = "pro" }, b)
  end)

  it("identify-face (synchronous) then advanced-lip-sync", function()
    rejects({}, "videos/identify-face", "video_id", "required")
    rejects({ video_id = "a", video_url = VID }, "videos/identify-face", "video_id", "video_url")
    rejects({ video_url = "nope" }, "videos/identify-face", "video_url")
    assert.are.same({ video_url = VID }, body({ video_url = VID }, "videos/identify-face"))
    local EP = "videos/advanced-lip-sync"
    local face = { face_id = "0", audio_id = "a", sound_start_time = 0, sound_end_time = 3000, sound_insert_time = 0 }
    accepts({ session_id = "s", face_choose = { face } }, EP)
    rejects({ face_choose = { face } }, EP, "session_id", "required")
    rejects({ session_id = "s" }, EP, "face_choose", "required")
    rejects({ session_id = "s", face_choose = { { face_id = "0", audio_id = "a", sound_start_time = 0,
      sound_end_time = 1500, sound_insert_time = 0 } } }, EP, "face_choose[1].sound_end_time", "2000 ms")
    rejects({ session_id = "s", face_choose = { { face_id = "0", sound_start_time = 0, sound_end_time = 3000,
      sound_insert_time = 0 } } }, EP, "face_choose[1].audio_id", "required")
    rejects({ session_id = "s", face_choose = { { face_id = "0", audio_id = "a", sound_start_time = 0,
      sound_end_time = 3000, sound_insert_time = 0, sound_volume = 3 } } }, EP, "face_choose[1].sound_volume")
    rejects({ session_id = "s", face_choose = { { face_id = "0", sound_file = "\u{a0}http://10.0.0.1/a.mp3",
      sound_start_time = 0, sound_end_time = 3000, sound_insert_time = 0 } } }, EP, "face_choose[1].sound_file",
      "neither")
  end)
end)

describe("objects inside a request", function()
  -- Copied as they came into the body, an item's key no page documents went upstream unseen
  -- (a gateway forwarded whatever its client put there): refused by its path, as a field is.
  it("refuses an item's or an object's unknown key by its path, with the closest known one", function()
    local pts = { { x = 1, y = 2 }, { x = 3, y = 4 } }
    rejects({ prompt = "x", image_list = { { image = URL, evil = "x" } } }, "videos/multi-image2video",
      "image_list[1].evil", "unknown field of image_list%[1%]")
    rejects({ prompt = "x <<<element_1>>>", aspect_ratio = "16:9", duration = 5,
      element_list = { { element_id = "12", evil = 1 } } }, "videos/omni-video", "element_list[1].evil")
    rejects({ prompt = "x", image_list = { { image_url = URL, type = "first_frame", typ = 1 } } },
      "videos/omni-video", "image_list[1].typ", "did you mean type")
    rejects({ prompt = "x", video_list = { { video_url = VID, refer_type = "feature", evil = 1 } }, duration = 5,
      aspect_ratio = "16:9" }, "videos/omni-video", "video_list[1].evil")
    rejects({ model = "kling-v1", image = URL, dynamic_masks = { { mask = URL, trajectories = pts, evil = 1 } } },
      "videos/image2video", "dynamic_masks[1].evil")
    rejects({ model = "kling-v1", image = URL, dynamic_masks = { { mask = URL, trajectories = { { x = 1, y = 2, z = 3 },
      { x = 3, y = 4 } } } } }, "videos/image2video", "dynamic_masks[1].trajectories[1].z", "did you mean")
    rejects({ effect_scene = "hug", input = { images = { URL, URL2 }, model_name = "kling-v1-6", mode = "std",
      evil = 1 } }, "videos/effects", "input.evil")
    rejects({ session_id = "s", face_choose = { { face_id = "0", audio_id = "a", sound_start_time = 0,
      sound_end_time = 3000, sound_insert_time = 0, evil = 1 } } }, "videos/advanced-lip-sync", "face_choose[1].evil")
    rejects({ model = "kling-v3", prompt = "x", multi_shot = true, duration = 5,
      multi_prompt = { { prompt = "a", duration = 5, evil = 1 } } }, "videos/text2video", "multi_prompt[1].evil")
    rejects({ element_name = "e", element_description = "d", image = URL,
      element_refer_list = { { image_url = URL2, evil = 1 } } }, "general/custom-elements",
      "element_refer_list[1].evil")
    -- the documented keys still pass
    accepts({ model = "kling-v1", image = URL, dynamic_masks = { { mask = URL, trajectories = pts } } },
      "videos/image2video")
    accepts({ effect_scene = "hug", input = { images = { URL, URL2 }, model_name = "kling-v1-6", mode = "std" } },
      "videos/effects")
    for _, d in ipairs { "0x5", " 5", "5.0", "05", 5.5, { 5 } } do
      rejects({ effect_scene = "hug", input = { images = { URL, URL2 }, model_name = "kling-v1-6", mode = "std",
        duration = d } }, "videos/effects", "input.duration", "whole seconds written in digits")
    end
    accepts({ effect_scene = "hug", input = { images = { URL, URL2 }, model_name = "kling-v1-6", mode = "std",
      duration = "10" } }, "videos/effects")
    accepts({ model = "kling-v3", prompt = "x", multi_shot = true, duration = 5,
      multi_prompt = { { index = 1, prompt = "a", duration = 5 } } }, "videos/text2video")
  end)

  it("checks the motion brush's masks as images and its trajectories as points", function()
    local EP, pts = "videos/image2video", { { x = 1, y = 2 }, { x = 3, y = 4 } }
    rejects({ model = "kling-v1", image = URL, static_mask = "\u{a0}http://10.0.0.1/m.png" }, EP, "static_mask",
      "http%(s%) URL or base64")
    rejects({ model = "kling-v1", image = URL, static_mask = "not a mask" }, EP, "static_mask")
    rejects({ model = "kling-v1", image = URL, dynamic_masks = { { mask = "\u{3000}http://10.0.0.1/m.png",
      trajectories = pts } } }, EP, "dynamic_masks[1].mask", "http%(s%) URL or base64")
    rejects({ model = "kling-v1", image = URL, dynamic_masks = { { trajectories = pts } } }, EP,
      "dynamic_masks[1].mask", "required")
    rejects({ model = "kling-v1", image = URL, dynamic_masks = { { mask = URL, trajectories = { pts[1] } } } }, EP,
      "dynamic_masks[1].trajectories", "2 to 77")
    rejects({ model = "kling-v1", image = URL, dynamic_masks = { { mask = URL, trajectories = { pts[1],
      { x = 1.5, y = 2 } } } } }, EP, "dynamic_masks[1].trajectories[2].x", "whole")
    rejects({ model = "kling-v1", image = URL, dynamic_masks = { "m" } }, EP, "dynamic_masks[1]", "object")
    accepts({ model = "kling-v1", image = URL, static_mask = URL2 }, EP)
  end)
end)

describe("images and audio", function()
  it("generations: n 1..9, image rules per model, seed 000's model spellings", function()
    local EP = "images/generations"
    rejects({ prompt = "x", n = 10 }, EP, "n", "between 1 and 9")
    rejects({ prompt = "x", n = 0 }, EP, "n")
    rejects({ prompt = "x", resolution = "1080p" }, EP, "resolution", "1k, 2k")
    rejects({ prompt = "x", aspect_ratio = "5:4" }, EP, "aspect_ratio")
    rejects({ prompt = "x", image = URL, negative_prompt = "y" }, EP, "negative_prompt", "image")
    rejects({ prompt = "x", model = "kling-v2-new" }, EP, "image", "required")
    rejects({ prompt = "x", model = "kling-v2-1", image = URL }, EP, "image", "text%-to%-image")
    rejects({ prompt = "x", image_reference = "face", model = "kling-v2", image = URL }, EP, "image_reference")
    rejects({ prompt = "x", model = "kling-v9" }, EP, "model")
    local b = body({ prompt = "x", model = "kling-v2-0", n = 4, aspect_ratio = "21:9", resolution = "2k",
      image = "data:image/png;base64," .. png(500, 500) }, EP)
    assert.are.equal("kling-v2", b.model_name)
    assert.are.equal(4, b.n)
    assert.are.equal(png(500, 500), b.image)
  end)

  it("omni-image, multi-image2image and expand", function()
    rejects({ prompt = "x", image_list = { URL, URL, URL, URL, URL, URL }, element_list = { 1, 2, 3, 4, 5 } },
      "images/omni-image", "image_list", "at most 10")
    -- an image_list that is no array is refused, not read as none and dropped from the create
    rejects({ prompt = "x", image_list = { image = URL } }, "images/omni-image", "image_list", "array, got an object")
    rejects({ prompt = "x", image_list = URL }, "images/omni-image", "image_list", "array, got a string")
    local b = body({ prompt = "x", image = URL, image_list = { URL2 }, aspect_ratio = "auto" }, "images/omni-image")
    assert.are.same({ { image = URL }, { image = URL2 } }, b.image_list)
    rejects({ prompt = "x", aspect_ratio = "auto" }, "images/generations", "aspect_ratio")
    rejects({ prompt = "x" }, "images/multi-image2image", "subject_image_list", "required")
    rejects({ subject_image_list = { URL }, model = "kling-v1" }, "images/multi-image2image", "model")
    b = body({ subject_image_list = { URL }, scene_image = URL2, n = 2 }, "images/multi-image2image")
    assert.are.same({ { subject_image = URL } }, b.subject_image_list)
    assert.are.equal("kling-v2", b.model_name)
    rejects({ up_expansion_ratio = 0.5 }, "images/editing/expand", "image", "required")
    rejects({ image = URL, up_expansion_ratio = 2.5 }, "images/editing/expand", "up_expansion_ratio")
    rejects({ image = URL, up_expansion_ratio = 1, left_expansion_ratio = 1 }, "images/editing/expand",
      "up_expansion_ratio", "4 times the original.s area; at most 3")
    b = body({ image = URL, up_expansion_ratio = 0.5 }, "images/editing/expand")
    assert.are.same({ up = 0.5, down = 0, left = 0, right = 0 }, { up = b.up_expansion_ratio,
      down = b.down_expansion_ratio, left = b.left_expansion_ratio, right = b.right_expansion_ratio })
  end)

  it("tts, text-to-audio and video-to-audio", function()
    rejects({ voice_id = "v" }, "audio/tts", "text", "required")
    rejects({ text = ("x"):rep(1001), voice_id = "v" }, "audio/tts", "text", "1000")
    rejects({ text = "x" }, "audio/tts", "voice_id", "required")
    rejects({ text = "x", voice_id = "v", voice_speed = 2.5 }, "audio/tts", "voice_speed")
    rejects({ text = "x", voice_id = "v", voice_speed = 1.25 }, "audio/tts", "voice_speed", "one decimal")
    rejects({ text = "x", voice_id = "v", voice_language = "fr" }, "audio/tts", "voice_language")
    assert.are.equal("zh", body({ text = "x", voice_id = "v" }, "audio/tts").voice_language)
    rejects({ duration = 5 }, "audio/text-to-audio", "prompt", "required")
    rejects({ prompt = ("x"):rep(201), duration = 5 }, "audio/text-to-audio", "prompt", "200")
    rejects({ prompt = "rain" }, "audio/text-to-audio", "duration", "required")
    rejects({ prompt = "rain", duration = 2.9 }, "audio/text-to-audio", "duration", "between 3 and 10")
    rejects({ prompt = "rain", duration = 3.25 }, "audio/text-to-audio", "duration", "one decimal")
    assert.are.equal(3.5, body({ prompt = "rain", duration = 3.5 }, "audio/text-to-audio").duration)
    rejects({}, "audio/video-to-audio", "video_id", "required")
    rejects({ video_id = "v", duration = 25 }, "audio/video-to-audio", "duration", "3 and 20")
    rejects({ video_id = "v", asmr_mode = "yes" }, "audio/video-to-audio", "asmr_mode")
    assert.are.same({ video_id = "v", bgm_prompt = "jazz" },
      body({ video_id = "v", bgm_prompt = "jazz", duration = 10 }, "audio/video-to-audio"))
    rejects({}, "videos/image-recognize", "image", "required")
  end)
end)

describe("general endpoints and calls", function()
  it("custom voices and elements", function()
    rejects({ voice_url = "https://e.com/v.mp3" }, "general/custom-voices", "voice_name", "required")
    rejects({ voice_name = ("n"):rep(21), video_id = "v" }, "general/custom-voices", "voice_name", "20")
    rejects({ voice_name = "n" }, "general/custom-voices", "voice_url", "required")
    local ok = { element_name = "cat", element_description = "a cat", image = URL, element_refer_list = { URL2 } }
    local b = body(ok, "general/custom-elements")
    assert.are.equal(URL, b.element_frontal_image)
    assert.are.same({ { image_url = URL2 } }, b.element_refer_list)
    assert.is_nil(b.image)
    local long = { element_name = ("n"):rep(21), element_description = "d", image = URL, element_refer_list = { URL } }
    rejects(long, "general/custom-elements", "element_name", "at most 20")
    rejects({ element_name = "n", element_description = ("d"):rep(101), image = URL, element_refer_list = { URL } },
      "general/custom-elements", "element_description", "at most 100")
    rejects({ element_name = "n", element_description = "d", image = URL }, "general/custom-elements",
      "element_refer_list", "required")
    rejects({ element_name = "n", element_description = "d", image = URL, element_refer_list = { URL, URL, URL, URL } },
      "general/custom-elements", "element_refer_list", "at most 3")
    rejects({ element_name = "n", element_description = "d", image = URL, element_refer_list = { URL },
      tag_list = { "o_109" } }, "general/custom-elements", "tag_list[1]", "o_101")
  end)

  it("builds management calls with their methods, checking ids, points and paging first", function()
    local spec = assert(P.call_spec("general/presets-voices", { page = 2, page_size = 10 }))
    assert.are.same({ method = "GET", path = "/v1/general/presets-voices?pageNum=2&pageSize=10" }, spec)
    local _, err = P.call_spec("general/custom-elements", { page_size = 501 })
    assert.are.equal("page_size", err.field)
    spec = assert(P.call_spec("general/delete-voices", { voice_id = "v1" }, "delete"))
    assert.are.same({ method = "DELETE", path = "/v1/general/delete-voices", body = { voice_id = "v1" } }, spec)
    _, err = P.call_spec("general/delete-elements", {})
    assert.are.equal("element_id", err.field)
    _, err = P.call_spec("general/delete-elements", { element_id = 1 }, "GET")
    assert.are.equal("method", err.field)
    _, err = P.call_spec("videos/multi-elements/add-selection", { session_id = "s", frame_index = 0,
      points = { { x = 0.5, y = 1.5 } } })
    assert.are.equal("points[1]", err.field)
    _, err = P.call_spec("videos/multi-elements/init-selection", { video_id = "v", video_url = VID })
    assert.are.equal("video_id", err.field)
    _, err = P.call_spec("videos/text2video", {})
    assert.matches("client:submit", err.message)
  end)
end)
