local official = require "kling.gateway.official"

describe("kling.gateway.official", function()
  it("names a refused field as the client spelled it (image_tail, model_name), not the canonical name", function()
    assert.are.equal("image_tail", official.as_sent({ image_tail = "u" }, "last_image"))
    assert.are.equal("model_name", official.as_sent({ model_name = "m" }, "model"))
    assert.are.equal("last_image", official.as_sent({ last_image = "u" }, "last_image"))
    assert.are.equal("duration", official.as_sent({ image_tail = "u" }, "duration"))
  end)

  it("a refusal says its official code: 1200 for a body that is not an object, none (1201) for a field", function()
    local req, why, code = official.to_canonical { "an", "array" }
    assert.is_nil(req)
    assert.matches("JSON object", why, 1, true)
    assert.equal(1200, code)
    req, why, code = official.to_canonical { prompt = "p", base_url = "http://x.example" }
    assert.is_nil(req)
    assert.matches("^base_url: ", why)
    assert.is_nil(code)
  end)

  it("issue 12.1: durations written as decimal strings become numbers", function()
    local req = assert(official.to_canonical { prompt = "p", duration = "10",
      multi_prompt = { { prompt = "a", duration = "3" } } })
    assert.equal(10, req.duration)
    assert.equal(3, req.multi_prompt[1].duration)
    -- a shot's other keys are kept for the dialect to judge (index passes, another is refused),
    -- not dropped unseen
    req = assert(official.to_canonical { prompt = "p", multi_prompt = { { index = 1, prompt = "a", duration = "3",
      evil = { x = 1 } } } })
    assert.same({ index = 1, prompt = "a", duration = 3, evil = { x = 1 } }, req.multi_prompt[1])
  end)

  -- Lua's tonumber also reads hex, exponents and padded strings: those are refused naming the
  -- field, in the official API's terms (digits in a string), instead of pricing a guess.
  it("issue 12.1: hex, exponent, signed or padded duration strings are refused, not read as numbers", function()
    for _, s in ipairs { "0x5", "5e0", " 5", "5 ", "+5", "-5", "5.0", "0x0A", "inf", "nan", "1e400", "05", "0" } do
      local req, err = official.to_canonical { prompt = "p", duration = s }
      assert.is_nil(req, s)
      assert.are.equal('duration: must be whole seconds written in digits, such as "5", without a leading zero (got "'
        .. s .. '")', err)
      req, err = official.to_canonical { prompt = "p", multi_prompt = { { prompt = "a", duration = "5" },
        { prompt = "b", duration = s } } }
      assert.is_nil(req, s)
      assert.matches('^multi_prompt%[2%]%.duration: must be whole seconds', err)
    end
    local _, err = official.to_canonical { prompt = "p", duration = "5\r\nX: y" }
    assert.are.equal('duration: must be whole seconds written in digits, such as "5", without a leading zero (got'
      .. ' "5\\r\\nX: y")', err)
  end)

  it("issue 12.1: sound in another spelling than \"on\"/\"off\" is refused in the official API's terms", function()
    assert.is_true(assert(official.to_canonical { prompt = "p", sound = "on" }).sound)
    assert.is_false(assert(official.to_canonical { prompt = "p", sound = "off" }).sound)
    assert.is_true(assert(official.to_canonical { prompt = "p", sound = true }).sound)
    local req, err = official.to_canonical { prompt = "p", sound = "yes" }
    assert.is_nil(req)
    assert.are.equal('sound: must be "on" or "off" (or true or false), got "yes"', err)
    req, err = official.to_canonical { prompt = "p", sound = "o\nn" }
    assert.is_nil(req)
    assert.are.equal('sound: must be "on" or "off" (or true or false), got another string', err)
  end)

  -- A client's JSON null reaches the checks as cjson's null (a Lua userdata): the sender wrote null.
  it("issue 12.1: a field sent as JSON null is refused as null, not as a Lua userdata", function()
    local json = require "kling.json"
    local P = require("kling.providers").get("kling")
    for field, body in pairs { prompt = { prompt = json.null },
      sound = { prompt = "p", model = "kling-v2-6", mode = "pro", duration = 5, sound = json.null },
      duration = { prompt = "p", model = "kling-v2-6", mode = "pro", duration = json.null } } do
      local req = assert(official.to_canonical(body))
      local err = P.validate(req, "videos/text2video")
      assert.is_table(err, field)
      assert.are.equal(field, err.field)
      assert.matches("got a? ?null", err.message, nil, false)
      assert.is_nil(err.message:find("userdata", 1, true), err.message)
    end
  end)

  -- The external id is echoed in JSON answers, callbacks and the journal: text, not bytes.
  it("issue 12.1: an external_task_id with control characters or invalid UTF-8 is refused naming it", function()
    for _, ext in ipairs { "a\nb", "a\r\nX-Injected: 1", "\0", "tab\there", "e\255\254", "\192\128", "a\u{85}b",
      "a\u{2028}b", "\u{202E}gnp.exe", "kl-\u{200B}abc", "kl\u{A0}1", "\u{FEFF}kl-1", "kl-1\u{E0001}", " kl-1",
      "kl-1 ", "   ", "", ("e"):rep(257) } do
      local req, err = official.to_canonical { prompt = "p", external_task_id = ext }
      assert.is_nil(req, ext)
      assert.matches("^external_task_id:", err)
    end
    local req, cb, ext = official.to_canonical { prompt = "p", external_task_id = "order-42/é 漢" }
    assert.is_table(req)
    assert.is_nil(cb)
    assert.equal("order-42/é 漢", ext)
    -- counted in characters: 256 of three bytes each
    req, cb, ext = official.to_canonical { prompt = "p", external_task_id = ("漢"):rep(256) }
    assert.is_table(req, cb)
    assert.equal(768, #ext)
  end)

  -- The official model_name and the canonical model (or image_tail and last_image) both given:
  -- model_name silently won, and the other was dropped.
  it("two spellings of one field (model_name and model, image_tail and last_image) are refused", function()
    local req, err = official.to_canonical { prompt = "p", model = "kling-v1-6", model_name = "kling-v2-6" }
    assert.is_nil(req)
    assert.matches("model_name: names the same field as model", err, 1, true)
    req, err = official.to_canonical { prompt = "p", image = "https://x.example/a.png",
      image_tail = "https://x.example/b.png", last_image = "https://x.example/c.png" }
    assert.is_nil(req)
    assert.matches("image_tail: names the same field as last_image", err, 1, true)
    assert.equal("kling-v2-6", official.to_canonical({ prompt = "p", model_name = "kling-v2-6" }).model)
  end)

  -- README (the gateway's routes): the library's spellings are read as the official ones, one field each.
  it("the library's spellings (model, last_image, sound true, duration 5) read as the official ones", function()
    local a = assert(official.to_canonical { prompt = "p", model_name = "kling-v2-6", sound = "on", duration = "5",
      image = "https://x.example/a.png", image_tail = "https://x.example/b.png",
      multi_prompt = { { prompt = "s", duration = "5" } } })
    local b = assert(official.to_canonical { prompt = "p", model = "kling-v2-6", sound = true, duration = 5,
      image = "https://x.example/a.png", last_image = "https://x.example/b.png",
      multi_prompt = { { prompt = "s", duration = 5 } } })
    assert.same(a, b)
    assert.same(assert(official.to_canonical { prompt = "p", sound = "off" }),
      assert(official.to_canonical { prompt = "p", sound = false }))
  end)

  it("reads an id sent as a JSON number in its digits, and refuses one past 2^53 (its digits are lost)", function()
    local req = assert(official.to_canonical { video_id = 123456789012345, element_list = { { element_id = 42 } } })
    assert.equal("123456789012345", req.video_id) -- the encoder would write 1.2345678901234e+14 upstream
    assert.equal("42", req.element_list[1].element_id)
    local _, err = official.to_canonical { video_id = 851796586942000002 }
    assert.matches("^video_id: an id is a string .*past 2%^53", err)
    _, err = official.to_canonical { element_list = { { element_id = 1.5 } } }
    assert.matches("^element_list%[1%]%.element_id: an id is a string of digits", err)
    -- a bare id in element_list or voice_list (the dialects read it as {element_id =}) is an id too
    req = assert(official.to_canonical { element_list = { 42 }, voice_list = { 123456789012345 } })
    assert.same({ "42" }, req.element_list)
    assert.same({ "123456789012345" }, req.voice_list)
    _, err = official.to_canonical { voice_list = { 851796586942000002 } }
    assert.matches("^voice_list%[1%]: an id is a string .*past 2%^53", err)
  end)

  -- Media the upstream fetches from a URL a client gave: a private, loopback, link-local or
  -- metadata address went upstream unchecked (the callback_url's rule now holds for them too).
  it("refuses a media URL to a private, loopback, link-local or metadata address, naming the field", function()
    for _, case in ipairs {
      { { image = "http://169.254.169.254/a.png" }, "image" },
      { { image = "https://example.com/a.png", image_tail = "http://127.0.0.1/b.png" }, "image_tail" },
      { { image_list = { { image = "https://example.com/a.png" }, { image = "http://10.0.0.1/b.png" } } },
        "image_list[2].image" },
      { { image_list = { { image_url = "HTTP://[::1]:8080/b.png" } } }, "image_list[1].image_url" },
      { { video_list = { { video_url = "https://192.168.1.2/v.mp4", refer_type = "base" } } },
        "video_list[1].video_url" },
      { { video_url = "http://metadata.google.internal/v.mp4" }, "video_url" },
      { { dynamic_masks = { { mask = "http://100.100.100.200/m.png" } } }, "dynamic_masks[1].mask" },
      { { input = { images = { "http://172.16.0.1/a.png" } } }, "input.images[1]" },
      { { face_choose = { { face_id = "0", sound_file = "http://0x7f.1/a.mp3" } } }, "face_choose[1].sound_file" },
      { { image = " http://10.0.0.1/a.png" }, "image" },
      { { image = "\fhttp://10.0.0.1/a.png" }, "image" },
      { { image = "\v\thttp://10.0.0.1/a.png" }, "image" },
    } do
      local req, err = official.to_canonical(case[1], false, "videos/image2video")
      assert.is_nil(req, case[2])
      assert.are.equal(case[2] .. ":", err:match("^%S+"), err)
    end
    local _, err = official.to_canonical({ image = "http://169.254.169.254/a.png" }, true)
    assert.matches("^image: must be a public address %(169%.254%.169%.254 .*allow_private_media", err)
  end)

  it("takes public media URLs, base64 images, URLs in prompts, and private media where allowed", function()
    local png = "iVBORw0KGgoAAAANSUhEUgAA"
    for _, body in ipairs {
      { image = "https://example.com/a.png", image_tail = png },
      { image = "data:image/png;base64," .. png },
      { prompt = "http://10.0.0.1/ is where the kite flies", negative_prompt = "https://127.0.0.1/",
        multi_prompt = { { prompt = "http://169.254.169.254/", duration = "5" } } },
      { text = "read http://192.168.0.1/ aloud", voice_id = "kling_narrator_en" },
      { callback_url = "http://10.0.0.1/cb" }, -- a callback: allow_private_callbacks (true here), not media
    } do
      assert(official.to_canonical(body, true, "videos/image2video", false))
    end
    assert(official.to_canonical({ image = "http://169.254.169.254/a.png", video_url = "http://127.0.0.1:1/v.mp4",
      image_list = { { image = "http://10.0.0.1/b.png" } } }, false, "videos/image2video", true))
    local _, err = official.to_canonical({ callback_url = "http://10.0.0.1/cb", image = "https://example.com/a.png" },
      false, "videos/image2video", true)
    assert.matches("^callback_url: .*allow_private_callbacks", err)
  end)

  it("reads motion-control's image_url (the official API's) as its image, on that endpoint only", function()
    local body = { model_name = "kling-v2-6", mode = "std", image_url = "https://x.example/a.png",
      video_url = "https://x.example/v.mp4", character_orientation = "image" }
    local req = assert(official.to_canonical(body, false, "videos/motion-control"))
    assert.equal("https://x.example/a.png", req.image)
    assert.is_nil(req.image_url)
    assert.equal("image_url", official.as_sent(body, "image", "videos/motion-control"))
    local kling = require "kling"
    local c = assert(kling.new { provider = "kling", access_key = "abcdefgh", secret_key = "abcdefghij" })
    req.endpoint, req.duration = "videos/motion-control", 5
    assert(c:check(req))
    -- elsewhere image_url is not an image of the endpoint: kept as sent, and refused by name
    req = assert(official.to_canonical({ prompt = "p", image_url = "https://x.example/a.png" }, false,
      "videos/image2video"))
    assert.equal("https://x.example/a.png", req.image_url)
    local _, err = official.to_canonical({ image = "https://x.example/a.png", image_url = "https://x.example/b.png" },
      false, "videos/motion-control")
    assert.matches("image_url: names the same field as image", err, 1, true)
  end)

  it("issue 12.5: a create's answer written as text is what encoding the created view gives", function()
    local json = require "kling.json"
    for _, rec in ipairs {
      { id = "gwabc0123456789ab00000001", status = "queued", created_at = 1764700000123, updated_at = 1764700000456 },
      { id = "gwabc", status = "running", external_task_id = 'mine "1"\n\\', created_at = 1, updated_at = 2 },
      { id = "gw x", status = "queued", created_at = 1, updated_at = 2 }, -- not a plain id: encoded
      { id = "gwabc", status = "odd", created_at = 1.5, updated_at = 2 },
    } do
      local text = official.created_json(rec)
      assert.same(json.decode(json.encode(official.created(rec))), json.decode(text))
    end
  end)

  -- The library's knobs are not the official API's: a network client setting base_url or
  -- estimate got a create taken with them silently ignored.
  it("issue 12.1: provider, endpoint, base_url and estimate in a client's body are refused by name", function()
    for _, k in ipairs { "provider", "endpoint", "base_url", "estimate" } do
      local req, err = official.to_canonical { prompt = "p", [k] = k == "estimate" and 1 or "x" }
      assert.is_nil(req, k)
      assert.matches("^" .. k .. ": is not a field of the official API", err)
    end
  end)

  -- Behind EvoLink or an OpenAI-style gateway, a client's model_params or extra_body passed to
  -- the upstream with whatever it held (quality, duration, ...), which no catalog priced.
  it("an upstream's own field the official API does not document is named, an official one is not", function()
    local evolink = require "kling.providers.evolink"
    local compat = require "kling.providers.compat"
    local apimodels = require "kling.providers.apimodels"
    local req = assert(official.to_canonical { prompt = "p", model_params = { quality = "1080p" } })
    assert.equal("model_params", official.upstream_only(req, evolink.own["videos/text2video"], "videos/text2video"))
    req = assert(official.to_canonical { prompt = "p", extra_body = { seconds = 10 } })
    assert.equal("extra_body", official.upstream_only(req, compat.own["videos/image2video"], "videos/image2video"))
    req = assert(official.to_canonical({ image_url = "https://e.example/a.png",
      motion_video = "https://e.example/v.mp4" }, nil, "videos/motion-control"))
    assert.equal("motion_video", official.upstream_only(req, apimodels.own["videos/motion-control"],
      "videos/motion-control"))
    -- official fields the upstream also spells as its own, and a request without any, pass
    req = assert(official.to_canonical { element_name = "e", element_description = "d" })
    assert.is_nil(official.upstream_only(req, evolink.own["general/custom-elements"], "general/custom-elements"))
    assert.is_nil(official.upstream_only({ prompt = "p" }, evolink.own["videos/text2video"], "videos/text2video"))
    assert.is_nil(official.upstream_only({ prompt = "p" }, nil, "videos/text2video"))
  end)
end)
