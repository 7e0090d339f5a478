-- The reference stays complete and the README stays true: every function a public module
-- exports (and every method of its public classes) has an LDoc / LuaLS doc comment right above
-- its definition, unless marked `@local`; every `client:x`, `task:x`, `kling.x` and
-- `kling.mod.x` the README names exists in the loaded module.
local kling = require "kling"
local billing = require "kling.billing"
local task = require "kling.task"

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

local function lines_of(path)
  local out = {}
  for line in (read(path) .. "\n"):gmatch("(.-)\n") do
    out[#out + 1] = line
  end
  return out
end

-- The modules of the reference: config.ld's file list.
local function reference_files()
  local files = {}
  for path in read("config.ld"):match("file%s*=%s*(%b{})"):gmatch('"(lua/[^"]+%.lua)"') do
    files[#files + 1] = path
  end
  return files
end

local function module_of(path)
  return (path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", "."))
end

local function escape(s)
  return (s:gsub("%p", "%%%0"))
end

-- The doc comment above line i: the run of comment lines right above it, its first line
-- opened by `---` (LDoc's and LuaLS's marker). Returns its text, or nil (with why) when there is none.
local function doc_above(lines, i)
  local j = i - 1
  local first
  while j >= 1 and lines[j]:match("^%s*%-%-") do
    first = j
    j = j - 1
  end
  if not first then
    return nil, "no comment above it"
  end
  -- LDoc reads a comment as documentation only when its first line opens with ---.
  if not lines[first]:match("^%s*%-%-%-") then
    return nil, "a plain comment, not a doc comment (start it with ---)"
  end
  return table.concat(lines, "\n", first, i - 1)
end

-- Finds the definition of `owner.name` / `owner:name` in a file's lines.
local function definition(lines, owners, name)
  for i, line in ipairs(lines) do
    for _, owner in ipairs(owners) do
      local o, n = escape(owner), escape(name)
      if line:match("^function " .. o .. "[.:]" .. n .. "%(") or line:match("^" .. o .. "%." .. n .. "%s*=") then
        return i
      end
    end
  end
end

-- The types LuaLS knows without a declaration.
local BUILTIN = { string = true, number = true, integer = true, boolean = true, table = true, ["function"] = true,
  any = true, ["nil"] = true, thread = true, userdata = true, ["false"] = true, ["true"] = true }

-- The type at the start of s: up to the first space outside braces and parentheses.
local function split_type(s)
  local depth = 0
  for i = 1, #s do
    local c = s:sub(i, i)
    if c == "{" or c == "(" then
      depth = depth + 1
    elseif c == "}" or c == ")" then
      depth = depth - 1
      if depth < 0 then
        return nil
      end
    elseif c:match("%s") and depth == 0 then
      return s:sub(1, i - 1)
    end
  end
  return depth == 0 and s or nil
end

-- Checks one type: its top-level alternatives are builtins, kling.* classes (recorded in uses),
-- tables {...} or functions fun(...); kling.* names anywhere inside are recorded too.
local function type_ok(t, where, uses)
  for name in t:gmatch("kling%.[%a_][%w_.]*") do
    uses[#uses + 1] = { name = name:gsub("%.$", ""), where = where }
  end
  local depth, alt, alts = 0, {}, {}
  for c in t:gmatch(".") do
    if c == "{" or c == "(" then
      depth = depth + 1
    elseif c == "}" or c == ")" then
      depth = depth - 1
    end
    if c == "|" and depth == 0 then
      alts[#alts + 1], alt = table.concat(alt), {}
    else
      alt[#alt + 1] = c
    end
  end
  alts[#alts + 1] = table.concat(alt)
  for _, a in ipairs(alts) do
    local base = a:gsub("%[%]$", "")
    if not (BUILTIN[base] or base:match("^kling%.[%a_][%w_.]*$") or base:match("^{.*}$")
        or base:match("^fun%(.*%)")) then
      return nil, "unknown type '" .. a .. "' in '" .. t .. "'"
    end
  end
  return true
end

-- One ---@tag line: class NAME | field NAME TYPE | param NAME[?] TYPE | return TYPE.
-- Returns true, or nil and why.
local function annotation_ok(tag, rest, where, uses)
  if tag == "class" then
    return rest:match("^kling%.[%a_][%w_]*") and true or nil, "a class is named kling.Name"
  end
  local t
  if tag == "field" or tag == "param" then
    local name, after = rest:match("^([%a_][%w_]*%??)%s+(.*)$")
    if not name then
      return nil, "---@" .. tag .. " NAME TYPE expected"
    end
    t = split_type(after)
  elseif tag == "return" then
    t = split_type(rest)
  else
    return nil, "---@" .. tag .. ": only class, field, param and return are used here"
  end
  if not t or t == "" then
    return nil, "---@" .. tag .. ": no type, or unbalanced braces"
  end
  return type_ok(t, where, uses)
end

-- Each public function: a doc comment, or an explicit `@local` (internal, kept out of the
-- reference). Returns a list of problems.
local function check_functions(path, t, owners)
  local lines = lines_of(path)
  local problems = {}
  local names = {}
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) == "function" and not k:match("^__") then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local i = definition(lines, owners, name)
    if not i then
      problems[#problems + 1] = path .. ": " .. name .. " is exported but not defined here"
    else
      local doc, why = doc_above(lines, i)
      if not doc then
        problems[#problems + 1] = string.format("%s:%d: %s has no documentation (%s)", path, i, name, why)
      elseif not doc:match("@local") and not doc:match("%-%-%-?%s*[%w`(]") then
        problems[#problems + 1] = string.format("%s:%d: %s's doc comment is empty", path, i, name)
      end
    end
  end
  return problems
end

-- The classes whose methods are public, with the file that defines them and the local name
-- their methods hang on. (The engine's methods are reached through the client: submit_many,
-- wait_all, wait_any.)
local function classes()
  local client = assert(kling.new { provider = "kling", api_key = "k", base_url = "http://127.0.0.1:9" })
  return {
    { "lua/kling/client.lua", getmetatable(client).__index, { "Client" } },
    { "lua/kling/task.lua", getmetatable(task.new(client, { id = "t", status = "queued" })).__index, { "Task" } },
    { "lua/kling/money/ledger.lua", billing.Ledger, { "Ledger" } },
  }
end

describe("the reference", function()
  it("issue 14: every function of every public module has a doc comment", function()
    local problems = {}
    for _, path in ipairs(reference_files()) do
      local mod = require(module_of(path))
      for _, p in ipairs(check_functions(path, mod, { "M" })) do
        problems[#problems + 1] = p
      end
    end
    assert.are.same({}, problems)
  end)

  it("issue 14: every method of the public classes has a doc comment", function()
    local problems = {}
    for _, c in ipairs(classes()) do
      for _, p in ipairs(check_functions(c[1], c[2], c[3])) do
        problems[#problems + 1] = p
      end
    end
    assert.are.same({}, problems)
  end)

  it("issue 14: every public module opens with a summary and names itself", function()
    for _, path in ipairs(reference_files()) do
      local text = read(path)
      assert.matches("^%-%-%-", text, path .. " does not open with a --- summary")
      assert.matches("@module " .. escape(module_of(path)) .. "\n", text, path .. " lacks @module")
    end
  end)

  it("issue 14: the LuaLS annotations are well formed and name declared classes", function()
    local problems, declared, uses = {}, {}, {}
    for _, path in ipairs(reference_files()) do
      for n, line in ipairs(lines_of(path)) do
        local where = path .. ":" .. n
        local tag, rest = line:match("^%s*%-%-%-@(%a+)%s*(.*)$")
        if tag then
          local ok, perr = annotation_ok(tag, rest, where, uses)
          if tag == "class" then
            declared[rest:match("^(%S+)")] = true
          end
          if not ok then
            problems[#problems + 1] = where .. ": " .. perr
          end
        end
      end
    end
    for _, u in ipairs(uses) do
      if not declared[u.name] then
        problems[#problems + 1] = u.where .. ": type " .. u.name .. " is not declared by any ---@class"
      end
    end
    assert.are.same({}, problems)
  end)

  it("issue 14: a malformed annotation is found (the check can fail)", function()
    local uses = {}
    assert.is_nil((annotation_ok("param", "opts", "x", uses)))
    assert.is_nil((annotation_ok("parm", "opts table", "x", uses)))
    assert.is_nil((annotation_ok("return", "strng the text", "x", uses)))
    assert.is_nil((annotation_ok("param", "opts {a: string the options", "x", uses)))
    assert.is_true((annotation_ok("param", "opts? {a: string, b: kling.Task[]}|nil the options", "x", uses)))
    assert.is_true((annotation_ok("return", "kling.Quote|nil quote", "x", uses)))
    assert.are.same({ "kling.Task", "kling.Quote" }, { uses[1].name, uses[2].name })
  end)

  it("issue 14: a function without a doc comment is found (the check can fail)", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("local M = {}\n\n--- Documented.\nfunction M.a() end\n\n-- plain\nfunction M.b() end\n\n",
      "function M.c() end\n\n--- Internal.\n-- @local\nfunction M.d() end\n\n-- plain, then tags\n",
      "---@param x string\nfunction M.f(x) end\nreturn M\n")
    f:close()
    local problems = check_functions(path, { a = print, b = print, c = print, d = print, e = print, f = print },
      { "M" })
    os.remove(path)
    assert.are.equal(4, #problems, table.concat(problems, "\n")) -- a is documented, d is @local
    assert.matches("b has no documentation %(a plain comment", problems[1])
    assert.matches("c has no documentation %(no comment", problems[2])
    assert.matches("e is exported but not defined", problems[3])
    assert.matches("f has no documentation %(a plain comment", problems[4])
  end)
end)

-- Resolves a dotted name (kling.resty.tasks.new) against the loaded modules: the longest
-- prefix that is a module, then fields. Returns the value or nil and why.
local function resolve(name)
  local parts = {}
  for p in name:gmatch("[^.]+") do
    parts[#parts + 1] = p
  end
  for n = #parts, 1, -1 do
    local modname = table.concat(parts, ".", 1, n)
    if package.searchpath(modname, package.path) or package.searchpath(modname, package.cpath) then
      local v = require(modname)
      for k = n + 1, #parts do
        if type(v) ~= "table" or v[parts[k]] == nil then
          return nil, modname .. " has no " .. table.concat(parts, ".", n + 1, k)
        end
        v = v[parts[k]]
      end
      return v
    end
  end
  return nil, "no module " .. name
end

-- The API names the README uses: client:x(, task:x(, and kling.a.b... (file names, paths and
-- URLs are not names).
local function readme_names(text)
  local names = { method = {}, dotted = {} }
  for _, owner in ipairs { "client", "task" } do
    for m in text:gmatch("[^%w_.:/]" .. owner .. ":([%a_][%w_]*)") do
      names.method[owner .. ":" .. m] = true
    end
  end
  for d in text:gmatch("[^%w_./%-]kling%.([%a_][%w_.]*)") do
    d = "kling." .. d:gsub("%.$", "")
    if not d:match("%.lua$") and not d:match("%.so$") and not d:match("%.h$") then
      names.dotted[d] = true
    end
  end
  return names
end

-- README's gateway config table: each name its first cell gives -> the rest of its row; and the
-- names given more than one row.
local function config_rows(text)
  local tbl = assert(text:match("\n%*%*Config%*%* %(`gateway%.json`[^\n]*\n\n| field | meaning |\n"
    .. "|%-%-%-|%-%-%-|\n(.-)\n\n"),
    "README's **Config** table is gone")
  local rows, twice = {}, {}
  for line in tbl:gmatch("[^\n]+") do
    local first, rest = line:match("^| ([^|]+) | (.*)$")
    for name in (first or ""):gmatch("`([%w_]+)`") do
      if rows[name] then
        twice[#twice + 1] = name
      end
      rows[name] = rest
    end
  end
  return rows, twice
end

describe("README.md", function()
  local text = read("README.md")
  local client = assert(kling.new { provider = "kling", api_key = "k", base_url = "http://127.0.0.1:9" })
  local Client = getmetatable(client).__index
  local Task = getmetatable(task.new(client, { id = "t", status = "queued" })).__index

  it("issue 14: every client:x and task:x it names is a method", function()
    local names = readme_names(text)
    local missing = {}
    for name in pairs(names.method) do
      local owner, m = name:match("^(%a+):(.+)$")
      local class = owner == "client" and Client or Task
      if type(class[m]) ~= "function" then
        missing[#missing + 1] = name
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
    assert.is_true(names.method["client:submit"] and names.method["task:wait"] and true or false)
  end)

  it("issue 14: every kling.x it names exists in the loaded module", function()
    local missing = {}
    local n = 0
    for name in pairs(readme_names(text).dotted) do
      n = n + 1
      local v, why = resolve(name)
      if v == nil then
        missing[#missing + 1] = name .. " (" .. why .. ")"
      end
    end
    table.sort(missing)
    assert.are.same({}, missing)
    assert.is_true(n >= 10, "only " .. n .. " names found: the README parser is broken")
  end)

  it("issue 14: names every public function of kling and method of client and task", function()
    local names = readme_names(text)
    local missing = {}
    local function want(path, t, owner, shown)
      local lines = lines_of(path)
      for k, v in pairs(t) do
        if type(v) == "function" and not k:match("^__") then
          local i = definition(lines, { owner }, k)
          local doc = i and doc_above(lines, i) or ""
          if not doc:match("@local") and not shown(k) then
            missing[#missing + 1] = path .. ": " .. k
          end
        end
      end
    end
    want("lua/kling/init.lua", kling, "M", function(k) return names.dotted["kling." .. k] end)
    want("lua/kling/client.lua", Client, "Client", function(k) return names.method["client:" .. k] end)
    want("lua/kling/task.lua", Task, "Task", function(k) return names.method["task:" .. k] end)
    table.sort(missing)
    assert.are.same({}, missing)
  end)

  it("issue 14: every require(\"kling.x\").f it names exists", function()
    local missing, n = {}, 0
    for mod, f in text:gmatch("require%s*%(?%s*[\"']([%w_.]+)[\"']%s*%)?%.([%a_][%w_]*)") do
      n = n + 1
      local v, why = resolve(mod .. "." .. f)
      if v == nil then
        missing[#missing + 1] = mod .. "." .. f .. " (" .. why .. ")"
      end
    end
    assert.are.same({}, missing)
    assert.is_true(n >= 3, "only " .. n .. " found: the parser is broken")
  end)

  it("issue 14: a name that does not exist is caught (the check can fail)", function()
    local names = readme_names("use `client:submitt(req)` and `kling.estimat{}`, see lua/kling/json.lua")
    assert.is_true(names.method["client:submitt"])
    assert.is_nil(Client.submitt)
    assert.is_true(names.dotted["kling.estimat"])
    assert.is_nil((resolve("kling.estimat")))
    assert.is_nil(names.dotted["kling.json.lua"])
  end)

  it("issue 14: documents kling.estimate, settle, quote, the estimate and quote commands", function()
    for _, s in ipairs { "kling.estimate", "kling.settle", "kling.quote", "kling estimate", "kling quote" } do
      assert.is_truthy(text:find(s, 1, true), s)
    end
  end)

  -- One home per field: README's config table (docs/gateway.md's copy of it drifted from the code).
  it("issue 14: README's config table names every field the gateway config takes, once, and docs/gateway.md has no"
    .. " second table of them", function()
    local fields = require("kling.gateway.config").FIELDS
    local rows, twice = config_rows(text)
    assert.same({}, twice, "fields given two rows")
    local top = {}
    for _, f in ipairs(fields[""]) do
      top[f] = true
      assert.truthy(rows[f], "README's config table lacks " .. f)
    end
    for name in pairs(rows) do
      assert.truthy(top[name], "README's config table has a row for " .. name .. ", which the config does not take")
    end
    local n = 0
    for where, list in pairs(fields) do
      local parent = where:match("^([%w_]+)")
      for _, f in ipairs(list) do
        n = n + 1
        if parent then
          assert.truthy(rows[parent]:find("%f[%w_]" .. f .. "%f[^%w_]"), "README's " .. parent .. " row lacks " .. f)
        end
      end
    end
    assert.is_true(n >= 40, "only " .. n .. " fields read: kling.gateway.config's FIELDS changed shape")
    local gateway_md = read("docs/gateway.md")
    for f in pairs(top) do
      assert.is_nil(gateway_md:find("\n| `" .. f .. "`", 1, true), "docs/gateway.md restates the config table's " .. f)
    end
  end)

  it("issue 14: the config table's parser finds rows, and a field given two rows (the check can fail)", function()
    local rows, twice = config_rows("x\n**Config** (`gateway.json`)\n\n| field | meaning |\n|---|---|\n"
      .. "| `poll` | `{lookups}` |\n| `a`, `b` | both |\n| `a` | again |\n\nafter")
    assert.equal("`{lookups}` |", rows.poll)
    assert.equal("again |", rows.a)
    assert.same({ "a" }, twice)
  end)

  it("shows the operator's gateway commands, one node and several, with every option kling gateway takes", function()
    local cli = read("lua/kling/cli/gateway.lua")
    local one = assert(text:match("\n%*%*One node%*%*(.-)\n%*%*Several nodes%*%*"), "no One node section")
    local several = assert(text:match("\n%*%*Several nodes%*%*(.-)\n\n[^\n]*\n\n"), "no Several nodes section")
    local n = 0
    for cmd, opt in cli:gmatch("\n%s*(%a+):option%(\"(%-%-[%w-]+)\"") do
      n = n + 1
      local shown = one:match("\n    lua5%.4 bin/kling gateway " .. cmd .. " [^\n]*\n[^\n]*")
      assert.truthy(shown, "README's One node does not show kling gateway " .. cmd)
      assert.truthy(shown:find(opt, 1, true), "README's One node shows kling gateway " .. cmd .. " without " .. opt)
    end
    assert.is_true(n >= 7, "only " .. n .. " options read")
    assert.truthy(several:find("bin/kling gateway start --config gateway.json --dir ", 1, true), several)
    assert.truthy(several:find("bin/kling gateway stop --dir ", 1, true), several)
  end)

  it("issue 14: is self-contained (no ../shared)", function()
    assert.is_nil(text:find("../shared", 1, true))
    assert.is_nil(text:find("design.md", 1, true))
  end)
end)

-- The admin routes kling.gateway.admin serves, as its header lists them ("--   POST /gateway/admin/x"),
-- each as "METHOD /path" with its parameters (<name>, <id>) and its query left off.
local function admin_routes()
  local routes = {}
  for method, path in read("lua/kling/gateway/admin.lua"):gmatch("\n%-%-%s+(%u+)%s+(/gateway/admin[^%s?]*)") do
    routes[#routes + 1] = { method = method, path = path }
  end
  return routes
end

describe("docs/gateway.md", function()
  local gateway_md = read("docs/gateway.md")

  it("names every admin route kling.gateway.admin serves, as the README does", function()
    local routes = admin_routes()
    assert.is_true(#routes >= 10, "only " .. #routes .. " admin routes read: the parser is broken")
    -- the header lists every route the handler dispatches on (so the list read here is whole)
    local listed = {}
    for _, r in ipairs(routes) do
      listed[r.path] = true
    end
    for path in read("lua/kling/gateway/admin.lua"):gmatch('uri == "(/gateway/admin[^"]*)"') do
      assert.is_true(listed[path], path .. " is served but not in kling.gateway.admin's header")
    end
    local readme = read("README.md")
    for _, r in ipairs(routes) do
      assert.truthy(gateway_md:find(r.path, 1, true), "docs/gateway.md does not name " .. r.method .. " " .. r.path)
      assert.truthy(readme:find(r.path:gsub("<name>", "carol"):gsub("<id>", "gw..."), 1, true)
        or readme:find(r.path, 1, true), "README.md does not name " .. r.method .. " " .. r.path)
    end
  end)

  it("README's routes say which take query parameters, as kling.gateway.admin reads them", function()
    -- the admin routes whose header line shows a query ("GET /gateway/admin/ledger?limit=N")
    local with_query = {}
    for path in read("lua/kling/gateway/admin.lua"):gmatch("\n%-%-%s+GET%s+/gateway/admin/([%w/_]+)%?") do
      with_query[#with_query + 1] = path
    end
    assert.is_true(#with_query >= 2, "only " .. #with_query .. " routes with a query read: the parser is broken")
    local said = assert(read("README.md"):match("%*%*Routes%*%* (%b())"), "README's **Routes** (...) is gone")
    assert.truthy(said:find("query parameter", 1, true), said)
    for _, path in ipairs(with_query) do
      assert.truthy(said:find("admin " .. path, 1, true), "README's **Routes** " .. said .. " does not name " .. path)
    end
  end)

  it("README says which upstream fields a reload cannot change under kling gateway start (proxy.stale)", function()
    local proxy = require "kling.gateway.proxy"
    local cfg = { upstream = { base_url = "https://api.example.com", timeout = 60, connect_timeout = 10 } }
    local written = proxy.rendered(cfg)
    -- README's "One node" (the operator's commands) is where it is said, once
    local intro = assert(read("README.md"):match("\n%*%*One node%*%*(.-)\n%*%*Several nodes%*%*"),
      "no One node section")
    local n = 0
    for field, changed in pairs { base_url = "https://other.example.com", timeout = 30, connect_timeout = 5 } do
      local c = { upstream = { base_url = cfg.upstream.base_url, timeout = 60, connect_timeout = 10 } }
      c.upstream[field] = changed
      local why = proxy.stale(c, written) -- the code refuses such a reload ...
      assert.truthy(why and why:find("upstream." .. field, 1, true), field)
      n = n + 1
      -- ... and the section on reloads says so
      assert.truthy(intro:find("`upstream." .. field .. "`", 1, true) or intro:find("`" .. field .. "`", 1, true),
        "README's One node does not say a reload cannot change upstream." .. field)
    end
    assert.equal(3, n)
    assert.truthy(intro:find("kling gateway start", 1, true), intro)
  end)
end)

describe("docs/simulator.md", function()
  local sim_md = read("docs/simulator.md")
  local admin = read("lua/kling_sim/admin.lua")

  local function thousands(n)
    return (tostring(n):reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
  end

  it("says how many requests and callback attempts the admin API lists, as the simulator keeps them", function()
    for route, file in pairs { requests = "lua/kling_sim/stats.lua", callbacks = "lua/kling_sim/callbacks.lua" } do
      local kept = assert(tonumber(read(file):match("\nM%.LOG_SIZE = (%d+)")), file)
      local default = assert(tonumber(admin:match('handlers%["GET /_sim/' .. route .. '"%][^\n]*\n[^\n]- or (%d+)%)')),
        route)
      local row = assert(sim_md:match("\n(| `GET /_sim/" .. route .. "[^\n]*)"), route)
      assert.truthy(row:find("the last N", 1, true), row)
      assert.truthy(row:find("(" .. default, 1, true), row .. " lacks its default " .. default)
      assert.truthy(row:find("at most " .. thousands(kept), 1, true), row .. " lacks the " .. kept .. " kept")
    end
    -- nor does the README's word on them say the list is whole
    assert.is_nil(read("README.md"):find("`GET /_sim/callbacks` lists every attempt", 1, true))
  end)

  it("says how often a callback is sent, as the official API's and apimodels' schedules are", function()
    local official = read("lua/kling_sim/official/notify.lua")
    local sched = assert(official:match("\nM%.SCHEDULE_S = {([%d, ]+)}"))
    local timeout = assert(official:match("\nM%.TIMEOUT_S = (%d+)"))
    -- apimodels sends on the same schedule
    assert.truthy(read("lua/kling_sim/dialects/apimodels.lua"):find("schedule_s = {" .. sched .. "}, timeout_s = "
      .. timeout, 1, true))
    local waits = {}
    for w in sched:gmatch("%d+") do
      waits[#waits + 1] = w
    end
    local said = assert(sim_md:match("\n## Callbacks\n(.-)\n## ") or sim_md:match("\n## Callbacks\n(.*)$"))
    local list = table.concat(waits, ", ", 1, #waits - 1) .. " and " .. waits[#waits] .. " s"
    assert.truthy(said:find("retried after " .. list .. " (both dialects", 1, true), said)
    assert.truthy(said:find("a " .. timeout .. " s timeout", 1, true), said)
    assert.truthy(said:find("at most " .. (#waits + 1) .. " attempts", 1, true), said)
  end)
end)

-- Every series the gateway's /metrics writes, as {name = {labels...}} (a histogram's by its own
-- name, `le` left off): what metrics.render writes, one node's and a Redis node's, once every
-- counter the gateway's sources count (metrics.inc, observe, the log phase's) has been counted.
local function emitted_metrics()
  local metrics = require "kling.gateway.metrics"
  local fake = require "spec.support.gateway_metrics"
  local dir = "lua/kling/gateway/"
  local n = 0
  for file in io.popen("ls " .. dir):lines() do
    for call in read(dir .. file):gmatch("metrics%.inc(%b())") do
      local name = call:match('^%(%s*"(kling_gateway_[%w_]+)"')
      if name then
        n = n + 1
        local labels = {}
        for l in call:gmatch("([%a_][%w_]*)=\"") do
          labels[#labels + 1] = l .. '="x"'
        end
        metrics.inc(name, #labels > 0 and table.concat(labels, ",") or nil)
      end
    end
  end
  assert.is_true(n >= 3, "only " .. n .. " metrics.inc calls read: the parser is broken")
  metrics.observe("create", 0.1)
  fake.with_ngx({ var = { uri = "/gateway/health" }, req = { get_method = function() return "GET" end }, status = 200 },
    metrics.log)
  local out, types = {}, {}
  for _, text in ipairs { fake.rendered(), fake.rendered(nil, { store_errors = function() return {} end }) } do
    for name, kind in text:gmatch("\n# TYPE ([%w_]+) (%a+)") do
      types[name] = kind
    end
    for line in text:gmatch("[^\n]+") do
      local name, labels = line:match("^(kling_gateway_[%w_]+){?([^}%s]*)}? ")
      if name then
        local base = name:match("^(.-)_bucket$") or name:match("^(.-)_sum$") or name:match("^(.-)_count$")
        if base and types[base] == "histogram" then
          name = base
        end
        local ls = {}
        for l in labels:gmatch('([%a_][%w_]*)="') do
          if l ~= "le" then
            ls[#ls + 1] = l
          end
        end
        out[name] = ls
      end
    end
  end
  return out, types
end

-- README's metrics table: "| `name{labels}` | type | ... |" -> {name = {labels = "a,b", type = t, rows = n}}.
local function metrics_rows(text)
  local tbl = assert(text:match("\n| metric | type | what it counts |\n|%-%-%-|%-%-%-|%-%-%-|\n(.-)\n\n"),
    "README's metrics table is gone")
  local rows = {}
  for name, labels, kind, rest in tbl:gmatch("\n?| `(kling_gateway_[%w_]+)([^`]*)` | (%a+) | ([^\n]*)") do
    local r = rows[name] or { rows = 0 }
    r.labels, r.type, r.rows, r.text = labels:match("^{(.*)}$") or labels, kind, r.rows + 1, rest
    rows[name] = r
  end
  return rows
end

describe("the gateway's metrics", function()
  local readme = read("README.md")

  it("each one it emits is in README's metrics table once, with its labels and type", function()
    local emitted, types = emitted_metrics()
    local rows = metrics_rows(readme)
    local n = 0
    for name, labels in pairs(emitted) do
      n = n + 1
      local r = rows[name]
      assert.truthy(r, "README's metrics table lacks " .. name)
      assert.equal(1, r.rows, name .. " has " .. r.rows .. " rows")
      assert.equal(table.concat(labels, ","), r.labels, name .. "'s labels")
      assert.equal(types[name], r.type, name .. "'s type")
    end
    for name in pairs(rows) do
      assert.truthy(emitted[name], "README's metrics table has " .. name .. ", which the gateway does not emit")
    end
    assert.is_true(n >= 15, "only " .. n .. " metrics read")
    -- one home: docs/gateway.md does not restate the table
    assert.is_nil(read("docs/gateway.md"):find("| `kling_gateway_", 1, true))
  end)

  it("every reason a create is refused for is in README's refusals row", function()
    local reasons, n = {}, 0
    for _, file in ipairs { "api.lua", "init.lua", "forward.lua", "upstream_pace.lua" } do
      for line in read("lua/kling/gateway/" .. file):gmatch("[^\n]+") do
        -- the first argument of refuse(...) and unavailable(...): a reason, or an expression of them
        for _, f in ipairs { "refuse", "unavailable" } do
          for first in line:gmatch(f .. "%(([^,]+),") do
            for r in first:gmatch('"([a-z_]+)"') do
              reasons[r] = true
            end
          end
        end
        for r in line:gmatch('reason="([a-z_]+)"') do
          reasons[r] = true
        end
        local r = line:match('^%s*return "(upstream_[a-z]+)"')
        if r then
          reasons[r] = true
        end
      end
    end
    local row = assert(metrics_rows(readme).kling_gateway_refusals_total).text
    for r in pairs(reasons) do
      n = n + 1
      assert.truthy(row:find("`" .. r .. "`", 1, true), "README's refusals row lacks the reason " .. r)
    end
    assert.is_true(reasons.auth and reasons.upstream_slots and n >= 12, "only " .. n .. " reasons read")
  end)

  it("a metric missing from the table is found (the check can fail)", function()
    local rows = metrics_rows("x\n| metric | type | what it counts |\n|---|---|---|\n"
      .. "| `kling_gateway_a_total{x,y}` | counter | a |\n| `kling_gateway_b` | gauge | b |\n\nafter")
    assert.same({ "x,y", "counter", 1 }, { rows.kling_gateway_a_total.labels, rows.kling_gateway_a_total.type,
      rows.kling_gateway_a_total.rows })
    assert.equal("", rows.kling_gateway_b.labels)
    assert.is_nil(rows.kling_gateway_c)
  end)
end)
