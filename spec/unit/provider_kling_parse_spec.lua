-- The official provider reading answers: task objects with every kind of output, the
-- synchronous answers (finished tasks marked sync), callbacks, and management answers.
local P = require "kling.providers.kling"
local json = require "kling.json"

local function task(result, extra)
  local t = { task_id = "t1", task_status = "succeed", task_status_msg = "", created_at = 1700000000000,
    updated_at = 1700000004000, final_unit_deduction = "0.25", task_info = { external_task_id = "e1" },
    task_result = result }
  for k, v in pairs(extra or {}) do
    t[k] = v
  end
  return t
end

describe("official answers", function()
  it("reads videos with the parent video of an extension, durations as numbers", function()
    local t = assert(P.parse_task(task({ videos = { { id = "v2", url = "u2", duration = "9.5", session_id = "s" } } },
      { task_info = { external_task_id = "e1", parent_video = { id = "v1", url = "u1", duration = "5" } } }),
      "videos/video-extend"))
    assert.are.same({ id = "v2", url = "u2", duration = 9.5, session_id = "s" }, t.videos[1])
    assert.are.same({ id = "v1", url = "u1", duration = 5 }, t.parent_video)
    assert.are.equal("e1", t.external_task_id)
    assert.is_nil(t.sync)
  end)

  it("issue 15.2: a video's absent fields take no room (10,000 finished tasks hold their videos)", function()
    local answers = {}
    for i = 1, 2000 do
      answers[i] = task { videos = { { id = "v" .. i, url = "u", duration = "5" } } }
    end
    local function heap_of(make)
      collectgarbage("collect")
      local before, keep = collectgarbage("count"), {}
      for i = 1, #answers do
        keep[i] = make(i)
      end
      collectgarbage("collect")
      return (collectgarbage("count") - before) * 1024 / #answers, keep
    end
    local parsed = heap_of(function(i)
      return assert(P.parse_task(answers[i], "videos/text2video")).videos[1]
    end)
    local bare = heap_of(function(i)
      return { id = answers[i].task_result.videos[1].id, url = "u", duration = 5 }
    end)
    assert.is_true(parsed <= bare + 8, parsed .. " bytes a video vs " .. bare .. " for its three fields")
    assert.are.same({ id = "v1", url = "u", duration = 5 }, assert(P.parse_task(answers[1])).videos[1])
  end)

  it("reads images, both audio shapes and voices", function()
    local t = assert(P.parse_task(task { images = { { index = 0, url = "i0", watermark_url = "w0" }, { index = 1,
      url = "i1" } } }))
    assert.are.equal(2, #t.images)
    assert.are.same({ index = 0, url = "i0", watermark_url = "w0" }, t.images[1])
    t = assert(P.parse_task(task { audios = { { id = "a", url_mp3 = "m", url_wav = "w", duration_mp3 = "3.5",
      duration_wav = "3.5" } } }))
    assert.are.same({ id = "a", url = "m", url_mp3 = "m", url_wav = "w", duration = 3.5, duration_mp3 = 3.5,
      duration_wav = 3.5 }, t.audios[1])
    t = assert(P.parse_task(task { videos = { { id = "v", url = "u", duration = "5" } }, audios = { { id = "a",
      url_mp3 = "m", url_wav = "w", duration_mp3 = "5", duration_wav = "5" } } }))
    assert.are.equal(5, t.videos[1].duration)
    assert.are.equal("w", t.audios[1].url_wav)
    t = assert(P.parse_task(task { voices = { { voice_id = "v1", voice_name = "me", trial_url = "tu",
      owned_by = "123" } } }))
    assert.are.same({ voice_id = "v1", voice_name = "me", trial_url = "tu", owned_by = "123" }, t.voices[1])
  end)

  it("marks a synchronous endpoint's finished answer sync: TTS is a task object", function()
    local t = assert(P.parse_task(task { audios = { { id = "a", url = "u", duration = "2.8" } } }, "audio/tts"))
    assert.is_true(t.sync)
    assert.are.equal("succeeded", t.status)
    assert.are.same({ id = "a", url = "u", duration = 2.8 }, t.audios[1])
  end)

  it("reads identify-face, image-recognize and a custom element as finished results", function()
    local t = assert(P.parse_task({ session_id = "s1", final_unit_deduction = "0.05", face_data = { { face_id = "0",
      face_image = "f", start_time = 0, end_time = 5200 } } }, "videos/identify-face"))
    assert.are.equal("succeeded", t.status)
    assert.is_true(t.sync)
    assert.are.equal("s1", t.id)
    assert.are.equal("s1", t.session_id)
    assert.are.same({ { face_id = "0", face_image = "f", start_time = 0, end_time = 5200 } }, t.face_data)
    assert.are.equal("0.05", t.charge)
    t = assert(P.parse_task({ final_unit_deduction = "0.1", task_result = { images = { { type = "face_seg",
      is_contain = false, url = "x" } } } }, "videos/image-recognize"))
    assert.are.same({ type = "face_seg", is_contain = false, url = "x" }, t.images[1])
    assert.is_nil(t.id) -- the client names it by the request id
    t = assert(P.parse_task({ element_id = 800000000001, element_name = "cat", element_description = "d",
      element_frontal_image = "f", element_refer_list = { { image_url = "r" } }, owned_by = "me" },
      "general/custom-elements"))
    assert.are.equal("800000000001", t.id)
    assert.are.equal(800000000001, t.elements[1].element_id)
    assert.are.equal("cat", t.elements[1].element_name)
    -- "accept either": a custom-elements answer shaped as a task is a task to poll
    t = assert(P.parse_task({ task_id = "x", task_status = "submitted" }, "general/custom-elements"))
    assert.are.equal("queued", t.status)
    assert.is_nil(t.sync)
    local bad, msg = P.parse_task({ final_unit_deduction = "0.05" }, "videos/identify-face")
    assert.is_nil(bad)
    assert.matches("session_id", msg)
    -- ids are read by common.id_text, as task ids are: tostring made "table: 0x..." of a table
    -- (an element no one has) and, on LuaJIT, "1.2345678901235e+14" of a 15-digit number
    for _, case in ipairs { { "general/custom-elements", "element_id" }, { "videos/identify-face", "session_id" } } do
      bad, msg = P.parse_task({ [case[2]] = { 1 }, element_name = "x" }, case[1])
      assert.is_nil(bad, case[1])
      assert.matches(case[2] .. " is an array, not an id", msg, 1, true)
      t = assert(P.parse_task({ [case[2]] = 123456789012345.0, element_name = "x" }, case[1]))
      assert.are.equal("123456789012345", t.id, case[1])
    end
  end)

  it("parses a callback's top-level task object, tolerating an envelope", function()
    local body = json.encode(task({ videos = { { id = "v", url = "u", duration = "5" } } }))
    local t = assert(P.parse_callback(body))
    assert.are.equal("t1", t.id)
    assert.are.equal(5, t.videos[1].duration)
    local wrapped = assert(P.parse_callback(json.encode { code = 0, message = "SUCCEED", data = task {} }))
    assert.are.equal("t1", wrapped.id)
    local none, msg = P.parse_callback("<html>")
    assert.is_nil(none)
    assert.matches("JSON", msg)
    none, msg = P.parse_callback(json.encode(task({}, { task_status = "expired" })))
    assert.is_nil(none)
    assert.matches("expired", msg)
  end)

  it("reads management answers: lists, deletes and selections", function()
    local list = assert(P.parse_call("general/presets-elements", { { element_id = 1, element_name = "a",
      owned_by = "kling" } }))
    assert.are.equal(1, list[1].element_id)
    list = assert(P.parse_call("general/presets-voices", { task {} }))
    assert.are.equal("succeeded", list[1].status)
    local del = assert(P.parse_call("general/delete-voices", { task_id = "d", task_status = "succeed" }))
    assert.are.same({ "d", "succeeded" }, { del.id, del.status })
    local sel = assert(P.parse_call("videos/multi-elements/init-selection", { status = 0, session_id = "s" }))
    assert.are.equal("s", sel.session_id)
    local refused, msg, code = P.parse_call("videos/multi-elements/add-selection", { status = 7, session_id = "s" })
    assert.is_nil(refused)
    assert.matches("status 7", msg)
    assert.are.equal(7, code)
    local bad
    bad, msg = P.parse_call("general/custom-elements", { { element_name = "no id" } })
    assert.is_nil(bad)
    assert.matches("item 1", msg)
  end)
end)

-- A hostile upstream's task id that is no URL path segment (CR LF, '/', '..') went into
-- task.id: handlers echoed it, and each query of the task was refused by the driver (a task
-- polled in vain until its deadline). It is an unreadable answer (protocol), by get_task's rule.
describe("a provider's task id", function()
  it("that is no URL path segment makes the answer unreadable, on the official API and a gateway", function()
    local evolink = require "kling.providers.evolink"
    for _, bad in ipairs { "abc\r\nX-Evil: 1", "../admin", "a/b", "..", string.rep("9", 201) } do
      local t, err = P.parse_task({ task_id = bad, task_status = "submitted" }, "videos/text2video")
      assert.is_nil(t, bad)
      assert.matches("^task id .* must", err)
      t, err = evolink.parse_task { id = bad, status = "pending", object = "video.generation.task" }
      assert.is_nil(t, bad)
      assert.matches("^task id", err)
    end
    assert.are.equal("861796647955000001", assert(P.parse_task({ task_id = "861796647955000001",
      task_status = "submitted" }, "videos/text2video")).id)
  end)
end)
