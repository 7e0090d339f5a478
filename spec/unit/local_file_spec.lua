-- Issue 14 (Lua API): a local file path given for an image or video field is read and sent as
-- base64 where the provider takes base64, refused by name where it needs a URL; hostile paths
-- and files are refused before anything is sent.
local kling = require "kling"
local core = require "kling.core"
local local_file = require "kling.local_file"
local providers = require "kling.providers"

-- A PNG as far as the rules read it (signature and IHDR).
local png_bytes = require("support.images").png

local dir
local function write(name, bytes)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  return path
end

-- A client that never reaches the network: validation and file reading happen first.
local function client(provider)
  return assert(kling.new { provider = provider or "kling", api_key = "k-unit", base_url = "http://127.0.0.1:9" })
end

describe("local files as inputs (issue 14)", function()
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
  end)
  teardown(function()
    os.execute("rm -rf " .. dir)
  end)

  it("issue 14: tells local paths from URLs, data: URIs and base64 data", function()
    local PNG = core.b64encode(png_bytes(640, 360))
    for _, v in ipairs { "cat.png", "/tmp/cat.png", "./a/b.jpg", "../up.png", "img/cat", "~/x.png" } do
      assert.is_true(local_file.is_path(v), v)
    end
    for _, v in ipairs { "https://example.com/a.png", "HTTP://x/y", "data:image/png;base64,AAAA", PNG,
      "/9j/4AAQSkZJRg", "ftp://host/a.png", "", 42 } do
      assert.is_false(local_file.is_path(v), tostring(v))
    end
  end)

  it("issue 14: the official API gets the file's bytes as raw base64, the request unchanged", function()
    local path = write("frame.png", png_bytes(640, 360))
    local c = client()
    local req = { image = path, prompt = "wave", model = "kling-v1-6" }
    local endpoint, files = c:prepare(req)
    assert.are.equal("videos/image2video", endpoint, tostring(files))
    assert.are.equal(core.b64encode(png_bytes(640, 360)), files.image)
    assert.are.equal(path, req.image) -- the caller's table is not changed
    local body = c.provider.build(local_file.apply(req, files), endpoint).body
    assert.are.equal(files.image, body.image)
    assert.are.equal("videos/image2video", c:check(req))
  end)

  it("issue 14: rebase reads relative media paths from a directory; URLs, absolute paths and text stay", function()
    local P = providers.get("kling")
    local req = { prompt = "frames/start.png", image = "frames/start.png", image_tail = nil,
      image_list = { { image = "a.png" }, { image = "/abs/b.png" }, { image = "https://example.com/c.png" } } }
    local fields = assert(local_file.rebase(P, req, "/data/job/"))
    assert.are.equal("/data/job/frames/start.png", fields.image)
    assert.are.equal("/data/job/a.png", fields.image_list[1].image)
    assert.are.equal("/abs/b.png", fields.image_list[2].image)
    assert.are.equal("https://example.com/c.png", fields.image_list[3].image)
    assert.is_nil(fields.prompt) -- not a media field
    assert.are.equal("a.png", req.image_list[1].image) -- the caller's tables untouched
    assert.is_nil(local_file.rebase(P, { image = "/abs/x.png" }, "/data"))
    assert.is_nil(local_file.rebase(P, { image = "x.png" }, "."))
  end)

  it("issue 14: nested image lists are read item by item, the caller's tables untouched", function()
    local a, b = write("a.png", png_bytes(400, 400)), write("b.png", png_bytes(500, 400))
    local list = { { image = a }, { image = "https://example.com/x.png" }, b }
    local files = assert(local_file.inline(providers.get("kling"), { image_list = list }))
    assert.are.equal(core.b64encode(png_bytes(400, 400)), files.image_list[1].image)
    assert.are.equal("https://example.com/x.png", files.image_list[2].image)
    assert.are.equal(core.b64encode(png_bytes(500, 400)), files.image_list[3])
    assert.are.equal(a, list[1].image)
    assert.are.equal(b, list[3])
  end)

  it("issue 14: the file's content is checked by the provider's rules (here: too small)", function()
    local path = write("tiny.png", png_bytes(100, 100))
    local _, err = client():check { image = path, prompt = "wave", model = "kling-v1-6" }
    assert.are.equal("image", err.field)
    assert.matches("at least 300 px", err.message)
  end)

  it("issue 14: a provider that needs a URL refuses a local file by name, before the network", function()
    local path = write("g.png", png_bytes(640, 360))
    for _, name in ipairs { "apiinone", "apimodels", "evolink", "compat" } do
      local _, err = client(name):submit { image = path, prompt = "wave", model = "kling-v3", duration = 5 }
      assert.are.equal("validation", err.kind, name)
      assert.are.equal("image", err.field, name)
      assert.matches("this provider needs a URL", err.message, 1, true)
      assert.matches(name, err.message, 1, true)
    end
    -- the official API too, for a video field: it fetches videos from URLs only
    local _, err = client():check { endpoint = "videos/motion-control", video_url = path,
      image = "https://example.com/a.png", model = "kling-v2-6", mode = "std", character_orientation = "image" }
    assert.are.equal("video_url", err.field)
    assert.matches("this provider needs a URL", err.message, 1, true)
  end)

  it("issue 14: control characters, a directory, a missing or unreadable file, an empty one are refused", function()
    local c = client()
    local function refused(path, pattern)
      local _, err = c:check { image = path, prompt = "wave", model = "kling-v1-6" }
      assert.is_not_nil(err, path)
      assert.are.equal("image", err.field)
      assert.matches(pattern, err.message)
    end
    refused(dir .. "/a\nb.png", "control characters")
    refused(dir .. "/a\0b.png", "control characters")
    refused(dir, "[Ii]s a directory")
    refused(dir .. "/missing.png", "No such file")
    refused("/proc/self/mem", "cannot read")
    refused(write("empty.png", ""), "is empty")
    -- `..` is the user's own file system: allowed
    local up = write("up.png", png_bytes(640, 360))
    local rel = dir .. "/../" .. dir:match("[^/]+$") .. "/up.png"
    assert.are.equal("videos/image2video", c:check { image = rel, prompt = "wave", model = "kling-v1-6" }, up)
  end)

  it("issue 14: a file over 10 MB (the API's image limit) is refused without being read whole", function()
    assert.are.equal(10 * 1024 * 1024, local_file.MAX_BYTES)
    local path = write("huge.png", png_bytes(640, 360) .. string.rep("\0", local_file.MAX_BYTES))
    local _, err = client():check { image = path, prompt = "wave", model = "kling-v1-6" }
    assert.are.equal("image", err.field)
    assert.matches("over 10485760 bytes", err.message)
    os.remove(path)
    local _, derr = local_file.read(write("big.png", png_bytes(640, 360) .. string.rep("\0", 2048)), "image", 1024)
    assert.matches("over 1024 bytes", derr.message)
  end)

  it("issue 14: a FIFO, a device or /dev/stdin is refused as not a regular file, before any read", function()
    local fifo = dir .. "/pipe.png"
    assert(os.execute("mkfifo " .. fifo))
    -- No writer ever opens the FIFO: opening it for reading would block for ever.
    for _, path in ipairs { fifo, "/dev/zero", "/dev/stdin", "/dev/null" } do
      local _, err = client():check { image = path, prompt = "wave", model = "kling-v1-6" }
      assert.is_not_nil(err, path)
      assert.are.equal("validation", err.kind)
      assert.are.equal("image", err.field)
      assert.matches("not a regular file", err.message, 1, true)
    end
    local _, err = local_file.read(fifo, "image_list[1]")
    assert.are.equal("image_list[1]", err.field)
    assert.matches("FIFO", err.message, 1, true)
    assert.are.equal(nil, (core.read_regular(fifo, 10)))
  end)

  it("issue 14: a local file that is not a JPG or PNG is refused naming the path", function()
    local path = write("notes.png", "just some text, not an image\n")
    local _, err = client():check { image = path, prompt = "wave", model = "kling-v1-6" }
    assert.are.equal("image", err.field)
    assert.matches(path, err.message, 1, true)
    assert.matches("is not a JPG or PNG image", err.message, 1, true)
  end)

  it("issue 14: a client made with local_files = false (the gateway) never reads a path", function()
    local path = write("secret.png", png_bytes(640, 360))
    local c = assert(kling.new { provider = "kling", api_key = "k", base_url = "http://127.0.0.1:9",
      local_files = false })
    local _, err = c:check { image = path, prompt = "wave", model = "kling-v1-6" }
    assert.are.equal("image", err.field)
    assert.matches("must be an http%(s%) URL or base64", err.message)
  end)

  it("issue 14: every provider declares what its media fields take", function()
    for _, name in ipairs(providers.names) do
      local P = providers.get(name)
      assert.is_table(P.media_inputs, name)
      for field, takes in pairs(P.media_inputs) do
        assert.is_true(takes == "base64" or takes == "url", name .. "." .. field)
      end
    end
    assert.are.equal("base64", providers.get("kling").media_inputs.image)
    assert.are.equal("url", providers.get("evolink").media_inputs.image)
  end)
end)

-- A UTF-8 BOM was taken at the start of a manifest only: --file, --defaults, --rates, a storyboard
-- and the gateway's config were refused as not JSON. One rule now (local_file.without_bom).
describe("a JSON file a user gives, saved as UTF-8 with BOM", function()
  local bdir
  setup(function()
    bdir = os.tmpname()
    os.remove(bdir)
    assert(os.execute("mkdir -p " .. bdir))
  end)
  teardown(function()
    os.execute("rm -rf " .. bdir)
  end)
  local function bom_file(name, text)
    local path = bdir .. "/" .. name
    local f = assert(io.open(path, "wb"))
    f:write(local_file.BOM, text)
    f:close()
    return path
  end

  it("is read with its BOM skipped: a storyboard, --rates, --file, the gateway's config", function()
    assert.are.equal("{}", local_file.read_text(bom_file("x.json", "{}")))
    local sb = assert(require("kling.multishot").load(bom_file("sb.json", '[{"prompt": "a", "duration": 5}]')))
    assert.are.equal("a", sb.shots[1].prompt)
    local rates = assert(require("kling.money.hold").read_rates(bom_file("rates.json",
      '{"currency": "CNY", "rates": {"USD": "7.1"}}')))
    assert.are.equal("7.1", rates.rates.USD)
    local p = assert(io.popen("lua5.4 bin/kling estimate --file " .. bom_file("req.json",
      '{"model": "kling-v2-6", "mode": "pro", "duration": 5, "sound": true}')
      .. " --format json 2>&1; echo \"exit $?\""))
    local out = p:read("a")
    p:close()
    assert.matches("exit 0\n$", out)
    local ok, err = pcall(require("kling.gateway.config").load, bom_file("gateway.json", "{}"))
    assert.is_false(ok) -- refused for what it lacks, not as "not JSON"
    assert.is_nil(tostring(err):find("is not JSON", 1, true), tostring(err))
  end)

  it("is refused with a BOM anywhere but its start", function()
    local path = bdir .. "/mid.json"
    local f = assert(io.open(path, "wb"))
    f:write("{}", local_file.BOM)
    f:close()
    assert.is_nil((require("kling.money.hold").read_rates(path)))
  end)
end)
