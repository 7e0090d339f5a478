-- Writes each Redis Lua script the gateway sends (its text as composed in the module: a
-- script such as `local END = LINE .. [[ ... ]]` is LINE's text and its own) to a file of its
-- own in DIR, for luacheck: they are strings to Lua, and so not linted with the rest.
--   lua5.4 spec/support/redis_scripts.lua DIR FILE...
-- Prints the files written; exits 1 when a file has no script (its layout changed).
local dir = assert(arg[1], "usage: redis_scripts.lua DIR FILE...")
local written = 0
-- Every file's parts first: a script may begin with a part another file states (redis.lua's END
-- runs kling.money.stores.memory's CHARGE_RULE, named there `local CHARGE = memory.CHARGE_RULE`).
local parts, prefixes, aliases, files = {}, {}, {}, {}
for i = 2, #arg do
  local path = arg[i]
  local text = assert(io.open(path)):read("a")
  local order = {}
  -- local NAME = [A .. B .. ][[ <lines> ]] (the long string opens at the end of its line and
  -- closes at the start of one)
  for name, before, body in text:gmatch("\nlocal ([%u_]+) = ([%u_%s%.]-)%[%[\n(.-)\n%]%]") do
    local pre = {}
    for p in before:gmatch("[%u_]+") do
      pre[#pre + 1] = p
      prefixes[p] = true
    end
    parts[name] = { pre = pre, body = body }
    order[#order + 1] = name
  end
  for name, other in text:gmatch("\nlocal ([%u_]+) = [%l_]+%.([%u_]+)\n") do
    aliases[name] = other
  end
  files[#files + 1] = { path = path, order = order }
end
local function compose(name, path)
  local s = parts[name] or parts[aliases[name] or ""]
  assert(s, path .. ": script part " .. name .. " not found")
  local out = {}
  for _, p in ipairs(s.pre) do
    out[#out + 1] = compose(p, path)
  end
  out[#out + 1] = s.body
  return table.concat(out, "\n")
end
for _, f in ipairs(files) do
  local n, provided = 0, false
  for _, name in ipairs(f.order) do
    local used = prefixes[name]
    for alias, other in pairs(aliases) do
      used = used or other == name and prefixes[alias]
    end
    if not used then
      local base = f.path:gsub("^.*/", ""):gsub("%.lua$", "")
      local out = dir .. "/" .. base .. "." .. name .. ".lua"
      assert(io.open(out, "w")):write(compose(name, f.path), "\n")
      print(out)
      n = n + 1
    else
      provided = true
    end
  end
  if n == 0 and not provided then
    io.stderr:write(f.path, ": no Redis script found\n")
    os.exit(1)
  end
  written = written + n
end
io.stderr:write(written, " scripts\n")
