-- `kling sim start|stop` end to end: arguments, the files it makes, the JSON line, a fixed
-- port that is taken, replacing a running sim, and stopping (twice). Starts its own nginx.
local stderr = require "support.stderr"
local json = require "kling.json"
local cli = require "kling.cli"
local launcher = require "kling_sim.launcher"

local shell = require "support.shell"

local sh, q = shell.run, shell.q

-- Whether a process lives (a zombie counts as gone).
local alive = require("kling.nginx_run").alive

-- Runs `kling sim ARGS` (kling.cli.main) with stderr captured; -> status, stderr text
local function main(args)
  local ok, status, err = stderr.capture(cli.main, { "sim", table.unpack(args) })
  assert(ok, status)
  return status, err
end

local dirs = {}
local function tmpdir()
  local d = sh("mktemp -d /tmp/kling-sim-spec.XXXXXX"):gsub("%s+$", "")
  dirs[#dirs + 1] = d
  return d
end

describe("kling sim command", function()
  teardown(function()
    for _, d in ipairs(dirs) do
      launcher.stop(d)
      sh("rm -rf " .. q(d))
    end
  end)

  it("refuses bad arguments with a message and status 2", function()
    for _, args in ipairs {
      { "launch" }, { "start", "--port", "0" }, { "start", "--port", "http" }, { "start", "--task-seconds", "-1" },
      { "start", "--seed", "1.5" }, { "start", "--frobnicate" }, { "start", "--dir" }, { "stop" },
      { "stop", "--dir", "/tmp/x", "--port", "1" },
    } do
      local status, err = main(args)
      assert.are.equal(2, status, table.concat(args, " "))
      assert.matches("^kling sim: ", err)
    end
  end)

  it("issue 14.1: a --dir nginx paths cannot hold is refused before it is made (nothing left behind)", function()
    local d = tmpdir() .. "/with space"
    local status, err = main { "start", "--dir", d }
    assert.are.equal(2, status) -- bad usage, as kling gateway start's --dir: it was 1, "it failed"
    assert.matches("kling sim: --dir: directory " .. d .. " has characters nginx paths cannot hold", err, 1, true)
    assert.is_nil(io.open(d, "r"))
  end)

  -- Each stopped the other's nginx when given the other's D (`kling sim stop --dir GATEWAY_D`
  -- stopped a metering gateway, "stopped the simulator"); a D is told apart by its pid file.
  it("kling sim and kling gateway refuse the other's directory, stopping and starting nothing", function()
    local g, s = tmpdir(), tmpdir()
    assert(io.open(g .. "/gateway.pid", "w")):close()
    assert(io.open(s .. "/sim.pid", "w")):close()
    for _, c in ipairs {
      { { "sim", "stop", "--dir", g }, "kling sim: " .. g .. " is a metering gateway's directory" },
      { { "sim", "start", "--dir", g, "--replace" }, "kling sim: " .. g .. " is a metering gateway's directory" },
      { { "gateway", "stop", "--dir", s }, "kling gateway: " .. s .. " is a simulator's directory" },
    } do
      local ok, status, err = stderr.capture(cli.main, c[1])
      assert(ok, status)
      assert.are.equal(2, status, table.concat(c[1], " "))
      assert.matches(c[2], err, 1, true)
    end
  end)

  -- `kling sim start --dir FILE` said "cannot create directory F: mkdir: cannot create directory
  -- 'F': File exists": mkdir's message after ours, naming the path twice.
  it("a --dir that is a file, or under one, is refused naming the path once and the cause", function()
    local f = tmpdir() .. "/file"
    assert(io.open(f, "w")):close()
    local status, err = main { "start", "--dir", f }
    assert.are.equal(1, status)
    assert.are.equal("kling sim: cannot create directory " .. f .. ": it exists and is not a directory\n", err)
    status, err = main { "start", "--dir", f .. "/sub" }
    assert.are.equal(1, status)
    assert.are.equal("kling sim: cannot create directory " .. f .. "/sub: Not a directory\n", err)
    local dir, derr = require("kling.nginx_run").absolute_dir(f, "kling-gateway") -- kling gateway start's
    assert.is_nil(dir)
    assert.are.equal("cannot create directory " .. f .. ": it exists and is not a directory", derr)
  end)

  it("an --out it cannot write is refused before the simulator starts (none left running)", function()
    local parent = tmpdir()
    sh("chmod 755 " .. q(parent)) -- a dir the simulator could start in
    local d = parent .. "/sim"
    table.insert(dirs, 1, d) -- stopped before its parent is removed, should it have started
    local status, err = main { "start", "--dir", d, "--out", "/proc/kling-sim-spec.json" }
    assert.are.equal(1, status)
    assert.matches("^kling sim: cannot write /proc/kling%-sim%-spec%.json: .*nothing was started", err)
    assert.is_nil(io.open(d .. "/sim.pid"))
    assert.is_nil(io.open(d .. "/nginx.pid"))
  end)

  it("refuses a --webhook-secret the simulator cannot take as bad usage, before nginx starts", function()
    local d = tmpdir()
    local status, err = main { "start", "--dir", d, "--webhook-secret", "whsec_!!!" }
    assert.are.equal(2, status)
    assert.matches("--webhook-secret after whsec_ must come the key in base64", err, 1, true)
    assert.is_nil(io.open(d .. "/sim.pid"))
  end)

  -- a key with a space or a control character made a simulator no client can call (kling.new refuses it)
  it("refuses keys no client could use as bad usage, without showing them, before nginx starts", function()
    for _, case in ipairs { { "--api-key", "sim key" }, { "--api-key", "k\tey" }, { "--access-key", "a\1b" },
      { "--secret-key", "se cret" } } do
      local d = tmpdir()
      local status, err = main { "start", "--dir", d, case[1], case[2] }
      assert.are.equal(2, status, case[1])
      assert.matches("kling sim: " .. case[1] .. " must be non-empty printable ASCII without spaces", err, 1, true)
      assert.is_nil(err:find(case[2], 1, true))
      assert.is_nil(io.open(d .. "/sim.pid"))
    end
  end)

  -- What the launchers say quotes a --dir and nginx's output: a CR, LF or ESC in them was
  -- printed raw, a line of the program's forged ("kling: ok") or the terminal driven.
  it("kling sim and kling gateway print what their launchers say as one line, control characters escaped", function()
    local d = tmpdir() .. "/x\n\27[2Jkling: ok"
    local status, err = main { "start", "--dir", d }
    assert.are.equal(2, status)
    assert.are.equal("kling sim: --dir: directory " .. d:gsub("\n", "\\n"):gsub("\27", "\\x1B")
      .. " has characters nginx paths cannot hold here; use letters, digits and ._/-+,@=:~\n", err)
    local ok, gstatus, gerr = stderr.capture(cli.main, { "gateway", "stop", "--dir", d })
    assert(ok, gstatus)
    assert.are.equal(0, gstatus)
    assert.are.equal("kling gateway: no gateway was running in " .. d:gsub("\n", "\\n"):gsub("\27", "\\x1B")
      .. "\n", gerr)
  end)

  it("nginx_run.start_failure quotes the last different lines of nginx's output, with where its log is", function()
    local nginx_run = require "kling.nginx_run"
    local log = "nginx: [alert] one\r\n\nnginx: [alert] two\nnginx: [alert] two\n\27[2Jthree\r\nfour\n\n"
    assert.are.equal("nginx exited at start: nginx: [alert] two | \27[2Jthree | four (the whole log: /d/error.log)",
      nginx_run.start_failure(log, "/d"))
  end)

  it("treats stopping a sim that is not running as success", function()
    local d = tmpdir()
    assert.are.equal(0, (main { "stop", "--dir", d }))
    local f = assert(io.open(d .. "/sim.pid", "w"))
    f:write("999999\n") -- a stale pid file
    f:close()
    assert.are.equal(0, (main { "stop", "--dir", d }))
    assert.is_nil(io.open(d .. "/sim.pid"))
  end)

  -- `kling sim stop --dir D` and `kling gateway stop --dir D` hung for ever on a FIFO at
  -- D/nginx.pid: both launchers opened the pid file with io.open, which blocks on a FIFO.
  it("a pid file that is not a regular file (a FIFO) is no pid: stop says none ran, and does not hang", function()
    local d = tmpdir()
    assert(os.execute("mkfifo " .. q(d .. "/nginx.pid")))
    finally(function()
      os.remove(d .. "/nginx.pid") -- teardown stops the sims of its dirs
    end)
    for _, what in ipairs { "sim", "gateway" } do
      -- in a child with a time limit: a hang is a failure here, not a stuck suite
      local out, code = sh("timeout 10 lua5.4 bin/kling " .. what .. " stop --dir " .. q(d) .. " 2>&1")
      assert.are.equal(0, code, what .. ": " .. out)
      assert.matches("no " .. (what == "sim" and "simulator" or "gateway") .. " was running in " .. d, out, 1, true)
      assert.is_true(os.execute("test -p " .. q(d .. "/nginx.pid")), what) -- left as it was
    end
    assert.is_nil(require("kling.nginx_run").read(d .. "/nginx.pid"))
    assert.is_nil(require("kling.nginx_run").read(d)) -- a directory neither
  end)

  -- `kling sim start --out FIFO` hung before nginx started: --out was opened to see whether a
  -- file was there.
  it("an --out that is not a regular file (a FIFO) is refused before anything starts, without hanging", function()
    local d = tmpdir()
    assert(os.execute("mkfifo " .. q(d .. "/out.json")))
    finally(function()
      os.remove(d .. "/out.json")
    end)
    local out, code = sh("timeout 10 lua5.4 bin/kling sim start --dir " .. q(d .. "/sim") .. " --out "
      .. q(d .. "/out.json") .. " 2>&1")
    assert.are_not.equal(124, code, out) -- timeout's own status: it hung
    assert.are_not.equal(0, code, out)
    assert.matches("is not a regular file (nothing was started)", out, 1, true)
    assert.is_true(os.execute("test -p " .. q(d .. "/out.json"))) -- left as it was
  end)

  it("starts from bin/kling, prints one JSON line, and stops", function()
    local d = tmpdir()
    local out_file = d .. "/info.json"
    local t0 = os.clock()
    local out, code = sh("lua5.4 bin/kling sim start --dir " .. q(d) .. " --out " .. q(out_file)
      .. " --task-seconds 2 --access-key ak1 --secret-key sk1 --api-key key1 2>&1")
    assert.are.equal(0, code, out)
    assert.is_true(os.clock() - t0 < 5)
    assert.matches("^{.*}\n$", out)
    local info = assert(json.decode(out))
    assert.are.same(info, json.decode(assert(io.open(out_file)):read("a")))
    assert.are.same(info, json.decode(assert(io.open(d .. "/sim.json")):read("a")))
    -- the help names every field of the line
    local help = sh("lua5.4 bin/kling sim start --help")
    for k in pairs(info) do
      assert.truthy(help:find('"' .. k .. '"', 1, true), "kling sim start --help does not name " .. k)
    end
    assert.are.equal(d, info.dir)
    assert.matches("^http://127%.0%.0%.1:%d+$", info.http)
    assert.matches("^https://127%.0%.0%.1:%d+$", info.https)
    assert.are.equal(info.http .. "/_sim", info.admin)
    assert.are.same({ "ak1", "sk1", "key1" }, { info.access_key, info.secret_key, info.api_key })
    assert.are.equal(tostring(info.pid), (assert(io.open(d .. "/sim.pid")):read("a"):gsub("%s", "")))
    assert.is_true(alive(info.pid))
    -- The CA is world-readable; the certificate is valid for 127.0.0.1 and localhost.
    assert.matches("^%-rw%-r%-%-r%-%-", sh("ls -l " .. q(info.ca_file)))
    local port = info.https:match(":(%d+)$")
    for _, host in ipairs { "127.0.0.1", "localhost" } do
      local body, c = sh("curl -s --resolve localhost:" .. port .. ":127.0.0.1 --cacert " .. q(info.ca_file)
        .. " https://" .. host .. ":" .. port .. "/_sim/health")
      assert.are.equal(0, c, host)
      assert.are.equal('{"ok":true}', body)
    end
    assert.matches('"task_seconds":2', sh("curl -s " .. info.admin .. "/config"), 1, true)
    -- The media were made for this start.
    assert.matches("codec_type=audio", sh("ffprobe -v error -show_entries stream=codec_type -of compact "
      .. q(d .. "/media/sample.mp4")), 1, true)

    local status, msg = main { "stop", "--dir", d }
    assert.are.equal(0, status)
    assert.matches("stopped", msg)
    assert.is_false(alive(info.pid))
    assert.are.equal(0, (main { "stop", "--dir", d }))
  end)

  -- A second start in a dir whose simulator ran silently stopped it and started one on new
  -- ports: its users (a test run, another shell) lost it without a word.
  it("fails clearly when the fixed port is taken, refuses a dir whose sim runs, replaces it when asked", function()
    local a, b = tmpdir(), tmpdir()
    local first = assert(launcher.start { dir = a })
    local port = tonumber(first.http:match(":(%d+)$"))
    local info, err = launcher.start { dir = b, port = port }
    assert.is_nil(info)
    assert.matches("Address already in use", err)
    -- nginx's output and its error log (five bind retries, a line each, twice) were quoted whole,
    -- a dozen raw lines: its last different lines on one line, and where the whole log is
    local status, said = main { "start", "--dir", b, "--port", tostring(port) }
    assert.are.equal(1, status)
    assert.are.equal("kling sim: nginx exited at start: nginx: [emerg] bind() to 127.0.0.1:" .. port .. " failed (98:"
      .. " Address already in use) | nginx: [emerg] still could not bind() (the whole log: " .. b .. "/error.log)\n",
      said)
    local kind
    info, err, kind = launcher.start { dir = a }
    assert.is_nil(info)
    assert.are.equal("running", kind)
    assert.matches("a simulator is already running in " .. a .. " (pid " .. first.pid .. ", " .. first.http
      .. "): nothing was started; stop it with `kling sim stop --dir " .. a .. "`, or give --replace", err, 1, true)
    assert.is_true(alive(first.pid))
    local out, code = sh("lua5.4 bin/kling sim start --dir " .. q(a) .. " 2>&1")
    assert.are.equal(1, code, out) -- as kling gateway start's refusal
    assert.matches("kling sim: a simulator is already running in " .. a .. " (pid " .. first.pid, out, 1, true)
    assert.are.equal(first.http, json.decode(assert(io.open(a .. "/sim.json")):read("a")).http)
    local again = assert(launcher.start { dir = a, replace = true })
    assert.are_not.equal(first.pid, again.pid)
    assert.is_false(alive(first.pid))
    assert.is_true(alive(again.pid))
    assert(launcher.stop(a))
    assert.is_false(alive(again.pid))
  end)
end)
