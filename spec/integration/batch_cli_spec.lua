-- The workflow commands as scripts use them (bin/kling in a process of its own, keys in the
-- environment) against the simulator: --help on each, the documented exit statuses (0 done,
-- 2 bad usage with nothing sent, 3 rows remain, 4 uncertain rows), kling status on a batch
-- directory and on a task, and no key ever printed.
local sim = require "support.sim"
local cli = require "support.cli"
local files = require "support.files"

local kling, write = cli.kling, files.write
local q = require("support.shell").q
local root = files.tempdir()

local function no_secret(out)
  local i = sim.info()
  assert.is_nil(out:find(i.secret_key, 1, true), "the secret key was printed")
  assert.is_nil(out:find(i.api_key, 1, true), "the API key was printed")
end

-- Starts `kling ARGS` in the background and, once the simulator holds its stalled request (the
-- stall counted as it begins: lua/kling_sim/router.lua), calls act(pid); -> exit status, output.
-- A fixed sleep before act raced the command's start on a loaded machine (acting before it asked).
local function when_stalled(args, act)
  local function stalls()
    return (sim.stats().faults_by_kind or {}).stall or 0
  end
  local before = stalls()
  local base = os.tmpname()
  os.execute("sh -c " .. q(cli.env() .. "lua5.4 bin/kling " .. args .. " > " .. q(base .. ".out")
    .. " 2>&1 & echo $! > " .. q(base .. ".pid") .. "; wait $!; echo $? > " .. q(base .. ".rc")) .. " &")
  local limit = os.time() + 60
  while stalls() == before and os.time() < limit do
    os.execute("sleep 0.05")
  end
  assert(stalls() > before, "the simulator never stalled the command's request")
  act(tonumber(files.read(base .. ".pid")))
  while not files.read(base .. ".rc") or files.read(base .. ".rc") == "" do
    os.execute("sleep 0.05")
  end
  local status, out = tonumber(files.read(base .. ".rc")), files.read(base .. ".out")
  os.remove(base .. ".out"); os.remove(base .. ".pid"); os.remove(base .. ".rc"); os.remove(base)
  return status, out
end

describe("the workflow commands", function()
  before_each(sim.fresh)

  teardown(function()
    os.execute("rm -rf " .. root)
  end)

  it("each answer --help with their exit statuses", function()
    for _, cmd in ipairs { "run", "status", "storyboard", "element" } do
      local status, out = kling(cmd .. " --help")
      assert.are.equal(0, status, cmd)
      assert.matches("^Usage: kling " .. cmd, out)
      assert.matches("Exit status", out)
    end
  end)

  it("kling run exits 2 on bad usage and a bad manifest, sending nothing", function()
    write(root .. "/bad.jsonl", '{"id": "a"}\n{"id": "a"}\n')
    for _, args in ipairs { "run", "run " .. root .. "/bad.jsonl", "run " .. root .. "/bad.jsonl --out " .. root
      .. "/o1", "run x.jsonl --out d --parallel 0", "run x.jsonl --out d --bogus" } do
      local status, out = kling(args)
      assert.are.equal(2, status, args .. ": " .. out)
    end
    assert.are.equal(0, sim.stats().requests)
  end)

  -- A JSON array's items read as fields named 1, 2, ...: every row then failed on "1: unknown field".
  it("kling run refuses --defaults holding a JSON array (exit 2, nothing sent)", function()
    local m = root .. "/arr.jsonl"
    write(m, '{"id": "a", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    write(root .. "/defaults.json", '["kling-v1", "std"]')
    local status, out = kling("run " .. m .. " --quiet --out " .. q(root .. "/arr") .. " --defaults "
      .. q(root .. "/defaults.json"))
    assert.are.equal(2, status, out)
    assert.matches("--defaults must hold a JSON object (got an array)", out, 1, true)
    assert.are.equal(0, sim.stats().requests)
  end)

  it("kling run exits 2 on an --out or a --name holding a control character, sending nothing", function()
    local m = root .. "/ctl.jsonl"
    write(m, '{"id": "a", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    for _, args in ipairs { { "--out", root .. "/o\nnl" }, { "--out", root .. "/cr\rx" },
      { "--out", root .. "/ctl", "--name", "{id}\n.{ext}" },
      { "--out", root .. "/ctl", "--name", "{id}\27[2J.{ext}" } } do
      local status, out = kling("run " .. m .. " --quiet " .. args[1] .. " " .. q(args[2])
        .. (args[3] and (" " .. args[3] .. " " .. q(args[4])) or ""))
      assert.are.equal(2, status, out)
      assert.matches((args[3] and "%(%-%-name%)" or "%(%-%-out%)") .. " holds a control character", out)
    end
    assert.are.equal(0, sim.stats().requests)
    assert.is_nil(io.open(root .. "/o\nnl"))
    assert.is_nil(io.open(root .. "/ctl"))
  end)

  -- Both tasks were paid for, one file was written, and summary.json gave both rows its path.
  it("kling run refuses two rows whose ids clean up to one file name (exit 2, nothing sent)", function()
    local m = root .. "/ids3.jsonl"
    write(m, '{"id": "a/b", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n'
      .. '{"id": "a_b", "prompt": "q", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    local status, out = kling("run " .. m .. " --quiet --out " .. q(root .. "/o10"))
    assert.are.equal(2, status, out)
    assert.matches("ids3.jsonl:2: id 'a_b' names its output a_b.{ext}, as does id 'a/b' on line 1", out, 1, true)
    assert.are.equal(0, sim.stats().requests)
    assert.is_nil(io.open(root .. "/o10/journal.jsonl"))
  end)

  -- A new user's trial, --name '{id}': ids journal.jsonl and .lock exited 0, "succeeded 2",
  -- charged, with the batch's own files listed as the videos; ids summary.json and report.html
  -- had their videos overwritten by the summary and the report.
  it("kling run refuses an output named as one of the batch's own files (exit 2, nothing sent)", function()
    local m = root .. "/own.jsonl"
    local dir = root .. "/o-own"
    for _, ids in ipairs { { "journal.jsonl", ".lock" }, { "summary.json", "report.html" } } do
      write(m, '{"id": "fine", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n'
        .. '{"id": "' .. ids[1] .. '", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n'
        .. '{"id": "' .. ids[2] .. '", "prompt": "q", "model": "kling-v1", "mode": "std", "duration": 5}\n')
      local status, out = kling("run " .. m .. " --quiet --out " .. q(dir) .. " --name '{id}'")
      assert.are.equal(2, status, out)
      assert.matches("own.jsonl:2: id '" .. ids[1] .. "' names its output " .. ids[1] .. ", the batch's ", out, 1, true)
      assert.are.equal(0, sim.stats().requests)
      assert.is_nil(io.open(dir .. "/journal.jsonl"))
    end
  end)

  -- One row with a 128-character id: created and charged, then "cannot open '...mp4.part': File
  -- name too long" at the download, on every run again.
  it("kling run refuses an output name over the file system's limits before the create (exit 2)", function()
    local m = root .. "/long.jsonl"
    local id = ("a"):rep(128)
    write(m, '{"id": "' .. id .. '", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    local status, out = kling("run " .. m .. " --quiet --out " .. q(root .. "/o-long")
      .. " --name '{id}-{task_id}-{model}-{id}.{ext}'")
    assert.are.equal(2, status, out)
    assert.matches("long.jsonl:1: id '" .. id .. "' names its output " .. id .. "-{task_id}-kling-v1-" .. id
      .. ".{ext}: the output would have a file name of 336 bytes, over the 255 a file name may have (NAME_MAX) "
      .. "(counted with {task_id} as 64 bytes", out, 1, true)
    assert.are.equal(0, sim.stats().requests)
  end)

  -- 5 CNY was charged and the rows were left unfinished: the links were found at the download.
  it("kling run refuses a row whose output path holds a planted link before its create (nothing sent)", function()
    local m = root .. "/links.jsonl"
    write(m, '{"id": "r00", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n'
      .. '{"id": "r01", "prompt": "q", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    local dir = root .. "/o12"
    os.execute("mkdir -p " .. q(dir) .. " && ln -s /etc/passwd " .. q(dir .. "/r00.mp4") .. " && ln -s "
      .. q(root .. "/nowhere") .. " " .. q(dir .. "/r01.mp4.part"))
    local status, out = kling("run " .. m .. " --out " .. q(dir))
    assert.are.equal(2, status, out)
    assert.matches(dir .. "/r00.mp4 is a symbolic link", out, 1, true)
    assert.matches(dir .. "/r01.mp4.part is a symbolic link", out, 1, true)
    assert.are.equal(0, sim.stats().requests)
    assert.is_nil(io.open(root .. "/nowhere"))
  end)

  -- With `ln -s /tmp DIR/posters`, the poster frame was written to /tmp/r00.mp4.jpg.
  it("kling run never follows a link planted at DIR/posters or at a subdirectory of --name", function()
    local m = root .. "/posters.jsonl"
    write(m, '{"id": "r00", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    local dir, elsewhere = root .. "/o13", root .. "/elsewhere"
    os.execute("mkdir -p " .. q(dir) .. " " .. q(elsewhere) .. " && ln -s " .. q(elsewhere) .. " "
      .. q(dir .. "/posters"))
    local status, out = kling("run " .. m .. " --out " .. q(dir))
    assert.are.equal(0, status, out)
    assert.matches("no poster frames in " .. dir .. "/posters: " .. dir .. "/posters is a symbolic link", out, 1, true)
    assert.is_nil(io.open(elsewhere .. "/r00.mp4.jpg"))
    assert(io.open(dir .. "/r00.mp4")):close()
    -- a subdirectory the name template makes: refused before the create
    dir = root .. "/o14"
    os.execute("mkdir -p " .. q(dir) .. " && ln -s " .. q(elsewhere) .. " " .. q(dir .. "/kling-v1"))
    status, out = kling("run " .. m .. " --out " .. q(dir) .. " --name '{model}/{id}.{ext}'")
    assert.are.equal(2, status, out)
    assert.matches(dir .. "/kling-v1 is a symbolic link", out, 1, true)
    assert.are.equal(1, sim.stats().creates)
    assert.is_nil(io.open(elsewhere .. "/r00.mp4"))
  end)

  -- kling run given a directory failed with an internal error (manifest.lua: attempt to index a
  -- nil value), exit 1; the others said "(expected a JSON string, got nil)".
  it("every command given a directory for an input file says so, exit 2, nothing sent", function()
    local d = root .. "/a-directory"
    os.execute("mkdir -p " .. q(d))
    local m = root .. "/one.jsonl"
    write(m, '{"id": "a", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    for _, args in ipairs { "run " .. q(d) .. " --out " .. q(root .. "/o20"),
      "storyboard " .. q(d) .. " --out " .. q(root .. "/o21"),
      "run " .. m .. " --out " .. q(root .. "/o22") .. " --defaults " .. q(d),
      "run " .. m .. " --out " .. q(root .. "/o22") .. " --budget 5 --rates " .. q(d),
      "estimate --file " .. q(d) } do
      local status, out = kling(args)
      assert.are.equal(2, status, args .. ": " .. out)
      assert.matches(d .. " is a directory", out, 1, true)
      assert.is_nil(out:find("internal error", 1, true), out)
    end
    assert.are.equal(0, sim.stats().requests)
  end)

  -- Accepted: an unknown top-level field, a rate for a currency nothing charges in, a rate for
  -- the rates' own currency; "0.0000001" said only "must be a decimal string such as 0.14".
  it("kling run refuses a --rates file naming the field, the currency or the rule it breaks", function()
    local m = root .. "/one.jsonl"
    write(m, '{"id": "a", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    local rates = root .. "/rates.json"
    for body, said in pairs {
      ['{"currency": "CNY", "rates": {"USD": "7.1"}, "x": 1}'] = "rates.json: x: is not a field of a rates file",
      ['{"currency": "CNY", "rates": {"XYZ": "1"}}'] = "--rates: rates.XYZ: no provider charges in XYZ",
      ['{"currency": "CNY", "rates": {"CNY": "2"}}'] = "rates.CNY: CNY is the rates' own currency",
      ['{"currency": "CNY", "rates": {"USD": "0.0000001"}}'] =
        'rates.USD: a positive decimal string with at most 6 decimals is required, such as "0.14" '
        .. '(got "0.0000001": more than 6 decimals)',
      ['{"currency": "CNY", "rates": {"USD": "-7"}}'] = '(got "-7": not positive)',
    } do
      write(rates, body)
      local status, out = kling("run " .. m .. " --out " .. q(root .. "/o24") .. " --budget 5CNY --rates " .. rates)
      assert.are.equal(2, status, out)
      assert.matches(said, out, 1, true)
    end
    assert.are.equal(0, sim.stats().requests)
  end)

  -- "kling run two.jsonl --quiet --set nonsense=1" exited 2 and printed nothing at all.
  it("kling run --quiet still says why rows were refused (on stderr), nothing when all succeeded", function()
    local m = root .. "/two.jsonl"
    write(m, '{"id": "a", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n'
      .. '{"id": "b", "prompt": "q", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    local status, out = kling("run " .. m .. " --out " .. q(root .. "/o11") .. " --quiet --set nonsense=1")
    assert.are.equal(2, status, out)
    assert.matches("kling run: 2 of 2 rows refused, nothing sent for them", out, 1, true)
    assert.matches("a%s+refused%s+validation: nonsense: unknown field", out)
    assert.matches("b%s+refused%s+validation: nonsense: unknown field", out)
    assert.is_nil(out:find("failed", 1, true), out) -- nothing was sent, so nothing failed
    status, out = kling("run " .. m .. " --out " .. q(root .. "/o11b") .. " --quiet --poll-min 0.2")
    assert.are.equal(0, status, out)
    assert.are.equal("exit=0\n", out)
    -- rows the budget holds back are not failures, but exit 3 with nothing said left the user guessing
    status, out = kling("run " .. m .. " --out " .. q(root .. "/o11c") .. " --quiet --poll-min 0.2 --budget 1.5CNY")
    assert.are.equal(3, status, out)
    assert.matches("kling run: 1 of 2 rows unfinished %(run the same command again%):\n%s+1  budget: ", out)
  end)

  -- A text-to-audio's audio comes as an mp3 and a wav (kling.task's files; kling download writes
  -- both): kling run downloaded the mp3 alone. Every file of the row is written now, each
  -- numbered, and the charge is still the one audio's (the wav is the same audio, not a second).
  it("kling run downloads both files of a text-to-audio row (mp3 and wav), charged for one audio", function()
    local m = root .. "/sfx.jsonl"
    write(m, '{"id": "boom", "endpoint": "audio/text-to-audio", "prompt": "a door slams", "duration": 3.5}\n')
    local dir = root .. "/o-sfx"
    local status, out = kling("run " .. m .. " --out " .. q(dir) .. " --quiet --poll-min 0.2 --budget 50CNY")
    assert.are.equal(0, status, out)
    local summary = require("kling.json").decode(files.read(dir .. "/summary.json"))
    assert.are.equal(1, summary.succeeded)
    local paths = {}
    for _, f in ipairs(summary.outputs) do
      paths[#paths + 1] = f.path
    end
    assert.are.same({ "boom-1.mp3", "boom-2.wav" }, paths)
    assert.is_truthy(files.read(dir .. "/boom-1.mp3"))
    assert.is_truthy(files.read(dir .. "/boom-2.wav"))
    local client = sim.client()
    local q1 = assert(client:estimate { endpoint = "audio/text-to-audio", prompt = "a door slams", duration = 3.5 })
    assert.are.same({ CNY = q1.amount }, summary.charges)
    assert.are.equal(q1.amount, summary.budget.spent)
    -- without a budget the charge is priced from the row's files (kling.money.usage.of_outputs)
    status, out = kling("run " .. m .. " --out " .. q(dir .. "-free") .. " --quiet --poll-min 0.2")
    assert.are.equal(0, status, out)
    summary = require("kling.json").decode(files.read(dir .. "-free/summary.json"))
    assert.are.same({ CNY = q1.amount }, summary.charges)
    assert.are.equal(2, #summary.outputs)
    -- the wav's name is checked before the create, as the mp3's is: nothing is paid for a file refused
    local planted = dir .. "-link"
    os.execute("mkdir -p " .. q(planted) .. " && ln -s /etc/passwd " .. q(planted .. "/boom-2.wav"))
    local before = sim.stats().creates
    status, out = kling("run " .. m .. " --out " .. q(planted))
    assert.are.equal(2, status, out)
    assert.matches(planted .. "/boom-2.wav is a symbolic link", out, 1, true)
    assert.are.equal(before, sim.stats().creates)
  end)

  -- A new user's trial: every row refused as unpriced under --budget was counted "failed 2" in
  -- the table, summary.json and kling status, and --quiet said "2 of 2 rows failed or are
  -- uncertain", though nothing was sent and nothing failed at the provider.
  it("kling run counts rows refused as unpriced under --budget as refused, not failed, everywhere", function()
    local m = root .. "/unpriced.jsonl"
    write(m, '{"id": "u1", "prompt": "p", "model": "kling-v3", "duration": 7}\n'
      .. '{"id": "u2", "prompt": "q", "model": "kling-v3", "duration": 7}\n')
    local dir = root .. "/o-unpriced"
    local status, out = kling("run " .. m .. " --out " .. q(dir) .. " --budget 50CNY --progress plain")
    assert.are.equal(2, status, out)
    assert.matches("\n  failed +0\n  refused +2\n", out) -- the table
    assert.matches("u1%s+refused%s+unpriced: ", out)
    local summary = require("kling.json").decode(files.read(dir .. "/summary.json"))
    assert.are.same({ failed = 0, refused = 2, unpriced_rows = 0, failures = 0, refused_rows = 2 },
      { failed = summary.failed, refused = summary.refused, unpriced_rows = summary.unpriced_rows,
        failures = #summary.failures, refused_rows = #summary.refused_rows })
    assert.are.equal("unpriced", summary.refused_rows[1].kind)
    status, out = kling("run " .. m .. " --out " .. q(dir) .. " --budget 50CNY --quiet")
    assert.are.equal(2, status, out)
    assert.matches("^kling run: 2 of 2 rows refused, nothing sent for them %(fix them and run the same command "
      .. "again%) %(", out)
    assert.is_nil(out:find("failed", 1, true), out)
    status, out = kling("status " .. q(dir))
    assert.are.equal(2, status, out)
    assert.matches("\n  refused +2\n", out)
    assert.is_nil(out:find("failed", 1, true), out)
    status, out = kling("status " .. q(dir) .. " --json")
    assert.are.equal(2, status, out)
    local counts = require("kling.json").decode(out:match("^[^\n]*")).counts
    assert.are.same({ 2, nil }, { counts.refused, counts.failed })
    assert.are.equal(0, sim.stats().creates)
  end)

  it("issue 12: kling run exits 2 when every row is refused as invalid (nothing sent), 6 when others ran", function()
    local m = root .. "/invalid.jsonl"
    write(m, '{"id": "a", "prompt": "p", "model": "kling-v1", "duration": 7}\n'
      .. '{"id": "b", "prompt": "p", "model": "kling-v1", "frobnicate": 1}\n')
    local status, out = kling("run " .. m .. " --out " .. root .. "/invalid --quiet")
    assert.are.equal(2, status, out)
    assert.are.equal(0, sim.stats().creates)
    status, out = kling("status " .. root .. "/invalid")
    assert.are.equal(2, status, out) -- kling status agrees
    -- A new user's trial: the valid row ran and the invalid ones (a negative duration, a
    -- misspelt field, a file that is no PNG) were only in summary.json, and the exit status
    -- said success (0), so a script went on as if every row had been made.
    write(root .. "/fake.png", "not a png at all")
    write(m, '{"id": "a", "prompt": "p", "model": "kling-v1", "duration": -5}\n'
      .. '{"id": "b", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5, "sond": true}\n'
      .. '{"id": "d", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5, "image": "fake.png"}\n'
      .. '{"id": "c", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    status, out = kling("run " .. m .. " --out " .. root .. "/mixed --quiet --poll-min 0.2")
    assert.are.equal(6, status, out) -- rows a, b and d refused, row c ran
    assert.are.equal(1, sim.stats().creates)
    assert.matches("3 of 4 rows refused", out)
    assert.matches("b%s+refused%s+validation: sond: unknown field", out)
    assert.matches("d%s+refused%s+validation: image: the local file [^\n]*fake.png is not a JPG or PNG", out)
    local summary = require("kling.json").decode(files.read(root .. "/mixed/summary.json"))
    assert.are.equal(6, summary.exit_status)
    assert.are.same({ 0, 3, 3 }, { summary.failed, summary.refused, #summary.refused_rows })
    status, out = kling("status " .. root .. "/mixed")
    assert.are.equal(6, status, out) -- kling status agrees
    -- the refused rows fixed, the same command again: row c stays made, the others run, 0
    write(m, '{"id": "a", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n'
      .. '{"id": "b", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n'
      .. '{"id": "d", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n'
      .. '{"id": "c", "prompt": "p", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    status, out = kling("run " .. m .. " --out " .. root .. "/mixed --quiet --poll-min 0.2")
    assert.are.equal(0, status, out)
    assert.are.equal(4, sim.stats().creates)
  end)

  it("kling run exits 0 when every row ended, 3 while rows remain; kling status agrees", function()
    local m = root .. "/rows.jsonl"
    -- The slow task outlives the 2 s deadline by 6 s: kling status must still see it running on a
    -- loaded machine (4 s was not always enough beside the whole suite at -j2).
    write(m, '{"defaults": {"model": "kling-v1", "mode": "std", "duration": 5}}\n'
      .. '{"id": "quick", "prompt": "quick"}\n{"id": "slow", "prompt": "slow [sim:seconds=8]"}\n')
    local out_dir = root .. "/out"
    local status, out = kling("run " .. m .. " --out " .. out_dir .. " --deadline 2 --progress plain --poll-min 0.2")
    assert.are.equal(3, status, out)
    assert.matches("slow: unfinished: still running at the run's deadline %(%-%-deadline%)", out)
    no_secret(out)
    status, out = kling("status " .. out_dir .. " --rows")
    assert.are.equal(3, status, out)
    assert.matches("running%s+1", out)
    local task = out:match("slow%s+running%s+task (%d+)")
    assert.is_string(task)
    status, out = kling("status " .. task)
    assert.are.equal(3, status, out) -- still running at the provider
    status, out = kling("run " .. m .. " --out " .. out_dir .. " --quiet --poll-min 0.2")
    assert.are.equal(0, status, out)
    assert.are.equal("", out:gsub("exit=%d+%s*$", ""))
    status, out = kling("status " .. out_dir)
    assert.are.equal(0, status, out)
    assert.matches("succeeded%s+2", out)
    status, out = kling("status " .. task .. " --json")
    assert.are.equal(0, status, out)
    assert.matches('"status":"succeeded"', out)
    no_secret(out)
    assert.are.equal(2, sim.stats().creates)
  end)

  it("kling run with a provider it cannot reach leaves every row to the next run (exit 3), which sends them",
    function()
    local m = root .. "/unreachable.jsonl"
    write(m, '{"defaults": {"model": "kling-v1", "mode": "std", "duration": 5}}\n'
      .. '{"id": "a", "prompt": "a"}\n{"id": "b", "prompt": "b"}\n')
    local out_dir = root .. "/unreachable"
    local status, out = kling("run " .. m .. " --out " .. out_dir .. " --base-url http://127.0.0.1:1 --parallel 1"
      .. " --progress plain")
    assert.are.equal(3, status, out)
    assert.matches("a%s+unfinished network", out)
    assert.matches("b%s+unfinished not started: the provider could not be reached on row a", out)
    assert.are.equal(0, sim.stats().creates)
    status, out = kling("run " .. m .. " --out " .. out_dir .. " --quiet --poll-min 0.2")
    assert.are.equal(0, status, out)
    assert.are.equal(2, sim.stats().creates)
  end)

  it("issue 14: kling status asks for a task id that is not digits (a gateway's) given --endpoint", function()
    local before = sim.stats().requests
    local status, out = kling("status gw01c07d3702")
    assert.are.equal(2, status, out) -- perhaps a directory's typo: refused, the way out named
    assert.matches("needs %-%-endpoint E", out)
    assert.are.equal(before, sim.stats().requests) -- nothing sent
    status, out = kling("status gw01c07d3702 --endpoint videos/text2video")
    assert.are.equal(1, status, out) -- asked: the simulator has no such task
    assert.is_nil(out:find("not a batch directory", 1, true), out)
    assert.are.equal(before + 1, sim.stats().requests) -- the one query
  end)

  -- A new user's image task got "not_found (code 1203): task ... does not exist" from both, with
  -- no word that only video endpoints had been asked.
  it("kling status and kling download of another endpoint's task name the endpoints tried and --endpoint", function()
    local client = sim.client()
    local t = assert(client:submit { endpoint = "images/generations", model = "kling-v2-1", prompt = "a cat" })
    assert(t:wait { timeout = 60 })
    local _, err = client:get_task(t.id)
    assert.are.equal("not_found", err.kind)
    assert.are.same(client.provider.lookup_endpoints, err.endpoints_tried)
    assert.matches("(asked of videos/text2video, videos/image2video, ", err.message, 1, true)
    assert.matches("; a task of another endpoint is found only when its endpoint is given: an image's"
      .. " (images/editing/expand, images/generations, images/multi-image2image, images/omni-image), an audio's"
      .. " (audio/text-to-audio, audio/video-to-audio), a voice's (general/custom-voices))", err.message, 1, true)
    assert.are.same({ "images/editing/expand", "images/generations", "images/multi-image2image", "images/omni-image" },
      err.other_endpoints.image)
    local dir = root .. "/dl-" .. t.id
    for _, cmd in ipairs { "status " .. t.id, "download " .. t.id .. " --out " .. q(dir) } do
      local status, out = kling(cmd)
      assert.are.equal(1, status, out)
      assert.matches("not_found", out)
      assert.matches("videos/advanced-lip-sync: the endpoints tried when none is given", out, 1, true)
      assert.matches("every video endpoint was asked; give the endpoint of a task of another kind with --endpoint E"
        .. " (one of those named for its kind)", out, 1, true)
      status, out = kling(cmd .. " --endpoint images/generations")
      assert.are.equal(0, status, out)
    end
    assert.are.equal("\137PNG", files.read(dir .. "/" .. t.id .. ".png"):sub(1, 4))
    -- the file is there now: a second download refuses to replace it (exit 2), and it stays
    local status, out = kling("download " .. t.id .. " --out " .. q(dir) .. " --endpoint images/generations")
    assert.are.equal(2, status, out)
    assert.matches(t.id .. ".png exists: kling download never replaces a file", out, 1, true)
    assert.are.equal("\137PNG", files.read(dir .. "/" .. t.id .. ".png"):sub(1, 4))
    -- a link pointing nowhere at the name is refused the same way (it was found only at the write, exit 1)
    local dangling = root .. "/dl-dangling"
    os.execute("mkdir -p " .. q(dangling) .. " && ln -s /nonexistent/x " .. q(dangling .. "/" .. t.id .. ".png"))
    status, out = kling("download " .. t.id .. " --out " .. q(dangling) .. " --endpoint images/generations")
    assert.are.equal(2, status, out)
    assert.matches("symbolic link", out, 1, true)
    -- a FIFO at the name: refused by lstat, never opened to see whether a file is there (that open
    -- blocked the command for good; `timeout` only keeps this spec from hanging on it)
    local fifo = root .. "/dl-fifo"
    os.execute("mkdir -p " .. q(fifo) .. " && mkfifo " .. q(fifo .. "/" .. t.id .. ".png"))
    status, out = kling("download " .. t.id .. " --out " .. q(fifo) .. " --endpoint images/generations",
      cli.env() .. "timeout 60 ")
    assert.are.equal(2, status, out)
    assert.matches(t.id .. ".png is a FIFO (named pipe)", out, 1, true)
    -- given an endpoint that has no such task, the answer is the provider's alone
    status, out = kling("status " .. t.id .. " --endpoint videos/text2video")
    assert.are.equal(1, status, out)
    assert.is_nil(out:find("--endpoint E", 1, true), out)
  end)

  -- A video task no endpoint knows (a mistyped id, one the provider no longer keeps) was told to
  -- try `--endpoint images/generations`: the hint names the endpoints of the task's kind when
  -- --out says it (kling.providers.task_endpoints), and none for a video, all of whose were asked.
  it("kling download of a task found nowhere names --endpoint by the kind --out names, none for a video", function()
    local id = "990000000000000001" -- no such task, as one deleted after its 30 days
    local dir = root .. "/gone"
    local function said(out_arg)
      local status, out = kling("download " .. id .. " --out " .. q(out_arg))
      assert.are.equal(1, status, out)
      assert.matches("not_found", out)
      assert.is_nil(out:find("--endpoint images", 1, true), out)
      return out
    end
    local out = said(dir .. "/clip.mp4")
    assert.matches(": every video endpoint was asked and none knows the task (a mistyped id, another account's task,"
      .. " or one the provider no longer keeps): no --endpoint would find it", out, 1, true)
    assert.is_nil(out:find("give the task's endpoint", 1, true), out)
    out = said(dir .. "/cat.png")
    assert.matches(": give the task's endpoint with --endpoint E (an image's: images/editing/expand,"
      .. " images/generations, images/multi-image2image, images/omni-image)", out, 1, true)
    out = said(dir .. "/sea.mp3")
    assert.matches(": give the task's endpoint with --endpoint E (an audio's: audio/text-to-audio,"
      .. " audio/video-to-audio)", out, 1, true)
    out = said(dir)
    assert.matches(": every video endpoint was asked; give the endpoint of a task of another kind", out, 1, true)
    assert.is_nil(io.open(dir .. "/clip.mp4", "rb"))
    -- nothing made on disk before the task was known: --out's directory was made, then the task
    -- found not to exist
    said(dir .. "/a/b/clip.mp4")
    assert.is_nil(io.open(dir, "rb"), dir .. " was made")
    -- what cannot be made is still refused before anything is sent
    files.write(root .. "/plain", "x")
    local requests = sim.stats().requests
    local status, bad = kling("download " .. id .. " --out " .. q(root .. "/plain/sub/clip.mp4"))
    assert.are.equal(2, status, bad)
    assert.matches("plain: it exists and is not a directory: nothing was sent", bad, 1, true)
    assert.are.equal(requests, sim.stats().requests)
  end)

  -- The check came before the transfer and the move was a plain rename: a file that appeared at
  -- the name while the download ran was replaced, silently (a new-user trial).
  it("kling download keeps a file that appears at an output's name during the download (exit 2)", function()
    local client = sim.client()
    local t = assert(client:submit { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "a race" })
    assert(t:wait { timeout = 60 })
    local dir = root .. "/dl-race"
    local path = dir .. "/" .. t.id .. ".mp4"
    os.execute("mkdir -p " .. q(dir))
    sim.faults { { kind = "stall", path = "^/media/", seconds = 2, count = 1 } }
    os.execute("(sleep 1; printf 'mine' > " .. q(path) .. ") &")
    local status, out = kling("download " .. t.id .. " --out " .. q(dir))
    assert.are.equal(2, status, out)
    assert.matches("exists: it is never replaced", out, 1, true)
    assert.are.equal("mine", files.read(path))
    assert.is_nil(io.open(path .. ".part", "rb")) -- the download is dropped
    -- the library: replace = false refuses a file there before anything is sent, and checks its type
    local before = sim.stats().requests
    local got, err = client:download(t.videos[1].url, path, { replace = false })
    assert.is_nil(got)
    assert.are.equal("path", err.field)
    assert.are.equal(before, sim.stats().requests)
    got, err = client:download(t.videos[1].url, path, { replace = "no" })
    assert.is_nil(got)
    assert.are.equal("replace", err.field)
  end)

  -- Any error at the final move was labelled as a file "that appeared during the download": a
  -- directory removed meanwhile read as a name taken (exit 2), sending the user to look for it.
  it("kling download names the real cause when the output cannot be kept (exit 1)", function()
    local client = sim.client()
    local t = assert(client:submit { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "a gone dir" })
    assert(t:wait { timeout = 60 })
    local dir = root .. "/dl-gone"
    os.execute("mkdir -p " .. q(dir))
    sim.faults { { kind = "stall", path = "^/media/", seconds = 2, count = 1 } }
    local status, out = when_stalled("download " .. t.id .. " --out " .. q(dir), function()
      os.execute("rm -rf " .. q(dir))
    end)
    sim.clear_faults()
    assert.are.equal(1, status, out)
    assert.is_nil(out:find("appeared", 1, true), out)
    assert.matches("output 1: cannot be written at " .. dir .. "/" .. t.id .. ".mp4: ", out, 1, true)
    assert.is_nil(io.open(dir, "rb"))
  end)

  -- Ctrl-C reached Lua only once the blocking transfer in C ended: a stalled download held it off
  -- (up to the download's 600 s timeout), then left its temporary file (a new-user trial).
  it("kling download ends at once on Ctrl-C during a stalled download, exit 130", function()
    local client = sim.client()
    local t = assert(client:submit { model = "kling-v2-6", mode = "pro", duration = 5, prompt = "a pause" })
    assert(t:wait { timeout = 60 })
    local dir = root .. "/dl-int"
    sim.faults { { kind = "stall", path = "^/media/", seconds = 8, count = 1 } }
    local sent
    local status, out = when_stalled("download " .. t.id .. " --out " .. q(dir), function(pid)
      os.execute("kill -INT " .. pid)
      sent = os.time()
    end)
    local waited = os.time() - sent
    sim.clear_faults()
    assert.matches("kling download: interrupted", out, 1, true)
    assert.equal(130, status, out)
    assert.is_true(waited < 6, out) -- not the rest of the stall's 8 s
    assert.is_nil(io.open(dir .. "/" .. t.id .. ".mp4", "rb"))
  end)

  it("kling run exits 4 when a row is uncertain", function()
    local i = sim.info()
    local m = root .. "/u.jsonl"
    write(m, '{"id": "lost", "prompt": "lost", "duration": 5}\n')
    local out_dir = root .. "/u"
    os.execute("mkdir -p " .. out_dir)
    local hash = require("kling.batch.manifest").load(m)[1].hash
    write(out_dir .. "/journal.jsonl", '{"t":"batch","v":1,"rows":1}\n{"t":"intent","row":"lost","attempt":1,'
      .. '"hash":"' .. hash .. '"}\n')
    local status, out = kling("run " .. m .. " --out " .. out_dir .. " --provider evolink --base-url "
      .. i.providers.evolink, string.format("KLING_API_KEY='%s' ", i.api_key))
    assert.are.equal(4, status, out)
    assert.matches("lost%s+uncertain", out)
    -- EvoLink keeps no task list: "check the provider's task list" sent the user to a kling
    -- tasks that refuses it
    assert.matches("check the usage or billing page of your evolink account for a task created at", out, 1, true)
    assert.is_nil(out:find("task list:", 1, true), out)
    assert.are.equal(0, sim.stats().creates)
  end)

  -- A connection reset after the create was sent exited 1 with the network error alone: the user
  -- took it for refused, where the element may exist (and be paid).
  it("kling element create whose answer was lost says it may exist and how to look it up, exit 4", function()
    local cache = root .. "/uncertain-elements.json"
    local args = "element create --name Una --description 'red hair' --image https://example.com/f.png --image "
      .. "https://example.com/s.png --cache " .. cache
    sim.faults { { kind = "reset", method = "POST", phase = "after", count = 1 } }
    local status, out = kling(args)
    assert.are.equal(4, status, out)
    assert.matches("may have been created", out, 1, true)
    assert.matches("run the same command again to look it up", out, 1, true)
    assert.are.equal(1, sim.stats().creates)
    status, out = kling(args) -- looked up (the official API's element list), not sent again
    assert.are.equal(0, status, out)
    assert.matches("from the cache: nothing paid", out, 1, true)
    assert.are.equal(1, sim.stats().creates)
  end)

  -- --force emptied the cache's entry when it started: a create the provider refused left the
  -- element made before out of the cache, and its lock file beside it. The advice after a forced
  -- create whose answer was lost said "run the same command again ... not sent again unless
  -- --force": the same command has --force, and sends it again.
  it("kling element create --force keeps the cached element until the new one is made, no lock left", function()
    local dir = root .. "/force-elements"
    os.execute("mkdir -p " .. dir)
    local args = "element create --name Fay --description 'red hair' --image https://example.com/f.png --image "
      .. "https://example.com/s.png --cache " .. dir .. "/elements.json"
    local status, out = kling(args)
    assert.are.equal(0, status, out)
    local id = assert(out:match("element Fay: (%d+) %(kling, created%)"), out)
    local function beside()
      local p = assert(io.popen("ls -A " .. dir))
      local names = p:read("a")
      p:close()
      return names
    end
    sim.faults { { kind = "auth", method = "POST", count = 1 } }
    status, out = kling(args .. " --force")
    assert.are.equal(1, status, out)
    assert.are.equal("elements.json\n", beside())
    status, out = kling(args)
    assert.are.equal(0, status, out)
    assert.matches("element Fay: " .. id .. " (kling, from the cache: nothing paid)", out, 1, true)
    sim.faults { { kind = "reset", method = "POST", phase = "after", count = 1 } }
    status, out = kling(args .. " --force")
    assert.are.equal(4, status, out)
    assert.matches("the same command without --force does not send it again; with --force it is sent again", out,
      1, true)
    assert.are.equal("elements.json\n", beside())
    local creates = sim.stats().creates
    status, out = kling(args)
    assert.are.equal(0, status, out)
    assert.matches("element Fay: " .. id .. " (kling, from the cache", out, 1, true)
    assert.are.equal(creates, sim.stats().creates)
    status, out = kling((args:gsub("%-%-cache %S+", "--cache ''")))
    assert.are.equal(2, status, out)
    assert.matches("--cache needs a non-empty value", out, 1, true)
  end)

  -- On EvoLink, which lists no elements, the same advice sent the user to run the command again
  -- "to look it up", which it cannot: the advice follows the provider's capabilities.
  it("kling element create whose answer was lost on EvoLink says where to look, not to look it up", function()
    local i = sim.info()
    local cache = root .. "/uncertain-evolink-elements.json"
    local args = "element create --name Uma --description 'from a video' --video https://example.com/u.mp4 --cache "
      .. cache .. " --provider evolink --base-url " .. q(i.providers.evolink) .. " --api-key " .. q(i.api_key)
    sim.faults { { kind = "reset", method = "POST", path = "^/evolink/", phase = "after", count = 1 } }
    local status, out = kling(args)
    assert.are.equal(4, status, out)
    assert.matches("may have been created", out, 1, true)
    assert.matches("EvoLink keeps no element list to look it up in", out, 1, true)
    assert.is_nil(out:find("run the same command again to look it up", 1, true), out)
  end)

  -- A second create while the first still waited for its answer said the first "was interrupted
  -- before its answer came" (and to risk a second one with --force).
  it("kling element create while another process creates the same element says so, exit 5, nothing sent", function()
    local i = sim.info()
    local cache = root .. "/busy-elements.json"
    local args = "element create --name Bea --description 'red hair' --image https://example.com/f.png --cache "
      .. cache .. " --provider evolink --base-url " .. q(i.providers.evolink) .. " --api-key " .. q(i.api_key)
    sim.faults { { kind = "stall", method = "POST", path = "^/evolink/", phase = "after", seconds = 50, count = 1 } }
    local status, out = when_stalled(args, function(pid)
      local requests = sim.stats().requests
      local second, said = kling(args)
      assert.are.equal(5, second, said)
      assert.matches("another process %(pid %d+%) is creating element 'Bea' now", said)
      assert.is_nil(said:find("interrupted", 1, true), said)
      assert.are.equal(requests, sim.stats().requests)
      os.execute("kill -INT " .. pid)
    end)
    assert.are.equal(130, status, out)
    -- now it was interrupted before its answer came (EvoLink keeps no list to look it up in)
    local requests = sim.stats().requests
    status, out = kling(args)
    assert.are.equal(2, status, out)
    assert.matches("was interrupted before its answer came", out, 1, true)
    assert.are.equal(requests, sim.stats().requests)
  end)

  it("kling storyboard and kling element work end to end and say so in their exit status", function()
    local cache = root .. "/elements.json"
    local status, out = kling("element create --name Mia --description 'red hair' --image "
      .. "https://example.com/f.png --image https://example.com/s.png --cache " .. cache)
    assert.are.equal(0, status, out)
    assert.matches("element Mia: %d+ %(kling, created%)", out)
    status, out = kling("element create --name Mia --description 'red hair' --image "
      .. "https://example.com/f.png --image https://example.com/s.png --cache " .. cache)
    assert.are.equal(0, status, out)
    assert.matches("from the cache: nothing paid", out)
    -- The keys as flags (the environment has none), as every other command takes them: the same
    -- account, so the same cached element ("--api-key" was an unknown option).
    local i = sim.info()
    local bare = string.format("KLING_PROVIDER=kling KLING_BASE_URL='%s' KLING_ACCESS_KEY= KLING_SECRET_KEY= "
      .. "KLING_API_KEY= ", i.http)
    status, out = kling("element create --name Mia --description 'red hair' --image https://example.com/f.png "
      .. "--image https://example.com/s.png --cache " .. cache .. " --access-key " .. q(i.access_key)
      .. " --secret-key " .. q(i.secret_key), bare)
    assert.are.equal(0, status, out)
    assert.matches("from the cache: nothing paid", out)
    status, out = kling("element create --name Ann --description 'x' --image https://example.com/f.png --image "
      .. "https://example.com/s.png --cache " .. cache .. " --api-key " .. q(i.api_key), bare)
    assert.are.equal(0, status, out)
    assert.matches("element Ann: %d+ %(kling, created%)", out)
    -- --api-key given while the environment holds access keys: the client signs with the flag's
    -- key, and the cache is the account's of that key (it was the environment's access key's:
    -- Ann was made and paid again).
    status, out = kling("element create --name Ann --description 'x' --image https://example.com/f.png --image "
      .. "https://example.com/s.png --cache " .. cache .. " --api-key " .. q(i.api_key))
    assert.are.equal(0, status, out)
    assert.matches("from the cache: nothing paid", out)
    status, out = kling("element create --name Mia --description 'red hair' --image https://example.com/f.png "
      .. "--voice 1 --cache " .. cache)
    assert.are.equal(2, status, out)
    status, out = kling("element list --cache " .. cache)
    assert.are.equal(0, status, out)
    assert.matches("Mia", out)
    -- an empty cache says so (a new user met a listing of nothing and no word)
    status, out = kling("element list --cache " .. root .. "/no-elements.json")
    assert.are.equal(0, status, out)
    assert.matches("no elements in .*no%-elements%.json", out)
    local sb = root .. "/sb.json"
    write(sb, '{"model": "kling-v3", "mode": "std", "shots": [{"prompt": "a", "duration": 5}, '
      .. '{"prompt": "b", "duration": 5, "elements": ["Mia"]}, {"prompt": "c", "duration": 6}]}')
    status, out = kling("storyboard " .. sb .. " --out " .. root .. "/sb --elements " .. cache .. " --poll-min 0.2")
    assert.are.equal(0, status, out)
    assert.matches("storyboard: .*/storyboard%.mp4 %(16 s asked, 2 segment%(s%), native multi%-shot%)", out)
    -- kling status on it said "not a batch directory" alone, as if nothing were there
    local requests = sim.stats().requests
    status, out = kling("status " .. root .. "/sb/")
    assert.are.equal(2, status, out)
    assert.matches("'" .. root .. "/sb' is a storyboard's directory", out, 1, true)
    assert.matches("Run the same kling storyboard FILE --out " .. root .. "/sb again to finish it", out, 1, true)
    assert.are.equal(requests, sim.stats().requests)
    write(sb, '[{"prompt": "a", "duration": 0}]')
    status, out = kling("storyboard " .. sb .. " --out " .. root .. "/sb2")
    assert.are.equal(2, status, out)
    assert.matches("shots%[1%]%.duration", out)
    no_secret(out)
  end)

  it("kling storyboard refuses an --out it cannot make or write, in one line, exit 2, nothing sent", function()
    local sb = root .. "/one.json"
    write(sb, '[{"prompt": "a", "duration": 5}]')
    local afile = root .. "/afile"
    write(afile, "x")
    for _, c in ipairs {
      { afile, "cannot create directory " .. afile .. ": it exists and is not a directory" },
      { "/proc/kling-sb", "cannot create directory /proc/kling-sb: No such file or directory" },
      { "/proc", "cannot open /proc/storyboard.lock" }, -- its lock, the first file a run makes
    } do
      local status, out = kling("storyboard " .. sb .. " --out " .. c[1])
      assert.are.equal(2, status, out)
      local line = "kling storyboard: kling: validation: --out: " .. c[2]
      assert.are.equal(line, out:sub(1, #line), out)
      assert.are.equal(1, select(2, out:gsub("\n", "")) - 1, out) -- one line, then exit=
    end
    assert.are.equal(0, sim.stats().creates)
  end)
end)
