-- Custom elements (kling.element), without the network: every documented rule of a spec,
-- its request on the official API and on EvoLink (and the features each lacks refused by
-- name), the cache key, the cache file, and names resolved to ids in element_list.
local element = require "kling.element"
local providers = require "kling.providers"

local IMG = "https://example.com/front.png"
local official = assert(providers.get("kling"))
local evolink = assert(providers.get("evolink"))

local function spec(extra)
  local s = { name = "Mia", description = "a woman with red hair", images = { IMG, "https://example.com/side.png" } }
  for k, v in pairs(extra or {}) do
    s[k] = v
  end
  return s
end

local dir = os.tmpname()
os.remove(dir)
teardown(function()
  os.execute("rm -rf " .. dir)
end)

describe("an element's rules", function()
  it("refuses, naming the field, what the providers document as wrong", function()
    local cases = {
      { { name = string.rep("n", 21) }, "name", "at most 20 characters" },
      { { name = "" }, "name", "must not be empty" },
      { { name = "Mia\27[2J" }, "name", "must be one line of text: no control, separator or bidirectional "
        .. "characters (got U+001B)" },
      { { description = "red hair\r\nSet-Cookie: x" }, "description", "(got U+000D)" },
      { { name = "Mi\u{85}a" }, "name", "U+0085" }, -- C1 (NEL)
      { { name = "Mi\u{2028}a" }, "name", "U+2028" }, -- a line separator
      { { description = "short \u{202E}riah der" }, "description", "U+202E" }, -- shown reversed
      { { description = string.rep("d", 101) }, "description", "at most 100 characters" },
      { { video = "https://example.com/v.mp4" }, "images", "either images" },
      { { images = false }, "images", "either images" },
      { { images = {} }, "images", "the frontal image first" },
      { { images = { IMG, IMG, IMG, IMG, IMG } }, "images", "at most 3 more (got 5)" },
      { { images = { IMG, 7 } }, "images[2]", "image URL or base64" },
      { { voice_id = "829826751244537879" }, "voice_id", "goes with a video" },
      { { tags = { "o_109" } }, "tags[1]", "o_101 .. o_108" },
      -- a key that is no index, or a tag after a hole, was dropped without a word (the element made without it)
      { { images = { IMG, IMG, side = IMG } }, "images.side", "is not an index" },
      { { tags = { "o_101", nil, "o_102" } }, "tags[2]", "is missing (nil), before [3]: a list has no holes" },
      { { images = { IMG, IMG, nil, IMG } }, "images[3]", "is missing (nil)" },
      -- a field the spec does not have was dropped and the element made without it (and paid)
      { { tagz = { "o_101" } }, "tagz", "unknown field of an element (it has name, description, images, video, "
        .. "voice_id, tags); did you mean tags?" },
    }
    for _, c in ipairs(cases) do
      local s = spec(c[1])
      if c[1].images == false then
        s.images = nil
      end
      local err = element.check(s)
      assert.is_not_nil(err, c[2])
      assert.are.equal(c[2], err.field)
      assert.matches(c[3], err.message, 1, true)
    end
    assert.is_nil(element.check(spec { name = "Mía Ōta 😀", description = "short red hair, a scar\u{A0}left" }))
    local err = element.check { name = "V", description = "d", video = "not a url" }
    assert.are.equal("video", err.field)
    assert.is_nil(element.check { name = "V", description = "d", video = "https://e.x/v.mp4", voice_id = "1" })
    err = element.check({ name = "V", description = "d", video = "https://e.x/v.mp4", voice = "1" }, "evolink")
    assert.are.equal("voice", err.field)
    assert.matches("did you mean voice_id?", err.message, 1, true)
  end)
end)

describe("an element's request", function()
  it("is general/custom-elements on the official API, the first image frontal", function()
    local req = assert(element.request(spec { tags = { "o_102" } }, official))
    assert.are.same({ endpoint = "general/custom-elements", element_name = "Mia",
      element_description = "a woman with red hair", image = IMG,
      element_refer_list = { { image_url = "https://example.com/side.png" } }, tag_list = { "o_102" } }, req)
    assert.is_nil(official.validate(req, req.endpoint))
  end)

  it("is kling-custom-element on EvoLink, from images or from a video with its voice", function()
    local req = assert(element.request(spec(), evolink))
    assert.are.equal("kling-custom-element", req.model)
    assert.are.equal("image_refer", req.reference_type)
    assert.are.same({ frontal_image = IMG, refer_images = { { image_url = "https://example.com/side.png" } } },
      req.element_image_list)
    assert.is_nil(evolink.validate(req, req.endpoint))
    req = assert(element.request({ name = "V", description = "d", video = "https://e.x/v.mp4", voice_id = "42" },
      evolink))
    assert.are.equal("video_refer", req.reference_type)
    assert.are.same({ video_url = "https://e.x/v.mp4" }, req.element_video_list)
    assert.are.equal("42", req.element_voice_id)
    assert.is_nil(evolink.validate(req, req.endpoint))
  end)

  it("refuses by name what a provider lacks", function()
    local _, err = element.request({ name = "V", description = "d", video = "https://e.x/v.mp4" }, official)
    assert.are.equal("video", err.field)
    assert.matches("not supported by provider 'kling'", err.message)
    _, err = element.request(spec { tags = { "o_101" } }, evolink)
    assert.are.equal("tags", err.field)
    _, err = element.request(spec(), assert(providers.get("apimodels")))
    assert.are.equal("custom elements", err.field)
    assert.are.equal("apimodels", err.provider)
  end)
end)

-- One image on the official API was refused as "element_refer_list: is required": a field the caller
-- never gave (kling element create has --image), found only after a client was made.
describe("a provider's own rule of an element", function()
  it("names the spec's field, and kling element create's flag", function()
    local _, err = element.request(spec { images = { IMG } }, official)
    assert.are.equal("images", err.field)
    assert.matches("the views after the frontal image (images[2..], the API's element_refer_list): is required",
      err.message, 1, true)
    _, err = element.request(spec { images = { IMG, "https://example.com/side.png", "ftp://x/y.png" } }, official)
    assert.are.equal("images[3]", err.field)
    local p = assert(io.popen("lua5.4 bin/kling element create --provider kling --name Mia --description d --image "
      .. IMG .. " 2>&1; echo \"exit $?\"", "r"))
    local out = p:read("a")
    p:close()
    assert.matches("^kling element: kling: validation %(kling%): %-%-image: the views after the frontal image", out)
    assert.matches("exit 2\n$", out)
  end)
end)

-- Element ids between 10^14 and 2^53 were made text with tostring, which writes a float with 14
-- digits (LuaJIT's every number; Lua 5.4's floats): 861796639666001 went out as 8.61796639666e+14,
-- an element no one has, and two such ids in a storyboard's shots were taken for one.
describe("element ids above 10^14", function()
  local A, B = 861796639666001.0, 861796639666002.0 -- floats: as LuaJIT holds every id

  it("are sent in their digits, as task ids are (common.id_text)", function()
    local list = require("kling.providers.common").id_list({ A, "861796639666003", { element_id = "x" } },
      "element_id")
    assert.are.same({ { element_id = "861796639666001" }, { element_id = "861796639666003" }, { element_id = "x" } },
      list)
    local body = official.build({ model = "kling-v3", prompt = "p", image = IMG, element_list = { A } },
      "videos/image2video").body
    assert.are.equal("861796639666001", body.element_list[1].element_id)
  end)

  it("are two elements in a storyboard's segment, not one", function()
    local shots = { { prompt = "a", duration = 5, elements = { A } }, { prompt = "b", duration = 5, elements = { B } } }
    local req = require("kling.multishot").segment_request({}, shots, { first = 1, last = 2 }, true)
    assert.are.equal(2, #req.element_list)
  end)
end)

describe("the element cache", function()
  local where = { provider = "kling", base_url = "https://api.example", account = element.account_of("ak-1") }

  it("keys an element by its inputs, provider, base URL and account", function()
    local k = element.key(spec(), where)
    assert.are.equal(k, element.key(spec(), { provider = "kling", base_url = "https://api.example",
      account = element.account_of("ak-1") }))
    assert.are_not.equal(k, element.key(spec { description = "other" }, where))
    assert.are_not.equal(k, element.key(spec(), { provider = "evolink", base_url = where.base_url,
      account = where.account }))
    assert.are_not.equal(k, element.key(spec(), { provider = "kling", base_url = where.base_url,
      account = element.account_of("ak-2") }))
    assert.are.equal(16, #element.account_of("ak-1"))
    assert.is_nil(element.account_of("ak-1"):find("ak", 1, true))
  end)

  it("is keyed by the account of the key a client chose (client:account())", function()
    local kling = require "kling"
    local jwt = assert(kling.new { provider = "kling", access_key = "ak-1", secret_key = "sk" })
    assert.are.equal(element.account_of("ak-1"), jwt:account())
    assert.are.equal(element.account_of("ak-1"), jwt:with({ timeout = 5 }):account())
    local keyed = assert(kling.new { provider = "evolink", api_key = "key-1" })
    assert.are.equal(element.account_of("key-1"), keyed:account())
    assert.are.equal(require("kling.client").account_of, element.account_of)
  end)

  it("lives in $XDG_CACHE_HOME/kling/elements.json unless told otherwise", function()
    assert.matches("/kling/elements%.json$", element.default_cache())
  end)

  it("is saved whole and resolves names to ids, newest first, on the provider asked", function()
    local path = dir .. "/sub/elements.json"
    assert(element.save(path, { version = 1, elements = {
      k1 = { id = "111", name = "Mia", provider = "kling", base_url = "https://a", created_s = 10 },
      k2 = { id = "222", name = "Mia", provider = "kling", base_url = "https://a", created_s = 20 },
      k3 = { id = "333", name = "Tom", provider = "evolink", base_url = "https://b", created_s = 5 },
      k4 = { name = "Half", provider = "kling", creating = 30 },
    } }))
    local list = assert(element.resolve({ "Mia", 42, "777", { element_id = "9" }, { name = "Mia" } },
      { cache = path, provider = "kling", base_url = "https://a" }))
    assert.are.same({ { element_id = "222" }, 42, "777", { element_id = "9" }, { element_id = "222" } }, list)
    local _, err = element.resolve({ "Tom" }, { cache = path, provider = "kling" })
    assert.are.equal("element_list[1]", err.field)
    assert.matches("no element named 'Tom'", err.message)
    -- one made elsewhere was not told apart from none ("make it"), while kling element list showed it
    assert.matches("(it has one made on evolink at https://b: elements are kept per provider and base URL; make it "
      .. "for this one with kling element create)", err.message, 1, true)
    _, err = element.resolve({ "Mia" }, { cache = path, provider = "kling", base_url = "https://other" })
    assert.matches("no element named 'Mia' in the cache " .. path .. " for kling at https://other (it has one made on "
      .. "kling at https://a", err.message, 1, true)
    _, err = element.resolve({ "Half" }, { cache = path })
    assert.matches("no element named 'Half'", err.message) -- a create not finished has no id to use
    -- a cache path that names no file (a mistyped --elements) says so, not only that the name is missing
    _, err = element.resolve({ "Mia" }, { cache = dir .. "/no-such-cache.json", provider = "kling" })
    assert.are.equal("element_list[1]", err.field)
    assert.matches("no element named 'Mia': the element cache " .. dir .. "/no-such-cache.json does not exist",
      err.message, 1, true)
    -- an object (a manifest row's {"a": "Mia"}) was walked as an empty list: the row went without its elements
    _, err = element.resolve({ a = "Mia" }, { cache = path, provider = "kling" })
    assert.are.same({ "element_list", "must be an array, got an object" }, { err.field, err.message })
    local entries = assert(element.list(path))
    assert.are.equal("k4", entries[1].key)
    assert.are.equal("k3", entries[4].key)
  end)

  -- resolve(list, {cahce = path}) looked the names up in the default cache, silently: the ids of
  -- other elements of the same names went into the request
  it("refuses an option it does not know, or of the wrong type, by name", function()
    local path = dir .. "/opts/elements.json"
    assert(element.save(path, { version = 1, elements = {
      k1 = { id = "111", name = "Mia", provider = "kling", base_url = "https://a", created_s = 10 } } }))
    local ok, msg = pcall(element.resolve, { "Mia" }, { cahce = path })
    assert.is_false(ok)
    assert.matches("kling.element.resolve: unknown option 'cahce'; did you mean cache?", msg, 1, true)
    assert.has_error(function()
      element.resolve({ "Mia" }, path)
    end)
    for _, k in ipairs { "cache", "provider", "base_url" } do
      local none, err = element.resolve({ "Mia" }, { [k] = 5 })
      assert.is_nil(none)
      assert.are.same({ "validation", k }, { err.kind, err.field })
      assert.are.equal("must be a string (got a number (5))", err.message)
    end
    assert.are.same({ { element_id = "111" } }, element.resolve({ "Mia" }, { cache = path }))
  end)

  it("reports a cache it cannot read", function()
    local path = dir .. "/broken.json"
    local f = assert(io.open(path, "w"))
    f:write("{nope")
    f:close()
    local _, err = element.resolve({ "Mia" }, { cache = path })
    assert.are.equal("element_list", err.field)
    assert.matches("not readable", err.message)
  end)
end)

describe("element.create's options", function()
  -- on EvoLink (a task to wait for) a bad timeout or on_progress was refused by the wait after the
  -- create was sent and paid, and the cache then dropped the task as failed: the next run paid again
  it("are checked by name and value before anything is sent", function()
    local fake = require "support.fake_kling"
    local f = fake.new()
    local c = fake.client(f)
    local cache = dir .. "/opts-elements.json"
    for _, o in ipairs {
      { { on_progress = 5 }, "on_progress", "must be a function" },
      { { timeout = -1 }, "timeout", "must be a positive number of seconds" },
      { { cache = 5 }, "cache", "must be a path or false" },
      { { force = "no" }, "force", "must be true or false (got a string" },
      { { account = 5 }, "account", "must be a string, client:account()'s (got a number (5))" },
    } do
      if o[1].cache == nil then
        o[1].cache = cache
      end
      local ok, e, err = pcall(element.create, c, spec(), o[1])
      assert.is_true(ok, tostring(e))
      assert.is_nil(e)
      assert.are.same({ "validation", o[2] }, { err.kind, err.field })
      assert.matches(o[3], err.message, 1, true)
    end
    assert.has_error(function()
      element.create(c, spec(), { cahce = cache })
    end, "kling.element.create: unknown option 'cahce'; did you mean cache?")
    assert.are.equal(0, f.stats.posts)
    assert.is_nil(io.open(cache))
  end)
end)

describe("the element cache", function()
  -- io.open of a FIFO given as the cache blocked `kling element list`, `kling element create` and
  -- `kling run --elements` for good (`timeout` only keeps this spec from hanging on it)
  it("is read only when it is a regular file: a FIFO or a directory is refused, nothing blocks", function()
    local fifo = dir .. "/elements.fifo"
    assert(os.execute("mkfifo '" .. fifo .. "'"))
    local p = io.popen("timeout 60 lua5.4 bin/kling element list --cache '" .. fifo .. "' 2>&1; echo \"exit=$?\"")
    local out = p:read("a")
    p:close()
    assert.matches("exit=2%s*$", out)
    assert.matches("element cache " .. fifo .. " is not readable (" .. fifo .. " is a FIFO (named pipe))", out, 1, true)
    -- a LF in the path printed a line of its own ("no elements in a", then "b (kling element ...")
    p = io.popen("lua5.4 bin/kling element list --cache '" .. dir .. "/a\nb' 2>&1; echo \"exit=$?\"")
    out = p:read("a")
    p:close()
    assert.matches("exit=0%s*$", out)
    assert.matches("kling element: no elements in " .. dir .. "/a\\x0ab (kling element create makes one)\nexit=0", out,
      1, true)
    local doc, err = element.load(dir)
    assert.is_nil(doc)
    assert.matches("is a directory", err, 1, true)
    assert.are.same({ version = 1, elements = {} }, element.load(dir .. "/no-such-elements.json"))
  end)

  -- a cache named on purpose was read only at the first element name: a batch or storyboard
  -- naming none ran with a mistyped --elements unsaid
  it("refuses a cache named on purpose that is missing or unreadable, in a batch and a storyboard", function()
    os.execute("mkdir -p " .. dir)
    local bad = dir .. "/bad-elements.json"
    local f = assert(io.open(bad, "w"))
    f:write("{bad")
    f:close()
    local m = dir .. "/m.jsonl"
    f = assert(io.open(m, "w"))
    f:write('{"id": "a", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    f:close()
    local batch = require "kling.batch"
    for path, why in pairs { [dir .. "/none.json"] = "does not exist", [bad] = "is not readable" } do
      local r, err, status = batch.run { manifest = m, out = dir .. "/out", progress = "none", element_cache = path }
      assert.is_nil(r)
      assert.are.equal(2, status)
      assert.matches("element_cache (--elements): element cache " .. path .. " " .. why, err, 1, true)
      local client = assert(require("kling").new { provider = "kling", api_key = "k-0123456789",
        base_url = "http://127.0.0.1:9" })
      local ok, serr = require("kling.multishot").run(client, { model = "kling-v3", shots = { { prompt = "a",
        duration = 5 } } }, { out = dir .. "/sb", elements = path })
      assert.is_nil(ok)
      assert.are.equal("elements", serr.field)
      assert.matches("element cache " .. path .. " " .. why, serr.message, 1, true)
    end
  end)
end)
