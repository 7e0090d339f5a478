-- The examples, each run as its users would run it (a separate lua5.4 process) against the
-- simulator over HTTPS: the batch, the storyboard and the element workflow finish and leave
-- their files where they say.
local sim = require "support.sim"
local json = require "kling.json"

local root = os.tmpname()
os.remove(root)

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("exit=(%d+)%s*$"))
  return status, out
end

local function example(name, dir)
  return sh(string.format("KLING_SIM_INFO='%s' lua5.4 examples/%s.lua '%s'", os.getenv("KLING_SIM_INFO")
    or "build/sim/sim.json", name, dir))
end

local function size(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:seek("end")
  f:close()
  return s
end

describe("the examples against the simulator", function()
  before_each(function()
    sim.clear_faults()
    sim.reset()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)

  teardown(function()
    os.execute("rm -rf " .. root)
  end)

  it("examples/batch.lua runs a manifest and writes summary.json and report.html", function()
    local dir = root .. "/batch"
    local status, out = example("batch", dir)
    assert.are.equal(0, status, out)
    assert.matches("succeeded%s+5", out)
    assert.matches("report:  " .. dir:gsub("%p", "%%%0") .. "/report.html", out)
    local f = assert(io.open(dir .. "/summary.json"))
    local summary = assert(json.decode(f:read("a")))
    f:close()
    assert.are.equal(5, summary.succeeded)
    assert.are.equal(1, summary.failed) -- the row the simulator refuses on purpose
    for _, o in ipairs(summary.outputs) do
      assert.are.equal(o.bytes, size(dir .. "/" .. o.path))
    end
    assert.are.equal(6, sim.stats().creates)
    -- Run again: everything has ended, nothing is sent.
    status, out = example("batch", dir)
    assert.are.equal(0, status, out)
    assert.are.equal(6, sim.stats().creates)
  end)

  it("examples/storyboard.lua makes one video of two segments chained by a frame", function()
    local dir = root .. "/storyboard"
    local status, out = example("storyboard", dir)
    assert.are.equal(0, status, out)
    assert.matches("segment 1: shots 1..3", out)
    assert.matches("segment 2: shots 4..5", out)
    assert.is_true(size(dir .. "/storyboard.mp4") > 0)
    assert.is_true(size(dir .. "/frame-01.png") > 0)
    assert.are.equal(2, sim.stats().creates)
  end)

  it("examples/element.lua makes an element once and uses it by name", function()
    local dir = root .. "/element"
    local status, out = example("element", dir)
    assert.are.equal(0, status, out)
    assert.matches("element Mia: id %d+ %(created%)", out)
    assert.matches("from the cache, nothing paid", out)
    assert.is_true(size(dir .. "/mia.mp4") > 0)
    assert.are.equal(2, sim.stats().creates) -- the element and the video
  end)
end)
