-- kling.file_lock: the one home of "run under a lock, release it, raise again" that
-- kling.multishot.run and kling.element.create each wrote out.
local files = require "support.files"
local core = require "kling.core"
local file_lock = require "kling.file_lock"

describe("kling.file_lock", function()
  local dir
  before_each(function()
    dir = files.tempdir()
  end)
  after_each(function()
    files.remove(dir)
  end)

  local function free(path)
    local l = core.lock_file(path)
    if l then
      l:unlock()
    end
    return l ~= nil
  end

  it("run gives fn's results (all of them, nil included) and releases the lock", function()
    local path = dir .. "/a.lock"
    local lock = assert(core.lock_file(path))
    local a, b, c, n = file_lock.run(lock, function(x, y)
      assert.is_nil(core.lock_file(path)) -- held while fn runs
      return x, nil, y, select("#", x, nil, y)
    end, 1, 2)
    assert.are.same({ 1, nil, 2, 3 }, { a, b, c, n })
    assert.is_true(free(path))
    assert.is_truthy(files.read(path)) -- run leaves the file
  end)

  it("run releases the lock when fn raises, and raises the same value again (Ctrl-C, a bug)", function()
    local path = dir .. "/b.lock"
    local raised = setmetatable({ interrupted = true }, { __tostring = function() return "interrupted!" end })
    local ok, err = pcall(file_lock.run, assert(core.lock_file(path)), function()
      error(raised)
    end)
    assert.is_false(ok)
    assert.are.equal(raised, err)
    assert.is_true(free(path))
    ok, err = pcall(file_lock.run, assert(core.lock_file(path)), function()
      error("a bug", 0)
    end)
    assert.is_false(ok)
    assert.are.equal("a bug", err) -- no position added
  end)

  it("run_removing removes the lock's file however fn ends, before the release", function()
    local path = dir .. "/c.lock"
    assert.are.equal("made", file_lock.run_removing(assert(core.lock_file(path)), path, function()
      return "made"
    end))
    assert.is_nil(files.read(path))
    local ok = pcall(file_lock.run_removing, assert(core.lock_file(path)), path, function()
      error("refused", 0)
    end)
    assert.is_false(ok)
    assert.is_nil(files.read(path))
    assert.is_true(free(path))
  end)
end)
