-- Durable appends for journals: whole lines land in order, errors come back as nil, message.
local core = require "kling.core"

describe("core.append_sync", function()
  it("appends and fsyncs, creating the file", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local path = dir .. "/journal.jsonl"
    for i = 1, 100 do
      assert.is_true(core.append_sync(path, '{"n":' .. i .. "}\n"))
    end
    local n = 0
    for line in io.lines(path) do
      n = n + 1
      assert.are.equal('{"n":' .. n .. "}", line)
    end
    assert.are.equal(100, n)
    assert.is_true(core.fsync_path(path, true))
    os.remove(path)
    os.remove(dir)
  end)

  it("reports failures instead of raising", function()
    local ok, err = core.append_sync("/nonexistent-dir/x/journal", "x\n")
    assert.is_nil(ok)
    assert.matches("cannot open /nonexistent%-dir/x/journal", err)
    ok, err = core.fsync_path("/nonexistent-file")
    assert.is_nil(ok)
    assert.matches("No such file", err)
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.append_sync(nil, "x") end)
    assert.has_error(function() core.append_sync("/tmp/x", {}) end)
  end)
end)

describe("core.lock_file", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
  end)
  after_each(function()
    os.execute("rm -rf " .. dir)
  end)

  -- What another process gets when it tries the lock: "busy <pid>" or "locked".
  local function other_process(path)
    local code = ("local l, err, busy, pid = require('kling.core').lock_file(%q, true) "
      .. "io.write(l and 'locked' or ('busy ' .. tostring(busy) .. ' ' .. tostring(pid) .. ' ' .. err))"):format(path)
    local p = assert(io.popen(("LUA_CPATH=%q lua5.4 -e %q"):format(package.cpath, code)))
    local out = p:read("a")
    p:close()
    return out
  end

  local function my_pid()
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("a"):match("^(%d+)")
    f:close()
    return tonumber(pid)
  end

  it("issue 12.2: a process lock is held twice by one process (a reload's new Lua VM), refused to another "
    .. "process with the holder's pid, and released with the process's last lock object", function()
    local path = dir .. "/journal.lock"
    local first = assert(core.lock_file(path, true))
    -- the same file by another name: recognised by its inode, not its spelling
    local second = assert(core.lock_file(dir .. "/./journal.lock", true))
    local out = other_process(path)
    assert.matches("^busy true " .. my_pid() .. " cannot lock " .. path:gsub("%p", "%%%0"), out)
    -- a daemonized nginx master names itself after forking (it took the lock under its parent's pid)
    assert.is_true(second:write_pid(4194301))
    assert.matches("^busy true 4194301 cannot lock", other_process(path))
    first:unlock()
    assert.matches("^busy true ", other_process(path), "released while another lock object keeps it")
    second:unlock()
    assert.are.equal("locked", other_process(path))
    -- taken again after the release: a fresh lock, not a stale table entry
    local again = assert(core.lock_file(path, true))
    assert.matches("^busy true ", other_process(path))
    again:unlock()
  end)

  it("issue 12.2: a lock without the process flag stays one per open file (a batch directory: one run)", function()
    local path = dir .. "/.lock"
    local first = assert(core.lock_file(path))
    local l, err, busy, pid = core.lock_file(path)
    assert.is_nil(l)
    assert.matches("cannot lock", err)
    assert.is_true(busy)
    assert.are.equal(my_pid(), pid)
    first:unlock()
    assert.are.equal("locked", other_process(path))
  end)

  it("issue 12.2: a file that cannot be opened is an error, not busy", function()
    local l, err, busy = core.lock_file(dir .. "/missing/journal.lock", true)
    assert.is_nil(l)
    assert.matches("cannot open .*missing/journal.lock", err)
    assert.is_falsy(busy)
  end)
end)

describe("core.mkdir_p", function()
  it("makes a directory and its parents without a shell; says why it cannot", function()
    local root = os.tmpname()
    os.remove(root)
    assert.is_true(core.mkdir_p(root .. "/a//b c/'$(touch x)'/"))
    assert.is_true(core.mkdir_p(root .. "/a//b c/'$(touch x)'")) -- already there: fine
    local f = io.open(root .. "/a/b c/'$(touch x)'/probe", "w")
    assert.is_not_nil(f, "the directory was made as named, quotes and all")
    f:close()
    assert.is_nil(io.open("x")) -- nothing ran
    f = assert(io.open(root .. "/file", "w"))
    f:close()
    local ok, err = core.mkdir_p(root .. "/file")
    assert.is_nil(ok)
    assert.are.equal("cannot create directory " .. root .. "/file: it exists and is not a directory", err)
    ok, err = core.mkdir_p(root .. "/file/sub")
    assert.is_nil(ok)
    assert.matches("^cannot create directory " .. root:gsub("%p", "%%%0") .. "/file", err)
    ok, err = core.mkdir_p("/proc/kling-no-such-dir/x")
    assert.is_nil(ok)
    assert.matches("^cannot create directory /proc/kling%-no%-such%-dir", err)
    assert.is_nil((core.mkdir_p("")))
    os.execute("rm -rf '" .. root .. "'")
  end)
end)
