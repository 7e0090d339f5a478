-- Storyboards against the simulator (whose mp4s are real, so ffmpeg really extracts frames
-- and joins segments): one native multi-shot request when the storyboard fits, segments
-- chained by their last frames when it does not, every shot its own task without native
-- multi-shot, elements by name, a second run that pays nothing, and rules checked before
-- any request.
local sim = require "support.sim"
local multishot = require "kling.multishot"
local element = require "kling.element"
local files = require "support.files"

-- A file's whole text (an error when it is not there).
local function slurp(path)
  return assert(files.read(path), path)
end

local root = os.tmpname()
os.remove(root)
local n = 0
local function fresh_dir()
  n = n + 1
  return root .. "/s" .. n
end

local function shots(...)
  local list = {}
  for i, d in ipairs { ... } do
    list[i] = { prompt = "a fox, shot " .. i, duration = d }
  end
  return list
end

local function probe(path, what)
  local p = io.popen("ffprobe -v error -show_entries " .. what .. " -of csv=p=0 '" .. path .. "'")
  local out = p:read("a")
  p:close()
  return out
end

local function task_of(id)
  return sim.admin("GET", "/_sim/tasks/" .. id)
end

describe("a storyboard against the simulator", function()
  local client

  before_each(function()
    sim.fresh()
    client = sim.client()
  end)

  teardown(function()
    os.execute("rm -rf " .. root)
  end)

  it("is one native multi-shot request when it fits: at most 6 shots, 3..15 s", function()
    local dir = fresh_dir()
    local events = {}
    local r = assert(multishot.run(client, { model = "kling-v3", mode = "std", shots = shots(4, 4, 5) },
      { out = dir, on_progress = function(ev)
        events[#events + 1] = ev
      end }))
    assert.is_true(r.native)
    assert.are.equal(1, #r.segments)
    assert.are.equal(1, sim.stats().creates)
    local t = task_of(r.segments[1].task_id)
    assert.are.equal(13, t.request.duration) -- the shots' sum, in one request
    assert.are.equal("text2video", t.endpoint)
    assert.are.equal("succeeded", events[#events].status)
    assert.matches("^%d", probe(r.file, "format=duration"))
  end)

  it("splits a longer one into segments, each starting from the last frame of the one before", function()
    local dir = fresh_dir()
    local r = assert(multishot.run(client, { model = "kling-v3", mode = "std", shots = shots(5, 5, 5, 4, 4) },
      { out = dir }))
    assert.are.equal(2, #r.segments)
    assert.are.equal(2, sim.stats().creates)
    local second = task_of(r.segments[2].task_id)
    assert.are.equal("image2video", second.endpoint) -- it started from a frame
    assert.are.equal(8, second.request.duration)
    local w, h = probe(r.segments[1].frame, "stream=width,height"):match("(%d+),(%d+)")
    assert.is_true(tonumber(h) >= 300 and tonumber(w) >= 300, "frame " .. w .. "x" .. h)
    local one = tonumber(probe(r.segments[1].path, "format=duration"))
    local joined = tonumber(probe(r.file, "format=duration"))
    assert.is_true(math.abs(joined - 2 * one) < 0.2, joined .. " s joined from two of " .. one .. " s")
    -- Again into the same directory: nothing is created, the file is made again.
    os.remove(r.file)
    local again = assert(multishot.run(client, { model = "kling-v3", mode = "std", shots = shots(5, 5, 5, 4, 4) },
      { out = dir }))
    assert.is_true(again.segments[1].skipped and again.segments[2].skipped)
    assert.are.equal(2, sim.stats().creates)
    assert(io.open(again.file)):close()
    -- A segment whose file is gone is fetched again from its task, not made again.
    os.remove(r.segments[2].path)
    assert(multishot.run(client, { model = "kling-v3", mode = "std", shots = shots(5, 5, 5, 4, 4) }, { out = dir }))
    assert.are.equal(2, sim.stats().creates)
  end)

  -- Another storyboard into a directory with a journal replaced the first one's segments (the
  -- journal said they were "its" files): refused by name, nothing sent, nothing replaced.
  it("refuses another storyboard in a directory that holds one's journal: nothing sent, nothing replaced", function()
    local dir = fresh_dir()
    local first = { model = "kling-v3", mode = "std", shots = shots(5, 5, 5, 4, 4) }
    local r = assert(multishot.run(client, first, { out = dir }))
    local kept = { slurp(r.segments[1].path), slurp(r.segments[2].path), slurp(r.file) }
    local function journal_lines()
      return #slurp(dir .. "/storyboard.jsonl"):gsub("[^\n]", "")
    end
    local lines, requests = journal_lines(), sim.stats().requests
    local other = { model = "kling-v3", mode = "std", shots = shots(5, 5, 5, 4, 4) }
    other.shots[1].prompt = "a wolf instead"
    local function refused(sb, opts)
      local again, err = multishot.run(client, sb, opts or { out = dir })
      assert.is_nil(again)
      assert.are.equal("out", err.field)
      assert.matches(dir .. " holds another storyboard's run: its journal " .. dir .. "/storyboard.jsonl ",
        err.message, 1, true)
      assert.matches("give another --out", err.message, 1, true)
      assert.is_nil(err.sent)
      return err
    end
    refused(other)
    refused(first, { out = dir, native = false }) -- the same shots split otherwise: other segments
    assert.are.equal(requests, sim.stats().requests)
    assert.are.same(kept, { slurp(r.segments[1].path), slurp(r.segments[2].path), slurp(r.file) })
    assert.are.equal(lines, journal_lines())
    -- A journal written before it named its storyboard: told apart by its segments' keys.
    local f = assert(io.open(dir .. "/storyboard.jsonl", "rb"))
    local text = f:read("a"):gsub('[^\n]*"t":"storyboard"[^\n]*\n', "")
    f:close()
    f = assert(io.open(dir .. "/storyboard.jsonl", "wb"))
    f:write(text)
    f:close()
    assert.matches("records segments that are not this storyboard's", refused(other).message, 1, true)
    local same = assert(multishot.run(client, first, { out = dir }))
    assert.is_true(same.segments[1].skipped and same.segments[2].skipped)
    assert.are.equal(2, sim.stats().creates)
  end)

  -- Two `kling storyboard` runs of one DIR both ran: the second created the segment the first
  -- had in flight, and both paid for it.
  it("refuses a directory another live run holds, before anything is sent (kling storyboard: exit 5)", function()
    local core = require "kling.core"
    local dir = fresh_dir()
    local sb = { model = "kling-v3", mode = "std", shots = shots(5) }
    assert(core.mkdir_p(dir))
    local held = assert(core.lock_file(dir .. "/storyboard.lock")) -- as a live run holds it
    local requests = sim.stats().requests
    local r, err = multishot.run(client, sb, { out = dir })
    assert.is_nil(r)
    assert.are.same({ "validation", "out", true }, { err.kind, err.field, err.locked })
    assert.matches("^another process %(pid %d+%) is running the storyboard in " .. dir:gsub("%p", "%%%0"), err.message)
    local file = dir .. ".json"
    local f = assert(io.open(file, "w"))
    f:write(require("kling.json").encode(sb))
    f:close()
    local i = sim.info()
    local cmd = string.format("KLING_PROVIDER=kling KLING_BASE_URL='%s' KLING_ACCESS_KEY='%s' KLING_SECRET_KEY='%s' "
      .. "lua5.4 bin/kling storyboard '%s' --out '%s' 2>&1", i.http, i.access_key, i.secret_key, file, dir)
    local p = io.popen(cmd)
    local said = p:read("a")
    local _, _, code = p:close()
    assert.are.equal(5, code, said)
    assert.matches("--out: another process", said, 1, true)
    assert.are.equal(requests, sim.stats().requests)
    held:unlock()
    assert(multishot.run(client, sb, { out = dir }))
    assert.are.equal(1, sim.stats().creates)
  end)

  -- A segment's create whose answer was lost (a connection reset after sending) fell through
  -- to a generic exit 1, saying neither that it may have been made and paid nor that the same
  -- command again looks it up. Exit 4 says both, as kling element create's; the rerun looks it
  -- up by its external id and creates nothing more.
  it("a segment's create whose answer was lost exits 4 (uncertain); the same command again looks it up", function()
    local dir = fresh_dir()
    local file = dir .. ".json"
    local f = assert(io.open(file, "w"))
    f:write(require("kling.json").encode { model = "kling-v3", mode = "std", shots = shots(5) })
    f:close()
    local i = sim.info()
    local cmd = string.format("KLING_PROVIDER=kling KLING_BASE_URL='%s' KLING_ACCESS_KEY='%s' KLING_SECRET_KEY='%s' "
      .. "lua5.4 bin/kling storyboard '%s' --out '%s' 2>&1", i.http, i.access_key, i.secret_key, file, dir)
    local function run()
      local p = io.popen(cmd)
      local said = p:read("a")
      local _, _, code = p:close()
      return code, said
    end
    -- The create is made, its answer lost; its lookups by external id do not find it (yet).
    sim.faults { { kind = "reset", method = "POST", phase = "after", count = 1 },
      { kind = "not_found", method = "GET", path = "^/v1/videos/", count = 20 } }
    local code, said = run()
    assert.are.equal(4, code, said)
    assert.matches("uncertain: the segment may have been created, and paid; run the same command again to look it"
      .. " up by its external id ks-", said, 1, true)
    assert.are.equal(1, sim.stats().creates)
    sim.clear_faults()
    code, said = run()
    assert.are.equal(0, code, said)
    assert.are.equal(1, sim.stats().creates) -- looked up, not created again
    assert.is_true(#slurp(dir .. "/storyboard.mp4") > 0)
  end)

  -- A run killed between a segment's move into place and its "done" line refused that file on
  -- the next run ("the journal has no record of writing it") until the user moved it away.
  it("a segment moved into place just before a kill is the storyboard's on resume; a copy there is not", function()
    local dir = fresh_dir()
    local sb = { model = "kling-v3", mode = "std", shots = shots(5, 5, 5, 4, 4) }
    local r = assert(multishot.run(client, sb, { out = dir }))
    local journal = slurp(dir .. "/storyboard.jsonl")
    -- the journal and the directory as a kill right after segment 2's move left them
    local function cut()
      local keep, cut_key = {}, nil
      for line in journal:gmatch("[^\n]+") do
        if line:find('"t":"placing"', 1, true) and line:find("segment-02.mp4", 1, true) then
          cut_key = line:match('"key":"(%x+)"')
        end
      end
      assert.is_string(cut_key, "a placing record for segment 2")
      for line in journal:gmatch("[^\n]+") do
        local done2 = line:find('"t":"done"', 1, true) and line:find(cut_key, 1, true)
        if not (done2 or line:find('"t":"joined"', 1, true)) then
          keep[#keep + 1] = line
        end
      end
      local f = assert(io.open(dir .. "/storyboard.jsonl", "wb"))
      f:write(table.concat(keep, "\n"), "\n")
      f:close()
      os.remove(r.file)
      os.remove(r.segments[2].frame or "")
    end
    cut()
    local video = slurp(r.segments[2].path)
    local gets = sim.stats().by_route["GET /media/{file}"]
    local again = assert(multishot.run(client, sb, { out = dir }))
    assert.are.equal(2, sim.stats().creates)
    assert.are.equal(gets, sim.stats().by_route["GET /media/{file}"], "kept, not fetched again")
    assert.are.equal(video, slurp(again.segments[2].path))
    assert(io.open(again.file)):close()
    -- the same name holding another file (an edited copy) is not the storyboard's
    cut()
    os.remove(r.segments[2].path)
    local f = assert(io.open(r.segments[2].path, "wb"))
    f:write(video .. "edited")
    f:close()
    local none, err = multishot.run(client, sb, { out = dir })
    assert.is_nil(none)
    assert.are.equal("out", err.field)
    assert.matches("segment-02.mp4 exists and this storyboard's journal (storyboard.jsonl) has no record of writing it",
      err.message, 1, true)
    assert.are.equal(video .. "edited", slurp(r.segments[2].path))
    assert.are.equal(2, sim.stats().creates)
  end)

  it("a joined file moved into place just before a kill is the storyboard's on resume", function()
    local dir = fresh_dir()
    local sb = { model = "kling-v3", mode = "std", shots = shots(5, 5, 5, 4, 4) }
    local r = assert(multishot.run(client, sb, { out = dir }))
    local f = assert(io.open(dir .. "/storyboard.jsonl", "rb"))
    local text = f:read("a")
    f:close()
    local recorded = false -- the join recorded before its move
    for line in text:gmatch("[^\n]+") do
      recorded = recorded or line:find('"t":"placing"', 1, true) and line:find("storyboard.mp4", 1, true) ~= nil
    end
    assert.is_true(recorded)
    f = assert(io.open(dir .. "/storyboard.jsonl", "wb"))
    f:write((text:gsub('[^\n]*"t":"joined"[^\n]*\n', ""))) -- as a kill right after the move left it
    f:close()
    local again = assert(multishot.run(client, sb, { out = dir }))
    assert.are.equal(r.file, again.file)
    assert.is_true(again.segments[1].skipped and again.segments[2].skipped)
    assert.are.equal(2, sim.stats().creates)
    f = assert(io.open(dir .. "/storyboard.jsonl", "rb"))
    assert.matches('"t":"joined"', f:read("a"))
    f:close()
  end)

  it("makes every shot a task of its own without native multi-shot, and starts a shot from its own image", function()
    local dir = fresh_dir()
    local list = shots(5, 5, 5)
    list[3].image = "https://example.com/own-start.png"
    local r = assert(multishot.run(client, { model = "kling-v3", mode = "std", shots = list },
      { out = dir, native = false }))
    assert.are.equal(3, #r.segments)
    assert.are.equal(3, sim.stats().creates)
    assert.is_string(r.segments[1].frame)
    assert.is_nil(r.segments[2].frame) -- shot 3 brings its own first frame
    assert.are.equal("image2video", task_of(r.segments[3].task_id).endpoint)
  end)

  it("resolves elements by name from the element cache", function()
    local dir = fresh_dir()
    local cache = dir .. "-elements.json"
    local e = assert(element.create(client, { name = "Fox", description = "a red fox with a white tail tip",
      images = { "https://example.com/fox.png", "https://example.com/fox-side.png" } }, { cache = cache }))
    local list = shots(5, 5)
    list[2].elements = { "Fox" }
    local r = assert(multishot.run(client, { model = "kling-v3", mode = "std", shots = list },
      { out = dir, elements = cache }))
    assert.are.equal(1, #r.segments)
    assert.is_string(e.id)
    local _, err = multishot.run(client, { model = "kling-v3", shots = { { prompt = "x", duration = 5,
      elements = { "Nobody" } } } }, { out = fresh_dir(), elements = cache })
    assert.are.equal("element_list[1]", err.field)
  end)

  it("refuses what breaks a rule before sending anything", function()
    local before = sim.stats().requests
    -- a shot's own image refused was named "image", a field the storyboard does not have
    local sb = { model = "kling-v3", shots = shots(5, 5, 5, 4) }
    sb.shots[4].image = root
    local _, err = multishot.run(client, sb, { out = fresh_dir() })
    assert.are.equal("shots[4].image", err.field)
    assert.matches("^segment 2 %(shots 4..4%): the local file .* is not a regular file %(it is a directory%)",
      err.message)
    -- an element cache that is no path ran, the option unused until a shot named an element
    for _, bad in ipairs { 5, "", true } do
      local none, berr = multishot.run(client, { model = "kling-v3", shots = shots(5) },
        { out = fresh_dir(), elements = bad })
      assert.is_nil(none)
      assert.are.same({ "validation", "elements" }, { berr.kind, berr.field })
    end
    _, err = multishot.run(client, { model = "kling-v3", shots = { { prompt = string.rep("x", 513),
      duration = 5 } } }, { out = fresh_dir() })
    assert.are.equal("shots[1].prompt", err.field)
    _, err = multishot.run(client, { model = "kling-v3", shots = shots(14, 2) }, { out = fresh_dir() })
    assert.are.equal("shots[2].duration", err.field)
    _, err = multishot.run(client, { model = "kling-v1", shots = shots(5, 7) }, { out = fresh_dir() })
    assert.are.equal("duration", err.field) -- kling-v1 has no multi-shot: shots alone, 5 or 10 s
    assert.matches("^segment 2 %(shots 2..2%)", err.message) -- found before segment 1 was sent
    -- A provider that takes image URLs only, without frames_base_url: the option is named
    -- (it said only "must be a public http(s) URL of the image").
    local i = sim.info()
    local evolink = sim.client { provider = "evolink", base_url = i.providers.evolink, api_key = i.api_key }
    _, err = multishot.run(evolink, { model = "kling-v3", mode = "std", shots = shots(5, 5, 5, 4) },
      { out = fresh_dir() })
    assert.are.equal("image", err.field)
    assert.matches("^segment 2 %(shots 4..4%)", err.message)
    assert.matches("give frames_base_url / --frames-base-url", err.message, 1, true)
    assert.are.equal(before, sim.stats().requests)
  end)

  -- The segment was created and paid for, then its download refused the link.
  it("refuses a link planted at a segment's or the joined file's path before the first create", function()
    local victim = root .. "/victim"
    for _, name in ipairs { "segment-01.mp4", "segment-02.mp4.part", "frame-01.png", "storyboard.mp4" } do
      local dir = fresh_dir()
      os.execute("mkdir -p '" .. dir .. "' && ln -s '" .. victim .. "' '" .. dir .. "/" .. name .. "'")
      local r, err = multishot.run(client, { model = "kling-v3", mode = "std", shots = shots(5, 5, 5, 4, 4) },
        { out = dir })
      assert.is_nil(r, name)
      assert.are.equal("out", err.field)
      assert.matches(dir .. "/" .. name .. " is a symbolic link", err.message, 1, true)
      assert.is_nil(err.sent)
    end
    assert.are.equal(0, sim.stats().requests)
    assert.is_nil(io.open(victim))
  end)

  it("returns a journal it cannot write: --out refused before anything is sent, later a sent error", function()
    local afile = fresh_dir()
    os.execute("mkdir -p " .. root)
    assert(io.open(afile, "w")):close()
    local r, err = multishot.run(client, { model = "kling-v3", shots = shots(5) }, { out = afile })
    assert.is_nil(r)
    assert.are.equal("out", err.field)
    assert.matches("it exists and is not a directory", err.message, 1, true)
    assert.is_nil(err.sent)
    assert.are.equal(0, sim.stats().creates)
    -- The journal made unwritable while the segment runs (a directory in its place).
    local dir = fresh_dir()
    r, err = multishot.run(client, { model = "kling-v3", shots = shots(5) }, { out = dir, on_progress = function()
      os.remove(dir .. "/storyboard.jsonl")
      os.execute("mkdir -p '" .. dir .. "/storyboard.jsonl'")
    end })
    assert.is_nil(r)
    assert.are.equal("validation", err.kind)
    assert.are.equal("out", err.field)
    assert.matches("storyboard.jsonl", err.message, 1, true)
    assert.is_true(err.sent) -- a create went out: not a usage error (exit 1 in the CLI)
  end)
end)
