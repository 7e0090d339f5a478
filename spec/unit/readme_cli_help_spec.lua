-- Issue 14: README.md shows `kling --help`, `kling run --help` and a mistyped `kling rnu` as
-- they really print. Each block marked `<!-- kling-output: ARGS -->` is compared with what
-- bin/kling ARGS writes (stdout and stderr), after its "$ kling ARGS" line.

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function kling(args)
  local p = assert(io.popen("lua5.4 bin/kling " .. args .. " 2>&1", "r"))
  local out = p:read("a")
  p:close()
  return out
end

-- {args = text shown} for every marked block of README.md.
local function blocks(text)
  local found = {}
  for args, shown in text:gmatch("<!%-%- kling%-output: (.-) %-%->\n```text\n(.-)```\n") do
    found[args] = shown
  end
  return found
end

describe("README.md's copies of the command line's output", function()
  local shown = blocks(read("README.md"))

  it("issue 14: README shows kling --help, kling run --help and kling rnu", function()
    for _, args in ipairs { "--help", "run --help", "rnu" } do
      assert.is_string(shown[args], "README.md has no <!-- kling-output: " .. args .. " --> block")
    end
  end)

  it("issue 14: each copy is what bin/kling prints", function()
    local n = 0
    for args, text in pairs(shown) do
      assert.are.equal("$ kling " .. args .. "\n" .. kling(args), text, "README's copy of kling " .. args)
      n = n + 1
    end
    assert.is_true(n >= 3)
  end)
end)
