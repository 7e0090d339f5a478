-- kling.output_path: where an output may be written (downloads, journals, the storyboard's
-- files), over kling.core's lstat and exclusive create. The directories may be writable by
-- others while the writer is root: a planted link, FIFO or control byte is refused.
local files = require "support.files"
local output_path = require "kling.output_path"

describe("kling.output_path", function()
  local dir, victim
  before_each(function()
    dir = files.tempdir()
    victim = dir .. "/victim"
    files.write(victim, "keep")
  end)
  after_each(function()
    files.remove(dir)
  end)

  local function kept()
    local f = assert(io.open(victim, "rb"))
    local s = f:read("a")
    f:close()
    return s == "keep"
  end

  it("refusal: the path and its .part, naming the one refused", function()
    assert.is_nil(output_path.refusal(dir .. "/new.mp4"))
    assert.is_nil(output_path.refusal(victim)) -- a regular file is replaced whole, by rename
    assert(os.execute(("ln -s %s %s/a.mp4.part && mkfifo %s/f.mp4"):format(victim, dir, dir)))
    assert.are.equal(dir .. "/a.mp4.part is a symbolic link: an output is written only to a new or a regular file",
      output_path.refusal(dir .. "/a.mp4"))
    assert.matches("f.mp4 is a FIFO", output_path.refusal(dir .. "/f.mp4"), 1, true)
    assert.matches("control character", output_path.refusal(dir .. "/x\r\n.mp4"), 1, true)
  end)

  it("refusal: a .part of another user is not ours to replace, and is left in place", function()
    local p = io.popen("id -u")
    local uid = p:read("l")
    p:close()
    if uid ~= "0" then
      pending("needs root to give a file to another user")
      return
    end
    local part = dir .. "/o.mp4.part"
    local f = assert(io.open(part, "wb"))
    f:write("theirs")
    f:close()
    assert(os.execute("chown nobody " .. part))
    assert.are.equal(part .. " is a file of another user: a temporary output is replaced only when it is ours",
      output_path.refusal(dir .. "/o.mp4"))
    f = assert(io.open(part, "rb"))
    assert.are.equal("theirs", f:read("a"))
    f:close()
  end)

  it("name_refusal: only control bytes (a directory is fine)", function()
    assert.is_nil(output_path.name_refusal(dir))
    assert.is_nil(output_path.name_refusal("{id}.{ext}"))
    assert.matches("byte 0x0a at offset 4", output_path.name_refusal("{id}\n.{ext}"), 1, true)
  end)

  it("create: a new file, never through a link", function()
    local f = assert(output_path.create(dir .. "/new.txt"))
    f:write("fresh")
    f:close()
    assert(os.execute(("ln -s %s %s/link.txt"):format(victim, dir)))
    local g, err = output_path.create(dir .. "/link.txt")
    assert.is_nil(g)
    assert.matches("symbolic link", err, 1, true)
    assert.is_true(kept())
  end)

  it("append: appends to a regular file, refuses a planted link and a FIFO", function()
    local f = assert(output_path.append(dir .. "/journal.jsonl"))
    f:write("a\n")
    f:close()
    f = assert(output_path.append(dir .. "/journal.jsonl"))
    f:write("b\n")
    f:close()
    f = assert(io.open(dir .. "/journal.jsonl", "rb"))
    assert.are.equal("a\nb\n", f:read("a"))
    f:close()
    assert(os.execute(("ln -s %s %s/j2 && mkfifo %s/j3"):format(victim, dir, dir)))
    local g, err = output_path.append(dir .. "/j2")
    assert.is_nil(g)
    assert.matches("j2 is a symbolic link", err, 1, true)
    g, err = output_path.append(dir .. "/j3")
    assert.is_nil(g)
    assert.matches("j3 is a FIFO", err, 1, true)
    assert.is_true(kept())
  end)

  it("size: a regular file's size, nil for a FIFO (never opened, so never blocks)", function()
    assert(os.execute(("mkfifo %s/fifo"):format(dir)))
    assert.are.equal(4, output_path.size(victim))
    assert.is_nil(output_path.size(dir .. "/fifo"))
    assert.is_nil(output_path.size(dir .. "/absent"))
  end)
end)
