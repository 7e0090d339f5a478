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
