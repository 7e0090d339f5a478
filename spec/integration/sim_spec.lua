-- The simulator itself, driven by a genuine third-party client (the curl command) the way
-- any Kling client would: auth codes, create/query/list, the task lifecycle, real media
-- over HTTP and HTTPS, every fault kind, the parallel limit, stats, reset and validation.
-- Needs a running sim: KLING_SIM_INFO names its JSON line (ctest's sim fixture writes it).
local json = require "kling.json"
local files = require "support.files"
local shell = require "support.shell"
local sim = require "support.sim"

local read, q, sh = files.read, shell.q, shell.run
local info = sim.info()

-- curl(method, url, {headers = {k = v}, body = string, ca = path, max_time = s})
-- -> {status, headers (lowercased), body, exit (curl's exit code), elapsed (s)}
local function curl(method, url, o)
  o = o or {}
  local body_file, head_file = os.tmpname(), os.tmpname()
  local args = { "curl -s -X", method, q(url), "-o", q(body_file), "-D", q(head_file),
    "-w '%{http_code} %{time_total}'", "--max-time", tostring(o.max_time or 10) }
  for k, v in pairs(o.headers or {}) do
    args[#args + 1] = "-H " .. q(k .. ": " .. v)
  end
  local data_file
  if o.body then
    data_file = os.tmpname()
    local f = assert(io.open(data_file, "wb"))
    f:write(o.body)
    f:close()
    args[#args + 1] = "--data-binary @" .. q(data_file)
  end
  if o.ca ~= false and url:match("^https") then
    args[#args + 1] = "--cacert " .. q(o.ca or info.ca_file)
  end
  local out, exit = sh(table.concat(args, " "))
  local status, elapsed = out:match("^(%d+) ([%d%.]+)")
  local res = { status = tonumber(status), elapsed = tonumber(elapsed), exit = exit, body = read(body_file) or "",
    headers = {} }
  for line in (read(head_file) or ""):gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then
      res.headers[k:lower()] = v
    end
  end
  os.remove(body_file)
  os.remove(head_file)
  if data_file then
    os.remove(data_file)
  end
  return res
end

local function b64url(s)
  local f = os.tmpname()
  local h = assert(io.open(f, "wb"))
  h:write(s)
  h:close()
  local out = sh("openssl base64 -A < " .. q(f))
  os.remove(f)
  return (out:gsub("%s", ""):gsub("=+$", ""):gsub("+", "-"):gsub("/", "_"))
end

-- A JWT made with the openssl CLI, independent of the project's own signer.
local function jwt(claims, secret, header)
  local h = b64url(header or '{"alg":"HS256","typ":"JWT"}')
  local p = b64url(assert(json.encode(claims)))
  local input = h .. "." .. p
  local sig = sh("printf %s " .. q(input) .. " | openssl dgst -sha256 -hmac " .. q(secret)
    .. " -binary | openssl base64 -A")
  sig = sig:gsub("%s", ""):gsub("=+$", ""):gsub("+", "-"):gsub("/", "_")
  return input .. "." .. sig
end

local token, token_time = nil, 0
local function good_jwt() -- made once every few minutes, as real clients cache theirs
  local now = os.time()
  if now - token_time > 300 then
    token, token_time = jwt({ iss = info.access_key, exp = now + 1800, nbf = now - 5 }, info.secret_key), now
  end
  return token
end

local function api(method, path, body, o)
  o = o or {}
  local headers = { ["Content-Type"] = "application/json" }
  if o.auth ~= false then
    headers.Authorization = o.auth or ("Bearer " .. good_jwt())
  end
  local text = type(body) == "table" and assert(json.encode(body)) or body
  local res = curl(method, (o.base or info.http) .. path, { headers = headers, body = text, max_time = o.max_time })
  res.json = json.decode(res.body)
  return res
end

local function admin(method, path, body)
  local res = curl(method, info.http .. "/_sim" .. path, { body = body and assert(json.encode(body)) })
  assert(res.status and res.status < 300, "admin " .. path .. " answered " .. tostring(res.status) .. ": " .. res.body)
  return json.decode(res.body)
end

local function create(body, o)
  return api("POST", "/v1/videos/" .. ((o and o.ep) or "text2video"), body, o)
end

local function expect_error(res, status, code)
  assert.are.equal(status, res.status, res.body)
  assert.are.equal(code, res.json.code, res.body)
  assert.is_string(res.json.message)
  assert.is_string(res.json.request_id)
end

local function advance(seconds)
  admin("POST", "/clock", { advance = seconds })
end

local function stats()
  return admin("GET", "/stats")
end

local png = assert(read(info.dir .. "/media/sample.png"), "the sim's sample png")
local png_b64 = (sh("openssl base64 -A < " .. q(info.dir .. "/media/sample.png")):gsub("%s", ""))

describe("kling simulator", function()
  setup(function()
    admin("POST", "/reset")
  end)

  after_each(function()
    admin("DELETE", "/faults")
    admin("DELETE", "/config")
  end)

  describe("auth", function()
    local function status_of(auth)
      return api("GET", "/v1/videos/text2video", nil, { auth = auth })
    end

    it("answers 1001 without an Authorization header", function()
      expect_error(status_of(false), 401, 1001)
    end)

    it("answers 1002 for a bad signature, a wrong issuer, alg none, garbage and a wrong API key", function()
      local now = os.time()
      expect_error(status_of("Bearer " .. jwt({ iss = info.access_key, exp = now + 60 }, "not-the-secret")), 401, 1002)
      expect_error(status_of("Bearer " .. jwt({ iss = "someone-else", exp = now + 60 }, info.secret_key)), 401, 1002)
      expect_error(status_of("Bearer " .. jwt({ iss = info.access_key, exp = now + 60 }, info.secret_key,
        '{"alg":"none","typ":"JWT"}')), 401, 1002)
      expect_error(status_of("Bearer " .. jwt({ iss = info.access_key }, info.secret_key)), 401, 1002)
      expect_error(status_of("Bearer not.a.jwt"), 401, 1002)
      expect_error(status_of("Bearer wrong-api-key"), 401, 1002)
      expect_error(status_of(good_jwt()), 401, 1002) -- no "Bearer "
    end)

    it("answers 1004 for an expired token and 1003 for one not yet valid", function()
      local now = os.time()
      expect_error(status_of("Bearer " .. jwt({ iss = info.access_key, exp = now - 1, nbf = now - 100 },
        info.secret_key)), 401, 1004)
      expect_error(status_of("Bearer " .. jwt({ iss = info.access_key, exp = now + 1800, nbf = now + 600 },
        info.secret_key)), 401, 1003)
    end)

    it("accepts a valid JWT and the API key, and counts failures", function()
      local before = stats().auth_failures
      assert.are.equal(200, status_of("Bearer " .. good_jwt()).status)
      assert.are.equal(200, status_of("Bearer " .. info.api_key).status)
      status_of(false)
      assert.are.equal(before + 1, stats().auth_failures)
    end)
  end)

  describe("tasks", function()
    it("creates, queries by id and by external id, and lists", function()
      local ext = "ext-" .. os.time() .. "-" .. math.random(1e9)
      local res = create { prompt = "a lighthouse", external_task_id = ext, duration = "5", mode = "std" }
      assert.are.equal(200, res.status, res.body)
      local c = res.json
      assert.are.equal(0, c.code)
      assert.are.equal("SUCCEED", c.message)
      assert.is_string(c.request_id)
      local d = c.data
      assert.matches("^%d+$", d.task_id)
      assert.are.equal("submitted", d.task_status)
      assert.are.equal(ext, d.task_info.external_task_id)
      assert.is_true(d.created_at > 1e12) -- milliseconds
      assert.are.equal(d.created_at, d.updated_at)

      for _, path in ipairs { "/v1/videos/text2video/" .. d.task_id, "/v1/videos/text2video/" .. ext,
        "/v1/videos/text2video?external_task_id=" .. ext } do
        local got = api("GET", path)
        assert.are.equal(200, got.status, path .. ": " .. got.body)
        assert.are.equal(d.task_id, got.json.data.task_id)
        assert.are.equal(ext, got.json.data.task_info.external_task_id)
      end
      -- Another endpoint does not see it; an unknown id is a 404 with 1203.
      expect_error(api("GET", "/v1/videos/image2video/" .. d.task_id), 404, 1203)
      expect_error(api("GET", "/v1/videos/text2video/999"), 404, 1203)

      local list = api("GET", "/v1/videos/text2video?pageNum=1&pageSize=500")
      assert.are.equal(200, list.status)
      local found = false
      for _, t in ipairs(list.json.data) do
        found = found or t.task_id == d.task_id
      end
      assert.is_true(found)
      assert.are.equal(d.task_id, list.json.data[1].task_id) -- newest first
      assert.are.equal(1, #api("GET", "/v1/videos/text2video?pageSize=1").json.data)
      assert.are.equal(0, #api("GET", "/v1/videos/text2video?pageNum=1000&pageSize=500").json.data)
      assert.matches('"data":%[%]', api("GET", "/v1/videos/image2video?pageNum=1000").body)
    end)

    it("refuses a duplicate external_task_id with 1201", function()
      local ext = "dup-" .. os.time() .. "-" .. math.random(1e9)
      assert.are.equal(200, create({ prompt = "one", external_task_id = ext }).status)
      local res = create { prompt = "two", external_task_id = ext }
      expect_error(res, 400, 1201)
      assert.matches("external_task_id", res.json.message)
    end)

    it("checks list paging", function()
      expect_error(api("GET", "/v1/videos/text2video?pageNum=0"), 400, 1201)
      expect_error(api("GET", "/v1/videos/text2video?pageNum=1001"), 400, 1201)
      expect_error(api("GET", "/v1/videos/text2video?pageSize=501"), 400, 1201)
      expect_error(api("GET", "/v1/videos/text2video?pageSize=x"), 400, 1201)
    end)

    it("moves submitted -> processing -> succeed in real time, with a billed result", function()
      admin("POST", "/config", { task_seconds = 1 })
      local d = create({ prompt = "a slow pan", model_name = "kling-v1", mode = "pro", duration = "10" }).json.data
      -- The create's own answer is the first status seen: a first poll that comes late (under
      -- valgrind) may already find the task processing.
      local seen, last = { d.task_status }
      local deadline = os.time() + 10
      repeat
        last = api("GET", "/v1/videos/text2video/" .. d.task_id).json.data
        if seen[#seen] ~= last.task_status then
          seen[#seen + 1] = last.task_status
        end
        sh("sleep 0.05")
      until last.task_status == "succeed" or os.time() > deadline
      assert.are.same({ "submitted", "processing", "succeed" }, seen)
      assert.are.equal("7", last.final_unit_deduction) -- kling-v1 pro 10 s
      assert.are.equal("", last.task_status_msg)
      assert.are.equal(d.created_at, last.created_at)
      assert.are.equal(d.created_at + 1000, last.updated_at)
      local v = last.task_result.videos[1]
      assert.is_string(v.id)
      assert.are.equal("10", v.duration)
      assert.are.equal(info.http .. "/media/videos/" .. v.id .. ".mp4", v.url)
    end)

    it("ends failed with a message for [sim:fail], and with an unknown status for [sim:status=NAME]", function()
      local failed = create({ prompt = "storm [sim:fail]" }).json.data
      local odd = create({ prompt = "storm [sim:status=expired]" }).json.data
      local slow = create({ prompt = "storm [sim:seconds=100]" }).json.data
      local custom = create({ prompt = "[sim:fail=nope] x" }).json.data
      advance(5)
      local f = api("GET", "/v1/videos/text2video/" .. failed.task_id).json.data
      assert.are.equal("failed", f.task_status)
      assert.are.equal("Failure to pass the risk control system", f.task_status_msg)
      assert.is_nil(f.task_result)
      assert.is_nil(f.final_unit_deduction)
      assert.are.equal("nope", api("GET", "/v1/videos/text2video/" .. custom.task_id).json.data.task_status_msg)
      assert.are.equal("expired", api("GET", "/v1/videos/text2video/" .. odd.task_id).json.data.task_status)
      assert.are.equal("submitted", api("GET", "/v1/videos/text2video/" .. slow.task_id).json.data.task_status)
      advance(20) -- a fifth of its time is spent submitted
      assert.are.equal("processing", api("GET", "/v1/videos/text2video/" .. slow.task_id).json.data.task_status)
      advance(80)
      assert.are.equal("succeed", api("GET", "/v1/videos/text2video/" .. slow.task_id).json.data.task_status)
      expect_error(create { prompt = "[sim:bogus]" }, 400, 1201)
    end)

    it("serves the result as a real mp4 with audio, over HTTPS with the simulator's CA too", function()
      local d = create({ prompt = "waves" }, { base = info.https }).json.data
      advance(5)
      local got = api("GET", "/v1/videos/text2video/" .. d.task_id, nil, { base = info.https }).json.data
      local url = got.task_result.videos[1].url
      assert.are.equal(info.https .. "/media/videos/", url:sub(1, #info.https + 14))
      local path = os.tmpname()
      local out, exit = sh("curl -s -f --cacert " .. q(info.ca_file) .. " -o " .. q(path) .. " " .. q(url))
      assert.are.equal(0, exit, out)
      local probe = sh("ffprobe -v error -show_entries stream=codec_type,width,height -of compact " .. q(path))
      os.remove(path)
      assert.matches("codec_type=video|width=160|height=90", probe, 1, true)
      assert.matches("codec_type=audio", probe, 1, true)
      -- Without the CA the certificate is not trusted: it is real TLS.
      local _, untrusted = sh("curl -s -o /dev/null " .. q(url))
      assert.are_not.equal(0, untrusted)
      -- A byte range, as players ask for.
      local r = curl("GET", url, { headers = { Range = "bytes=0-11" } })
      assert.are.equal(206, r.status)
      assert.are.equal("ftyp", r.body:sub(5, 8))
      -- Unknown videos are not served.
      assert.are.equal(404, curl("GET", info.http .. "/media/videos/123.mp4").status)
    end)

    it("is also reachable under /kling/ as a base URL", function()
      local res = create({ prompt = "prefixed" }, { base = info.http .. "/kling" })
      assert.are.equal(200, res.status, res.body)
      local got = api("GET", "/v1/videos/text2video/" .. res.json.data.task_id, nil, { base = info.http .. "/kling" })
      assert.are.equal(res.json.data.task_id, got.json.data.task_id)
    end)
  end)

  describe("validation", function()
    local cases = {
      { "no prompt", { model_name = "kling-v1" }, 400, 1201, "prompt" },
      { "prompt too long", { prompt = string.rep("x", 2501) }, 400, 1201, "prompt" },
      { "negative prompt too long", { prompt = "x", negative_prompt = string.rep("y", 2501) }, 400, 1201,
        "negative_prompt" },
      { "mode", { prompt = "x", mode = "fast" }, 400, 1201, "mode" },
      { "aspect ratio", { prompt = "x", aspect_ratio = "4:3" }, 400, 1201, "aspect_ratio" },
      { "duration as a number", { prompt = "x", duration = 5 }, 400, 1201, "duration" },
      { "duration 7", { prompt = "x", duration = "7" }, 400, 1201, "duration" },
      { "kling-v3 duration 16", { prompt = "x", model_name = "kling-v3", duration = "16" }, 400, 1201, "duration" },
      { "cfg_scale", { prompt = "x", cfg_scale = 1.5 }, 400, 1201, "cfg_scale" },
      { "sound value", { prompt = "x", model_name = "kling-v2-6", sound = "loud" }, 400, 1201, "sound" },
      { "sound on an old model", { prompt = "x", sound = "on" }, 400, 1201, "sound" },
      { "unknown model", { prompt = "x", model_name = "kling-v9" }, 404, 1203, "model_name" },
      { "camera needs one axis", { prompt = "x", camera_control = { type = "simple", config = { pan = 1, tilt = 1 } } },
        400, 1201, "camera_control" },
      { "external id type", { prompt = "x", external_task_id = 5 }, 400, 1201, "external_task_id" },
      -- seconds are written "5": "05" was taken and billed as 5 s
      { "duration 05", { prompt = "x", duration = "05" }, 400, 1201, "duration" },
      { "kling-v3 duration 05", { prompt = "x", model_name = "kling-v3", duration = "05" }, 400, 1201, "duration" },
    }
    for _, c in ipairs(cases) do
      it("refuses " .. c[1], function()
        local before = stats().creates
        local res = create(c[2])
        expect_error(res, c[3], c[4])
        assert.matches(c[5], res.json.message, 1, true)
        assert.are.equal(before, stats().creates)
      end)
    end

    it("accepts the documented edges", function()
      assert.are.equal(200, create({ prompt = string.rep("\u{4e2d}", 2500) }).status) -- characters, not bytes
      assert.are.equal(200, create({ prompt = "x", model_name = "kling-v3", duration = "15", sound = "on" }).status)
      assert.are.equal(200, create({ prompt = "x", model_name = "kling-v3", duration = "3", mode = "pro" }).status)
      assert.are.equal(200, create({ prompt = "x", cfg_scale = 0, aspect_ratio = "9:16", duration = "10" }).status)
      assert.are.equal(200, create({ prompt = "x", external_task_id = json.null }).status)
    end)

    it("checks image2video images: required, URL or raw base64, JPEG/PNG of at least 300 px", function()
      expect_error(create({ prompt = "x" }, { ep = "image2video" }), 400, 1201)
      local tiny = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
      local res = create({ image = tiny }, { ep = "image2video" })
      expect_error(res, 400, 1201)
      assert.matches("300 px", res.json.message, 1, true)
      expect_error(create({ image = "data:image/png;base64," .. png_b64 }, { ep = "image2video" }), 400, 1201)
      expect_error(create({ image = "%%%not base64" }, { ep = "image2video" }), 400, 1201)
      expect_error(create({ image = "aGVsbG8gd29ybGQ=" }, { ep = "image2video" }), 400, 1201) -- not an image
      assert.is_true(#png > 1000)
      local ok = create({ image = png_b64, prompt = "the scene comes alive" }, { ep = "image2video" })
      assert.are.equal(200, ok.status, ok.body)
      assert.are.equal(200, create({ image = info.http .. "/media/sample.png" }, { ep = "image2video" }).status)
      expect_error(create({ image = png_b64, image_tail = png_b64,
        camera_control = { type = "simple", config = { zoom = 5 } } }, { ep = "image2video" }), 400, 1201)
      -- the motion brush's masks are images as image is
      local before = stats().creates
      res = create({ image = png_b64, static_mask = "not base64 at all!" }, { ep = "image2video" })
      expect_error(res, 400, 1201)
      assert.matches("static_mask", res.json.message, 1, true)
      res = create({ image = png_b64, dynamic_masks = { { mask = "not a mask",
        trajectories = { { x = 1, y = 1 }, { x = 2, y = 2 } } } } }, { ep = "image2video" })
      expect_error(res, 400, 1201)
      assert.matches("dynamic_masks[1].mask", res.json.message, 1, true)
      assert.are.equal(before, stats().creates)
      assert.are.equal(200, create({ image = png_b64, static_mask = png_b64 }, { ep = "image2video" }).status)
    end)

    it("answers 1200 for a body that is not JSON, and 1202 for a wrong method or path", function()
      expect_error(create("{not json"), 400, 1200)
      expect_error(create("[1,2]"), 400, 1200)
      expect_error(api("DELETE", "/v1/videos/text2video"), 404, 1202)
      expect_error(api("PUT", "/v1/videos/text2video/123"), 404, 1202)
      expect_error(api("GET", "/v1/nothing/here"), 404, 1202)
    end)
  end)

  describe("gateway dialects", function()
    local function gw(name, path, body)
      local res = curl("POST", info.providers[name] .. path, { headers = { ["Content-Type"] = "application/json",
        Authorization = "Bearer " .. info.api_key }, body = assert(json.encode(body)) })
      res.json = json.decode(res.body)
      return res
    end

    it("refuse durations the official API would not write (\"05\", \"0x5\"), as each answers a 400", function()
      local before = stats().creates
      local cases = {
        { "apimodels", "/api/v1/video/generations", { model = "kling-v2-6", prompt = "x", duration = "05" },
          "duration" },
        { "apimodels", "/api/v1/video/generations", { model = "kling-motion-control", image = "https://e.com/a.png",
          motion_video = "https://e.com/v.mp4", duration = "05" }, "duration" },
        { "apiinone", "/api/v1/videos/generations", { model = "kling-3", multi_shots = true,
          multi_prompt = { { prompt = "a", duration = "0x5" } } }, "multi_prompt[1].duration" },
        { "compat", "/v1/video/generations", { model = "kling-v3-std-silent", image = "https://e.com/a.png",
          extra_body = { multi_prompt = { { prompt = "a", duration = " 5" } } } }, "multi_prompt[1].duration" },
      }
      for _, c in ipairs(cases) do
        local res = gw(c[1], c[2], c[3])
        assert.are.equal(400, res.status, c[1] .. ": " .. res.body)
        assert.matches(c[4], res.body, 1, true)
      end
      assert.are.equal(before, stats().creates)
      assert.are.equal(200, gw("apimodels", "/api/v1/video/generations",
        { model = "kling-v2-6", prompt = "x", duration = "10" }).status)
    end)

    it("EvoLink: an element's refer_images, when given, holds 1 to 3 images (seed 003)", function()
      local function element(refer)
        return gw("evolink", "/v1/videos/generations", { model = "kling-custom-element", model_params = {
          element_name = "Mia", element_description = "a woman", reference_type = "image_refer",
          element_image_list = { frontal_image = "https://e.com/f.jpg", refer_images = refer } } })
      end
      local before = stats().creates
      local four = {}
      for i = 1, 4 do
        four[i] = { image_url = "https://e.com/" .. i .. ".jpg" }
      end
      for _, refer in ipairs { json.array {}, four } do
        local res = element(refer)
        assert.are.equal(400, res.status, res.body)
        assert.are.equal("model_params.element_image_list.refer_images", res.json.error.param, res.body)
      end
      assert.are.equal(before, stats().creates)
      local ok = element({ { image_url = "https://e.com/1.jpg" } })
      assert.are.equal(200, ok.status, ok.body)
      -- seed 003's element answer: "id": "task-video-xxxxxxxx"; the id found as it was handed out
      local id = ok.json.id
      assert.matches("^task%-video%-%d+%-%d+$", id)
      local function get(task_id)
        return curl("GET", info.providers.evolink .. "/v1/tasks/" .. task_id,
          { headers = { Authorization = "Bearer " .. info.api_key } })
      end
      local res = get(id)
      assert.are.equal(200, res.status, res.body)
      assert.are.equal(id, json.decode(res.body).id)
      assert.are.equal(404, get((id:gsub("^task%-video%-", "task-unified-"))).status)
    end)
  end)

  describe("faults", function()
    local function set(rules, seed)
      return admin("POST", "/faults", { seed = seed or 7, rules = rules })
    end
    local function list()
      return api("GET", "/v1/videos/text2video?pageSize=1")
    end

    it("5xx answers 500/5000, or 503/5001 when asked", function()
      set { { kind = "5xx", method = "GET", count = 1 } }
      expect_error(list(), 500, 5000)
      assert.are.equal(200, list().status)
      set { { kind = "5xx", status = 503, count = 1 } }
      expect_error(list(), 503, 5001)
    end)

    it("429 answers 1302 with Retry-After", function()
      set { { kind = "429", count = 1, retry_after = 7 } }
      local res = list()
      expect_error(res, 429, 1302)
      assert.are.equal("7", res.headers["retry-after"])
    end)

    it("1303 answers the parallel-limit error", function()
      set { { kind = "1303", count = 1 } }
      local res = list()
      expect_error(res, 429, 1303)
      assert.are.equal("parallel task over resource pack limit", res.json.message)
    end)

    it("reset drops the connection without an answer", function()
      set { { kind = "reset", count = 1 } }
      local res = list()
      assert.are.equal(52, res.exit) -- curl: empty reply from server
      assert.are.equal(200, list().status)
    end)

    it("stall waits before answering normally", function()
      set { { kind = "stall", count = 2, seconds = 1 } }
      local res = list()
      assert.are.equal(200, res.status)
      assert.is_true(res.elapsed >= 0.9, tostring(res.elapsed))
      local before = stats().by_route["GET /v1/videos/text2video"]
      res = api("GET", "/v1/videos/text2video?pageSize=1", nil, { max_time = 0.3 })
      assert.are.equal(28, res.exit) -- curl: timeout
      -- Counted on arrival: the stalled request is in the stats while it still hangs.
      assert.are.equal(before + 1, stats().by_route["GET /v1/videos/text2video"])
    end)

    it("malformed answers 200 with truncated JSON", function()
      set { { kind = "malformed", count = 1 } }
      local res = list()
      assert.are.equal(200, res.status)
      assert.matches("^{", res.body)
      assert.is_nil(json.decode(res.body))
    end)

    it("content_type answers 200 with an HTML page", function()
      set { { kind = "content_type", count = 1 } }
      local res = list()
      assert.are.equal(200, res.status)
      assert.matches("^text/html", res.headers["content-type"])
      assert.matches("<html>", res.body, 1, true)
    end)

    it("issue 10.6: not_found, expired and auth answer 404/1203, 401/1004 and 401/1002", function()
      set { { kind = "not_found", method = "GET", count = 1 }, { kind = "expired", method = "GET", count = 1 },
        { kind = "auth", method = "GET", count = 1 } }
      expect_error(list(), 404, 1203) -- the rules fire in order, each once
      expect_error(list(), 401, 1004)
      expect_error(list(), 401, 1002)
      assert.are.equal(200, list().status)
    end)

    it("issue 10.7: skip lets N matching requests by first, so faults on one path make a sequence", function()
      set { { kind = "5xx", method = "GET", count = 1 }, { kind = "not_found", method = "GET", count = 1, skip = 1 },
        { kind = "429", method = "GET", count = 1, skip = 3, retry_after = 0 } }
      local codes = {}
      for i = 1, 5 do
        codes[i] = list().status
      end
      -- the 5xx answers the first (the skip rules count it all the same), then not_found, then
      -- the real answer, then the 429, then the real answer again
      assert.are.same({ 500, 404, 200, 429, 200 }, codes)
      local res = curl("POST", info.http .. "/_sim/faults", { body = json.encode { rules = { { kind = "5xx",
        skip = -1 } } } })
      assert.are.equal(400, res.status)
      assert.matches("rules%[1%]%.skip", json.decode(res.body).error)
    end)

    it("phase after creates the task and then fails the answer; before creates nothing", function()
      local made = stats().creates
      set { { kind = "5xx", method = "POST", path = "^/v1/videos/text2video$", count = 1 } }
      expect_error(create { prompt = "x", external_task_id = "before-" .. math.random(1e9) }, 500, 5000)
      assert.are.equal(made, stats().creates)
      local ext = "after-" .. os.time() .. "-" .. math.random(1e9)
      set { { kind = "reset", method = "POST", count = 1, phase = "after" } }
      assert.are.equal(52, create({ prompt = "x", external_task_id = ext }).exit)
      assert.are.equal(made + 1, stats().creates)
      local found = api("GET", "/v1/videos/text2video?external_task_id=" .. ext)
      assert.are.equal(200, found.status)
      set { { kind = "malformed", method = "POST", count = 1, phase = "after" } }
      local res = create { prompt = "x" }
      assert.are.equal(200, res.status)
      assert.matches('^{"', res.body)
      assert.is_nil(json.decode(res.body))
      assert.are.equal(made + 2, stats().creates)
    end)

    it("matches method and path, and counts only the next N matches", function()
      set { { kind = "5xx", method = "POST", count = 2 } }
      assert.are.equal(200, list().status) -- a GET does not match
      set { { kind = "5xx", path = "^/v1/videos/image2video", count = 2 } }
      assert.are.equal(200, list().status)
      set { { kind = "5xx", count = 2 } }
      local codes = {}
      for i = 1, 4 do
        codes[i] = list().status
      end
      assert.are.same({ 500, 500, 200, 200 }, codes)
    end)

    it("draws rate faults from the seed, the same for the same seed and request order", function()
      local function pattern(seed)
        set({ { kind = "5xx", method = "GET", rate = 0.5 } }, seed)
        local s = {}
        for i = 1, 24 do
          s[i] = list().status == 500 and "x" or "."
        end
        return table.concat(s)
      end
      local a, b, c = pattern(42), pattern(42), pattern(43)
      assert.are.equal(a, b)
      assert.are_not.equal(a, c)
      assert.matches("x", a, 1, true)
      assert.matches(".", a, 1, true)
    end)

    it("counts injected faults and refuses bad rules with the field named", function()
      local before = stats()
      set { { kind = "429", count = 1 } }
      list()
      local after = stats()
      assert.are.equal(before.faults_injected + 1, after.faults_injected)
      assert.are.equal((before.faults_by_kind["429"] or 0) + 1, after.faults_by_kind["429"])
      for _, bad in ipairs {
        { rules = { { kind = "explode" } } }, { rules = { { kind = "5xx", rate = 2 } } },
        { rules = { { kind = "5xx", path = "[" } } }, { rules = { { kind = "5xx", phase = "during" } } },
        { rules = { { kind = "5xx", count = 0 } } }, { seed = 1.5, rules = {} },
      } do
        local res = curl("POST", info.http .. "/_sim/faults", { body = json.encode(bad) })
        assert.are.equal(400, res.status, res.body)
        local err = json.decode(res.body).error
        assert.is_truthy(err:match("^rules%[1%]%.%a+: ") or err:match("^seed: "), err)
      end
    end)
  end)

  describe("parallel limit", function()
    it("answers 429/1303 over max_parallel until a running task ends", function()
      admin("POST", "/config", { max_parallel = 2, task_seconds = 10 })
      admin("POST", "/reset")
      assert.are.equal(200, create({ prompt = "a" }).status)
      assert.are.equal(200, create({ prompt = "b [sim:fail]" }).status)
      local res = create { prompt = "c" }
      expect_error(res, 429, 1303)
      assert.are.equal("parallel task over resource pack limit", res.json.message)
      assert.are.equal(2, stats().parallel.live)
      advance(11) -- both end (the failed one too): their slots are free
      assert.are.equal(200, create({ prompt = "d" }).status)
      admin("POST", "/config", { max_parallel = 0 })
      assert.are.equal(200, create({ prompt = "e" }).status)
      assert.are.equal(200, create({ prompt = "f" }).status)
    end)
  end)

  describe("stats, request log and reset", function()
    it("counts requests by method and route, creates and tasks by status", function()
      admin("POST", "/reset")
      -- long enough to be still "submitted" (its first 20 %) on a loaded machine; the clock is
      -- then pushed past its end
      admin("POST", "/config", { task_seconds = 60 })
      local a = create({ prompt = "x" }).json.data
      create { prompt = "y [sim:fail]" }
      api("GET", "/v1/videos/text2video/" .. a.task_id)
      api("GET", "/v1/videos/text2video?pageNum=1")
      api("GET", "/v1/videos/text2video?external_task_id=nope")
      local s = stats()
      assert.are.equal(5, s.requests)
      assert.are.equal(2, s.creates)
      assert.are.same({ GET = 3, POST = 2 }, s.by_method)
      assert.are.equal(2, s.by_route["POST /v1/videos/text2video"])
      assert.are.equal(1, s.by_route["GET /v1/videos/text2video/{id}"])
      assert.are.equal(1, s.by_route["GET /v1/videos/text2video"])
      assert.are.equal(1, s.by_route["GET /v1/videos/text2video?external_task_id"])
      assert.are.equal(2, s.tasks.submitted)
      advance(61)
      s = stats()
      assert.are.same({ succeed = 1, failed = 1 }, s.tasks)
      assert.are.same({ CNY = 1000000 }, s.billed) -- kling-v1 std 5 s; the failed one is free
      local ledger = admin("GET", "/ledger")
      assert.is_nil(ledger.units_total) -- summed CNY, US cents and credits together
      assert.are.equal(1, #ledger.tasks)
      assert.are.same({ task_id = a.task_id, dialect = "kling", endpoint = "text2video", model = "kling-v1",
        mode = "std", duration = 5, sound = "off", status = "succeed", units = "1", micros = 1000000,
        currency = "CNY", unit = "CNY" }, ledger.tasks[1])
      assert.are.same({ CNY = 1000000 }, ledger.totals)
    end)

    it("logs the last requests without the Authorization value", function()
      api("GET", "/v1/videos/text2video?pageSize=2", nil, { auth = "Bearer " .. info.api_key })
      local log = admin("GET", "/requests?n=3")
      assert.are.equal(3, #log)
      local last = log[3]
      assert.are.equal("GET", last.method)
      assert.are.equal("/v1/videos/text2video", last.path)
      assert.are.equal(200, last.status)
      assert.is_number(last.time_ms)
      assert.are.equal("api_key", last.auth)
      local raw = curl("GET", info.http .. "/_sim/requests?n=1000").body
      assert.is_nil(raw:find(info.api_key, 1, true))
      assert.is_nil(raw:find(info.secret_key, 1, true))
      assert.is_nil(curl("GET", info.http .. "/_sim/config").body:find(info.secret_key, 1, true))
    end)

    it("reset clears tasks, stats and faults", function()
      local d = create({ prompt = "x" }).json.data
      admin("POST", "/faults", { rules = { { kind = "5xx", path = "^/nowhere" } } })
      admin("POST", "/reset")
      local s = stats()
      assert.are.equal(0, s.requests)
      assert.are.equal(0, s.creates)
      assert.are.equal(0, s.tasks_total)
      assert.are.same({}, admin("GET", "/faults").rules)
      expect_error(api("GET", "/v1/videos/text2video/" .. d.task_id), 404, 1203)
    end)

    it("refuses unknown settings and bad values, naming them", function()
      local res = curl("POST", info.http .. "/_sim/config", { body = '{"task_secs":1}' })
      assert.are.equal(400, res.status)
      assert.matches("task_secs", res.body, 1, true)
      res = curl("POST", info.http .. "/_sim/config", { body = '{"max_parallel":-1}' })
      assert.are.equal(400, res.status)
      assert.matches("max_parallel", res.body, 1, true)
    end)
  end)
end)
