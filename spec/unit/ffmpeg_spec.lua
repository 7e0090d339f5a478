-- ffmpeg opens its output, and the shell its 2> log, following links: the workflows write
-- into directories others may write (a storyboard's --out, a batch's report), often as root.
-- kling.ffmpeg makes both in a private directory and renames the output into place.
local core = require "kling.core"
local ffmpeg = require "kling.ffmpeg"
local multishot = require "kling.multishot"
local files = require "support.files"

local read = files.read

local function sh(cmd)
  assert(os.execute(cmd), cmd)
end

describe("kling.ffmpeg, where it writes", function()
  local dir
  before_each(function()
    dir = files.tempdir()
    files.write(dir .. "/victim", "keep")
    for _, name in ipairs { "a", "b" } do
      sh(("ffmpeg -nostdin -v error -f lavfi -i testsrc=size=64x48:rate=10 -t 1 -c:v mpeg4 %s/%s.mp4")
        :format(dir, name))
    end
  end)
  after_each(function()
    files.remove(dir)
  end)

  local function leftovers()
    local p = io.popen("ls -A " .. ffmpeg.quote(dir))
    local out = p:read("a")
    p:close()
    return out:match("%.kling%-%w+")
  end

  it("joins segments without writing through a link planted at the log's name", function()
    sh(("ln -s %s/victim %s/j.mp4.log"):format(dir, dir))
    assert.is_true(multishot.join({ dir .. "/a.mp4", dir .. "/b.mp4" }, dir .. "/j.mp4"))
    assert.are.equal("keep", read(dir .. "/victim"))
    assert.is_true(ffmpeg.nonempty(dir .. "/j.mp4"))
    assert.is_nil(leftovers())
  end)

  it("keeps a file at the joined file's name: the join is dropped, never moved over it", function()
    local f = assert(io.open(dir .. "/j.mp4", "wb"))
    f:write("mine")
    f:close()
    local ok, err = multishot.join({ dir .. "/a.mp4", dir .. "/b.mp4" }, dir .. "/j.mp4")
    assert.is_nil(ok)
    assert.matches("j.mp4 exists: it is never replaced", err, 1, true)
    assert.are.equal("mine", read(dir .. "/j.mp4"))
    assert.is_nil(leftovers())
  end)

  it("makes a frame over a link planted at its name after the check: the link is replaced, not followed", function()
    sh(("ln -s %s/victim %s/last.png && ln -s %s/victim %s/last.png.log"):format(dir, dir, dir, dir))
    assert.is_true(ffmpeg.last_frame(dir .. "/a.mp4", dir .. "/last.png", 32))
    assert.are.equal("keep", read(dir .. "/victim"))
    local f = assert(io.open(dir .. "/last.png", "rb"))
    assert.are.equal("\137PNG", f:read(4))
    f:close()
    assert.is_true(core.output_target(dir .. "/last.png")) -- a regular file now, not the link
    assert.is_true(ffmpeg.poster(dir .. "/b.mp4", dir .. "/poster.jpg"))
    assert.is_nil(leftovers())
  end)

  -- A frame-01.png linked to any file was taken as the segment's last frame and its content
  -- sent to the provider as the next segment's start image.
  it("takes a link or a FIFO for no output in place (nonempty never opens them)", function()
    sh(("ln -s %s/victim %s/frame.png && mkfifo %s/fifo.png"):format(dir, dir, dir))
    assert.is_false(ffmpeg.nonempty(dir .. "/frame.png"))
    assert.is_false(ffmpeg.nonempty(dir .. "/fifo.png"))
    assert.is_true(ffmpeg.nonempty(dir .. "/victim"))
  end)

  it("core.private_dir: a new 0700 directory each call, refused under a control byte or a missing parent", function()
    local a, b = assert(core.private_dir(dir)), assert(core.private_dir(dir))
    assert.are_not.equal(a, b)
    assert.matches("^" .. dir:gsub("%p", "%%%0") .. "/%.kling%-%w+$", a)
    local p = io.popen("stat -c %a " .. ffmpeg.quote(a))
    assert.are.equal("700", p:read("l"))
    p:close()
    os.remove(a)
    os.remove(b)
    local none, err = core.private_dir(dir .. "/x\n")
    assert.is_nil(none)
    assert.matches("control character", err, 1, true)
    none, err = core.private_dir(dir .. "/missing")
    assert.is_nil(none)
    assert.matches("No such file", err, 1, true)
  end)

  it("says why ffmpeg failed, from its log, and leaves nothing behind", function()
    local ok, err = ffmpeg.last_frame(dir .. "/missing.mp4", dir .. "/x.png", 32)
    assert.is_nil(ok)
    assert.matches("^ffmpeg failed: .*missing%.mp4", err)
    assert.is_nil(read(dir .. "/x.png"))
    assert.is_nil(leftovers())
  end)
end)
