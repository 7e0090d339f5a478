-- README's provider-by-capability table is generated from the provider files: the check fails
-- when either changed without the other.
local function cells_of(line)
  local out = {}
  for cell in line:gmatch("|([^|]*)") do
    out[#out + 1] = cell:match("^%s*(.-)%s*$")
  end
  out[#out] = nil -- after the closing bar
  return out
end

local function run(args)
  local p = io.popen("lua5.4 scripts/capabilities " .. args .. " 2>&1", "r")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok and 0 or code, out
end

describe("scripts/capabilities", function()
  it("finds README.md up to date with the provider files", function()
    local code, out = run("--check")
    assert.are.equal(0, code, out)
  end)

  it("prints one row per provider with what its file declares", function()
    local code, out = run("--print")
    assert.are.equal(0, code, out)
    local providers = require "kling.providers"
    local header = out:match("\n(| provider |[^\n]*)")
    local cols = cells_of(header)
    for _, name in ipairs(providers.names) do
      local P = require("kling.providers." .. name)
      local row = out:match("\n(| `" .. name .. "` [^\n]*)")
      assert(row, "no row for " .. name)
      local cells = cells_of(row)
      assert.are.equal(#cols, #cells)
      for i = 3, #cols do
        local key = cols[i]:gsub("[/ %-]", "_")
        assert.are.equal(P.capabilities[key] and "yes" or "no", cells[i], name .. " " .. cols[i])
      end
    end
  end)

  it("fails the check when the README's table was edited by hand", function()
    local f = assert(io.open("README.md", "rb"))
    local readme = f:read("a")
    f:close()
    local tmp = os.tmpname()
    os.remove(tmp)
    assert(os.execute("mkdir -p " .. tmp .. "/scripts && cp scripts/capabilities " .. tmp .. "/scripts/ && ln -s "
      .. io.popen("pwd"):read("l") .. "/lua " .. tmp .. "/lua"))
    local edited = readme:gsub("(| `evolink` [^\n]-| )yes( |)", "%1no%2", 1)
    assert.are_not.equal(readme, edited)
    f = assert(io.open(tmp .. "/README.md", "wb"))
    f:write(edited)
    f:close()
    local p = io.popen("lua5.4 " .. tmp .. "/scripts/capabilities --check 2>&1", "r")
    local out = p:read("a")
    local ok = p:close()
    assert.is_falsy(ok)
    assert.matches("out of date", out)
    -- and regenerating repairs it
    assert(os.execute("lua5.4 " .. tmp .. "/scripts/capabilities"))
    f = assert(io.open(tmp .. "/README.md", "rb"))
    assert.are.equal(readme, f:read("a"))
    f:close()
    os.execute("rm -rf " .. tmp)
  end)
end)
