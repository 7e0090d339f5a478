-- The command line (bin/kling): one argparse parser built from the commands' own declarations.
-- Each lua/kling/cli/<command>.lua exports `summary` (its line in kling --help), `define(cmd)`
-- (its arguments, on an argparse command) and `run(args) -> exit status`.
local argparse = require "argparse"
local flags = require "kling.cli.flags"
local validate = require "kling.validate"
local errors = require "kling.errors"

local M = {}

-- In the order kling --help lists them.
M.COMMANDS = { "run", "status", "tasks", "cancel", "download", "estimate", "quote", "storyboard", "element", "sim",
  "gateway" }

local function load_commands()
  local mods = {}
  for _, name in ipairs(M.COMMANDS) do
    mods[name] = require("kling.cli." .. name)
  end
  return mods
end

-- Every option that takes a value once refuses a second value (argparse keeps the last, so
-- `--model kling-v2-6 --model kling-v1` priced kling-v1 and `--parallel 2 --parallel 30` ran 30),
-- in `parser` and its commands. Options taken several times (--budget, --image) are left so.
local function once(parser)
  for _, o in ipairs(rawget(parser, "_options") or {}) do
    if o._maxcount == 1 and o._maxargs > 0 then
      o:overwrite(false)
    end
  end
  for _, c in ipairs(rawget(parser, "_commands") or {}) do
    once(c)
  end
end

-- The parser of bin/kling, with each command's; -> parser, {name = command module}.
function M.parser(mods)
  mods = mods or load_commands()
  local root = argparse("kling", "Kling AI video generation from the command line: the official API and four\n"
    .. "gateways, an offline simulator and a metering gateway.")
    :command_target("command")
    :epilog("kling COMMAND --help shows a command's options and exit statuses.\n"
      .. "Credentials come from the flags or, better (flags show in ps), the environment:\n"
      .. "KLING_PROVIDER, KLING_BASE_URL, KLING_ACCESS_KEY + KLING_SECRET_KEY or KLING_API_KEY, KLING_CA_FILE.")
  flags.own(root)
  -- argparse calls the root's handler with the parser (or subcommand) whose arguments are wrong.
  root.error = flags.usage_error
  root:flag("--debug", "print each request and answer on stderr, keys and tokens redacted\n(also KLING_DEBUG=1)")
  for _, name in ipairs(M.COMMANDS) do
    mods[name].define(flags.command(root, name, mods[name].summary))
  end
  flags.command(root, "help", "show the help of kling or of one command")
    :argument("topic", "a command"):args("?"):choices(M.COMMANDS)
  once(root)
  return root, mods
end

-- The option names a parser (or command, with kling's own options) takes. argparse keeps
-- them in `_options` and a command's parent in `_parent`; should a later argparse not, no
-- suggestion is made. Each name once: a command and kling itself both take -h/--help, which
-- "did you mean one of -h, -h?" listed twice.
local function option_names(parser)
  local names, seen = {}, {}
  while type(parser) == "table" do
    for _, o in ipairs(rawget(parser, "_options") or {}) do
      for _, alias in ipairs(o._aliases or {}) do
        if not seen[alias] then
          names[#names + 1], seen[alias] = alias, true
        end
      end
    end
    parser = rawget(parser, "_parent")
  end
  return names
end

-- The command names a parser takes (argparse keeps them in `_commands`).
local function command_names(parser)
  local names = {}
  for _, c in ipairs(rawget(parser, "_commands") or {}) do
    for _, alias in ipairs(c._aliases or {}) do
      names[#names + 1] = alias
    end
  end
  return names
end

-- The word of argv a "must be one of" message refuses: argparse does not say it. An option's is
-- the word after it (or after its "="); an argument's, the last word that is no option and no
-- choice.
local function refused_choice(msg, argv, set)
  local opt = msg:match("^argument for option '([^']+)'")
  local given
  for i, a in ipairs(argv) do
    if opt then
      -- the value not among the choices: of an option given twice, the last one was named
      -- ("--progress fancy --progress none": "(got 'none'); did you mean none?")
      local v = a == opt and argv[i + 1] or (a:sub(1, #opt + 1) == opt .. "=" and a:sub(#opt + 2)) or nil
      if v and not set[v] and not given then
        given = v
      end
    elseif a:sub(1, 1) ~= "-" and not set[a] then
      given = a
    end
  end
  return given
end

-- kling's "did you mean" is one line ("; did you mean run?"), as for unknown fields and options
-- of the library, and by the library's closest-name rule (validate.closest): argparse's is a
-- second line, only one edit away (a swap, --degub, got none), lists names further than the
-- closest (--sond: "one of --json, --sound"), and a refused choice (kling help rnu) got none.
local function one_line(msg, parser, argv)
  msg = msg:gsub("\nDid you mean.*$", "")
  local name = msg:match("^unknown option '(%-%-?[^']+)'$")
  local names
  if name then
    names = option_names(parser)
  else
    name = msg:match("^unknown command '([^']+)'$")
    names = name and command_names(parser)
  end
  local choices = not name and msg:match(" must be one of ('.*')$")
  if choices then
    names = {}
    local set = {}
    for c in choices:gmatch("'([^']*)'") do
      names[#names + 1], set[c] = c, true
    end
    name = refused_choice(msg, argv or {}, set)
    msg = name and (msg .. " (got '" .. validate.brief(name) .. "')") or msg
  end
  local near, ties = nil, nil
  if name then
    near, ties = validate.closest(name, names)
  end
  if near then
    msg = msg .. "; did you mean " .. (#ties > 1 and ("one of " .. table.concat(ties, ", ")) or near) .. "?"
  end
  return msg
end

-- The program a usage error names: "kling" when kling's own arguments are wrong, else "kling"
-- and the command: the first word that is no option (kling's own options take no value).
local function program(argv, failed, root)
  if failed ~= root then
    for _, a in ipairs(argv) do
      if a:sub(1, 1) ~= "-" then
        return "kling " .. a
      end
    end
  end
  return "kling"
end

-- The option names (and aliases) of `parser` and all its commands that take a value.
local function value_options(parser, set)
  set = set or {}
  for _, o in ipairs(rawget(parser, "_options") or {}) do
    if (o._maxargs or 0) > 0 then
      for _, alias in ipairs(o._aliases or {}) do
        set[alias] = true
      end
    end
  end
  for _, c in ipairs(rawget(parser, "_commands") or {}) do
    value_options(c, set)
  end
  return set
end

-- argparse reads any word that starts with "-" as an option, so "--duration -5" was refused as
-- "unknown option '-5'". A word that looks like a negative number right after an option that
-- takes a value is that value ("--duration=-5"): the option's own rule then refuses it by name.
local function negative_values(argv, root)
  local takes = value_options(root)
  local out = {}
  for _, a in ipairs(argv) do
    local prev = out[#out]
    if a == "--" then
      takes = {} -- what follows is never an option
    end
    if prev and takes[prev] and a:match("^%-%.?%d") then
      out[#out] = prev .. "=" .. a
    else
      out[#out + 1] = a
    end
  end
  return out
end

-- main(argv) -> exit status: --help and help print to stdout (0); a usage error prints the
-- message and the usage to stderr (2); else the command's run(args).
function M.main(argv)
  local loaded, mods = pcall(load_commands)
  if not loaded then
    io.stderr:write("kling: cannot load its commands: ", tostring(mods), "\n")
    return 70
  end
  local root = M.parser(mods)
  local ok, args = pcall(root.parse, root, negative_values(argv, root))
  if not ok then
    if getmetatable(args) ~= flags.Stop then
      error(args, 0)
    end
    if args.help then
      io.stdout:write(args.help:get_help(), "\n")
      return 0
    end
    io.stderr:write(flags.message(program(argv, args.usage, root) .. ": " .. one_line(args.message, args.usage, argv)),
      "\n",
      args.usage:get_usage(), "\n")
    return 2
  end
  if args.command == "help" then
    local _, stop = pcall(root.parse, root, args.topic and { args.topic, "--help" } or { "--help" })
    io.stdout:write(stop.help:get_help(), "\n")
    return 0
  end
  return M.run_command(args.command, mods[args.command], args)
end

-- The one place a command's raised error becomes a message and an exit status: Ctrl-C is
-- "interrupted" (with how the command resumes, its module's `interrupted`: a string or
-- function(args)) and 130, as a shell reports SIGINT; a kling error raised rather than
-- returned is reported as one would be (flags.failed); anything else is a bug: one line,
-- exit 1, the traceback with --debug. Input errors are returned, never raised, so no
-- traceback or file:line reaches the user for them.
function M.run_command(name, mod, args)
  local trace
  local ok, status = xpcall(mod.run, function(e)
    if not errors.interrupted(e) and not errors.is(e) then
      trace = debug.traceback(tostring(e), 2)
    end
    return e
  end, args)
  if ok then
    return status or 0
  end
  local fail = flags.failure("kling " .. name)
  if errors.interrupted(status) then
    local hint = mod.interrupted
    if type(hint) == "function" then
      hint = hint(args)
    end
    return fail(130, "interrupted" .. (hint and ("; " .. hint) or ""))
  end
  if errors.is(status) then
    return flags.failed(fail, status, "run the same command again")
  end
  if args.debug then
    io.stderr:write(trace, "\n")
  end
  return fail(1, "internal error: " .. tostring(status) .. (args.debug and "" or " (--debug shows where)"))
end

return M
