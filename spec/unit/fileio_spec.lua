-- Durable appends for journals: whole lines land in order, errors come back as nil, message.
local files = require "support.files"
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
    dir = files.tempdir()
  end)
  after_each(function()
    files.remove(dir)
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

  -- kling.element removes its create's lock file before it lets the lock go: a process that had
  -- opened the old file before the removal and locked it after the release held a lock on a file
  -- no longer there, beside a process that made the file again and locked that (both counted at
  -- once below: the count lost updates, or read a half-written file).
  it("excludes as before when each holder removes the file before its release", function()
    local path, count = dir .. "/x.lock", dir .. "/count"
    files.write(count, "0")
    local code = ([[
      local core, n = require("kling.core"), 0
      while n < 500 do
        local l = core.lock_file(%q)
        if l then
          n = n + 1
          local f = io.open(%q, "r")
          local c = tonumber(f:read("a"))
          f:close()
          f = io.open(%q, "w")
          f:write(tostring(c + 1))
          f:close()
          os.remove(%q)
          l:unlock()
        end
      end]]):format(path, count, count, path)
    local runs = {}
    for i = 1, 4 do
      runs[i] = assert(io.popen(("LUA_CPATH=%q lua5.4 -e %q 2>&1"):format(package.cpath, code)))
    end
    for i = 1, 4 do
      assert.are.equal("", runs[i]:read("a"))
      runs[i]:close()
    end
    assert.are.equal("2000", files.read(count))
  end)

  it("is not held by a process that ended without releasing it (its pid still in the file)", function()
    local path = dir .. "/dead.lock"
    local code = ("assert(require('kling.core').lock_file(%q)) os.exit(0, false)"):format(path)
    assert(os.execute(("LUA_CPATH=%q lua5.4 -e %q"):format(package.cpath, code)))
    assert.matches("^%d+\n$", files.read(path)) -- the dead holder's pid
    local l = assert(core.lock_file(path))
    assert.are.equal(my_pid() .. "\n", files.read(path))
    l:unlock()
  end)

  it("issue 12.2: a file that cannot be opened is an error, not busy", function()
    local l, err, busy = core.lock_file(dir .. "/missing/journal.lock", true)
    assert.is_nil(l)
    assert.matches("cannot open .*missing/journal.lock", err)
    assert.is_falsy(busy)
  end)
end)

-- Downloads may run as root into directories others can write: an output path is refused when
-- it holds a control byte or names anything but a regular file (a planted link, a FIFO, ...).
describe("core.output_target", function()
  local dir
  before_each(function()
    dir = files.tempdir()
  end)
  after_each(function()
    files.remove(dir)
  end)

  it("takes an absent path, and a regular file with its size", function()
    assert.same({ true }, { core.output_target(dir .. "/new.mp4") })
    local f = assert(io.open(dir .. "/old.mp4", "wb"))
    f:write("abc")
    f:close()
    local ok, size, id = core.output_target(dir .. "/old.mp4")
    assert.same({ true, 3 }, { ok, size })
    f = assert(io.open(dir .. "/old.mp4", "rb"))
    assert.are.equal(core.file_identity(f), id)
    f:close()
  end)

  it("refuses a symbolic link (even to a regular file), a FIFO and a directory, naming the path", function()
    assert(io.open(dir .. "/victim", "wb")):close()
    assert(os.execute(("ln -s %s/victim %s/link && mkfifo %s/fifo"):format(dir, dir, dir)))
    for name, kind in pairs { link = "a symbolic link", fifo = "a FIFO (named pipe)", [""] = "a directory" } do
      local path = name == "" and dir or dir .. "/" .. name
      local ok, err, what = core.output_target(path)
      assert.is_nil(ok)
      assert.are.equal(kind, what)
      assert.are.equal(path .. " is " .. kind .. ": an output is written only to a new or a regular file", err)
    end
  end)

  it("refuses NUL, CR, LF, DEL and every other control byte, naming the byte", function()
    for _, path in ipairs { dir .. "/a\0b.mp4", "a\r\nb.mp4", "o\nnl", "x\127", "t\tab" } do
      local ok, err, what = core.output_target(path)
      assert.is_nil(ok, path)
      assert.are.equal("control", what)
      assert.matches("holds a control character %(byte 0x%x%x at offset %d+%)", err)
    end
    local _, err = core.output_target("ab\0c")
    assert.matches("byte 0x00 at offset 2", err, 1, true)
    assert.same({ true }, { core.output_target(dir .. "/caf\195\169 ok.mp4") }) -- UTF-8 is not control
  end)
end)

-- kling.resty.http's output: made by C, reopened by Lua's io, and the two compared.
describe("core.create_output and core.file_identity", function()
  local dir
  before_each(function()
    dir = files.tempdir()
  end)
  after_each(function()
    files.remove(dir)
  end)

  it("creates a new file whose identity the reopened handle shows", function()
    local made = assert(core.create_output(dir .. "/out.part"))
    local f = assert(io.open(dir .. "/out.part", "r+b"))
    assert.are.equal(made, core.file_identity(f))
    f:close()
    assert.is_nil(core.file_identity(f))
  end)

  it("shows another identity when the path was swapped for a link after the create", function()
    local victim = dir .. "/victim"
    assert(io.open(victim, "wb")):close()
    local made = assert(core.create_output(dir .. "/out.part"))
    assert(os.execute(("rm %s/out.part && ln -s %s %s/out.part"):format(dir, victim, dir)))
    local f = assert(io.open(dir .. "/out.part", "r+b"))
    assert.are_not.equal(made, core.file_identity(f))
    f:close()
  end)

  it("refuses a planted link, a FIFO and a control byte; replaces a stale file of ours", function()
    assert(io.open(dir .. "/victim", "wb")):close()
    assert(os.execute(("ln -s %s/victim %s/link && mkfifo %s/fifo"):format(dir, dir, dir)))
    local ok, err = core.create_output(dir .. "/link")
    assert.is_nil(ok)
    assert.are.equal("cannot create " .. dir .. "/link: it exists and is a symbolic link", err)
    ok, err = core.create_output(dir .. "/fifo")
    assert.is_nil(ok)
    assert.matches("it exists and is a FIFO", err, 1, true)
    assert.is_nil((core.create_output(dir .. "/a\nb")))
    local f = assert(io.open(dir .. "/stale", "wb"))
    f:write("old")
    f:close()
    assert.is_string(core.create_output(dir .. "/stale"))
    f = assert(io.open(dir .. "/stale", "rb"))
    assert.are.equal("", f:read("a"))
    f:close()
  end)

  it("raises on a value that is not a file handle", function()
    assert.has_error(function() core.file_identity("x") end)
  end)
end)

-- Journals and locks live in directories others may write: never written through a link.
describe("core.append_sync and core.lock_file, where they write", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local f = assert(io.open(dir .. "/victim", "wb"))
    f:write("keep")
    f:close()
    assert(os.execute(("ln -s %s/victim %s/journal.jsonl && ln -s %s/victim %s/.lock && mkfifo %s/fifo"):format(dir,
      dir, dir, dir, dir)))
  end)
  after_each(function()
    os.execute("rm -rf " .. dir)
  end)

  it("refuse a symbolic link and a FIFO (at once, no blocking open), naming the path", function()
    local ok, err = core.append_sync(dir .. "/journal.jsonl", "x\n")
    assert.is_nil(ok)
    assert.are.equal("cannot open " .. dir .. "/journal.jsonl: it is a symbolic link, not a regular file", err)
    ok, err = core.append_sync(dir .. "/fifo", "x\n")
    assert.is_nil(ok)
    assert.matches("it is a FIFO", err, 1, true)
    local l
    l, err = core.lock_file(dir .. "/.lock")
    assert.is_nil(l)
    assert.matches("it is a symbolic link", err, 1, true)
    l, err = core.lock_file(dir .. "/fifo", true)
    assert.is_nil(l)
    assert.matches("it is a FIFO", err, 1, true)
    local f = assert(io.open(dir .. "/victim", "rb"))
    assert.are.equal("keep", f:read("a"))
    f:close()
  end)

  it("raise on a path holding a NUL byte, as read_regular and fsync_path do: the system call would see "
    .. "another file, the bytes before it", function()
    -- "victim\0.jsonl": a caller that checked the whole string (its suffix, its directory) appended
    -- to, locked, read or fsynced dir/victim
    local path = dir .. "/victim\0.jsonl"
    for name, call in pairs({
      append_sync = function() return core.append_sync(path, "x\n") end,
      lock_file = function() return core.lock_file(path) end,
      read_regular = function() return core.read_regular(path, 100) end,
      fsync_path = function() return core.fsync_path(path) end,
    }) do
      local ok, err = pcall(call)
      assert.is_false(ok, name)
      assert.matches("must not hold a NUL byte", err, 1, true)
    end
    local f = assert(io.open(dir .. "/victim", "rb"))
    assert.are.equal("keep", f:read("a"))
    f:close()
  end)
end)

-- A download moved to its name must never replace a file that appeared there meanwhile.
describe("core.rename_new", function()
  it("moves a file to a free name, and refuses a taken one (a file or a link), leaving both as they were", function()
    local dir = files.tempdir()
    files.write(dir .. "/from", "new")
    files.write(dir .. "/taken", "someone's")
    assert(os.execute(("ln -s %s/taken %s/link"):format(dir, dir)))
    local ok, err, kind = core.rename_new(dir .. "/from", dir .. "/taken")
    assert.same({ nil, dir .. "/taken exists: it is never replaced", "exists" }, { ok, err, kind })
    ok, err, kind = core.rename_new(dir .. "/from", dir .. "/link")
    assert.same({ nil, dir .. "/link exists: it is never replaced", "exists" }, { ok, err, kind })
    assert.are.equal("someone's", files.read(dir .. "/taken"))
    assert.are.equal("new", files.read(dir .. "/from"))
    assert.is_true(core.rename_new(dir .. "/from", dir .. "/free"))
    assert.are.equal("new", files.read(dir .. "/free"))
    assert.is_nil(files.read(dir .. "/from"))
    ok, err, kind = core.rename_new(dir .. "/gone", dir .. "/other")
    assert.same({ nil, "error" }, { ok, kind })
    assert.matches("cannot move " .. dir .. "/gone to " .. dir .. "/other", err, 1, true)
    ok, err = core.rename_new(dir .. "/free", dir .. "/a\nb")
    assert.is_nil(ok)
    assert.matches("control character", err)
    files.remove(dir)
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

  -- kling download checks its --out before anything is sent, and made the directory then, before
  -- it knew the task existed
  it("with check_only says whether it could make one, making nothing", function()
    local root = os.tmpname()
    os.remove(root)
    assert.is_true(core.mkdir_p(root .. "/a/b/", true))
    assert.is_nil(io.open(root, "rb"), "nothing is made")
    assert.is_true(core.mkdir_p(root))
    assert.is_true(core.mkdir_p(root, true)) -- there
    local f = assert(io.open(root .. "/file", "w"))
    f:close()
    local ok, err = core.mkdir_p(root .. "/file/sub", true)
    assert.is_nil(ok)
    assert.are.equal("cannot create directory " .. root .. "/file: it exists and is not a directory", err)
    -- where access(2) says yes and no directory can be made (to root in /proc): tried, and said
    ok, err = core.mkdir_p("/proc/kling-not-here/x", true)
    assert.is_nil(ok)
    assert.matches("^cannot create directory /proc/kling%-not%-here: ", err)
    os.execute("rm -rf '" .. root .. "'")
  end)
end)
