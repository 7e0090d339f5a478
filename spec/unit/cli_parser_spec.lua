-- Issue 14: the command line is one argparse parser built from each command's own declaration
-- (kling.cli). Run in this process: --help and usage errors come back as exit statuses (the
-- process is never exited), every command is strict, and help is generated for each.
local stderr = require "support.stderr"
local cli = require "kling.cli"

-- main(argv) with stdout and stderr captured; -> status, stdout, stderr
local function main(argv)
  -- luacheck: push ignore 122 (io.stdout and io.stderr are swapped for buffers while main runs)
  local real_out, real_err = io.stdout, io.stderr
  local bufs = { out = {}, err = {} }
  local function sink(buf)
    return { write = function(self, ...)
      for _, s in ipairs { ... } do
        buf[#buf + 1] = s
      end
      return self
    end, flush = function() end }
  end
  io.stdout, io.stderr = sink(bufs.out), sink(bufs.err)
  local ok, status = pcall(cli.main, argv)
  io.stdout, io.stderr = real_out, real_err
  -- luacheck: pop
  assert(ok, status)
  return status, table.concat(bufs.out), table.concat(bufs.err)
end

describe("kling.cli", function()
  it("issue 14: every command declares a summary, its arguments and a run function", function()
    for _, name in ipairs(cli.COMMANDS) do
      local mod = require("kling.cli." .. name)
      assert.is_string(mod.summary, name)
      assert.is_function(mod.define, name)
      assert.is_function(mod.run, name)
    end
  end)

  it("issue 14: kling --help lists every command with its summary; kling alone is bad usage", function()
    local status, out = main { "--help" }
    assert.are.equal(0, status)
    for _, name in ipairs(cli.COMMANDS) do
      local summary = require("kling.cli." .. name).summary
      assert.matches("\n   " .. name .. "%s+" .. summary:gsub("%p", "%%%0"), out)
    end
    local err
    status, out, err = main {}
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("^kling: a command is required\nUsage: kling ", err)
  end)

  it("issue 14: each command's --help is generated, on stdout, exit 0; kling help CMD says the same", function()
    for _, name in ipairs(cli.COMMANDS) do
      local status, out, err = main { name, "--help" }
      assert.are.equal(0, status, name)
      assert.are.equal("", err, name)
      assert.matches("^Usage: kling " .. name .. " ", out)
      assert.matches("%-h, %-%-help", out)
      local again = select(2, main { "help", name })
      assert.are.equal(out, again, name)
    end
  end)

  it("kling gateway start --help says what --dir and --listen are to a node of several", function()
    local status, out = main { "gateway", "start", "--help" }
    assert.are.equal(0, status)
    -- start refuses a Redis store without --dir; a node on --listen 10.0.0.11:8080 has no admin API
    assert.matches("with a%s+Redis store D is required", out)
    assert.matches("loopback callers only:%s+0%.0%.0%.0:PORT takes loopback too", out)
  end)

  it("issue 14: each command refuses an unknown option by name with exit 2", function()
    for _, argv in ipairs { { "run", "m", "--out", "d" }, { "status", "1" }, { "tasks" }, { "cancel", "1" },
      { "download", "1" }, { "estimate" }, { "quote" }, { "storyboard", "f", "--out", "d" },
      { "element", "list" }, { "sim", "stop", "--dir", "d" }, { "gateway", "stop", "--dir", "d" } } do
      argv[#argv + 1] = "--frobnicate"
      local status, out, err = main(argv)
      assert.are.equal(2, status, table.concat(argv, " "))
      assert.are.equal("", out)
      assert.matches("^kling " .. argv[1] .. ": unknown option '%-%-frobnicate'\nUsage: kling " .. argv[1], err)
    end
  end)

  it("issue 14: an option two letters off (swapped) is suggested, also kling's own after a command", function()
    for _, c in ipairs {
      { { "run", "m", "--out", "d", "--parralel", "2" }, "'%-%-parralel'; did you mean %-%-parallel%?" },
      { { "status", "1", "--degub" }, "'%-%-degub'; did you mean %-%-debug%?" },
      { { "--degub", "tasks" }, "'%-%-degub'; did you mean %-%-debug%?" } } do
      local status, _, err = main(c[1])
      assert.are.equal(2, status)
      assert.matches(c[2], err)
    end
  end)

  it("issue 14: a bad value is refused naming the option and the rule", function()
    local cases = {
      { { "run", "m", "--out", "d", "--parallel", "1.5" },
        "%-%-parallel must be a whole number in 1..1000000 %(got '1.5'%)" },
      -- the engine's limit, said by the flag (it was an internal error from kling.engine.new)
      { { "run", "m", "--out", "d", "--parallel", "99999999999999999999" },
        "^kling run: %-%-parallel must be a whole number in 1..1000000" },
      { { "run", "m", "--out", "d", "--progress", "loud" }, "argument for option '%-%-progress' must be one of" },
      { { "run", "m" }, "missing option '%-%-out'" },
      { { "tasks", "--page", "0" }, "%-%-page must be a whole number in 1..1000 %(got '0'%)" },
      { { "estimate", "--json", "[1" }, "%-%-json: the request must be a JSON object" },
      { { "estimate", "--sound", "--no-sound" }, "can not be used together" },
      { { "quote", "--rates", "CNY" }, "%-%-rates takes CURRENCY=USD_PER_UNIT" },
      { { "gateway", "start", "--config", "c", "--port", "1", "--listen", "a:1" }, "can not be used together" },
      { { "gateway", "start", "--config", "c", "--listen", "evil;host:80" }, "%-%-listen must be ADDR:PORT" },
      { { "gateway", "start", "--config", "c", "--listen", "0.0.0.0:99999" },
        "PORT in 1..65535 %(got 0.0.0.0:99999%)" },
      { { "sim", "start", "--workers", "65" }, "%-%-workers must be a whole number in 1..64" },
      { { "tasks", "--page", "0x10" }, "%-%-page must be a whole number in 1..1000 %(got '0x10'%)" },
      { { "tasks", "--page-size", "1e1" }, "%-%-page%-size must be a whole number in 1..500 %(got '1e1'%)" },
      { { "run", "m", "--out", "d", "--deadline", " 5" }, "%-%-deadline must be" },
      -- each duration by the number flags' rule (tonumber took " 5" and "0x5" as 5)
      { { "estimate", "--model", "kling-v3", "--shots", " 5,4" }, "%-%-shots takes whole seconds .*%(got ' 5,4'%)" },
      { { "estimate", "--model", "kling-v3", "--shots", "3,0x5" }, "%-%-shots takes whole seconds .*%(got '3,0x5'%)" },
      { { "estimate", "--model", "kling-v3", "--shots", "3,1e1" }, "%-%-shots takes whole seconds" },
      -- an empty shot was skipped, and one of no or negative seconds taken
      { { "estimate", "--model", "kling-v3", "--shots", "3,,4" }, "%-%-shots takes whole seconds .*%(got '3,,4'%)" },
      { { "estimate", "--model", "kling-v3", "--shots", "3,-1" }, "%-%-shots takes whole seconds from 1" },
      { { "estimate", "--model", "kling-v3", "--shots", "0" }, "%-%-shots takes whole seconds from 1" },
      -- A negative number is the option's value, refused by its rule (argparse took "-5" for an option).
      { { "run", "m", "--out", "d", "--deadline", "-1" },
        "%-%-deadline must be a positive number of seconds, at most 2147483 %(got '%-1'%)" },
      { { "run", "m", "--out", "d", "--retries", "-1" }, "%-%-retries must be a whole number >= 0 %(got '%-1'%)" },
      { { "run", "m", "--out", "d", "--parallel", "-.5" }, "%-%-parallel must be a whole number in 1..1000000" },
      { { "sim", "start", "--task-seconds", "-1" }, "%-%-task%-seconds must be a number of seconds in 0..86400" },
      { { "tasks", "--page", "-2" }, "%-%-page must be a whole number in 1..1000 %(got '%-2'%)" },
      { { "storyboard", "f", "--out", "d", "--timeout", "-5" }, "%-%-timeout must be a positive number" },
      -- the library's own limit, said by the flag (it was a traceback from kling.engine.new)
      { { "run", "m", "--out", "d", "--timeout", "2147484" }, "^kling run: %-%-timeout must be a positive number of "
        .. "seconds, at most 2147483 %(got '2147484'%)" },
      { { "run", "m", "--out", "d", "--estimate", "3000000" }, "%-%-estimate must be a positive number of seconds, "
        .. "at most 2147483" },
      { { "run", "m", "--out", "d", "--retries", "-x" }, "unknown option '%-x'" },
      { { "run", "m", "--out", "d", "--budget", "-5CNY" },
        "^[^\n]*%-%-budget must be a decimal amount .*%(got \"%-5CNY\": negative%)" },
      { { "run", "m", "--out", "d", "--budget", "5credits" }, "%-%-budget 5credits: \"credits\" is not one currency" },
      { { "estimate", "--model", "kling-v2-6", "--duration", "-5" }, "duration: must be one of 5, 10 .*%(got %-5%)" },
      -- accepted, and the first interval longer than the longest
      { { "run", "m", "--out", "d", "--poll-min", "20", "--poll-max", "5" },
        "^kling run: %-%-poll%-min %(20%) is longer than %-%-poll%-max %(5%)" },
      { { "storyboard", "f", "--out", "d", "--poll-min", "2.5", "--poll-max", "1" },
        "%-%-poll%-min %(2.5%) is longer than %-%-poll%-max %(1%)" },
      -- one of the two against the other's default: refused before any row is read
      { { "run", "m", "--out", "d", "--poll-min", "20" },
        "%-%-poll%-min %(20%) is longer than %-%-poll%-max %(15, the default%)" },
      { { "run", "m", "--out", "d", "--poll-max", "0.5" },
        "%-%-poll%-min %(1, the default%) is longer than %-%-poll%-max %(0.5%)" },
    }
    for _, c in ipairs(cases) do
      local status, _, err = main(c[1])
      assert.are.equal(2, status, table.concat(c[1], " "))
      assert.matches(c[2], err)
    end
  end)

  -- argparse kept the last value: --model kling-v2-6 --model kling-v1 priced kling-v1, exit 0
  it("refuses an option that takes one value given twice, and takes a repeatable one again", function()
    for _, argv in ipairs {
      { "estimate", "--model", "kling-v2-6", "--model", "kling-v1" },
      { "run", "m", "--out", "d", "--parallel", "2", "--parallel", "30" },
      { "sim", "start", "--port", "8080", "--port=8081" },
    } do
      local status, _, err = main(argv)
      assert.are.equal(2, status, table.concat(argv, " "))
      assert.matches("option '%-%-%a+' must be used at most 1 time", err)
    end
    -- --quiet turned the --progress asked for off without a word
    local status, _, err = main { "run", "m", "--out", "d", "--quiet", "--progress", "bar" }
    assert.are.equal(2, status)
    assert.matches("option '--progress' can not be used together with option '--quiet'", err, 1, true)
    status, _, err = main { "run", "m", "--out", "d", "--budget", "5CNY", "--budget", "5USD", "--currency" }
    assert.are.equal(2, status)
    assert.is_nil(err:find("must be used at most", 1, true))
  end)

  -- an option of the other form was dropped: --endpoint with a batch DIR, --rows with a task id
  it("kling status refuses the options of a task id for a batch DIR and --rows for a task id", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. " && : > " .. dir .. "/journal.jsonl"))
    local status, _, err = main { "status", dir, "--endpoint", "videos/text2video" }
    assert.are.equal(2, status)
    assert.matches("kling status: --endpoint applies to a TASK_ID, and '" .. dir .. "' is a batch directory", err,
      1, true)
    status, _, err = main { "status", dir, "--api-key", "k-0123456789" }
    assert.are.equal(2, status)
    assert.matches("--api-key applies to a TASK_ID", err, 1, true)
    status, _, err = main { "status", "861796292580000001", "--rows" }
    assert.are.equal(2, status)
    assert.matches("--rows applies to a batch DIR, and '861796292580000001' is read as a task id: nothing was sent",
      err, 1, true)
    os.execute("rm -rf " .. dir)
  end)

  it("a command's raised error is one line with its exit status: interrupted 130, a bug 1", function()
    local function run(mod, args)
      local ok, status, err = stderr.capture(cli.run_command, "demo", mod, args or {})
      assert(ok, status)
      return status, err
    end
    local status, err = run({ run = function() error("/x/lua/kling/driver/curl.lua:38: interrupted!", 0) end,
      interrupted = function(args) return args.out .. "/journal.jsonl keeps it" end }, { out = "out" })
    assert.are.equal(130, status)
    assert.are.equal("kling demo: interrupted; out/journal.jsonl keeps it\n", err)
    status, err = run { run = function() error("interrupted!", 0) end }
    assert.are.equal(130, status)
    assert.are.equal("kling demo: interrupted\n", err)
    status, err = run { run = function() local t = nil; return t.x end }
    assert.are.equal(1, status)
    assert.matches("^kling demo: internal error: .*attempt to index .* %(%-%-debug shows where%)\n$", err)
    status, err = run({ run = function() local t = nil; return t.x end }, { debug = true })
    assert.are.equal(1, status)
    assert.matches("stack traceback:", err)
    status, err = run { run = function() error(require("kling.errors").validation("x", "must be y"), 0) end }
    assert.are.equal(2, status)
    assert.are.equal("kling demo: kling: validation: x: must be y\n", err)
  end)

  -- "kling tasks --provider evolink" without a key said "no credentials", as if a key would help
  it("a provider without a task list or cancel is said so before any key is asked for", function()
    local status, _, err = main { "tasks", "--provider", "evolink", "--base-url", "http://127.0.0.1:9" }
    assert.are.equal(2, status)
    assert.matches("^kling tasks: provider 'evolink' has no task list", err)
    status, _, err = main { "cancel", "123", "--provider", "kling", "--base-url", "http://127.0.0.1:9" }
    assert.are.equal(2, status)
    assert.matches("^kling cancel: provider 'kling' cannot cancel tasks: nothing was sent", err)
  end)

  -- kling status "" --endpoint E (or --external) reached get_task and stopped as an internal error
  it("kling status refuses a TASK_ID by the rule download and cancel parse it with, nothing sent", function()
    for _, extra in ipairs { { "--endpoint", "videos/text2video" }, { "--external" } } do
      local status, _, err = main { "status", "", extra[1], extra[2], "--base-url", "http://127.0.0.1:9",
        "--access-key", "ak", "--secret-key", "sk" }
      assert.are.equal(2, status)
      assert.matches("^kling status: TASK_ID must be 1..200 printable characters .* %(got \"\"%): nothing was sent",
        err)
    end
  end)

  -- kling status $'a\nFAKE LINE' printed a forged second line: what a user, a file or a provider
  -- wrote is shown with its line breaks escaped; only kling's own lines break a line
  it("a CR or LF in an argument is shown escaped in the error and the usage error, never a line of its own", function()
    local status, out, err = main { "status", "a\nkling status: FAKE LINE" }
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("^kling status: 'a\\nkling status: FAKE LINE' is not a batch directory", err)
    assert.are.equal(1, select(2, err:gsub("\n", "")), err)
    status, out, err = main { "status", "1", "--x\r\nFAKE" }
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.matches("^kling status: unknown option '%-%-x\\r\\nFAKE'\nUsage: kling status ", err)
    status, out, err = main { "run", "m", "--out", "d", "--parallel", "1\nFAKE" }
    assert.are.equal("", out)
    assert.are.equal(2, status)
    assert.matches("^kling run: %-%-parallel must be a whole number in 1%.%.%d+ %(got '1\\nFAKE'%)\nUsage: ", err)
    local flags = require "kling.cli.flags"
    assert.are.equal("  a  failed: x\\ny\n  b  refused: \\rz", flags.lines { "  a  failed: x\ny", "  b  refused: \rz" })
  end)
end)
