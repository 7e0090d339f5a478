-- Storyboards (kling.multishot), without the network: the documented rules of a shot, the
-- split into segments that each fit one native multi-shot request (at most 6 shots, 3..15 s,
-- 512 characters a shot), and the request each segment becomes.
local files = require "support.files"
local multishot = require "kling.multishot"
local providers = require "kling.providers"

local function shots(...)
  local list = {}
  for i, d in ipairs { ... } do
    list[i] = { prompt = "shot " .. i, duration = d }
  end
  return list
end

local function plan(list, native)
  local segs, err = multishot.plan({ shots = list }, native)
  if not segs then
    return nil, err
  end
  local out = {}
  for i, s in ipairs(segs) do
    out[i] = string.format("%d-%d:%d", s.first, s.last, s.duration)
  end
  return table.concat(out, " ")
end

describe("a storyboard's rules", function()
  it("accepts shots of 1..15 whole seconds with prompts of at most 512 characters", function()
    assert.is_nil(multishot.check { shots = { { prompt = string.rep("é", 512), duration = 1 },
      { prompt = "x", duration = 15, image = "https://e.x/a.png", elements = { "Mia", 123 } } } })
  end)

  it("refuses, naming the shot and the rule, what a provider would refuse", function()
    local cases = {
      { {}, "shots", "a list of shots" },
      { { shots = {} }, "shots", "a list of shots" },
      { { shots = { { prompt = string.rep("é", 513), duration = 3 } } }, "shots[1].prompt", "at most 512" },
      { { shots = { { prompt = "", duration = 3 } } }, "shots[1].prompt", "must not be empty" },
      { { shots = { { duration = 3 } } }, "shots[1].prompt", "is required" },
      { { shots = { { prompt = "a", duration = 3 }, { prompt = "b", duration = 2.5 } } }, "shots[2].duration",
        "whole number of seconds from 1 to 15" },
      { { shots = { { prompt = "a", duration = 16 } } }, "shots[1].duration", "from 1 to 15" },
      { { shots = { { prompt = "a", duration = 0 } } }, "shots[1].duration", "from 1 to 15" },
      { { shots = { { prompt = "a", duration = 3, camera = 1 } } }, "shots[1].camera", "unknown shot field" },
      -- a misspelt field names the one meant, and a wrong type says what it got, as every field does
      { { shots = { { prompt = "a", duration = 3, duraton = 3 } } }, "shots[1].duraton", "did you mean duration?" },
      { { shots = { { prompt = "a", duration = "4" } } }, "shots[1].duration", 'got a string ("4")' },
      { { shots = { { prompt = "a" } } }, "shots[1].duration", "(got none)" },
      { { shots = { { prompt = "a", duration = 16 } } }, "shots[1].duration", "(got 16)" },
      { { shots = { { prompt = "a", duration = 3, elements = { x = 1 } } } }, "shots[1].elements", "a list" },
      -- a hole ended the walk: {a, nil, b} ran as shot a alone, and a shot's elements after one were dropped
      { { shots = { { prompt = "a", duration = 3 }, nil, { prompt = "b", duration = 3 } } }, "shots[2]",
        "is missing (nil), before [3]: a list has no holes" },
      { { shots = { { prompt = "a", duration = 3 }, last = { prompt = "b", duration = 3 } } }, "shots.last",
        "is not an index" },
      { { shots = { { prompt = "a", duration = 3, elements = { "Mia", nil, "Tom" } } } }, "shots[1].elements[2]",
        "is missing (nil)" },
      { { prompt = "x", shots = shots(3) }, "prompt", "is made from the shots" },
      { { multi_prompt = {}, shots = shots(3) }, "multi_prompt", "is made from the shots" },
    }
    for _, c in ipairs(cases) do
      local err = multishot.check(c[1])
      assert.is_not_nil(err, c[2])
      assert.are.equal("validation", err.kind)
      assert.are.equal(c[2], err.field)
      assert.matches(c[3], err.message, 1, true)
    end
  end)
end)

describe("the split into segments", function()
  it("keeps a storyboard that fits one request in one segment", function()
    assert.are.equal("1-3:15", plan(shots(5, 5, 5), true))
    assert.are.equal("1-6:6", plan(shots(1, 1, 1, 1, 1, 1), true))
    assert.are.equal("1-1:3", plan(shots(3), true))
  end)

  it("starts a new segment at 15 s, at 6 shots, and at a shot with its own image", function()
    assert.are.equal("1-3:15 4-4:5", plan(shots(5, 5, 5, 5), true))
    assert.are.equal("1-6:12 7-8:4", plan(shots(2, 2, 2, 2, 2, 2, 2, 2), true))
    local list = shots(4, 4, 4)
    list[2].image = "https://e.x/b.png"
    assert.are.equal("1-1:4 2-3:8", plan(list, true))
  end)

  it("balances a short last segment with shots of the one before", function()
    -- 6 x 2 s fill the first segment; 1 s alone is too short: shot 6 moves over.
    assert.are.equal("1-5:10 6-7:3", plan(shots(2, 2, 2, 2, 2, 2, 1), true))
    assert.are.equal("1-2:10 3-4:6", plan(shots(5, 5, 4, 2), true))
    assert.are.equal("1-2:10 3-4:7", plan(shots(5, 5, 5, 2), true))
  end)

  it("refuses a segment that cannot reach 3 s, naming its first shot", function()
    local segs, err = plan(shots(14, 2), true)
    assert.is_nil(segs)
    assert.are.equal("shots[2].duration", err.field)
    assert.matches("3 to 15 s", err.message)
    local list = shots(5, 1)
    list[2].image = "https://e.x/b.png"
    segs, err = plan(list, true)
    assert.is_nil(segs)
    assert.are.equal("shots[2].duration", err.field)
  end)

  it("makes every shot its own segment without native multi-shot", function()
    assert.are.equal("1-1:5 2-2:10 3-3:5", plan(shots(5, 10, 5), false))
  end)
end)

describe("a segment's request", function()
  local sb = { model = "kling-v3", mode = "pro", aspect_ratio = "9:16", shots = shots(4, 5, 6) }
  sb.shots[1].elements = { "Mia", { element_id = "9" } }
  sb.shots[2].elements = { "Mia", "Tom" }
  sb.shots[1].image = "https://e.x/first.png"

  it("is one multi-shot request for several shots, with the shared fields and the elements once each", function()
    local req = multishot.segment_request(sb, sb.shots, { first = 1, last = 3, duration = 15 }, true)
    assert.are.same({
      model = "kling-v3", mode = "pro", aspect_ratio = "9:16", image = "https://e.x/first.png",
      multi_shot = true, shot_type = "customize", duration = 15,
      multi_prompt = { { prompt = "shot 1", duration = 4 }, { prompt = "shot 2", duration = 5 },
        { prompt = "shot 3", duration = 6 } },
      element_list = { "Mia", { element_id = "9" }, "Tom" },
    }, req)
  end)

  it("is a plain request for a single shot", function()
    local req = multishot.segment_request(sb, sb.shots, { first = 3, last = 3, duration = 6 }, true)
    assert.are.same({ model = "kling-v3", mode = "pro", aspect_ratio = "9:16", prompt = "shot 3", duration = 6 }, req)
  end)

  it("passes the official provider's own checks", function()
    local kling = assert(providers.get("kling"))
    local req = multishot.segment_request(sb, sb.shots, { first = 2, last = 3, duration = 11 }, true)
    req.element_list = { { element_id = "1" } }
    assert.is_nil(kling.validate(req, kling.default_endpoint(req)))
  end)
end)

describe("native multi-shot", function()
  it("is kling-v3 on the official API, and not a provider without multi-shot", function()
    local kling = assert(providers.get("kling"))
    assert.is_true(multishot.native(kling, "kling-v3"))
    assert.is_false(multishot.native(kling, "kling-v1"))
    assert.is_false(multishot.native(assert(providers.get("apimodels")), "kling-v3"))
    assert.is_true(multishot.native(assert(providers.get("evolink")), "kling-v3"))
  end)
end)

-- The storyboard's file is written in its --out directory, which others may write: never
-- through a planted link (at the file or its .part), never under a path with a control byte.
describe("multishot.join and run, where they write", function()
  local dir
  before_each(function()
    dir = files.tempdir()
  end)
  after_each(function()
    files.remove(dir)
  end)

  local function read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return s
  end

  -- The join moved its output with a plain rename: a file that appeared at the output's name
  -- meanwhile was replaced (kling download keeps it: kling.output_path.place, the one home).
  it("never replaces a file at the joined file's name; refuses one there the journal did not write", function()
    local seg = dir .. "/seg.mp4"
    local f = assert(io.open(seg, "wb"))
    f:write("video")
    f:close()
    f = assert(io.open(dir .. "/mine.mp4", "wb"))
    f:write("mine")
    f:close()
    local ok, err = multishot.join({ seg }, dir .. "/mine.mp4")
    assert.is_nil(ok)
    assert.matches("mine.mp4 exists: it is never replaced", err, 1, true)
    assert.are.equal("mine", read(dir .. "/mine.mp4"))
    assert.is_nil(io.open(dir .. "/mine.mp4.part", "rb"))
    -- before anything is sent: a segment or joined file the journal does not show it wrote
    os.execute("mkdir -p " .. dir .. "/sb && printf x > " .. dir .. "/sb/segment-02.mp4")
    assert.matches("sb/segment%-02%.mp4 exists and this storyboard's journal .* never replaced",
      multishot.output_refusal(dir .. "/sb", 2))
    assert.is_nil(multishot.output_refusal(dir .. "/sb", 2, { ["segment-02.mp4"] = true }))
  end)

  it("copies one segment through a new .part, and refuses links planted at the file or its .part", function()
    local seg = dir .. "/seg.mp4"
    local f = assert(io.open(seg, "wb"))
    f:write("video")
    f:close()
    f = assert(io.open(dir .. "/victim", "wb"))
    f:write("keep")
    f:close()
    assert.is_true(multishot.join({ seg }, dir .. "/ok.mp4"))
    assert.are.equal("video", read(dir .. "/ok.mp4"))
    assert(os.execute(("ln -s %s/victim %s/a.mp4.part && ln -s %s/victim %s/b.mp4"):format(dir, dir, dir, dir)))
    for _, name in ipairs { "a.mp4", "b.mp4" } do
      local ok, err = multishot.join({ seg }, dir .. "/" .. name)
      assert.is_nil(ok)
      assert.matches("is a symbolic link", err, 1, true)
    end
    assert.are.equal("keep", read(dir .. "/victim"))
  end)

  it("refuses an out directory holding a control character before anything is sent", function()
    local client = setmetatable({}, { __index = function() error("nothing may be sent") end })
    local r, err = multishot.run(client, { shots = { { prompt = "a", duration = 5 } } }, { out = dir .. "/o\nnl" })
    assert.is_nil(r)
    assert.are.equal("out", err.field)
    assert.matches("holds a control character", err.message, 1, true)
    assert.is_nil(io.open(dir .. "/o\nnl"))
  end)

  -- on_progress = 5 raised once the first segment's create was sent (paid), an unknown option
  -- (`outt`) and native = "yes" were taken without a word
  it("checks its options by name and value before anything is sent", function()
    local client = setmetatable({}, { __index = function() error("nothing may be sent") end })
    local sb = { shots = { { prompt = "a", duration = 5 } } }
    for _, c in ipairs {
      { { on_progress = 5 }, "on_progress", "must be a function" },
      { { timeout = -1 }, "timeout", "must be a positive number of seconds" },
      { { native = "yes" }, "native", "must be true or false" },
      { { continuity = 0 }, "continuity", "must be true or false" },
      { { frames_base_url = {} }, "frames_base_url", "must be a URL string" },
      -- frame names are appended to it: one that is no base URL ran unchecked (a storyboard of one segment)
      { { frames_base_url = "ftp://x" }, "frames_base_url", "must be an http(s) URL" },
      { { frames_base_url = "https://cdn.example/a b" }, "frames_base_url", "must not hold spaces" },
    } do
      c[1].out = dir .. "/never"
      local ok, r, err = pcall(multishot.run, client, sb, c[1])
      assert.is_true(ok, tostring(r))
      assert.is_nil(r)
      assert.are.same({ "validation", c[2] }, { err.kind, err.field })
      assert.matches(c[3], err.message, 1, true)
    end
    assert.has_error(function()
      multishot.run(client, sb, { out = dir .. "/never", outt = "x" })
    end, "kling.multishot.run: unknown option 'outt'; did you mean out?")
    assert.is_nil(io.open(dir .. "/never"))
  end)
end)
