-- What the commands share (bin/kling, kling.cli): the argparse command maker that reports
-- --help and usage errors to kling.cli.main instead of exiting, converters of option values
-- (a bad value is a usage error naming the flag and the rule), the options that name a client
-- (provider, URL, keys) and the client they make, and how a command reports a failure.
local kling = require "kling"
local validate = require "kling.validate"

local M = {}

-- What the parsers raise for kling.cli.main to handle: {help = parser} or {usage = parser,
-- message = text}.
M.Stop = {}

local function stop(t)
  return error(setmetatable(t, M.Stop), 0)
end

-- parent:command(name) with its line in the parent's help (`summary`, also its description
-- unless it sets its own), whose --help is reported, not printed and exited on (the
-- root's error handler reports usage errors; see kling.cli).
function M.command(parent, name, summary)
  local cmd = parent:command(name):summary(summary):description(summary)
  M.own(cmd)
  return cmd
end

-- A parser's --help, reported to kling.cli.main.
function M.own(parser)
  parser:add_help { action = function()
    stop { help = parser }
  end }
  return parser
end

-- The usage error argparse found (`msg`) in `parser`.
function M.usage_error(parser, msg)
  stop { usage = parser, message = msg }
end

local function whole(n)
  return n == math.floor(n)
end

-- Rules a number option follows: the words that name the rule, and its test.
M.ANY = { "a number", function()
  return true
end }
-- A time flag, as kling.new and the engine take it (validate.seconds_problem).
M.SECONDS = { "a positive number of seconds, at most " .. validate.MAX_SECONDS, function(n)
  return not validate.seconds_problem(n)
end }
M.COUNT = { "a positive whole number", function(n)
  return n > 0 and whole(n)
end }
M.WHOLE = { "a whole number", whole }
M.NATURAL = { "a whole number >= 0", function(n)
  return n >= 0 and whole(n)
end }

-- range(lo, hi): a whole number in lo..hi.
function M.range(lo, hi)
  return { "a whole number in " .. lo .. ".." .. hi, function(n)
    return whole(n) and n >= lo and n <= hi
  end }
end

-- :convert(flags.number("--parallel", flags.COUNT)): the value as a number that follows `rule`,
-- written in decimal (validate.decimal, the rule CSV cells and --set values follow too).
function M.number(flag, rule)
  rule = rule or M.ANY
  return function(s)
    local n = validate.decimal(s)
    if not n or not rule[2](n) then
      return nil, flag .. " must be " .. rule[1] .. " (got '" .. s .. "')"
    end
    return n
  end
end

-- :convert(flags.budget): one --budget's text as kling.money.hold reads it, refused naming the
-- flag. Its currency may still come from --currency or the provider: only the text is checked.
function M.budget(s)
  local ok, err = require("kling.money.hold").parse(s, "CNY")
  if not ok then
    return nil, (err:gsub("^budget", "--budget", 1))
  end
  return s
end

-- :convert(flags.nonempty("--dir")): an empty value is refused (a path, a key).
function M.nonempty(flag)
  return function(s)
    if s == "" then
      return nil, flag .. " needs a non-empty value"
    end
    return s
  end
end

-- :convert(flags.key("--api-key", "api_key")): a key a client could use (kling.client.key_problem);
-- the value is not shown, it is a secret.
function M.key(flag, field)
  return function(s)
    local problem = require("kling.client").key_problem(field, s)
    if problem then
      return nil, flag .. " " .. problem .. " (the value is not shown)"
    end
    return s
  end
end

-- A TASK_ID as given on the command line: it goes into a URL path and a file name, so it is
-- checked by the library's one rule for task ids (kling.validate.task_id_problem).
function M.task_id(s)
  local problem = validate.task_id_problem(s)
  if problem then
    return nil, "TASK_ID " .. problem .. " (got \"" .. validate.shown(s) .. "\")"
  end
  return s
end

-- A list option (:count "*") as the library takes it: nil when never given.
function M.list(v)
  return v and #v > 0 and v or nil
end

-- The options that name the client: --provider, --base-url, --ca-file and, unless
-- `keys == false`, the key flags. `note` is added to --provider's description.
function M.client_options(cmd, note, keys)
  local group = {
    cmd:option("--provider", "kling | apiinone | apimodels | evolink | compat" .. (note or "")
      .. "\n(default KLING_PROVIDER, else kling)"):argname "P",
    cmd:option("--base-url", "the provider's base URL (default KLING_BASE_URL)"):argname "URL",
    cmd:option("--ca-file", "CA bundle for HTTPS (default KLING_CA_FILE)"):argname "PEM",
  }
  if keys ~= false then
    group[#group + 1] = cmd:option("--access-key", "with --secret-key: the official API's keys"):argname "K"
    group[#group + 1] = cmd:option("--secret-key", "(prefer KLING_ACCESS_KEY, KLING_SECRET_KEY: flags show in ps)")
      :argname "S"
    group[#group + 1] = cmd:option("--api-key", "an API key (gateways; default KLING_API_KEY)"):argname "K"
  end
  cmd:group("Provider and credentials", table.unpack(group))
end

-- --poll-min and --poll-max: the poll intervals of a task's wait; the first may not be longer
-- than the longest (a usage error naming both, once the command's options are parsed).
function M.poll_options(cmd)
  cmd:option("--poll-min", "first poll interval (default 1)"):argname("S"):convert(M.number("--poll-min", M.SECONDS))
  cmd:option("--poll-max", "longest poll interval (default 15)"):argname("S")
    :convert(M.number("--poll-max", M.SECONDS))
  cmd:action(function(args)
    local default = require("kling.client").default_seconds
    local min, max = args.poll_min or default("poll_min"), args.poll_max or default("poll_max")
    if min > max then
      M.usage_error(cmd, "--poll-min (" .. min .. (args.poll_min and "" or ", the default") .. ") is longer than "
        .. "--poll-max (" .. max .. (args.poll_max and "" or ", the default") .. "): the first poll interval may not "
        .. "exceed the longest")
    end
  end)
end

-- The client the options --provider (else `provider`), --base-url, --ca-file, --poll-min,
-- --poll-max, the keys and the global --debug name; what they leave out comes from the
-- KLING_* environment. -> client | nil, err
-- A refused setting is named as the user gave it: the flag or its variable.
local CLIENT_FLAGS = { provider = "--provider/KLING_PROVIDER", base_url = "--base-url/KLING_BASE_URL",
  ca_file = "--ca-file/KLING_CA_FILE", access_key = "--access-key/KLING_ACCESS_KEY",
  secret_key = "--secret-key/KLING_SECRET_KEY", api_key = "--api-key/KLING_API_KEY",
  poll_min = "--poll-min", poll_max = "--poll-max" }

-- The provider the options (else KLING_PROVIDER, else kling) name, or nil when it is no
-- provider (M.client then says so): what a command can check before it needs any key.
function M.provider(opts)
  return (require("kling.providers").get(opts.provider or os.getenv("KLING_PROVIDER") or "kling"))
end

function M.client(opts, provider)
  local client, err = kling.new { provider = opts.provider or provider, base_url = opts.base_url,
    ca_file = opts.ca_file, poll_min = opts.poll_min, poll_max = opts.poll_max,
    access_key = opts.access_key, secret_key = opts.secret_key, api_key = opts.api_key,
    -- Only when asked: a library without the option would refuse the name.
    debug = opts.debug or nil }
  return client, M.as_given(err)
end

-- err with its field named as the user gave it (api_key: "--api-key/KLING_API_KEY"), by the
-- client's options or `flags` ({out = "--out"}). -> err
function M.as_given(err, flags)
  local field = type(err) == "table" and err.field
  local given = field and ((flags or {})[field] or CLIENT_FLAGS[field])
  if given then
    err.field = given
  end
  return err
end

-- What the provider or a file says is shown, never obeyed: control characters (ESC sequences
-- that clear the screen or set the title, CR that overwrites a line, LF that forges one) are
-- printed escaped. printable(v): one value.
local function escaped(c)
  return string.format("\\x%02x", c:byte())
end

function M.printable(v)
  return (tostring(v):gsub("[%c\127]", escaped))
end

-- A message as kling prints it on stderr (a failure, a usage error): one line, whatever the
-- text it quotes holds. An argument, a file name or a provider's message with a CR or LF in it
-- forged a line of its own ("kling status $'a\nkling: done'"): each control character is
-- shown escaped (\n, \r, \t, \xHH; validate.shown, as the library's messages show values).
function M.message(v)
  return validate.shown(tostring(v))
end

-- Lines kling itself puts one under another (the rows --quiet lists): each a message (M.message),
-- joined by line breaks, so that only the program's own line breaks break a line.
function M.lines(list)
  local out = {}
  for i, line in ipairs(list) do
    out[i] = M.message(line)
  end
  return table.concat(out, "\n")
end

-- The start/stop of a background nginx service (kling sim, kling gateway) over its
-- launcher: stop says what it did on stderr; start prints the launcher's one JSON line on
-- stdout, taking the options named in `start_keys` from the parsed arguments. -> exit status.
-- What the launcher says is a message (M.message): it quotes a --dir and nginx's own output.
function M.launch(name, launcher, args, start_keys)
  if args.action == "stop" then
    local ok, msg, kind = launcher.stop(args.dir)
    io.stderr:write(name, ": ", M.message(msg), "\n")
    return ok and 0 or kind == "usage" and 2 or 1 -- 2: the other kind's D, nothing stopped
  end
  local o = {}
  for _, k in ipairs(start_keys) do
    o[k] = args[k]
  end
  local info, line, kind = launcher.start(o)
  if not info then
    io.stderr:write(name, ": ", M.message(line), "\n")
    return kind == "usage" and 2 or 1 -- 2: bad usage, nothing started
  end
  io.stdout:write(line, "\n")
  io.stdout:flush()
  return 0
end

-- fail(status, message) of command `name` ("kling run"): the message on stderr, the exit
-- status returned.
function M.failure(name)
  return function(status, msg)
    io.stderr:write(name, ": ", M.message(msg), "\n")
    return status
  end
end

-- The exit status of a workflow that returned `err`: 3 when it timed out (`again` says how to
-- keep waiting), 2 for a rule broken before anything was sent, else 1 (refused or failed, or
-- anything after a create was sent: err.sent).
function M.failed(fail, err, again)
  if err.kind == "timeout" then
    return fail(3, tostring(err) .. " (" .. again .. ")")
  end
  return fail(M.refused_unsent(err) and 2 or 1, err)
end

-- What a failed lookup of a task (kling status, kling download) says: the error, and, when it
-- was looked for on the endpoints tried without --endpoint and found on none, that --endpoint
-- names another (the error names those by kind). `kind` ("video", "image", "audio"), when the
-- command knows the task's (kling download --out FILE.EXT), narrows the hint to that kind's
-- endpoints not tried, or says that none is left: a video task was looked for on every video
-- endpoint, and an image's endpoint would not find it.
function M.lookup_failure(err, kind)
  local text = tostring(err)
  if type(err) ~= "table" or not err.endpoints_tried then
    return text
  end
  local others = err.other_endpoints or {}
  if not kind then
    return text .. ((others.video and others.video[1]) and ": " or ": every video endpoint was asked; ")
      .. "give the endpoint of a task of another kind with --endpoint E (one of those named for its kind)"
  end
  local list = others[kind]
  if list and list[1] then
    return text .. ": give the task's endpoint with --endpoint E (a" .. (kind:match("^[aeiou]") and "n " or " ")
      .. kind .. "'s: " .. table.concat(list, ", ") .. ")"
  end
  return text .. ": every " .. kind .. " endpoint was asked and none knows the task (a mistyped id, another"
    .. " account's task, or one the provider no longer keeps): no --endpoint would find it"
end

-- Whether the library refused the input before sending anything (exit status 2, bad usage).
function M.refused_unsent(err)
  return err.kind == "validation" and not err.code and not err.sent
end

return M
