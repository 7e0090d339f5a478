-- kling.durable_file: a file replaced whole through a temporary file renamed over it (the
-- batch's summary and report, the element cache and a torn journal's repair all go through it).
local durable_file = require "kling.durable_file"
local files = require "support.files"

local dir = files.tempdir()
teardown(function()
  os.execute("rm -rf '" .. dir .. "'")
end)

-- The names in dir, sorted.
local function names()
  local p = assert(io.popen("ls -A '" .. dir .. "'"))
  local out = {}
  for name in p:lines() do
    out[#out + 1] = name
  end
  p:close()
  return out
end

describe("kling.durable_file.replace", function()
  it("writes a new file and replaces an old one whole, leaving no temporary file", function()
    local path = dir .. "/summary.json"
    assert(durable_file.replace(path, "first\n"))
    assert.are.equal("first\n", files.read(path))
    assert(durable_file.replace(path, "second"))
    assert.are.equal("second", files.read(path))
    assert.are.same({ "summary.json" }, names())
  end)

  it("answers nil and a message where it cannot write, and leaves the old file as it was", function()
    local path = dir .. "/summary.json"
    assert(durable_file.replace(path, "second"))
    local ok, err = durable_file.replace(dir .. "/no/such/dir/x.json", "text")
    assert.is_nil(ok)
    assert.matches("No such file or directory", err)
    -- A directory where the file should be: the rename fails, the temporary file is removed.
    os.execute("mkdir -p '" .. dir .. "/taken'")
    ok, err = durable_file.replace(dir .. "/taken", "text")
    assert.is_nil(ok)
    assert.is_string(err)
    assert.are.same({ "summary.json", "taken" }, names())
    assert.are.equal("second", files.read(path))
  end)
end)
