-- Seeded, bounded property tests of everything that reads provider input: each provider's
-- answer parser and kling.webhook.parse for all five dialects, fed real bodies mutated at
-- random (a value replaced by another type, a key dropped, bytes flipped or cut). They never
-- raise; a failure is nil plus a message (parse_task) or an error with a kind (webhook.parse);
-- a charge is never a float, negative, NaN or infinite; a succeeded task's output URLs are
-- strings (issue 13, issue 11.9, issue 11.10).
local json = require "kling.json"
local webhook = require "kling.webhook"
local providers = require "kling.providers"

local prop = require "support.prop"

local SEED, ROUNDS = prop.SEED, 400
local rng, pick = prop.rng, prop.pick

-- Real bodies, one set per provider (the shapes of the seeds' documented answers).
local BODIES = {
  kling = {
    { task_id = "t1", task_status = "succeed", task_status_msg = "", created_at = 1700000000000,
      updated_at = 1700000060000, final_unit_deduction = "2.5",
      task_info = { external_task_id = "row-1",
        parent_video = { id = "p", url = "https://cdn/p.mp4", duration = "5" } },
      task_result = { videos = { { id = "v1", url = "https://cdn/v.mp4", duration = "5.041" } },
        images = { { index = 0, url = "https://cdn/i.png" } },
        audios = { { id = "a", url_mp3 = "https://cdn/a.mp3", url_wav = "https://cdn/a.wav", duration_mp3 = "3.5" } },
        voices = { { voice_id = "vo", voice_name = "me", trial_url = "https://cdn/t.mp3" } } } },
    { code = 0, message = "SUCCEED", request_id = "r", data = { task_id = "t2", task_status = "processing" } },
  },
  apiinone = {
    { code = 0, message = "success", data = { task_id = 42, status = "completed", credits = 300,
      created_at = 1700000000000, output = { videos = { { url = "https://cdn/x.mp4", duration = 5 } } } } },
    { task_id = "1", status = "failed", error = { code = "x", message = "risk" } },
  },
  apimodels = {
    { code = 200, msg = "success", data = { taskId = "clxxx", model = "kling-video/kling-v2-6", state = "completed",
      param = json.encode { model = "kling-v2-6", prompt = "p" },
      resultJson = json.encode { resultUrls = { "https://r2/x.mp4" }, videoDuration = 5, videoSize = "1280x720",
        thumbnailUrl = "https://r2/x.jpg" }, costTime = 12345, completeTime = 1705123500000,
      createTime = 1705123450000 } },
    { code = 200, data = { taskId = "c1", state = "failed", param = "{}", resultJson = json.null, failCode = "X",
      failMsg = "bad" } },
  },
  evolink = {
    { created = 1739500000, id = "task-video-xxxxxxxx", model = "kling-v3-text-to-video",
      object = "video.generation.task", progress = 100, status = "completed",
      results = { "https://cdn/e.mp4" }, task_info = { estimated_time = 600, can_cancel = false },
      usage = { credits_reserved = 7.5, billing_rule = "per_second" } },
    { id = "task-2", status = "failed", error = { code = "task_cancelled", message = "cancelled" } },
  },
  compat = {
    { id = "task_xxx", task_id = "task_xxx", object = "video.generation.job", model = "kling-v3-pro-audio",
      status = "completed", progress = 100, video_url = "https://example.com/output.mp4" },
    { id = "task_y", status = "failed", error = { code = "e", message = "m" } },
  },
}

local ODD = { 1, -1, 0, 0.5, 1e300, -1e300, 2 ^ 63, -(2 ^ 63), 9.22e18, math.huge, -math.huge, "", "x", "-5",
  "1e999", true, false, {}, { 1 }, { "a" }, { {} }, json.null }

local function deep_copy(v)
  if type(v) ~= "table" or v == json.null then
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    out[k] = deep_copy(x)
  end
  return setmetatable(out, getmetatable(v))
end

-- Every table in doc with a key of it, to pick a mutation site from.
local function sites(doc, out)
  out = out or {}
  if type(doc) == "table" and doc ~= json.null then
    local keys = {}
    for k in pairs(doc) do
      keys[#keys + 1] = k
    end
    table.sort(keys, function(a, b)
      return tostring(a) < tostring(b)
    end)
    for _, k in ipairs(keys) do
      out[#out + 1] = { doc, k }
      sites(doc[k], out)
    end
  end
  return out
end

local function mutate(doc, r)
  doc = deep_copy(doc)
  for _ = 1, r(3) do
    local all = sites(doc)
    if #all == 0 then
      break
    end
    local site = pick(r, all)
    if r(5) == 1 then
      site[1][site[2]] = nil
    else
      site[1][site[2]] = deep_copy(pick(r, ODD))
    end
  end
  return doc
end

-- Byte-level damage to an encoded body: a flipped byte or a cut.
local function damage(raw, r)
  if #raw == 0 then
    return raw
  end
  local i = r(#raw)
  if r(2) == 1 then
    return raw:sub(1, i - 1)
  end
  return raw:sub(1, i - 1) .. string.char(r(256) - 1) .. raw:sub(i + 1)
end

local function encode(doc)
  local ok, raw = pcall(json.encode, doc)
  return ok and raw or nil
end

local function check_charge(where, charge)
  if charge == nil then
    return
  end
  assert(type(charge) == "string", where .. ": charge is a " .. type(charge))
  assert(charge:match("^%d+%.?%d*$"), where .. ": charge '" .. charge .. "' is not a non-negative decimal")
end

local function check_task(where, t, err)
  if t == nil then
    assert(type(err) == "string" or (type(err) == "table" and err.kind), where .. ": failure without a message")
    return
  end
  assert(type(t) == "table", where .. ": answer is a " .. type(t))
  check_charge(where, t.charge)
  if t.status == "succeeded" then
    for _, list in ipairs { "videos", "images", "audios" } do
      for i, o in ipairs(type(t[list]) == "table" and t[list] or {}) do
        assert(o.url == nil or type(o.url) == "string",
          string.format("%s: succeeded with %s[%d].url a %s", where, list, i, type(o.url)))
      end
    end
  end
end

describe("property: provider answer parsers never raise (issue 13, issue 11.9)", function()
  for _, name in ipairs(providers.names) do
    it(name .. ": mutated real answers are read or refused with a message", function()
      local P = assert(providers.get(name))
      local r = rng(SEED)
      for round = 1, ROUNDS do
        local base = pick(r, BODIES[name])
        local doc = mutate(base, r)
        local where = string.format("%s round %d (seed %d)", name, round, SEED)
        local ok, t, err = pcall(function()
          local data = P.unwrap(doc, 200)
          if type(data) ~= "table" then
            data = doc
          end
          return P.parse_task(data, "videos/text2video")
        end)
        assert(ok, where .. ": raised " .. tostring(t) .. " on " .. tostring(encode(doc)))
        check_task(where, t, err)
      end
    end)
  end
end)

describe("property: kling.webhook.parse never raises, for all five dialects (issue 13, issue 11.9)", function()
  for _, name in ipairs(providers.names) do
    it(name .. ": mutated and damaged callbacks give a task or nil, err with a kind", function()
      local r = rng(SEED + 1)
      for round = 1, ROUNDS do
        local base = pick(r, BODIES[name])
        local raw = encode(mutate(base, r)) or "{}"
        if r(3) == 1 then
          raw = damage(raw, r)
        end
        local where = string.format("%s callback round %d (seed %d)", name, round, SEED + 1)
        local ok, t, err = pcall(webhook.parse, name, raw, {})
        assert(ok, where .. ": raised " .. tostring(t) .. " on " .. raw)
        if t == nil then
          assert(type(err) == "table" and err.kind, where .. ": failure without a kind")
        end
        check_task(where, t, err)
      end
    end)
  end
end)

-- The findings of the properties above, each pinned by the smallest body that showed it.
describe("parser findings", function()
  local function official(result, extra)
    local t = { task_id = "t1", task_status = "succeed", task_result = result }
    for k, v in pairs(extra or {}) do
      t[k] = v
    end
    return t
  end

  it("issue 11.9: an official poll answer with \"videos\":[1] is a message, not a raise", function()
    local P = assert(providers.get("kling"))
    for _, bad in ipairs { { videos = { 1 } }, { images = { true } }, { audios = { "a" } }, { voices = { 0 } } } do
      local ok, t, err = pcall(P.parse_task, official(bad), "videos/text2video")
      assert.is_true(ok, tostring(t))
      assert.is_nil(t)
      assert.matches("is a %a+ %(.+%), not an object", err)
    end
  end)

  it("issue 11.9: an official callback with \"videos\":[1] is a protocol error, not a raise", function()
    local ok, t, err = pcall(webhook.parse, "kling", json.encode(official { videos = { 1 } }), {})
    assert.is_true(ok, tostring(t))
    assert.is_nil(t)
    assert.are.equal("protocol", err.kind)
  end)

  it("issue 11.9: a gateway charge beyond 2^53 (once %d), negative, NaN or infinite is no charge", function()
    local P = assert(providers.get("evolink"))
    for _, credits in ipairs { -1e300, 1e300, -5, -(2 ^ 63), math.huge, -math.huge, 0 / 0, "-5", "1e999", "abc" } do
      local body = { id = "e1", status = "completed", results = { "https://cdn/e.mp4" },
        usage = { credits_reserved = credits } }
      local ok, t = pcall(P.parse_task, body)
      assert.is_true(ok, tostring(t))
      assert.is_nil(t.charge, tostring(credits))
    end
    local a = assert(providers.get("apiinone"))
    assert.are.equal("300", assert(a.parse_task { task_id = 1, status = "completed", credits = 300 }).charge)
    assert.are.equal("0.025", assert(a.parse_task { task_id = 1, status = "completed", credits = 0.025 }).charge)
  end)

  it("issue 11.9: an EvoLink callback with a huge negative charge is read, not raised on", function()
    local raw = '{"id":"e1","status":"completed","results":["https://cdn/e.mp4"],"usage":{"credits_reserved":-1e300}}'
    local ok, t = pcall(webhook.parse, "evolink", raw, {})
    assert.is_true(ok, tostring(t))
    assert.are.equal("succeeded", t.status)
    assert.is_nil(t.charge)
  end)

  it("issue 11.9: a charge that is not a non-negative decimal is dropped on the official API", function()
    local P = assert(providers.get("kling"))
    assert.is_nil(assert(P.parse_task(official(nil, { final_unit_deduction = "1e999" }))).charge)
    assert.is_nil(assert(P.parse_task(official(nil, { final_unit_deduction = {} }))).charge)
    assert.are.equal("2.5", assert(P.parse_task(official(nil, { final_unit_deduction = "2.5" }))).charge)
  end)

  it("issue 11.10: a succeeded task whose output URL is a table, number or boolean is a protocol failure", function()
    local cases = {
      kling = function(url)
        return official { videos = { { id = "v", url = url } } }
      end,
      apiinone = function(url)
        return { task_id = "1", status = "completed", output = { videos = { { url = url } } } }
      end,
      apimodels = function(url)
        return { code = 200, data = { taskId = "c", state = "completed", param = "{}",
          resultJson = json.encode { resultUrls = { url } } } }
      end,
      evolink = function(url)
        return { id = "e", status = "completed", results = { url } }
      end,
    }
    for name, body in pairs(cases) do
      local P = assert(providers.get(name))
      for _, url in ipairs { { "x" }, 5, true } do
        local t, err = webhook.parse(name, json.encode(body(url)), {})
        assert.is_nil(t, name .. " " .. type(url))
        assert.are.equal("protocol", err.kind)
        assert.matches("not a URL", err.message)
        if name ~= "apimodels" then
          local pt, perr = P.parse_task(body(url))
          assert.is_nil(pt, name)
          assert.matches("url " .. require("kling.validate").type_of(url) .. ", not a URL", perr, 1, true)
        end
      end
      -- the same answer with a real URL is a success
      assert.are.equal("succeeded", assert(webhook.parse(name, json.encode(body("https://cdn/x.mp4")), {})).status)
    end
  end)
end)

-- A hostile upstream's JSON nulls and wrong types in every field of an official task answer,
-- found inside nginx: a null output field stayed in the task (userdata: NULL, truthy in Lua:
-- `if v.watermark_url then` took it for a URL), a task_status_msg of null, an object or a number
-- made task:wait raise on a failed task (msg:lower()), and refusals named "a userdata".
describe("every field of an official task answer null or of a wrong type", function()
  local machine = require "kling.lifecycle.machine"
  local P = assert(providers.get("kling"))
  local function answer()
    return { task_id = "t1", task_status = "succeed", task_status_msg = "", created_at = 1700000000000,
      updated_at = 1700000060000, final_unit_deduction = "2.5",
      task_info = { external_task_id = "row-1",
        parent_video = { id = "p", url = "https://cdn/p.mp4", duration = "5" } },
      task_result = {
        videos = { { id = "v1", url = "https://cdn/v.mp4", duration = "5", watermark_url = "https://cdn/w.mp4",
          session_id = "s" } },
        images = { { index = 0, url = "https://cdn/i.png", watermark_url = "https://cdn/iw.png" } },
        audios = { { id = "a", url_mp3 = "https://cdn/a.mp3", url_wav = "https://cdn/a.wav", duration_mp3 = "3" } },
        voices = { { voice_id = "vo", voice_name = "me", trial_url = "https://cdn/t.mp3", owned_by = "kling" } } } }
  end
  -- every path of the answer, as key lists
  local function paths(v, prefix, out)
    for k, x in pairs(v) do
      local p = { table.unpack(prefix) }
      p[#p + 1] = k
      out[#out + 1] = p
      if type(x) == "table" then
        paths(x, p, out)
      end
    end
    return out
  end
  local function nulls(v, where, seen)
    assert.are_not.equal(json.null, v, where)
    if type(v) == "table" and not seen[v] then
      seen[v] = true
      for k, x in pairs(v) do
        if k ~= "raw" then
          nulls(x, where .. "." .. tostring(k), seen)
        end
      end
    end
  end
  local values = { json.null, { a = 1 }, { 1 }, true, 1.5, -1 }

  it("refuse an output list that is an object: no succeeded task with nothing to fetch", function()
    for _, name in ipairs { "videos", "images", "audios", "voices" } do
      local a = answer()
      a.task_result[name] = { url = "https://cdn/v.mp4" }
      local t, err = P.parse_task(a, "videos/text2video")
      assert.is_nil(t, name)
      assert.equal("task_result." .. name .. " is an object, not an array", err)
    end
  end)

  it("never raise, leave no null in the task, name no userdata, and fail a task with a message", function()
    for _, path in ipairs(paths(answer(), {}, {})) do
      for _, value in ipairs(values) do
        for _, status in ipairs { "succeed", "failed" } do
          local a = answer()
          a.task_status = status
          local o = a
          for i = 1, #path - 1 do
            o = o[path[i]]
          end
          o[path[#path]] = value
          local where = table.concat(path, ".") .. " = " .. json.encode(value) .. " (" .. status .. ")"
          local ok, t, err = pcall(P.parse_task, a, "videos/text2video")
          assert.is_true(ok, where .. ": " .. tostring(t))
          if t then
            nulls(t, where, {})
            if t.status == "failed" then
              local fok, e = pcall(machine.failure, t, "kling")
              assert.is_true(fok, where .. ": " .. tostring(e))
              assert.is_string(tostring(e))
            end
          else
            assert.is_string(err, where)
            assert.not_matches("userdata", err, 1, true)
          end
        end
      end
    end
  end)
end)
