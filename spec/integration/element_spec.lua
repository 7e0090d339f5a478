-- Custom elements against the simulator: made on the official API (an answer at once) and
-- on EvoLink (a task waited for, with progress), cached under their inputs so a second run
-- sends nothing and pays nothing, found again after an interrupted create, refused before
-- the network when a rule is broken, and used by name in a batch row.
local sim = require "support.sim"
local json = require "kling.json"
local element = require "kling.element"
local batch = require "kling.batch"

local files = require "support.files"

local root = files.tempdir()
local n = 0
local function cache_path()
  n = n + 1
  return root .. "/cache" .. n .. "/elements.json"
end

local IMAGES = { "https://example.com/mia/front.png", "https://example.com/mia/side.png" }

local function spec(name)
  return { name = name or "Mia", description = "a young woman with short red hair", images = IMAGES }
end

local function evolink()
  return sim.gateway("evolink")
end

describe("custom elements against the simulator", function()
  before_each(sim.fresh)

  teardown(function()
    os.execute("rm -rf " .. root)
  end)

  it("are made once on the official API: the second create comes from the cache", function()
    local client = sim.client()
    local cache = cache_path()
    local e, cached = assert(element.create(client, spec(), { cache = cache }))
    assert.is_false(cached)
    assert.matches("^%d+$", e.id)
    assert.is_nil(io.open(cache .. "." .. e.key:sub(1, 16) .. ".lock", "rb")) -- its create's lock, gone once made
    local listed = assert(client:call("general/custom-elements", {}))
    assert.are.equal(1, #listed)
    assert.are.equal(e.id, tostring(listed[1].element_id))
    local requests = sim.stats().requests
    local again, was_cached = assert(element.create(client, spec(), { cache = cache }))
    assert.is_true(was_cached)
    assert.are.equal(e.id, again.id)
    assert.are.equal(requests, sim.stats().requests)
    -- Another account (or other inputs) is another element.
    local other = assert(element.create(client, spec(), { cache = cache, account = element.account_of("ak-2") }))
    assert.are_not.equal(e.id, other.id)
    -- force makes a fresh element, not the cached id (`kling element create --force`: "create a new
    -- element even when one is cached"), and the cache then names the new one
    local fresh, fresh_cached = assert(element.create(client, spec(), { cache = cache, force = true }))
    assert.is_false(fresh_cached)
    assert.are_not.equal(e.id, fresh.id)
    assert.are.equal(fresh.id, assert(element.create(client, spec(), { cache = cache })).id)
  end)

  it("are waited for on EvoLink, with progress, and charged once", function()
    local client = evolink()
    local cache = cache_path()
    local seen = {}
    local e, cached = assert(element.create(client, { name = "Vee", description = "from a video",
      video = "https://example.com/vee.mp4", voice_id = "829826751244537879" }, { cache = cache,
      on_progress = function(t)
        seen[#seen + 1] = t.status
      end }))
    assert.is_false(cached)
    assert.is_string(e.id)
    assert.is_string(e.task_id)
    assert.are.equal("succeeded", seen[#seen])
    local creates = sim.stats().creates
    assert(element.create(client, { name = "Vee", description = "from a video", video = "https://example.com/vee.mp4",
      voice_id = "829826751244537879" }, { cache = cache }))
    assert.are.equal(creates, sim.stats().creates)
  end)

  -- A wait whose polls were refused (a key refused for a while, the network) dropped the element's task
  -- from the cache as if it had failed: the next run paid for a second one
  it("keep a task whose polls failed (not the task) cached: the next run waits for it, paying nothing", function()
    local client = evolink()
    local cache = cache_path()
    local vee = { name = "Wes", description = "from a video", video = "https://example.com/wes.mp4" }
    sim.faults { { kind = "auth", method = "GET", path = "/evolink/v1/tasks/", count = 1000 } }
    local e, err = element.create(client, vee, { cache = cache, timeout = 5 })
    assert.is_nil(e)
    assert.are.equal("auth", err.kind)
    sim.clear_faults()
    local creates = sim.stats().creates
    local again, cached = assert(element.create(client, vee, { cache = cache }))
    assert.is_false(cached)
    assert.is_string(again.id)
    assert.are.equal(creates, sim.stats().creates)
  end)

  it("pick up an interrupted create instead of paying for another", function()
    -- EvoLink: the task id was cached before the wait; the next run waits for that task.
    local client = evolink()
    local cache = cache_path()
    local t = assert(client:submit(assert(element.request(spec("Kay"), client.provider))))
    local key = element.key(spec("Kay"), { provider = "evolink", base_url = client.base_url })
    assert(element.save(cache, { version = 1, elements = { [key] = { task_id = t.id, creating = 1, name = "Kay",
      provider = "evolink", base_url = client.base_url } } }))
    local e, cached = assert(element.create(client, spec("Kay"), { cache = cache }))
    assert.is_false(cached)
    assert.are.equal(1, sim.stats().creates)
    assert.is_string(e.id)
    -- Official: no task id, but the element is in the account's list by name and description.
    local official = sim.client()
    local made = assert(official:submit(assert(element.request(spec("Lou"), official.provider))))
    local okey = element.key(spec("Lou"), { provider = "kling", base_url = official.base_url })
    assert(element.save(cache, { version = 1, elements = { [okey] = { creating = 1, name = "Lou",
      provider = "kling", base_url = official.base_url } } }))
    local found, was_cached = assert(element.create(official, spec("Lou"), { cache = cache }))
    assert.is_true(was_cached)
    assert.are.equal(made.id, found.id)
    -- Where it cannot be found, nothing is sent again unless forced.
    local ekey = element.key(spec("Zed"), { provider = "evolink", base_url = client.base_url })
    assert(element.save(cache, { version = 1, elements = { [ekey] = { creating = 1, name = "Zed" } } }))
    local before = sim.stats().creates
    local _, err = element.create(client, spec("Zed"), { cache = cache })
    assert.matches("interrupted", err.message)
    -- EvoLink lists no elements: the advice is not to check a list it does not have
    assert.matches("EvoLink keeps no element list to look it up in", err.message, 1, true)
    assert.is_nil(err.message:find("Check the provider's element list", 1, true))
    assert.are.equal(before, sim.stats().creates)
    -- the official API lists them: not there yet, the advice is to look again
    local nkey = element.key(spec("Ned"), { provider = "kling", base_url = official.base_url })
    assert(element.save(cache, { version = 1, elements = { [nkey] = { creating = 1, name = "Ned",
      provider = "kling", base_url = official.base_url } } }))
    _, err = element.create(official, spec("Ned"), { cache = cache })
    assert.matches("It is not in Kling %(official API%)'s element list yet", err.message)
    assert(element.create(client, spec("Zed"), { cache = cache, force = true }))
    assert.are.equal(before + 1, sim.stats().creates)
  end)

  local function lock_of(cache, key)
    return cache .. "." .. key:sub(1, 16) .. ".lock"
  end

  local function exists(path)
    local f = io.open(path, "rb")
    if f then
      f:close()
    end
    return f ~= nil
  end

  -- force replaced the cache's entry when its create started: a create the provider refused left no
  -- entry at all, the element made before lost from the cache (and from rows naming it); and the
  -- create's lock file stayed beside the cache whenever the create did not make its element.
  it("made again with force keep the element made before cached until the new one exists", function()
    local client = sim.client()
    local cache = cache_path()
    local e = assert(element.create(client, spec("Flo"), { cache = cache }))
    local lock = lock_of(cache, e.key)
    sim.faults { { kind = "auth", method = "POST", path = "custom%-elements", count = 1 } }
    local none, err = element.create(client, spec("Flo"), { cache = cache, force = true })
    assert.is_nil(none)
    assert.are.equal("auth", err.kind)
    assert.is_false(exists(lock))
    local kept, cached = assert(element.create(client, spec("Flo"), { cache = cache }))
    assert.is_true(cached)
    assert.are.equal(e.id, kept.id)
    assert.are.same({ { element_id = e.id } }, assert(element.resolve({ "Flo" }, { cache = cache })))
    -- an answer lost: the element made before stays the cache's, the new create's mark beside it
    sim.faults { { kind = "reset", method = "POST", path = "custom%-elements", phase = "after", count = 1 } }
    none, err = element.create(client, spec("Flo"), { cache = cache, force = true })
    assert.is_nil(none)
    assert.is_true(err.uncertain)
    assert.is_false(exists(lock))
    local entry = element.load(cache).elements[e.key]
    assert.are.equal(e.id, entry.id)
    assert.is_number(entry.pending.creating)
    kept = assert(element.create(client, spec("Flo"), { cache = cache }))
    assert.are.equal(e.id, kept.id)
    -- made: the new one replaces it, and nothing of the create is left
    local fresh, fresh_cached = assert(element.create(client, spec("Flo"), { cache = cache, force = true }))
    assert.is_false(fresh_cached)
    assert.are_not.equal(e.id, fresh.id)
    entry = element.load(cache).elements[e.key]
    assert.are.equal(fresh.id, entry.id)
    assert.is_nil(entry.pending)
    assert.is_false(exists(lock))
    -- a first create refused leaves neither an entry nor a lock file
    sim.faults { { kind = "auth", method = "POST", path = "custom%-elements", count = 1 } }
    local gus = element.key(spec("Gus"), { provider = "kling", base_url = client.base_url })
    none = element.create(client, spec("Gus"), { cache = cache })
    assert.is_nil(none)
    assert.is_nil(element.load(cache).elements[gus])
    assert.is_false(exists(lock_of(cache, gus)))
  end)

  it("made again with force on EvoLink wait for the new task, the element made before cached meanwhile", function()
    local client = evolink()
    local cache = cache_path()
    local vic = { name = "Vic", description = "from a video", video = "https://example.com/vic.mp4" }
    local e = assert(element.create(client, vic, { cache = cache }))
    local creates = sim.stats().creates
    local none, err = element.create(client, vic, { cache = cache, force = true, timeout = 0.5 })
    assert.is_nil(none)
    assert.is_truthy(err)
    local entry = element.load(cache).elements[e.key]
    assert.are.equal(e.id, entry.id)
    assert.is_string(entry.pending.task_id)
    local kept, cached = assert(element.create(client, vic, { cache = cache }))
    assert.is_true(cached)
    assert.are.equal(e.id, kept.id)
    -- forced again: the task in flight is waited for, not sent again
    local fresh, fresh_cached = assert(element.create(client, vic, { cache = cache, force = true }))
    assert.is_false(fresh_cached)
    assert.are_not.equal(e.id, fresh.id)
    assert.are.equal(creates + 1, sim.stats().creates)
    entry = element.load(cache).elements[e.key]
    assert.are.equal(fresh.id, entry.id)
    assert.is_nil(entry.pending)
  end)

  it("leave no lock file when the create raises (Ctrl-C, a bug): the raise is the caller's", function()
    local client = evolink()
    local cache = cache_path()
    local ray = { name = "Ray", description = "from a video", video = "https://example.com/ray.mp4" }
    local key = element.key(ray, { provider = "evolink", base_url = client.base_url })
    local ok, raised = pcall(element.create, client, ray, { cache = cache, on_progress = function()
      error("stopped here", 0)
    end })
    assert.is_false(ok)
    assert.are.equal("stopped here", raised)
    assert.is_false(exists(lock_of(cache, key)))
    -- its task was made: the next create waits for it
    local creates = sim.stats().creates
    local e = assert(element.create(client, ray, { cache = cache }))
    assert.is_string(e.id)
    assert.are.equal(creates, sim.stats().creates)
  end)

  it("are refused before the network when a rule is broken", function()
    local client = sim.client()
    local before = sim.stats().requests
    local _, err = element.create(client, { name = "Mia", description = "d", images = { IMAGES[1] } },
      { cache = false })
    assert.are.equal("images", err.field) -- the official API wants 1..3 more views (named as the spec's field)
    _, err = element.create(client, { name = "Mia", description = "d", video = "https://e.x/v.mp4" }, { cache = false })
    assert.matches("not supported by provider 'kling'", err.message)
    _, err = element.create(evolink(), { name = "Mia", description = string.rep("d", 101), images = IMAGES },
      { cache = false })
    assert.are.equal("description", err.field)
    -- a URL holding a control character went out as it was (kling element create --image $'...\x01...')
    _, err = element.create(client, { name = "Mia", description = "d", images = { "https://example.com/a\1.png",
      IMAGES[2] } }, { cache = false })
    assert.are.equal("images[1]", err.field)
    _, err = element.create(client, spec(), { cache = "" }) -- its lock file went into the working directory
    assert.are.equal("cache", err.field)
    assert.are.equal(before, sim.stats().requests)
  end)

  -- `kling element create --image adir` (a directory) was read as base64 ("inline data must be a
  -- base64-encoded JPG or PNG image") and a JPG's path refused as not a URL: the element's rules saw
  -- the path, where client:submit reads the very same fields as local files.
  it("read a local image as submit does: a directory refused as one, a file made into an element", function()
    local client = sim.client()
    local dir = root .. "/adir"
    os.execute("mkdir -p " .. dir)
    local front = root .. "/front.png"
    local f = assert(io.open(front, "wb"))
    f:write(require("support.images").png(400, 400))
    f:close()
    local before = sim.stats().requests
    local _, err = element.create(client, { name = "Mia", description = "d", images = { dir, front } },
      { cache = false })
    assert.are.equal("images[1]", err.field)
    assert.matches("the local file " .. dir .. " is not a regular file (it is a directory)", err.message, 1, true)
    _, err = element.create(client, { name = "Mia", description = "d", images = { front, dir } }, { cache = false })
    assert.are.equal("images[2]", err.field)
    _, err = element.create(evolink(), { name = "Mia", description = "d", images = { IMAGES[1], front } },
      { cache = false })
    assert.are.equal("images[2]", err.field) -- evolink's element_image_list.refer_images[1].image_url
    assert.matches("this provider needs a URL", err.message, 1, true)
    assert.are.equal(before, sim.stats().requests)
    local e = assert(element.create(client, { name = "Mia", description = "d", images = { front, front } },
      { cache = false }))
    assert.truthy(e.id)
  end)

  -- The cache was keyed by an image's path: editing front.png and running again returned the
  -- element made from the old picture, and made nothing.
  it("key a local image by its content: an edited file is a new element, an unchanged one cached", function()
    local client = sim.client()
    local cache = cache_path()
    local front, side = root .. "/kfront.png", root .. "/kside.png"
    local function write(path, w)
      local f = assert(io.open(path, "wb"))
      f:write(require("support.images").png(w, 400))
      f:close()
    end
    write(front, 400)
    write(side, 420)
    local kim = { name = "Kim", description = "d", images = { front, side } }
    local first, cached = assert(element.create(client, kim, { cache = cache }))
    assert.is_false(cached)
    local again, was = assert(element.create(client, kim, { cache = cache }))
    assert.is_true(was)
    assert.are.equal(first.id, again.id)
    write(front, 440) -- edited in place: same path, other picture
    local creates = sim.stats().creates
    local edited, ecached = assert(element.create(client, kim, { cache = cache }))
    assert.is_false(ecached)
    assert.are_not.equal(first.id, edited.id)
    assert.are.equal(creates + 1, sim.stats().creates)
    -- an entry an earlier version keyed by the path is not returned, and is replaced by the new one
    local by_path = element.key(kim, { provider = "kling", base_url = client.base_url })
    assert(element.save(cache, { version = 1, elements = { [by_path] = { id = "123", name = "Kim",
      provider = "kling", base_url = client.base_url, created_s = 1 } } }))
    local fresh, fcached = assert(element.create(client, kim, { cache = cache }))
    assert.is_false(fcached)
    assert.are_not.equal("123", fresh.id)
    assert.is_nil(element.load(cache).elements[by_path])
  end)

  it("are used by name in a batch row", function()
    local client = sim.client()
    local cache = cache_path()
    local e = assert(element.create(client, spec(), { cache = cache }))
    local dir = root .. "/batch"
    os.execute("mkdir -p " .. dir)
    local f = assert(io.open(dir .. "/rows.jsonl", "w"))
    f:write(assert(json.encode { id = "with-mia", model = "kling-v3", mode = "std", duration = 5,
      prompt = "Mia in the rain", image = IMAGES[1], element_list = { "Mia" } }), "\n")
    f:write(assert(json.encode { id = "nobody", model = "kling-v3", mode = "std", duration = 5, prompt = "x",
      image = IMAGES[1], element_list = { "Nobody" } }), "\n")
    f:close()
    local i = sim.info()
    local result, err, status = batch.run { manifest = dir .. "/rows.jsonl", out = dir, provider = "kling",
      base_url = i.http, access_key = i.access_key, secret_key = i.secret_key, element_cache = cache,
      poll_min = 0.2, poll_max = 0.5, progress = "none", stdout = false }
    assert(result, err)
    assert.are.equal(batch.EXIT.refused, status) -- one row ran, the unknown element's was refused
    assert.are.equal("succeeded", result.rows[1].state)
    assert.are.equal("refused", result.rows[2].state) -- never sent: not a task the provider failed
    assert.are.equal("element_list[1]", result.rows[2].error.field)
    assert.are.equal(2, sim.stats().creates) -- the element itself, then one video
    assert.is_string(e.id)
  end)

  -- Without --elements a name went out as the element's id, and the simulator took any id.
  it("a name in a row without --elements is resolved from the default cache or refused, never sent as an id",
    function()
      local dir = root .. "/batch-default"
      os.execute("mkdir -p " .. dir)
      local f = assert(io.open(dir .. "/rows.jsonl", "w"))
      f:write(assert(json.encode { id = "mia", model = "kling-v3", mode = "std", duration = 5, prompt = "x",
        image = IMAGES[1], element_list = { "Mia" } }), "\n")
      f:close()
      local i = sim.info()
      local requests = sim.stats().requests
      local result, err = batch.run { manifest = dir .. "/rows.jsonl", out = dir, provider = "kling",
        base_url = i.http, access_key = i.access_key, secret_key = i.secret_key,
        poll_min = 0.2, poll_max = 0.5, progress = "none", stdout = false }
      assert(result, err)
      assert.are.equal("refused", result.rows[1].state)
      assert.are.equal("element_list[1]", result.rows[1].error.field)
      -- XDG_CACHE_HOME=/dev/null in the tests: the default cache, named, does not exist
      assert.matches("no element named 'Mia': the element cache /dev/null/kling/elements.json does not exist",
        result.rows[1].error.message, 1, true)
      assert.are.equal(requests, sim.stats().requests)
    end)

  it("the simulator refuses an element id it never made, as the API answers an unknown element", function()
    local client = sim.client()
    local req = { model = "kling-v3", mode = "std", duration = 5, prompt = "x", image = IMAGES[1] }
    req.element_list = { "812345678901" }
    local t, err = client:submit(req)
    assert.is_nil(t)
    assert.are.equal(1201, err.code)
    assert.matches("element_list[1].element_id 812345678901 does not exist", err.message, 1, true)
    assert.are.equal(0, sim.stats().creates)
    -- a preset, and an element this account made, are known
    req.element_list = { 100001 }
    assert(client:submit(req))
    local e = assert(element.create(client, spec(), { cache = cache_path() }))
    req.element_list = { e.id }
    assert(client:submit(req))
  end)
end)
