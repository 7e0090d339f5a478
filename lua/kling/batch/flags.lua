-- Command-line flags of the workflow commands (run, status, storyboard, element): a spec maps
-- each flag to an option name and a kind; the rest are positional arguments.
--   spec = {["--out"] = {"out"}, ["--parallel"] = {"parallel", "number"}, ["--quiet"] = {"quiet", "bool"},
--           ["--set"] = {"set", "list"}}
-- Values come as "--flag value" or "--flag=value". Also the opening every command's main()
-- shares: its failure reporter, the usage on a bad flag or --help, and the client its flags name.
local kling = require "kling"
local validate = require "kling.validate"

local M = {}

-- Lua 5.4 keeps integers apart; LuaJIT has one number type (whole numbers print as such).
local tointeger = math.tointeger or function(x)
  return x == math.floor(x) and x or nil
end

-- parse(args, spec) -> opts, positionals | nil, message
function M.parse(args, spec)
  local opts, pos = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local flag, inline = a:match("^(%-%-[%w%-]+)=(.*)$")
    flag = flag or a
    local s = spec[flag]
    if a == "--" then
      for k = i + 1, #args do
        pos[#pos + 1] = args[k]
      end
      break
    elseif s then
      local name, kind = s[1], s[2] or "string"
      if kind == "bool" then
        if inline then
          return nil, flag .. " takes no value"
        end
        opts[name] = true
      else
        local v = inline
        if v == nil then
          i = i + 1
          v = args[i]
        end
        if v == nil then
          return nil, flag .. " needs a value"
        end
        if kind == "number" then
          local n = tonumber(v)
          if not n then
            return nil, flag .. " must be a number (got '" .. v .. "')"
          end
          opts[name] = tointeger(n) or n
        elseif kind == "list" then
          opts[name] = opts[name] or {}
          table.insert(opts[name], v)
        else
          opts[name] = v
        end
      end
    elseif a:match("^%-%-?%a") then
      return nil, validate.unknown_name(flag, spec, "option " .. flag)
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return opts, pos
end

-- positive(opts, name, flag) -> nil | message: a number option must be > 0 when given.
function M.positive(opts, name, flag, whole)
  local v = opts[name]
  if v ~= nil and (v <= 0 or (whole and v ~= math.floor(v))) then
    return flag .. " must be a positive " .. (whole and "whole number" or "number") .. " (got " .. tostring(v) .. ")"
  end
  return nil
end

-- fail(status, message) of command `name` ("kling run"): the message on stderr, the exit
-- status returned.
function M.failure(name)
  return function(status, msg)
    io.stderr:write(name, ": ", tostring(msg), "\n")
    return status
  end
end

-- parse(args, spec) for a command's main(): a bad flag writes the usage to stderr and fails
-- with 2, --help writes it to stdout (0). With `single`, exactly one positional argument must
-- come, else the usage and `single` (a message, or a function of the count that gives one)
-- fail with 2. -> opts, positionals | nil, exit status
function M.command(args, spec, usage, fail, single)
  local opts, pos = M.parse(args, spec)
  if not opts then
    io.stderr:write(usage)
    return nil, fail(2, pos)
  end
  if opts.help then
    io.stdout:write(usage)
    return nil, 0
  end
  if single and #pos ~= 1 then
    io.stderr:write(usage)
    return nil, fail(2, type(single) == "function" and single(#pos) or single)
  end
  return opts, pos
end

-- The key flags every command that talks to a provider takes (as kling run does).
M.KEYS = { ["--access-key"] = { "access_key" }, ["--secret-key"] = { "secret_key" }, ["--api-key"] = { "api_key" } }

-- spec with the key flags added.
function M.with_keys(spec)
  for flag, s in pairs(M.KEYS) do
    spec[flag] = s
  end
  return spec
end

-- The client the flags --provider (else `provider`), --base-url, --ca-file, --poll-min,
-- --poll-max and the keys name; what they leave out comes from the KLING_* environment.
-- -> client | nil, err
function M.client(opts, provider)
  return kling.new { provider = opts.provider or provider, base_url = opts.base_url,
    ca_file = opts.ca_file, poll_min = opts.poll_min, poll_max = opts.poll_max,
    access_key = opts.access_key, secret_key = opts.secret_key, api_key = opts.api_key }
end

-- The exit status of a workflow that returned `err`: 3 when it timed out (`again` says how to
-- keep waiting), 2 for a rule broken before anything was sent, else 1 (refused or failed, or
-- anything after a create was sent: err.sent).
function M.failed(fail, err, again)
  if err.kind == "timeout" then
    return fail(3, tostring(err) .. " (" .. again .. ")")
  end
  return fail((err.kind == "validation" and not err.code and not err.sent) and 2 or 1, err)
end

return M
