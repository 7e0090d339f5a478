-- Issue 10: all money lives in lua/kling/money/ and the lifecycle machine's effects
-- (lua/kling/lifecycle/). Outside them at most one file calls reserve, settle or release under
-- any name: the ledger's verbs and every name built on them (reserve_once, settle_once,
-- release_held, reserve_call, unreserve, settle_orphans ...), the meter's (meter_reserve,
-- meter_account, meter_reserve_call ...), and a task's account (settle or release) through the
-- money package or the effects. That one file is the OpenResty runner's action mapper
-- (kling.gateway.track: the gateway's meter). The blocking runner and the engine hand a
-- machine's money actions to kling.lifecycle.effects.apply unopened; a batch row gives its
-- ledger key and its machine holds, settles and releases.

-- Calls by these names that are not money, each named exactly (file and call text).
local NOT_MONEY = {
  ["lua/kling/engine/limits.lua"] = { ["lim:release("] = "a core.slots limiter giving a slot back" },
  ["lua/kling/engine/run.lua"] = { ["self:release_slot("] = "the engine's slot limiter (kling.engine.limits)" },
  ["lua/kling/billing.lua"] = { ["quote.settle("] = "the public face of kling.money.quote's price of a delivery" },
  ["lua/kling/resty/poller.lua"] = { ["self.release("] = "the poll leader's lock let go" },
  ["lua/kling/batch/rows.lua"] = { ["billing.settle("] = "the price of a delivery (a quote; no ledger)" },
  ["lua/kling/cli/estimate.lua"] = { ["kling.settle("] = "kling estimate --actual-duration: a price" },
  ["lua/kling/init.lua"] = { ["billing.settle("] = "kling.settle, the public face of a delivery's price" },
}

local FREE = { "^lua/kling/money/", "^lua/kling/lifecycle/" }
-- How many files outside FREE may move money.
local AT_MOST = 1

-- Modules whose `account` settles or releases a task's hold.
local ACCOUNTS = { ["kling.money.hold"] = true, ["kling.lifecycle.effects"] = true }

-- Whether a called name moves money (receiver: the text before `.name(` or `:name(`; aliases:
-- the file's local names of the ACCOUNTS modules).
local function money_name(name, receiver, aliases)
  local n = name:lower()
  if n:find("reserve", 1, true) or n:find("settle", 1, true) or n:find("release", 1, true)
    or n:find("^meter_") then
    return true
  end
  return n == "account" and receiver ~= nil and aliases[receiver] == true
end

-- The code of a file: comments and strings (short and long) blanked, lines kept.
local function code_of(text)
  local function blank(s)
    return (s:gsub("[^\n]", " "))
  end
  text = text:gsub("%-%-%[(=*)%[.-%]%1%]", blank) -- long comments
  text = text:gsub("%[(=*)%[.-%]%1%]", blank) -- long strings (Redis scripts)
  local out = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do
    line = line:gsub('\\.', "  "):gsub('"[^"]*"', '""'):gsub("'[^']*'", "''"):gsub("%-%-.*$", "")
    out[#out + 1] = line
  end
  return out
end

-- Every money call in `text`: a list of {line, call} where call is "receiver.name(" or
-- "receiver:name(" (or "name(" when called bare); definitions (`function x.name(`) are not calls.
local function money_calls(text)
  local aliases = {}
  for alias, mod in text:gmatch("local%s+([%w_]+)%s*=%s*require%s*%(?%s*[\"']([%w_%.]+)[\"']") do
    if ACCOUNTS[mod] then
      aliases[alias] = true
    end
  end
  local found = {}
  for n, code in ipairs(code_of(text)) do
    for start, name in code:gmatch("()([%a_][%w_]*)%s*%(") do
      local before = code:sub(1, start - 1)
      local receiver, sep = before:match("([%w_%.%]%)%[]+)%s*([:%.])%s*$")
      local defined = before:match("function%s+[%w_%.:]*$") or before:match("function%s*$")
      if not defined and money_name(name, receiver, aliases) then
        found[#found + 1] = { line = n, call = (receiver and (receiver .. sep) or "") .. name .. "(" }
      end
    end
  end
  return found
end

local function lua_files()
  -- the library, the simulator, the command line and the examples
  local p = assert(io.popen("{ find lua examples -name '*.lua'; echo bin/kling; } | sort"))
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

-- Files outside money/ and lifecycle/ with a money call: {path = {"line: call", ...}}, and
-- how many files that is.
local function offenders(files, contents)
  local out, count = {}, 0
  for _, path in ipairs(files) do
    if not free(path) then
      for _, c in ipairs(money_calls(contents(path))) do
        local short = c.call:match("([%w_]+[:%.][%w_]+%()$") or c.call
        local excused = NOT_MONEY[path] and NOT_MONEY[path][short]
        if not excused then
          if not out[path] then
            out[path] = {}
            count = count + 1
          end
          table.insert(out[path], c.line .. ": " .. c.call)
        end
      end
    end
  end
  return out, count
end

local function listing(out)
  local lines = {}
  for path, calls in pairs(out) do
    lines[#lines + 1] = path .. ": " .. table.concat(calls, ", ")
  end
  table.sort(lines)
  return table.concat(lines, "\n")
end

describe("issue 10: the money boundary", function()
  it("issue 10.1: outside money/ and lifecycle/ at most one file calls reserve, settle or release under any name "
    .. "(it is the OpenResty runner's action mapper, gateway/track.lua)",
    function()
      local files = lua_files()
      assert.is_true(#files > 150, "the scan sees the tree (" .. #files .. " files)")
      local out, count = offenders(files, read)
      assert.is_true(count <= AT_MOST, count .. " files move money:\n" .. listing(out))
      for path in pairs(out) do
        assert.are.equal("lua/kling/gateway/track.lua", path, listing(out))
      end
    end)

  it("issue 10.1: the check sees every money call it must refuse (it cannot pass by seeing nothing)", function()
    local fake = {
      ["lua/kling/client.lua"] = "local x = 1\nself.ledger:release(key) -- gone\n",
      ["lua/kling/batch/rows.lua"] = "ledger : settle (key, q)\n-- ledger:reserve(k) in a comment\n"
        .. "budget.reserve_once(self.ledger, key, q)\nlocal s = \"ledger:settle(k)\"\n"
        .. "return billing.settle(req, usage)\n",
      ["lua/kling/batch/resume.lua"] = "budget.settle_once(l, k, m)\nhold.release_held(l, k)\n",
      ["lua/kling/gateway/redis_tasks.lua"] = "local call, read = meter:reserve_call(id, m, info, w)\n"
        .. "local CREATE = [[\nredis.call('SET', k, v) -- settle(\n]]\n",
      ["lua/kling/gateway/api.lua"] = "track.unreserve(G, rec)\nlocal a = G.meter:account(name)\n",
      ["lua/kling/gateway/init.lua"] = "track.settle_orphans(G, entries)\n",
      ["lua/kling/engine/run.lua"] = 'local effects = require "kling.lifecycle.effects"\n'
        .. "append(acts, m:reserved(now, effects.reserve(self.client, a)))\neffects.account(c, a)\n"
        .. "effects.meter_account(G.meter, act, 1)\n",
      ["lua/kling/task.lua"] = 'local budget = require("kling.money.hold")\nbudget.account(client, t)\n'
        .. "function M.reserve(c, k) end\n",
      ["lua/kling/engine/limits.lua"] = "lim:release(now)\nself.client.ledger:reserve(k, q)\n",
      ["lua/kling/resty/poller.lua"] = "self.release()\n",
      ["lua/kling/batch.lua"] = "held:unlock()\nlocal m = ledger:reservation(key)\n",
      ["lua/kling/money/ledger.lua"] = "self.store:reserve(a, k, m)\n",
      ["lua/kling/gateway/track.lua"] = "G.meter:settle(id, m)\n",
      ["lua/kling/lifecycle/effects.lua"] = "meter:release(key, info)\n",
    }
    local files = {}
    for path in pairs(fake) do
      files[#files + 1] = path
    end
    table.sort(files)
    local got, count = offenders(files, function(path)
      return fake[path]
    end)
    assert.same({
      ["lua/kling/client.lua"] = { "2: self.ledger:release(" },
      ["lua/kling/batch/rows.lua"] = { "1: ledger:settle(", "3: budget.reserve_once(" },
      ["lua/kling/batch/resume.lua"] = { "1: budget.settle_once(", "2: hold.release_held(" },
      ["lua/kling/gateway/redis_tasks.lua"] = { "1: meter:reserve_call(" },
      ["lua/kling/gateway/api.lua"] = { "1: track.unreserve(" },
      ["lua/kling/gateway/init.lua"] = { "1: track.settle_orphans(" },
      ["lua/kling/engine/run.lua"] = { "2: m:reserved(", "2: effects.reserve(", "3: effects.account(",
        "4: effects.meter_account(" },
      ["lua/kling/task.lua"] = { "2: budget.account(" },
      ["lua/kling/engine/limits.lua"] = { "2: self.client.ledger:reserve(" },
      ["lua/kling/gateway/track.lua"] = { "1: G.meter:settle(" },
    }, got)
    assert.are.equal(10, count)
  end)

  it("issue 10.1: the money itself is in money/: its ledger and stores do reserve, settle and release", function()
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
