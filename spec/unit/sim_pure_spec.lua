-- The simulator's pure parts: the official API's parameter rules, prompt markers and the
-- task clock, unit deductions, and the nginx conf it renders.
local params = require "kling_sim.params"
local fate = require "kling_sim.fate"
local units = require "kling_sim.units"
local conf = require "kling_sim.conf"
local hosts = require "kling_sim.hosts"
local images = require "support.images"

-- A strict standard-base64 decoder (nil on anything else), as ngx.decode_base64 is.
local ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function unb64(s)
  if #s % 4 ~= 0 or not s:match("^[%w%+/]*=?=?$") then
    return nil
  end
  local out, bits, n = {}, 0, 0
  for c in s:gsub("=", ""):gmatch(".") do
    bits = bits * 64 + (ALPHA:find(c, 1, true) - 1)
    n = n + 6
    if n >= 8 then
      n = n - 8
      out[#out + 1] = string.char(bits // (1 << n))
      bits = bits % (1 << n)
    end
  end
  return table.concat(out)
end

local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    for k = 3, 0, -1 do
      out[#out + 1] = ALPHA:sub((v >> (6 * k)) % 64 + 1, (v >> (6 * k)) % 64 + 1)
    end
    if not c then out[#out] = "=" end
    if not b then out[#out - 1] = "=" end
  end
  return table.concat(out)
end

-- PNG and JPEG headers claiming w x h (enough for the size checks).
local png, jpeg = images.png, images.jpeg

local function check(ep, body)
  return params.validate(ep, body, unb64)
end

describe("sim params", function()
  it("fills the documented defaults", function()
    local r = assert(check("text2video", { prompt = "a cat" }))
    assert.are.equal("kling-v1", r.model)
    assert.are.equal("std", r.mode)
    assert.are.equal(5, r.duration)
    assert.are.equal("5", r.duration_str)
    assert.are.equal("16:9", r.aspect_ratio)
    assert.are.equal("off", r.sound)
  end)

  it("names the field and the rule, with the documented status and code", function()
    local cases = {
      { { model_name = "kling-v1" }, 400, 1201, "prompt is required" },
      { { prompt = "x", duration = 5 }, 400, 1201, "duration must be a string" },
      { { prompt = "x", duration = "15" }, 400, 1201, "\"5\" or \"10\"" },
      { { prompt = "x", model_name = "kling-v3", duration = "2" }, 400, 1201, "\"3\" to \"15\"" },
      { { prompt = "x", model_name = "kling-v1-1" }, 404, 1203, "model_name kling-v1-1" }, -- no such model
      { { prompt = "x", mode = "turbo" }, 400, 1201, "mode must be one of pro, std" },
      { { prompt = "x", cfg_scale = "0.5" }, 400, 1201, "cfg_scale" },
      { { prompt = "x", callback_url = "ftp://x" }, 400, 1201, "callback_url" },
      { { prompt = "x", watermark_info = { enabled = "yes" } }, 400, 1201, "watermark_info" },
      { { prompt = "x", camera_control = { type = "orbit" } }, 400, 1201, "camera_control.type" },
      { { prompt = "x", camera_control = { type = "simple", config = { zoom = 11 } } }, 400, 1201, "config.zoom" },
      { { prompt = "x", multi_shot = true }, 400, 1201, "kling-v3" },
      { { prompt = "x", model_name = "kling-v3", duration = "10", multi_shot = true,
        multi_prompt = { { index = 1, prompt = "a", duration = "4" }, { index = 2, prompt = "b", duration = "5" } } },
        400, 1201, "add up to duration 10" },
      -- a duration is written in digits without a leading zero ("05" was taken and billed as 5 s)
      { { prompt = "x", duration = "05" }, 400, 1201, "(got \"05\")" },
      { { prompt = "x", model_name = "kling-v3", duration = "05" }, 400, 1201, "(got \"05\")" },
      { { prompt = "x", model_name = "kling-v3", duration = "5", multi_shot = true,
        multi_prompt = { { index = 1, prompt = "a", duration = "0x5" } } }, 400, 1201, "multi_prompt[1].duration" },
      { { prompt = "x", model_name = "kling-v2-6", voice_list = { { voice_id = "v" } } }, 400, 1201, "sound on" },
      { { prompt = "x", model_name = "kling-v3", element_list = { {}, {}, {}, {} } }, 400, 1201, "at most 3" },
    }
    for i, c in ipairs(cases) do
      local r, err = check("text2video", c[1])
      assert.is_nil(r, "case " .. i)
      assert.are.equal(c[2], err.status, "case " .. i)
      assert.are.equal(c[3], err.code, "case " .. i)
      assert.matches(c[4], err.message, 1, true)
    end
    local _, err = check("text2video", { 1, 2 })
    assert.are.equal(1200, err.code)
  end)

  it("counts characters, not bytes, against the 2500 limit", function()
    assert(check("text2video", { prompt = string.rep("\u{4e2d}", 2500) }))
    local _, err = check("text2video", { prompt = string.rep("\u{4e2d}", 2501) })
    assert.matches("at most 2500 characters %(got 2501%)", err.message)
  end)

  it("accepts a v3 multi-shot request whose shots add up", function()
    local r = assert(check("text2video", { model_name = "kling-v3", duration = "9", multi_shot = true,
      shot_type = "customize", multi_prompt = { { index = 1, prompt = "a", duration = "4" },
        { index = 2, prompt = "b", duration = 5 } } }))
    assert.is_true(r.multi_shot)
  end)

  it("checks image2video images: URL, or raw base64 JPEG/PNG of 300+ px within 1:2.5..2.5:1", function()
    assert(check("image2video", { image = "https://example.com/a.jpg" }))
    assert(check("image2video", { image = b64(png(640, 360)) }))
    assert(check("image2video", { image = b64(jpeg(300, 750)) }))
    local bad = {
      { {}, "image is required" },
      { { image = "data:image/png;base64," .. b64(png(640, 360)) }, "without a 'data:' prefix" },
      { { image = "not*base64" }, "neither an http(s) URL nor valid base64" },
      { { image = b64("GIF89a......") }, "JPEG or PNG" },
      { { image = b64(png(299, 400)) }, "got 299x400" },
      { { image = b64(jpeg(300, 751)) }, "aspect ratio" },
      { { image = b64(png(640, 360)), image_tail = "https://x/y.png", camera_control = { type = "down_back" } },
        "cannot be used together" },
      { { image = b64(png(640, 360)), dynamic_masks = { { mask = "https://x/m.png",
        trajectories = { { x = 1, y = 2 } } } } }, "2 to 77 points" },
      -- the motion brush's masks are images as image is ("not base64 at all!" was taken)
      { { image = b64(png(640, 360)), static_mask = "not base64 at all!" },
        "static_mask is neither an http(s) URL nor valid base64" },
      { { image = b64(png(640, 360)), static_mask = b64(png(299, 400)) }, "static_mask must be at least 300 px" },
      { { image = b64(png(640, 360)), dynamic_masks = { { mask = "not a mask",
        trajectories = { { x = 1, y = 2 }, { x = 3, y = 4 } } } } },
        "dynamic_masks[1].mask is neither an http(s) URL nor valid base64" },
    }
    for _, c in ipairs(bad) do
      local r, err = check("image2video", c[1])
      assert.is_nil(r)
      assert.are.equal(1201, err.code)
      assert.matches(c[2], err.message, 1, true)
    end
  end)
end)

describe("sim fate", function()
  it("reads prompt markers", function()
    assert.are.same({ outcome = "succeed" }, (fate.parse("plain")))
    assert.are.same({ outcome = "failed", message = fate.DEFAULT_FAIL_MSG }, (fate.parse("x [sim:fail]")))
    assert.are.same({ outcome = "failed", message = "no luck" }, (fate.parse("[sim:fail=no luck]")))
    assert.are.same({ outcome = "status", status = "expired" }, (fate.parse("[sim:status=expired]")))
    local f, seconds = fate.parse("[sim:seconds=2.5] [sim:fail]")
    assert.are.equal("failed", f.outcome)
    assert.are.equal(2.5, seconds)
    assert.is_nil(fate.parse("[sim:seconds=-1]"))
    assert.is_nil(fate.parse("[sim:status=a b]"))
    local none, err = fate.parse("[sim:explode]")
    assert.is_nil(none)
    assert.matches("unknown prompt marker", err)
  end)

  it("issue 10.8: [sim:callbacks=STATUS,...] names the only statuses whose callbacks are sent", function()
    local f = fate.parse("x [sim:callbacks=processing,succeed] [sim:fail]")
    assert.are.same({ processing = true, succeed = true }, f.callbacks)
    assert.are.equal("failed", f.outcome) -- kept whatever the markers' order
    assert.is_nil((fate.parse("x")).callbacks)
    local none, err = fate.parse("[sim:callbacks=a b]")
    assert.is_nil(none)
    assert.matches("callbacks=STATUS", err, 1, true)
  end)

  it("derives the phase from timestamps", function()
    assert.are.same({ "submitted", 1000 }, { fate.phase(1000, 3000, 1000) })
    assert.are.same({ "submitted", 1000 }, { fate.phase(1000, 3000, 1599) })
    assert.are.same({ "processing", 1600 }, { fate.phase(1000, 3000, 1600) })
    assert.are.same({ "done", 4000 }, { fate.phase(1000, 3000, 4000) })
    assert.are.same({ "done", 1000 }, { fate.phase(1000, 0, 1000) })
  end)
end)

describe("sim units", function()
  it("deducts seed 000's table in exact thousandths", function()
    local function u(t)
      return units.format(assert(units.thousandths(t)))
    end
    assert.are.equal("1", u { model = "kling-v1", mode = "std", duration = 5 })
    assert.are.equal("7", u { model = "kling-v1", mode = "pro", duration = 10 })
    assert.are.equal("20", u { model = "kling-v2-1-master", mode = "std", duration = 10 })
    assert.are.equal("1.5", u { model = "kling-v2-5-turbo", mode = "std", duration = 5 })
    assert.are.equal("2.5", u { model = "kling-v2-6", mode = "pro", duration = 5, sound = "off" })
    assert.are.equal("10", u { model = "kling-v2-6", mode = "pro", duration = 10, sound = "on" })
    assert.are.equal("6", u { model = "kling-v2-6", mode = "pro", duration = 5, sound = "on", voices = 1 })
    assert.are.equal("6", u { model = "kling-video-o1", mode = "pro", duration = 5, reference = true })
    assert.are.equal("3", u { model = "kling-video-o1", mode = "std", duration = 5 })
    assert.is_nil(units.thousandths { model = "kling-v1", mode = "std", duration = 7 })
    -- issue 11.6: seed 000 prices neither kling-v3 nor kling-v2-6 std; the simulator bills neither.
    assert.is_nil(units.thousandths { model = "kling-v3", mode = "pro", duration = 5, sound = "off" })
    assert.is_nil(units.thousandths { model = "kling-v2-6", mode = "std", duration = 5, sound = "off" })
    assert.are.equal("0.125", units.format(125))
    assert.are.equal("0", units.format(0))
  end)
end)

describe("sim conf", function()
  it("issue 14: a fault rule or body with a misspelt field is refused naming it (cout would fire forever)", function()
    local faults = require "kling_sim.faults"
    local set, err = faults.validate({ seed = 7, rules = { { kind = "5xx", cout = 2 } } }, 1)
    assert.is_nil(set)
    assert.matches("^rules%[1%]%.cout: unknown field %(known: kind, .*count", err)
    set, err = faults.validate({ sed = 7, rules = {} }, 1)
    assert.is_nil(set)
    assert.matches("^sed: unknown field %(known: seed, rules%)", err)
    set = assert(faults.validate({ seed = 7, rules = { { kind = "5xx", count = 2, status = 503, phase = "after",
      method = "POST", path = "^/v1/", rate = 1, retry_after = 1, seconds = 1 } } }, 1))
    assert.are.equal(2, set.rules[1].count)
  end)

  it("renders the nginx conf with one worker and the sim's paths", function()
    local text = assert(conf.render { dir = "/tmp/s", lua_root = "/src/lua", http_port = 8080, https_port = 8443,
      workers = 1 })
    assert.matches("worker_processes 1;", text, 1, true)
    assert.matches("listen 127.0.0.1:8080;", text, 1, true)
    assert.matches("listen 127.0.0.1:8443 ssl;", text, 1, true)
    assert.matches("client_body_buffer_size 16m;", text, 1, true)
    assert.matches("client_max_body_size 20m;", text, 1, true)
    assert.matches('lua_package_path "/src/lua/?.lua;', text, 1, true)
    assert.matches('access_log "/tmp/s/access.log"', text, 1, true)
    assert.is_nil(text:find("${", 1, true))
  end)

  it("refuses paths nginx cannot hold and ports out of range", function()
    assert.is_nil(conf.render { dir = "/tmp/a b", lua_root = "/x", http_port = 1, https_port = 2, workers = 1 })
    assert.is_nil(conf.render { dir = "/tmp/$x", lua_root = "/x", http_port = 1, https_port = 2, workers = 1 })
    local _, err = conf.render { dir = "/tmp/a", lua_root = "/x", http_port = 70000, https_port = 2, workers = 1 }
    assert.matches("http_port", err)
  end)

  it("writes launch options as a Lua literal that loads back the same", function()
    local opts = { dir = "/d", dialects = { "kling" }, config = { api_key = "k\"\n'", task_seconds = 1.5 } }
    local src = conf.init_file(opts)
    local got
    local env = { require = function()
      return { init = function(o) got = o end }
    end }
    assert(load(src, "init", "t", env))()
    assert.are.same(opts, got)
  end)

  it("issue 10: the nginx conf finds kling.json in its own directory when the rocks are apart", function()
    local text = assert(conf.render { dir = "/tmp/s", lua_root = "/sim/lua", json_root = "/lib/lua", http_port = 1,
      https_port = 2, workers = 1 })
    assert.truthy(text:find('lua_package_path "/sim/lua/?.lua;/sim/lua/?/init.lua;/lib/lua/?.lua;', 1, true))
    assert.is_nil(conf.render { dir = "/tmp/s", lua_root = "/x", json_root = "/a b", http_port = 1, https_port = 2,
      workers = 1 })
  end)
end)

describe("the simulator stands apart from the library (issue 10)", function()
  it("issue 10: no file of lua/kling_sim requires a kling module but kling.json", function()
    local p = assert(io.popen("find lua/kling_sim -name '*.lua'"))
    local files, offenders = 0, {}
    for path in p:lines() do
      files = files + 1
      local f = assert(io.open(path))
      local src = f:read("a")
      f:close()
      for name in src:gmatch("require%s*%(?%s*[\"']([%w_%.]+)[\"']") do
        if name:match("^kling%.") and name ~= "kling.json" then
          offenders[#offenders + 1] = path .. ": " .. name
        end
      end
    end
    p:close()
    assert.is_true(files > 30)
    assert.are.same({}, offenders)
  end)

  it("issue 10: its own reading of 'no internal IPs' refuses internal hosts and lets public ones through", function()
    for _, url in ipairs { "https://localhost/x", "http://127.0.0.1:8080/cb", "https://10.1.2.3/a.png",
      "https://172.20.0.1/", "https://192.168.1.1/", "https://169.254.169.254/latest", "https://[::1]/",
      "https://[fd00::1]/", "https://[fe80::1]/", "https://printer.local/", "https://db.internal/",
      "https://intranet/", "https://user@100.64.0.1:443/", "ftp://example.com/", "not a url" } do
      assert.is_true(hosts.internal(url), url)
    end
    for _, url in ipairs { "https://example.com/a.png", "https://8.8.8.8/", "http://[2001:db8::1]/x",
      "https://172.32.0.1/", "https://cdn.example.org:8443/v.mp4" } do
      assert.is_false(hosts.internal(url), url)
    end
    assert.are.equal("example.com", hosts.of("HTTPS://u:p@Example.COM:443/path?q"))
  end)
end)
