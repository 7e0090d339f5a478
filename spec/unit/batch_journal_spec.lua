-- The batch journal: append-only JSON lines, each durable before append returns (fsync when
-- the core has append_sync), a torn last line (a kill in the middle of a write) cut off on
-- open, any other bad line an error; and the replay of its records into row histories.
local core = require "kling.core"
local journal = require "kling.journal"
local state = require "kling.batch.state"

local files = require "support.files"

local slurp, write = files.read, files.write
local dir = files.tempdir()
teardown(function()
  os.execute("rm -rf " .. dir)
end)

describe("kling.journal", function()
  it("says whether appends are fsync'd, as the core allows", function()
    assert.are.equal(type(core.append_sync) == "function", journal.durable)
  end)

  it("appends records as JSON lines and reads them back in order", function()
    local path = dir .. "/a.jsonl"
    local j, records = assert(journal.open(path))
    assert.are.same({}, records)
    assert(j:append { t = "intent", row = "r1", attempt = 1, ext = "kb-1" })
    assert(j:append { t = "created", row = "r1", attempt = 1, task_id = "123" })
    assert.are.equal(2, j.appended)
    local text = slurp(path)
    assert.are.equal(2, select(2, text:gsub("\n", "")))
    local j2, again = assert(journal.open(path))
    assert.are.equal(2, #again)
    assert.are.equal("kb-1", again[1].ext)
    assert.are.equal("123", again[2].task_id)
    assert.is_nil(j2.repaired)
  end)

  it("cuts off a torn last line so that the next record starts on a line of its own", function()
    local path = dir .. "/torn.jsonl"
    write(path, '{"t":"intent","row":"a"}\n{"t":"created","row":"a","task_')
    local records, info = journal.read(path)
    assert.are.equal(1, #records)
    assert.is_true(info.torn)
    local j, recs = assert(journal.open(path))
    assert.are.equal(1, #recs)
    assert.is_true(j.repaired)
    assert.are.equal('{"t":"intent","row":"a"}\n', slurp(path))
    assert(j:append { t = "created", row = "a", task_id = "9" })
    local _, after = assert(journal.open(path))
    assert.are.equal(2, #after)
    assert.are.equal("9", after[2].task_id)
  end)

  it("refuses a journal with a bad line before its end, naming the line", function()
    local path = dir .. "/bad.jsonl"
    write(path, '{"t":"batch","v":1}\nnot json\n{"t":"final","row":"a"}\n')
    local j, err = journal.open(path)
    assert.is_nil(j)
    assert.matches("bad%.jsonl:2: not a journal record", err)
  end)

  -- A journal that is there but cannot be read (here a link that loops: ELOOP, as root too;
  -- EACCES or EIO elsewhere) was read as a missing one: a run into its directory began afresh
  -- and sent its rows again. Only nothing at the path is an empty journal.
  it("refuses a journal that is there but cannot be read; only a missing one is empty", function()
    local loop = dir .. "/loop.jsonl"
    assert(os.execute("ln -s " .. loop .. " " .. loop))
    local text, why, kind, missing = core.read_regular(loop, 10)
    assert.is_nil(text)
    assert.is_nil(kind)
    assert.is_false(missing)
    assert.is_string(why)
    local records, err = journal.read(loop)
    assert.is_nil(records)
    assert.matches("is there but cannot be read", err, 1, true)
    assert.is_nil((journal.open(loop)))
    assert.is_true(select(4, core.read_regular(dir .. "/none.jsonl", 10)))
    assert.is_true(select(4, core.read_regular(dir .. "/a.jsonl/under", 10))) -- ENOTDIR: nothing there
    local none, info = journal.read(dir .. "/none.jsonl")
    assert.are.same({}, none)
    assert.is_true(info.missing)
    local element = require "kling.element"
    local doc, eerr = element.load(loop)
    assert.is_nil(doc)
    assert.matches("is not readable", eerr, 1, true)
    assert.are.same({}, assert(element.load(dir .. "/none-cache.json")).elements)
  end)

  it("reports an unwritable journal instead of going on without it", function()
    local j = assert(journal.open(dir .. "/nodir/x.jsonl"))
    local ok, err = j:append { t = "x" }
    assert.is_nil(ok)
    assert.matches("cannot append to .*nodir/x%.jsonl", err)
  end)
end)

describe("kling.batch.state.replay", function()
  it("gives each row its attempts, files and end, the runs and the ledger lines", function()
    local st = assert(state.replay {
      { t = "batch", v = 1, budget = { limit = "10", currency = "CNY" } },
      { t = "ledger", op = "reserve", task_key = "a#1", amount = "1", currency = "CNY" },
      { t = "intent", row = "a", attempt = 1, ext = "kb-a1", key = "a#1", hash = "h" },
      { t = "created", row = "a", attempt = 1, task_id = "t1", endpoint = "videos/text2video" },
      { t = "end", row = "a", attempt = 1, status = "failed", error = { kind = "server" } },
      { t = "retry", row = "a", attempt = 2, reason = "server" },
      { t = "batch", v = 1 },
      { t = "intent", row = "a", attempt = 2, ext = "kb-a2" },
      { t = "intent", row = "b", attempt = 1 },
      { t = "end", row = "c", attempt = 1, status = "succeeded", outputs = { { kind = "video", url = "u" } } },
      { t = "file", row = "c", attempt = 1, n = 1, path = "c.mp4", bytes = 10 },
      { t = "final", row = "c", attempt = 1, state = "succeeded" },
    })
    assert.are.equal(2, st.runs)
    assert.are.same({ limit = "10", currency = "CNY" }, st.budget)
    assert.are.equal(1, #st.ledger)
    local a = st.rows.a
    assert.are.equal(2, a.attempt)
    assert.are.equal("t1", a.attempts[1].task_id)
    assert.are.equal("failed", a.attempts[1].ended.status)
    assert.are.equal("kb-a2", a.attempts[2].ext)
    assert.is_nil(a.attempts[2].task_id)
    assert.is_true(st.rows.b.attempts[1].intent)
    assert.is_nil(st.rows.b.attempts[1].ext)
    assert.are.equal("c.mp4", st.rows.c.files[1].path)
    assert.are.equal("succeeded", st.rows.c.final.state)
  end)

  it("refuses records it does not know, and journals of another version", function()
    local st, err = state.replay { { t = "batch", v = 1 }, { t = "teleport", row = "a" } }
    assert.is_nil(st)
    assert.matches("record 2: unknown type 'teleport'", err)
    st, err = state.replay { { t = "batch", v = 99 } }
    assert.is_nil(st)
    assert.matches("journal version 99", err)
    st, err = state.replay { { t = "intent" } }
    assert.is_nil(st)
    assert.matches("names no row", err)
  end)

  -- A resumed row downloads its output again to the path its journal names: a line naming
  -- "../x" had it written outside the output directory (a journal others can write is theirs).
  it("refuses a file or placing record whose path leaves the output directory, or whose n is no number", function()
    for _, t in ipairs { "file", "placing" } do
      for path, why in pairs { ["../x.mp4"] = "has a '..' segment", ["a/../../x.mp4"] = "has a '..' segment",
        ["./x.mp4"] = "has a '.' segment", ["/tmp/x.mp4"] = "is not a path relative", [""] = "is not a path relative",
        ["x\n.mp4"] = "holds a control character" } do
        local st, err = state.replay { { t = "batch", v = 1 }, { t = t, row = "c", n = 1, path = path, bytes = 1 } }
        assert.is_nil(st, path)
        assert.matches("record 2 (" .. t .. ") of row 'c': its path " .. why, err, 1, true)
      end
      for _, n in ipairs { 0, 1.5, "1" } do
        local st, err = state.replay { { t = "batch", v = 1 }, { t = t, row = "c", n = n, path = "c.mp4", bytes = 1 } }
        assert.is_nil(st)
        assert.matches("its n is not an output's number", err, 1, true)
      end
    end
    local st = assert(state.replay { { t = "batch", v = 1 },
      { t = "file", row = "c", n = 2, path = "clips/c..x.mp4" } })
    assert.are.equal("clips/c..x.mp4", st.rows.c.files[2].path)
  end)

  -- The summary and the report read an end record's charge and error: a charge of -1 raised at
  -- the run's end ("attempt to index a number value"), its tasks paid.
  it("refuses an end record whose charge or error is not of the shape the batch writes", function()
    for _, bad in ipairs { { charge = -1, why = "its charge is not a table" },
      { charge = { amount = 1, currency = "CNY" }, why = "its charge's amount is not a string" },
      { charge = { amount = "1", currency = {} }, why = "its charge's currency is not a string" },
      { error = "boom", why = "its error is not a table" } } do
      local st, err = state.replay { { t = "batch", v = 1 },
        { t = "end", row = "c", attempt = 1, status = "failed", charge = bad.charge, error = bad.error } }
      assert.is_nil(st)
      assert.matches("record 2 (end) of row 'c': " .. bad.why, err, 1, true)
    end
    assert(state.replay { { t = "end", row = "c", attempt = 1, status = "succeeded",
      charge = { amount = "1", currency = "CNY", rule = "video/kling-v1/std", reported = "1" } },
      { t = "end", row = "d", attempt = 1, status = "failed", charge = { unpriced = "x" },
        error = { kind = "server" } } })
  end)

  -- The run's budget is read from the batch record: a null, a number or a list of numbers there
  -- raised in the run ("attempt to index a userdata value"), not a journal refused by name.
  it("refuses a batch record whose budget is not of the shape the batch writes", function()
    for _, b in ipairs { 5, "50 CNY", require("kling.json").null, { budgets = 5 }, { budgets = { 1 } },
      { budgets = {} }, { budgets = { { limit = 50, currency = "CNY" } } }, { limit = "50" },
      { budgets = { { limit = "50", currency = "CNY" } }, rates = "x" } } do
      local st, err = state.replay { { t = "batch", v = 1, budget = b } }
      assert.is_nil(st)
      assert.matches("^record 1 %(batch%): its budget ", err)
    end
    assert.are.same({ limit = "10", currency = "CNY" },
      assert(state.replay { { t = "batch", v = 1, budget = { limit = "10", currency = "CNY" } } }).budget)
    assert(state.replay { { t = "batch", v = 1, budget = { budgets = { { limit = "50", currency = "CNY" } },
      rates = { currency = "CNY", rates = { USD = "7.1" } } } } })
  end)

  -- A final record's state became the row's: "pending" had its create sent again (a row that had
  -- succeeded), a number raised in the run ("attempt to index a number value").
  it("refuses a final record whose state is not one a row ends in", function()
    for _, s in ipairs { "pending", "resume_download", 1e300, false } do
      local st, err = state.replay { { t = "batch", v = 1 }, { t = "final", row = "c", state = s } }
      assert.is_nil(st)
      assert.matches("record 2 (final) of row 'c': its state is not succeeded, failed, refused or uncertain", err, 1,
        true)
    end
    for s in pairs(state.FINAL) do
      assert.are.equal(s, assert(state.replay { { t = "final", row = "c", state = s } }).rows.c.final.state)
    end
  end)

  -- A resumed row downloads its end record's outputs, named by their kind ({kind}): a kind
  -- "../.." wrote outside the output directory, and outputs of another shape raised in the resume.
  it("refuses an end record whose outputs are not kling.task's files", function()
    for _, outputs in ipairs { 5, { 5 }, { { kind = "../..", url = "http://h/a.mp4" } }, { { kind = "video" } },
      { { kind = "video", url = {} } } } do
      local st, err = state.replay { { t = "batch", v = 1 },
        { t = "end", row = "c", attempt = 1, status = "succeeded", outputs = outputs } }
      assert.is_nil(st)
      assert.matches("^record 2 %(end%) of row 'c': its output", err)
    end
    local st = assert(state.replay { { t = "batch", v = 1 }, { t = "end", row = "c", attempt = 1, status = "failed" },
      { t = "end", row = "d", attempt = 1, status = "succeeded",
        outputs = { { kind = "audio", url = "u", alt = true } } } })
    assert.are.equal("audio", st.rows.d.attempts[1].ended.outputs[1].kind)
  end)
end)

-- `kling status DIR` showed a row state "sent" that its help's list of states did not have.
describe("kling status DIR", function()
  it("shows only states its help explains, and each of them is reachable from a journal", function()
    local json = require "kling.json"
    local d = dir .. "/states"
    assert(os.execute("mkdir -p " .. d))
    local recs = {
      { t = "batch", v = state.VERSION, rows = 10, manifest = "m.jsonl" },
      { t = "final", row = "ok", state = "succeeded", attempts = 1, task_id = "1" },
      { t = "final", row = "bad", state = "failed", attempts = 1, task_id = "2" },
      { t = "refused", row = "invalid", attempt = 1, error = { kind = "validation", message = "x" } },
      { t = "intent", row = "lost", attempt = 1, ext = "kb-3" },
      { t = "end", row = "lost", attempt = 1, status = "uncertain", ext = "kb-3" },
      { t = "intent", row = "run", attempt = 1, ext = "kb-4" },
      { t = "created", row = "run", attempt = 1, task_id = "4" },
      { t = "intent", row = "dl", attempt = 1, ext = "kb-5" },
      { t = "end", row = "dl", attempt = 1, status = "succeeded", task_id = "5" },
      { t = "intent", row = "fail", attempt = 1, ext = "kb-6" },
      { t = "end", row = "fail", attempt = 1, status = "failed", task_id = "6" },
      { t = "intent", row = "sent", attempt = 1, ext = "kb-7" },
    }
    local lines = {}
    for i, r in ipairs(recs) do
      lines[i] = assert(json.encode(r))
    end
    write(d .. "/journal.jsonl", table.concat(lines, "\n") .. "\n")
    local function kling(args)
      local p = assert(io.popen("lua5.4 bin/kling " .. args .. " 2>&1", "r"))
      local out = p:read("a")
      p:close()
      return out
    end
    local st = assert(json.decode(kling("status " .. d .. " --json --rows")))
    local help = kling("status --help")
    local explained = {}
    for name in help:gmatch("\n           (%l+)  ") do
      explained[name] = true
    end
    local shown = {}
    for s in pairs(st.counts) do
      shown[#shown + 1] = s
      assert.is_true(explained[s], "kling status --help does not explain the state " .. s)
    end
    table.sort(shown)
    assert.are.same({ "downloading", "ending", "failed", "pending", "refused", "running", "sent", "succeeded",
      "uncertain" }, shown)
    local n = 0
    for _ in pairs(explained) do
      n = n + 1
    end
    assert.are.equal(#shown, n, "the help explains a state kling status never shows")
  end)

  it("says a journal whose header names no manifest has none recorded, never \"manifest nil\"", function()
    local json = require "kling.json"
    local d = dir .. "/no-manifest"
    assert(os.execute("mkdir -p " .. d))
    write(d .. "/journal.jsonl", assert(json.encode { t = "batch", v = state.VERSION, rows = 1 }) .. "\n")
    local p = assert(io.popen("lua5.4 bin/kling status " .. d .. " 2>&1", "r"))
    local out = p:read("a")
    p:close()
    assert.is_nil(out:find("nil", 1, true), out)
    assert.matches(": 1 rows, 1 run(s), no manifest recorded\n", out, 1, true)
  end)

  -- kling status exited 1 on a journal with a garbage line, kling run 2 on the same DIR, the
  -- README's table 2, and kling status --help said 1
  it("and kling run exit 2 on a journal with a line that is no record, as both helps and the README say", function()
    local json = require "kling.json"
    local d = dir .. "/garbage"
    assert(os.execute("mkdir -p " .. d))
    write(d .. "/journal.jsonl", assert(json.encode { t = "batch", v = state.VERSION, rows = 1 }) .. "\ngarbage\n"
      .. assert(json.encode { t = "final", row = "a", state = "succeeded", attempts = 1, task_id = "1" }) .. "\n")
    local m = dir .. "/garbage.jsonl"
    write(m, '{"id":"a","model":"kling-v2-6","mode":"pro","duration":5,"prompt":"p"}\n')
    local function kling(args)
      local p = assert(io.popen("KLING_PROVIDER=kling KLING_BASE_URL=http://127.0.0.1:9 KLING_API_KEY=x "
        .. "lua5.4 bin/kling " .. args .. " 2>&1; echo \"exit=$?\""))
      local out = p:read("a")
      p:close()
      return tonumber(out:match("exit=(%d+)%s*$")), out
    end
    for _, args in ipairs { "status " .. d, "status " .. d .. " --json", "run " .. m .. " --out " .. d } do
      local status, out = kling(args)
      assert.are.equal(2, status, args .. ": " .. out)
      assert.matches(d .. "/journal.jsonl:2: not a journal record", out, 1, true)
    end
    local _, help = kling("status --help")
    assert.matches("2 every row was refused so\n(nothing was sent), or a bad journal", help, 1, true)
    assert.is_nil(help:find("1 the journal", 1, true), help)
    assert.matches("| 2 | bad usage, manifest or journal", slurp("README.md"), 1, true)
  end)
end)

describe("a journal that is no regular file", function()
  -- opening a FIFO planted at the journal's name blocked kling run, kling status and kling
  -- storyboard for good (`timeout` only keeps this spec from hanging on it)
  it("is refused, naming it, by every command that reads one: nothing blocks", function()
    local env = "KLING_PROVIDER=kling KLING_BASE_URL=http://127.0.0.1:9 KLING_ACCESS_KEY=ak-x KLING_SECRET_KEY=sk-x "
      .. "KLING_API_KEY= timeout 60 "
    local function kling(args)
      local p = io.popen(env .. "lua5.4 bin/kling " .. args .. " 2>&1; echo \"exit=$?\"")
      local out = p:read("a")
      p:close()
      return tonumber(out:match("exit=(%d+)%s*$")), out
    end
    local m = dir .. "/fifo-rows.jsonl"
    write(m, '{"id":"a","model":"kling-v2-6","mode":"pro","duration":5,"prompt":"p"}\n')
    local sb = dir .. "/fifo-sb.json"
    write(sb, '{"model":"kling-v3","shots":[{"prompt":"a","duration":5}]}')
    for _, c in ipairs {
      { "run " .. m .. " --out " .. dir .. "/fr", dir .. "/fr/journal.jsonl", 2 },
      { "status " .. dir .. "/fr", dir .. "/fr/journal.jsonl", 2 }, -- a bad journal, as kling run says
      { "storyboard " .. sb .. " --out " .. dir .. "/fs", dir .. "/fs/storyboard.jsonl", 2 },
    } do
      local d = c[2]:match("^(.*)/")
      os.execute("mkdir -p '" .. d .. "' && { [ -p '" .. c[2] .. "' ] || mkfifo '" .. c[2] .. "'; }")
      local status, out = kling(c[1])
      assert.are.equal(c[3], status, out)
      assert.matches(c[2] .. " is a FIFO (named pipe): a journal is a regular file", out, 1, true)
    end
    local records, err = journal.read(dir .. "/fr/journal.jsonl")
    assert.is_nil(records)
    assert.matches("is a FIFO", err, 1, true)
  end)
end)
