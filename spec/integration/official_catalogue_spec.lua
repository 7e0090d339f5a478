-- Every official endpoint of seed 000 through the real client against the simulator, once
-- succeeding and once failing (a task that fails, a call refused by the API, or a request
-- refused before the network). Each charge the simulator reports is the one the client's own
-- price catalog computes for what was delivered (kling.settle), the ledger bills successes
-- only (synchronous calls at once), and image tasks hold n parallel slots.
local sim = require "support.sim"
local kling = require "kling"
local budget = require "kling.money.hold"
local core = require "kling.core"

local IMG, IMG2, VID = "https://example.com/a.png", "https://example.com/b.png", "https://example.com/v.mp4"
local FAIL = " [sim:fail]"

local client
local billed, free = {}, {} -- task id -> charge, for the ledger check at the end
local base = {}             -- results later calls build on

local function micros(s)
  return assert(core.money_parse(s), "not an amount: " .. tostring(s))
end

-- What the client's catalog charges for what the task delivered (as a budget settles it)
-- equals the simulator's charge.
local function same_charge(t)
  local usage = budget.usage(t)
  local q = assert(kling.settle(t.request, usage, { provider = "kling" }))
  assert.are.equal(q.micros, micros(t.charge), t.endpoint .. ": catalog " .. q.amount .. ", simulator " .. t.charge)
  if t.endpoint ~= "videos/image-recognize" then -- it has no id of its own: checked by endpoint at the end
    billed[t.id] = t.charge
  end
end

local function requests()
  return sim.stats().requests
end

-- Submits the good and the failing request together, waits for both: the good one succeeds
-- with its outputs and a charge, the failing one ends failed, uncharged.
local function both(good, bad)
  local ok_task = assert(client:submit(good))
  local bad_task = assert(client:submit(bad))
  assert.are.equal("queued", ok_task.status)
  local done = assert(ok_task:wait { timeout = 30 })
  local none, err = bad_task:wait { timeout = 30 }
  assert.is_nil(none)
  assert.are.equal("failed", bad_task.status)
  assert.is_true(err.kind == "content_policy" or err.kind == "server")
  assert.is_nil(bad_task.charge)
  free[bad_task.id] = true
  same_charge(done)
  return done
end

local function with(req, extra)
  local out = {}
  for k, v in pairs(req) do
    out[k] = v
  end
  for k, v in pairs(extra) do
    out[k] = v
  end
  return out
end

describe("the official catalogue against the simulator", function()
  setup(function()
    sim.reset()
    sim.config { task_seconds = 0.3, max_parallel = 0 }
    client = sim.client { poll_min = 0.05, poll_max = 0.2 }
    local v = assert(client:run({ prompt = "a harbour at dawn", model = "kling-v1", mode = "std" }, { timeout = 30 }))
    base.video = v.videos[1]
    same_charge(v)
  end)

  teardown(function()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)

  describe("video", function()
    it("text2video and image2video", function()
      both({ prompt = "waves" }, { prompt = "waves" .. FAIL })
      local t = both({ image = IMG, prompt = "wave", model = "kling-v1-6" }, { image = IMG, prompt = "x" .. FAIL })
      assert.are.equal("videos/image2video", t.endpoint)
    end)

    it("omni-video, priced per second with a reference", function()
      local req = { endpoint = "videos/omni-video", prompt = "<<<image_1>>> walks", image_list = { IMG },
        aspect_ratio = "1:1", duration = 7, mode = "pro" }
      local t = both(req, with(req, { prompt = "x" .. FAIL }))
      assert.are.equal(7, t.videos[1].duration)
      assert.are.equal("8.4", t.charge)
    end)

    it("multi-image2video", function()
      local req = { endpoint = "videos/multi-image2video", prompt = "two friends", image_list = { IMG, IMG2 } }
      local t = both(req, with(req, { prompt = "x" .. FAIL }))
      assert.are.equal("2", t.charge)
    end)

    it("motion-control", function()
      local req = { endpoint = "videos/motion-control", image = IMG, video_url = VID, character_orientation = "image",
        mode = "std", model = "kling-v2-6" }
      local t = both(req, with(req, { prompt = "dance" .. FAIL }))
      assert.are.equal("2.5", t.charge)
    end)

    it("multi-elements after the selection calls", function()
      local s = assert(client:call("videos/multi-elements/init-selection", { video_id = base.video.id }))
      assert.are.equal(0, s.status)
      assert.are.equal(5000, s.original_duration)
      local pts = { { x = 0.4, y = 0.5 }, { x = 0.6, y = 0.5 } }
      local added = assert(client:call("videos/multi-elements/add-selection", { session_id = s.session_id,
        frame_index = 10, points = pts }))
      assert.are.equal(1, #added.res.rle_mask_list)
      assert(client:call("videos/multi-elements/preview-selection", { session_id = s.session_id }))
      -- points must match the added ones exactly to delete them: a refusal from the API
      local none, err = client:call("videos/multi-elements/delete-selection", { session_id = s.session_id,
        frame_index = 10, points = { { x = 0.1, y = 0.1 } } })
      assert.is_nil(none)
      assert.are.equal(1201, err.code)
      assert(client:call("videos/multi-elements/delete-selection", { session_id = s.session_id, frame_index = 10,
        points = pts }))
      assert(client:call("videos/multi-elements/add-selection", { session_id = s.session_id, frame_index = 3,
        points = pts }))
      local req = { endpoint = "videos/multi-elements", session_id = s.session_id, edit_mode = "removal",
        prompt = "Delete the boat from <<<video_1>>>" }
      local t = both(req, with(req, { prompt = "Delete it" .. FAIL }))
      assert.are.equal(s.session_id, t.videos[1].session_id)
      assert.are.equal("3", t.charge)
      assert(client:call("videos/multi-elements/clear-selection", { session_id = s.session_id }))
      none, err = client:call("videos/multi-elements/preview-selection", { session_id = s.session_id })
      assert.is_nil(none)
      assert.are.equal("validation", err.kind)
      none, err = client:submit(with(req, { session_id = "no-such-session" }))
      assert.is_nil(none)
      assert.are.equal(1201, err.code)
    end)

    it("video-extend of a delivered video, and of one that does not exist", function()
      local req = { endpoint = "videos/video-extend", video_id = base.video.id, model = "kling-v1", mode = "std" }
      local t = both(req, with(req, { prompt = "further" .. FAIL }))
      assert.are.equal(base.video.id, t.parent_video.id)
      assert.are.equal(base.video.duration + 4.5, t.videos[1].duration)
      local none, err = client:submit { endpoint = "videos/video-extend", video_id = "404" }
      assert.is_nil(none)
      assert.are.equal("validation", err.kind)
      assert.are.equal(1201, err.code)
    end)

    it("effects, two-person and single-image", function()
      local req = { endpoint = "videos/effects", effect_scene = "hug", images = { IMG, IMG2 }, model = "kling-v1-6",
        mode = "std" }
      local t = both(req, with(req, { images = { IMG, IMG2 .. "?[sim:fail]" } }))
      assert.are.equal("2", t.charge)
      local single = assert(client:run({ endpoint = "videos/effects", effect_scene = "pet_lion", image = IMG,
        duration = 10 }, { timeout = 30 }))
      assert.are.equal(10, single.videos[1].duration)
      assert.is_nil(single.charge) -- priced per template: seed 000 leaves it open, and so does the catalog
      local q, err = kling.estimate(single.request, { provider = "kling" })
      assert.is_nil(q)
      assert.are.equal("unpriced", err.kind)
    end)
  end)

  describe("talking faces", function()
    it("tts (synchronous) answers at once, charged at once", function()
      local before = requests()
      local t = assert(client:submit { endpoint = "audio/tts", text = "Hello from the simulator, twice over.",
        voice_id = "kling_narrator_en", voice_language = "en" })
      assert.are.equal(before + 1, requests())
      assert.are.equal("succeeded", t.status)
      assert.is_true(t.sync)
      assert.are.equal(t, assert(t:wait { timeout = 1 }))
      assert.are.equal(before + 1, requests()) -- nothing to poll
      assert.matches("%.mp3$", t.audios[1].url)
      same_charge(t)
      base.audio = t.audios[1]
      local none, err = client:submit { endpoint = "audio/tts", text = "no" .. FAIL, voice_id = "v" }
      assert.is_nil(none)
      assert.are.equal("content_policy", err.kind)
      assert.are.equal(1301, err.code)
    end)

    it("avatar speaking a TTS audio", function()
      local req = { endpoint = "videos/avatar/image2video", image = IMG, audio_id = base.audio.id }
      local t = both(req, with(req, { prompt = "smile" .. FAIL }))
      assert.are.equal(base.audio.duration, t.videos[1].duration)
      local none, err = client:submit(with(req, { audio_id = "not-an-audio" }))
      assert.is_nil(none)
      assert.are.equal(1201, err.code)
    end)

    it("identify-face (synchronous) then advanced-lip-sync", function()
      local face = assert(client:submit { endpoint = "videos/identify-face", video_id = base.video.id })
      assert.are.equal("succeeded", face.status)
      assert.is_string(face.session_id)
      assert.are.equal(5000, face.face_data[1].end_time)
      same_charge(face)
      local none, err = client:submit { endpoint = "videos/identify-face", video_url = VID .. "?[sim:fail]" }
      assert.is_nil(none)
      assert.are.equal("content_policy", err.kind)
      local choice = { face_id = face.face_data[1].face_id, audio_id = base.audio.id, sound_start_time = 0,
        sound_end_time = 2500, sound_insert_time = 1000 }
      local req = { endpoint = "videos/advanced-lip-sync", session_id = face.session_id, face_choose = { choice } }
      local bad_choice = with(choice, { sound_file = "https://example.com/s.mp3?[sim:fail]" })
      bad_choice.audio_id = nil
      local t = both(req, with(req, { face_choose = { bad_choice } }))
      assert.are.equal("0.5", t.charge)
      assert.are.equal(base.video.id, t.parent_video.id)
      none, err = client:submit(with(req, { face_choose = { with(choice, { face_id = "9" }) } }))
      assert.is_nil(none)
      assert.are.equal(1201, err.code)
    end)

    it("image-recognize (synchronous)", function()
      local t = assert(client:submit { endpoint = "videos/image-recognize", image = IMG })
      assert.are.equal("succeeded", t.status)
      assert.is_string(t.id)
      local kinds = {}
      for _, img in ipairs(t.images) do
        kinds[#kinds + 1] = img.type
      end
      assert.are.same({ "object_seg", "head_seg", "face_seg", "cloth_seg" }, kinds)
      same_charge(t)
      local none, err = client:submit { endpoint = "videos/image-recognize", image = IMG .. "?[sim:fail]" }
      assert.is_nil(none)
      assert.are.equal("content_policy", err.kind)
    end)
  end)

  describe("audio and images", function()
    it("text-to-audio and video-to-audio deliver mp3 and wav", function()
      local req = { endpoint = "audio/text-to-audio", prompt = "rain on a tin roof", duration = 3.5 }
      local t = both(req, with(req, { prompt = "thunder" .. FAIL }))
      assert.are.equal(3.5, t.audios[1].duration)
      assert.matches("%.wav$", t.audios[1].url_wav)
      req = { endpoint = "audio/video-to-audio", video_id = base.video.id, duration = 5, bgm_prompt = "calm" }
      t = both(req, with(req, { sound_effect_prompt = "gulls" .. FAIL }))
      assert.are.equal(5, t.videos[1].duration)
      assert.are.equal(base.video.id, t.parent_video.id)
      local path = os.tmpname()
      local _, bytes = assert(client:download(t.audios[1].url_wav, path))
      local f = assert(io.open(path, "rb"))
      local head = f:read(12)
      f:close()
      os.remove(path)
      assert.is_true(bytes > 1000)
      assert.are.equal("RIFF", head:sub(1, 4))
      assert.are.equal("WAVE", head:sub(9, 12))
    end)

    it("generations, omni-image, multi-image2image and expand, n images each", function()
      local t = both({ endpoint = "images/generations", prompt = "a lighthouse", n = 3 },
        { endpoint = "images/generations", prompt = "x" .. FAIL })
      assert.are.equal(3, #t.images)
      assert.are.equal("0.075", t.charge)
      local path = os.tmpname()
      assert(client:download(t.images[3].url, path))
      local f = assert(io.open(path, "rb"))
      assert.are.equal("\137PNG", f:read(4))
      f:close()
      os.remove(path)
      t = both({ endpoint = "images/omni-image", prompt = "<<<image_1>>> in snow", image = IMG, n = 2 },
        { endpoint = "images/omni-image", prompt = "x" .. FAIL })
      assert.are.equal("0.4", t.charge)
      t = both({ endpoint = "images/multi-image2image", subject_image_list = { IMG }, style_image = IMG2 },
        { endpoint = "images/multi-image2image", subject_image_list = { IMG }, prompt = "x" .. FAIL })
      assert.are.equal("0.4", t.charge)
      t = both({ endpoint = "images/editing/expand", image = IMG, left_expansion_ratio = 0.5, n = 2 },
        { endpoint = "images/editing/expand", image = IMG, prompt = "sky" .. FAIL })
      assert.are.equal(2, #t.images)
    end)

    it("an image task holds n parallel slots (1303 past the limit)", function()
      sim.config { max_parallel = 4, task_seconds = 2 }
      local img = assert(client:submit { endpoint = "images/generations", prompt = "three", n = 3 })
      local vid = assert(client:submit { prompt = "one more fits" })
      -- refused (1303): within a call budget shorter than the 1 s before a refused create is sent
      -- again, the refusal is the answer
      local none, err = client:with({ call_budget = 0.5 }):submit { endpoint = "images/generations",
        prompt = "two do not", n = 2 }
      assert.is_nil(none)
      assert.are.equal(1303, err.code)
      assert.are.equal("rate_limited", err.kind)
      sim.config { max_parallel = 0, task_seconds = 0.3 }
      assert(img:wait { timeout = 30 })
      assert(vid:wait { timeout = 30 })
      billed[img.id], billed[vid.id] = img.charge, vid.charge
    end)
  end)

  describe("general", function()
    it("custom voices: a task with voices[], queried, listed and deleted", function()
      local req = { endpoint = "general/custom-voices", voice_name = "narrator",
        voice_url = "https://example.com/v.mp3" }
      local t = both(req, with(req, { voice_name = "no" .. FAIL }))
      local voice = t.voices[1]
      assert.are.equal("narrator", voice.voice_name)
      local again = assert(client:get_task(t.id, { endpoint = "general/custom-voices" }))
      assert.are.equal(voice.voice_id, again.voices[1].voice_id)
      local missing, err = client:get_task("404", { endpoint = "general/custom-voices" })
      assert.is_nil(missing)
      assert.are.equal("not_found", err.kind)
      local listed = assert(client:list_tasks { endpoint = "general/custom-voices", page_size = 500 })
      local found = false
      for _, x in ipairs(listed) do
        found = found or x.id == t.id
      end
      assert.is_true(found)
      local calls = assert(client:call("general/custom-voices", { page_size = 500 }))
      assert.is_true(#calls >= 1)
      local presets = assert(client:call("general/presets-voices", { page = 1, page_size = 2 }))
      assert.are.equal(2, #presets)
      assert.are.equal("kling", presets[1].voices[1].owned_by)
      local del = assert(client:call("general/delete-voices", { voice_id = voice.voice_id }, { method = "DELETE" }))
      assert.are.equal("succeeded", del.status)
      missing, err = client:call("general/delete-voices", { voice_id = voice.voice_id })
      assert.is_nil(missing)
      assert.are.equal("not_found", err.kind)
      missing, err = client:call("general/delete-voices", { voice_id = presets[1].voices[1].voice_id })
      assert.is_nil(missing)
      assert.are.equal(1201, err.code)
    end)

    it("custom elements (synchronous), listed, used in omni-video and deleted", function()
      local t = assert(client:submit { endpoint = "general/custom-elements", element_name = "red kite",
        element_description = "a red kite with a long tail", image = IMG, element_refer_list = { IMG2 },
        tag_list = { "o_104" } })
      assert.are.equal("succeeded", t.status)
      local el = t.elements[1]
      assert.are.equal("red kite", el.element_name)
      assert.is_nil(t.charge) -- seed 000: price to be confirmed; the catalog says so too
      local q, qerr = kling.estimate(t.request, { provider = "kling" })
      assert.is_nil(q)
      assert.are.equal("unpriced", qerr.kind)
      local none, err = client:submit { endpoint = "general/custom-elements", element_name = "[sim:fail]",
        element_description = "d", image = IMG, element_refer_list = { IMG2 } }
      assert.is_nil(none)
      assert.are.equal("content_policy", err.kind)
      local list = assert(client:call("general/custom-elements", { page_size = 500 }))
      assert.are.equal(el.element_id, list[1].element_id)
      local presets = assert(client:call("general/presets-elements"))
      assert.are.equal("kling", presets[1].owned_by)
      local v = assert(client:run({ endpoint = "videos/omni-video", prompt = "<<<element_1>>> flies",
        element_list = { el.element_id }, aspect_ratio = "16:9", duration = 3, mode = "std" }, { timeout = 30 }))
      same_charge(v)
      assert(client:call("general/delete-elements", { element_id = el.element_id }))
      none, err = client:call("general/delete-elements", { element_id = el.element_id }, { method = "DELETE" })
      assert.is_nil(none)
      assert.are.equal("not_found", err.kind)
      none, err = client:call("general/presets-elements", { page_size = 0 })
      assert.is_nil(none)
      assert.are.equal("page_size", err.field)
    end)
  end)

  it("finds a task of any video endpoint without being told which, and lists per endpoint", function()
    local t = assert(client:submit { endpoint = "videos/multi-image2video", prompt = "x", image_list = { IMG } })
    local found = assert(client:get_task(t.id))
    assert.are.equal("videos/multi-image2video", found.endpoint)
    local by_ext = assert(client:get_task({ external_task_id = t.external_task_id },
      { endpoint = "videos/multi-image2video" }))
    assert.are.equal(t.id, by_ext.id)
    local list = assert(client:list_tasks { endpoint = "videos/multi-image2video", page_size = 500 })
    assert.is_true(#list >= 3)
    local none, err = client:list_tasks { endpoint = "audio/tts" }
    assert.is_nil(none)
    assert.are.equal("endpoint", err.field)
    assert(t:wait { timeout = 30 })
    billed[t.id] = t.charge
  end)

  it("refuses bad input before the network on every family", function()
    local before = requests()
    local bad = {
      { endpoint = "videos/omni-video", prompt = "x" },
      { endpoint = "videos/motion-control", image = IMG },
      { endpoint = "videos/effects", effect_scene = "hug", images = { IMG } },
      { endpoint = "audio/text-to-audio", prompt = "x", duration = 12 },
      { endpoint = "images/generations", prompt = "x", n = 10 },
      { endpoint = "general/custom-elements", element_name = ("n"):rep(21), element_description = "d", image = IMG,
        element_refer_list = { IMG } },
      { endpoint = "audio/tts", text = "x", voice_id = "v", callback_url = "https://example.com/h" },
    }
    for _, req in ipairs(bad) do
      local none, err = client:submit(req)
      assert.is_nil(none)
      assert.are.equal("validation", err.kind, req.endpoint)
    end
    local none, err = client:call("videos/multi-elements/add-selection", { session_id = "s", frame_index = 0,
      points = {} })
    assert.is_nil(none)
    assert.are.equal("points", err.field)
    assert.are.equal(before, requests())
  end)

  it("bills every success once (synchronous calls at once) and no failure", function()
    local ledger = sim.admin("GET", "/_sim/ledger")
    local rows, recognized = {}, 0
    for _, row in ipairs(ledger.tasks) do
      rows[row.task_id] = row.units
      if row.endpoint == "image-recognize" then
        recognized = recognized + 1
        assert.are.equal("0.1", row.units)
      end
    end
    assert.are.equal(1, recognized) -- the refused one is not billed
    local n = 0
    for id, charge in pairs(billed) do
      n = n + 1
      assert.are.equal(micros(charge), micros(rows[id] or "-1"), "ledger row of " .. id)
    end
    assert.are.equal(24, n) -- every success above but the unpriced ones (single-image effect, custom element)
    for id in pairs(free) do
      assert.is_nil(rows[id], "a failed task was billed: " .. id)
    end
  end)
end)
