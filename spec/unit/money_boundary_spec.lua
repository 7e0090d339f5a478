-- Issue 10: all money lives in lua/kling/money/. Outside it and lua/kling/lifecycle/, no file
-- calls a ledger's reserve, settle or release: the runners carry the machine's money actions
-- out through kling.lifecycle.effects (a client's budget, and the gateway's meter: its create
-- handler's reservation, the OpenResty runner's settle or release), and everyone else goes
-- through kling.money.hold (budget.reserve / account / release, hold.reserve_once /
-- settle_once / release_held).

-- Calls by these names that are not money, each named exactly (file and call text).
local NOT_MONEY = {
  ["lua/kling/engine/limits.lua"] = { ["lim:release("] = "a core.slots limiter giving a slot back" },
}

local FREE = { "^lua/kling/money/", "^lua/kling/lifecycle/" }

-- Every `x:reserve(`, `x:settle(`, `x:release(` in `text` outside comments and strings: a list
-- of {line, call} where call is "x:op(".
local function money_calls(text)
  local found, n = {}, 0
  for line in (text .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    local code = line:gsub("%-%-.*$", ""):gsub('"[^"]*"', '""'):gsub("'[^']*'", "''")
    for receiver, op in code:gmatch("([%w_%.%]%)]+)%s*:%s*(%a+)%s*%(") do
      if op == "reserve" or op == "settle" or op == "release" then
        found[#found + 1] = { line = n, call = receiver .. ":" .. op .. "(" }
      end
    end
  end
  return found
end

local function lua_files()
  local p = assert(io.popen("find lua/kling -name '*.lua' | sort"))
  local files = {}
  for path in p:lines() do
    files[#files + 1] = path
  end
  p:close()
  return files
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function free(path)
  for _, pat in ipairs(FREE) do
    if path:find(pat) then
      return true
    end
  end
  return false
end

-- Files outside money/ and lifecycle/ with a money call: {path =
-- {"line: call", ...}}.
local function offenders(files, contents)
  local out = {}
  for _, path in ipairs(files) do
    if not free(path) then
      for _, c in ipairs(money_calls(contents(path))) do
        local excused = NOT_MONEY[path] and NOT_MONEY[path][c.call:gsub("^.-([%w_]+:%a+%()$", "%1")]
        if not excused then
          out[path] = out[path] or {}
          table.insert(out[path], c.line .. ": " .. c.call)
        end
      end
    end
  end
  return out
end

describe("issue 10: the money boundary", function()
  it("issue 10: outside money/ and lifecycle/ no file calls a ledger's reserve, settle or release (the gateway's "
    .. "track.lua neither: its money goes through lifecycle/effects.lua)",
    function()
      assert.same({}, offenders(lua_files(), read))
    end)

  it("issue 10: the check sees a call it must refuse (it cannot pass by seeing nothing)", function()
    local fake = {
      ["lua/kling/client.lua"] = "local x = 1\nself.ledger:release(key) -- gone\n",
      ["lua/kling/batch/rows.lua"] = "ledger : settle (key, q)\n-- ledger:reserve(k) in a comment\n",
      ["lua/kling/engine/limits.lua"] = "lim:release(now)\nself.client.ledger:reserve(k, q)\n",
      ["lua/kling/batch.lua"] = "held:unlock()\n",
      ["lua/kling/money/ledger.lua"] = "self.store:reserve(a, k, m)\n",
      ["lua/kling/gateway/track.lua"] = "G.meter:settle(id, m)\n",
      ["lua/kling/lifecycle/effects.lua"] = "meter:release(key, info)\n",
    }
    local files = {}
    for path in pairs(fake) do
      files[#files + 1] = path
    end
    table.sort(files)
    local got = offenders(files, function(path)
      return fake[path]
    end)
    assert.same({
      ["lua/kling/client.lua"] = { "2: self.ledger:release(" },
      ["lua/kling/batch/rows.lua"] = { "1: ledger:settle(" },
      ["lua/kling/engine/limits.lua"] = { "2: self.client.ledger:reserve(" },
      ["lua/kling/gateway/track.lua"] = { "1: G.meter:settle(" },
    }, got)
  end)

  it("issue 10: the money itself is in money/: its ledger and stores do reserve, settle and release", function()
    local calls = 0
    for _, path in ipairs(lua_files()) do
      if path:find("^lua/kling/money/") then
        calls = calls + #money_calls(read(path))
      end
    end
    assert.is_true(calls > 0)
    for _, m in ipairs { "kling.money.catalogs", "kling.money.quote", "kling.money.usage", "kling.money.ledger",
      "kling.money.hold", "kling.money.stores.memory", "kling.money.stores.file" } do
      assert.is_table(require(m), m)
    end
  end)
end)
