-- The examples, each run as its users would run it (a separate lua5.4 process, from another
-- directory, with no LUA_PATH or LUA_CPATH: the script finds lua/ and build/ beside it) against
-- the simulator over HTTPS: the batch, the storyboard and the element workflow finish and leave
-- their files where they say. The README's code blocks marked `<!-- runnable -->` run the same
-- way from a directory laid out as an install (kling/*.lua and kling/core.so), the user's view
-- after `luarocks make`.
local sim = require "support.sim"
local json = require "kling.json"

local root = os.tmpname()
os.remove(root)
local checkout = assert(io.popen("pwd")):read("l")

local q = require("support.shell").q

-- Runs a shell command with LUA_PATH and LUA_CPATH removed from its environment.
local function sh(cmd)
  local p = io.popen("unset LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4 LUA_INIT; " .. cmd
    .. " 2>&1; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  local status = tonumber(out:match("exit=(%d+)%s*$"))
  return status, out
end

local function sim_info_path()
  local path = os.getenv("KLING_SIM_INFO") or "build/sim/sim.json"
  return path:sub(1, 1) == "/" and path or checkout .. "/" .. path
end

-- Runs examples/NAME.lua from / (so that nothing is found through the working directory).
local function example(name, dir)
  return sh(string.format("cd / && KLING_SIM_INFO=%s lua5.4 %s %s", q(sim_info_path()),
    q(checkout .. "/examples/" .. name .. ".lua"), q(dir)))
end

-- The README's runnable blocks: a ```lua fence right after a line `<!-- runnable -->`.
local function readme_blocks()
  local f = assert(io.open("README.md"))
  local text = f:read("a")
  f:close()
  local blocks = {}
  for code in text:gmatch("<!%-%- runnable %-%->%s*\n```lua\n(.-)\n```") do
    blocks[#blocks + 1] = code
  end
  return blocks
end

-- What a block's `print(...)  --> a  b  c` comments say it prints: the words before any
-- explanation (" (...)", ": ...", ", then ..."); a word ending in "..." is a prefix.
local function promised(code)
  local list = {}
  for line in (code .. "\n"):gmatch("(.-)\n") do
    local said = line:match("^%s*print%(.-%)%s*%-%->%s*(.-)%s*$")
    if said then
      said = said:gsub("%s%(.*$", ""):gsub(":%s.*$", ""):gsub(",%s*then%s.*$", "")
      local words = {}
      for w in said:gmatch("%S+") do
        words[#words + 1] = w
      end
      list[#list + 1] = { text = line, words = words }
    end
  end
  return list
end

local function line_says(out_line, words)
  local got = {}
  for w in out_line:gmatch("%S+") do
    got[#got + 1] = w
  end
  if #got ~= #words then
    return false
  end
  for i, w in ipairs(words) do
    local prefix = w:match("^(.-)%.%.%.$")
    if not (got[i] == w or (prefix and got[i]:sub(1, #prefix) == prefix)) then
      return false
    end
  end
  return true
end

-- nil when the output has, in order, a line for each promise; else the first one missing.
local function unkept(out, promises)
  local lines = {}
  for l in (out .. "\n"):gmatch("(.-)\n") do
    lines[#lines + 1] = l
  end
  local at = 1
  for _, p in ipairs(promises) do
    local found
    for i = at, #lines do
      if line_says(lines[i], p.words) then
        found = i
        break
      end
    end
    if not found then
      return p.text
    end
    at = found + 1
  end
  return nil
end

local size = require("support.files").size

describe("the examples against the simulator", function()
  before_each(sim.fresh)

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

  it("examples/generate.lua submits, waits and downloads one video (issue 14.1: into an OUT_DIR it makes)", function()
    local dir = root .. "/generate/not-made-yet" -- it failed after paying for the video: the dir did not exist
    local status, out = example("generate", dir)
    assert.are.equal(0, status, out)
    local path = out:match("video file: (%S+)")
    assert.is_truthy(path, out)
    assert.is_true(size(path) > 0)
    assert.are.equal(1, sim.stats().creates)
  end)

  it("issue 14: every example in examples/ has a test here and runs without LUA_PATH/LUA_CPATH", function()
    local tested = { batch = true, storyboard = true, element = true, generate = true }
    local p = assert(io.popen("ls examples/*.lua"))
    local n = 0
    for line in p:lines() do
      local name = line:match("examples/(.-)%.lua$")
      assert.is_true(tested[name] == true, "examples/" .. name .. ".lua has no test in examples_spec.lua")
      n = n + 1
    end
    p:close()
    assert.is_true(n >= 4)
    -- Without the bootstrap at its top an example would not even load from /:
    local status, out = sh("cd / && lua5.4 -e 'require \"kling\"'")
    assert.are_not.equal(0, status, "kling is installed system-wide: this test cannot tell whether the "
      .. "examples find their checkout\n" .. out)
  end)

  it("issue 14: bin/kling answers from another directory with no LUA_PATH/LUA_CPATH", function()
    local status, out = sh("cd / && lua5.4 " .. q(checkout .. "/bin/kling")
      .. " estimate --model kling-v2-6 --mode pro --duration 5 --format json")
    assert.are.equal(0, status, out)
    assert.matches('"amount"', out)
  end)

  it("issue 14: an installed kling wins over the checkout beside the script", function()
    -- A stand-in install (LUA_PATH plays the system tree here): its kling says where it is from.
    local dir = root .. "/installed"
    assert.is_true(os.execute("mkdir -p " .. q(dir .. "/kling")))
    local f = assert(io.open(dir .. "/kling/init.lua", "w"))
    f:write('io.write("kling from the installed tree\\n") os.exit(0)\n')
    f:close()
    f = assert(io.open(dir .. "/kling/core.so", "w"))
    f:close()
    assert.is_true(os.execute("mkdir -p " .. q(dir .. "/kling/cli")))
    f = assert(io.open(dir .. "/kling/cli/init.lua", "w")) -- bin/kling's kling.cli
    f:write('return { main = function() io.write("kling from the installed tree\\n") return 0 end }\n')
    f:close()
    local env = string.format("LUA_PATH=%s LUA_CPATH=%s", q(dir .. "/?.lua;" .. dir .. "/?/init.lua"),
      q(dir .. "/?.so"))
    for _, run in ipairs { "examples/generate.lua", "examples/storyboard.lua", "bin/kling estimate" } do
      local script, rest = run:match("^(%S+)(.*)$")
      local status, out = sh("cd / && " .. env .. " lua5.4 " .. q(checkout .. "/" .. script) .. rest)
      assert.are.equal(0, status, out)
      assert.matches("kling from the installed tree", out, run)
    end
  end)

  it("issue 14: every README block marked runnable runs against the simulator and prints what it says", function()
    local blocks = readme_blocks()
    assert.is_true(#blocks >= 3, "README.md has " .. #blocks .. " runnable blocks")
    -- An install's layout (what luarocks make puts in LUADIR and LIBDIR), found through Lua's
    -- default ./?.lua and ./?.so entries: no environment variable names it.
    local dir = root .. "/readme"
    local build = os.getenv("KLING_BUILD_DIR") or (checkout .. "/build")
    assert.is_true(os.execute("mkdir -p " .. q(dir) .. " && cp -R " .. q(checkout .. "/lua/kling") .. " "
      .. q(dir .. "/kling") .. " && cp " .. q(build .. "/kling/core.so") .. " " .. q(dir .. "/kling/core.so")))
    local info = sim.info()
    local env = string.format("KLING_BASE_URL=%s KLING_CA_FILE=%s KLING_ACCESS_KEY=%s KLING_SECRET_KEY=%s",
      q(info.https), q(info.ca_file), q(info.access_key), q(info.secret_key))
    for i, code in ipairs(blocks) do
      local file = dir .. "/block" .. i .. ".lua"
      local f = assert(io.open(file, "w"))
      f:write(code, "\n")
      f:close()
      local status, out = sh("cd " .. q(dir) .. " && " .. env .. " lua5.4 " .. q(file))
      assert.are.equal(0, status, "README runnable block " .. i .. ":\n" .. code .. "\n--- output:\n" .. out)
      local missing = unkept(out, promised(code))
      assert.is_nil(missing, "README runnable block " .. i .. " does not print what its comment says: "
        .. tostring(missing) .. "\n--- output:\n" .. out)
    end
  end)
end)
