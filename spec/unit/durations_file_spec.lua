-- kling.engine.durations_file (learnt task durations kept across runs) and the engine using it:
-- several processes writing one file, a corrupt file, an engine that starts from the file.
local durations_file = require "kling.engine.durations_file"
local fake = require "support.fake_kling"

local files = require "support.files"

local tmpdir, write = files.tempdir, files.write

local function count(list)
  local n = 0
  for _ in pairs(list) do
    n = n + 1
  end
  return n
end

describe("kling.engine.durations_file", function()
  it("issue 15.2: keeps the latest samples per kind and makes its directory", function()
    local path = tmpdir() .. "/sub/durations.json"
    assert(durations_file.merge(path, { a = { { 1, 100 }, { 2, 110 } } }))
    assert(durations_file.merge(path, { a = { { 3, 120 } }, b = { { 3, 5 } } }))
    local kinds = durations_file.read(path)
    assert.same({ { 1, 100 }, { 2, 110 }, { 3, 120 } }, kinds.a)
    assert.same({ { 3, 5 } }, kinds.b)
    local many = {}
    for i = 1, 20 do
      many[i] = { 10 + i, i }
    end
    assert(durations_file.merge(path, { a = many }))
    kinds = durations_file.read(path)
    assert.equal(durations_file.KEEP, #kinds.a)
    assert.same({ 30, 20 }, kinds.a[#kinds.a])
  end)

  it("issue 15.2: a sample added at a task's end (in place) gives the list merging would", function()
    local seed = 12345
    local function rnd(n) -- a small LCG: the same lists every run
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n
    end
    for _ = 1, 300 do
      local list = {}
      for i = 1, rnd(durations_file.KEEP + 1) do
        list[i] = { rnd(6), rnd(4) } -- ties in time and in duration too
      end
      table.sort(list, function(a, b)
        return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
      end)
      list = durations_file.union(list) -- each sample once, as a file holds them
      local s = { rnd(6), rnd(4) }
      local copy = {}
      for i, v in ipairs(list) do
        copy[i] = v
      end
      assert.same(durations_file.union(list, { s }), durations_file.insert(copy, s))
    end
    local unsorted = tmpdir() .. "/unsorted.json" -- a file edited by hand: read sorts it
    write(unsorted, '{"kinds":{"a":[[3,30],[1,10],[2,20]]}}')
    assert.same({ { 1, 10 }, { 2, 20 }, { 3, 30 } }, durations_file.read(unsorted).a)
  end)

  it("issue 15.1: samples merged twice are kept once", function()
    local path = tmpdir() .. "/durations.json"
    local full = {}
    for i = 1, durations_file.KEEP do
      full[i] = { 100 + i, 1000 + i }
    end
    assert(durations_file.merge(path, { a = full }))
    -- Tasks end out of create order: the sample added last is older than the file's 8 and is
    -- dropped, so merge could not find it and wrote every fresh sample a second time.
    assert(durations_file.merge(path, { a = { { 200, 2000 }, { 50, 500 } } }))
    -- The same samples again (a retried save).
    assert(durations_file.merge(path, { a = { { 200, 2000 } } }))
    local kinds = durations_file.read(path)
    assert.equal(durations_file.KEEP, #kinds.a)
    local seen = {}
    for _, s in ipairs(kinds.a) do
      local key = s[1] .. "/" .. s[2]
      assert.is_nil(seen[key], "sample " .. key .. " kept twice")
      seen[key] = true
    end
    assert.same({ 102, 1002 }, kinds.a[1])
    assert.same({ 200, 2000 }, kinds.a[#kinds.a])
    -- A file that already holds a sample twice is cleaned at the next merge.
    write(path, '{"kinds":{"b":[[1,10],[1,10],[2,20]]}}')
    assert(durations_file.merge(path, { b = { { 3, 30 } } }))
    assert.same({ { 1, 10 }, { 2, 20 }, { 3, 30 } }, durations_file.read(path).b)
  end)

  it("issue 15.2: a corrupt or foreign file counts as empty and is replaced on the next write", function()
    local dir = tmpdir()
    local path = dir .. "/durations.json"
    for _, text in ipairs { "{not json", "", "[1,2,3]", '{"kinds":{"a":[[1,"x"],"y",[2,-5]],"b":7}}', "\0\1\2" } do
      write(path, text)
      assert.same({}, durations_file.read(path))
      assert(durations_file.merge(path, { a = { { 1, 100 } } }))
      assert.same({ a = { { 1, 100 } } }, durations_file.read(path))
    end
    assert.same({}, durations_file.read(dir .. "/missing.json"))
    assert.is_nil(durations_file.merge("/dev/null/kling/durations.json", { a = { { 1, 1 } } }))
  end)

  it("samples stamped in the future are dropped: they pinned a kind, real samples lost at each merge", function()
    local path = tmpdir() .. "/durations.json"
    local now, future = os.time(), {}
    for i = 1, durations_file.KEEP do
      future[i] = string.format("[%d,30000]", 4000000000 + i)
    end
    write(path, '{"v":1,"kinds":{"a":[' .. table.concat(future, ",") .. string.format("],\"b\":[[%d,5]]}}", now + 60))
    assert.same({ b = { { now + 60, 5 } } }, durations_file.read(path)) -- a minute ahead: clock skew, kept
    assert(durations_file.merge(path, { a = { { now - 10, 3000 } } }))
    assert.same({ { now - 10, 3000 } }, durations_file.read(path).a)
  end)

  it("a FIFO, a device or a file over MAX_BYTES is neither read nor written over (hung, ran out of memory)",
    function()
      local dir = tmpdir()
      assert(os.execute("mkfifo '" .. dir .. "/fifo' && ln -s /dev/zero '" .. dir .. "/zero' && mkdir '"
        .. dir .. "/dir'"))
      local big = dir .. "/big.json"
      local pad = string.rep(" ", durations_file.MAX_BYTES)
      local text = '{"v":1,"kinds":{"a":[[1,100],[2,100],[3,100]]}}' .. pad
      write(big, text)
      for _, name in ipairs { "fifo", "zero", "dir", "big.json" } do
        local kinds, why = durations_file.read(dir .. "/" .. name)
        assert.same({}, kinds)
        assert.matches(name, why, 1, true)
        assert.is_nil(durations_file.merge(dir .. "/" .. name, { a = { { 4, 100 } } }))
      end
      assert.equal(text, files.read(big)) -- left as it was
      assert.is_true(os.execute("test -p '" .. dir .. "/fifo' && test -L '" .. dir .. "/zero'"))
    end)

  it("issue 15.2: several processes writing at once never leave a file a reader cannot parse", function()
    local path = tmpdir() .. "/durations.json"
    local procs, writers, rounds = {}, 4, 25
    for w = 1, writers do
      local code = string.format([[
        local d = require "kling.engine.durations_file"
        for r = 1, %d do
          assert(d.merge(%q, { ["w%d"] = { { r, r } }, shared = { { r + %d / 10, 1 } } }))
          assert(next(d.read(%q)), "a writer read back an empty or unparsable file")
        end
        io.write("ok")
      ]], rounds, path, w, w, path)
      local script = path .. ".writer" .. w .. ".lua"
      write(script, code)
      procs[w] = assert(io.popen("lua5.4 '" .. script .. "'", "r"))
    end
    -- Meanwhile this process reads: once the file exists it always parses to something.
    local seen_nonempty, reads = false, 0
    for _ = 1, 200 do
      local kinds = durations_file.read(path)
      if count(kinds) > 0 then
        seen_nonempty = true
      elseif seen_nonempty then
        error("a reader saw an unparsable or empty file after a write")
      end
      reads = reads + 1
    end
    for w = 1, writers do
      assert.equal("ok", procs[w]:read("a"))
      procs[w]:close()
    end
    local kinds = durations_file.read(path)
    -- Writers racing may drop each other's latest samples (no lock; each write verifies and
    -- merges again once), but never the file.
    assert.is_true(count(kinds) >= 2, "kinds: " .. count(kinds))
    assert.is_true(#kinds.shared >= 1 and #kinds.shared <= durations_file.KEEP)
    local ls = io.popen("ls '" .. path:match("^(.*)/") .. "' | grep -c tmp")
    local leftovers = ls:read("a")
    ls:close()
    assert.equal("0", leftovers:match("%d+"))
    assert.equal(200, reads)
  end)
end)

describe("kling.engine with a learnt-durations file", function()
  local function run(path, n)
    local f = fake.new { task_seconds = 60 }
    local c = fake.client(f)
    c:engine { learn_file = path, seed = 1 }
    local reqs = {}
    for i = 1, n do
      reqs[i] = { prompt = "shot " .. i }
    end
    assert.equal(n, c:wait_all(c:submit_many(reqs)).succeeded)
    return f.stats.polls
  end

  it("issue 15.2: a second run polls near the end of tasks the first run saw finish", function()
    local path = tmpdir() .. "/durations.json"
    local first = run(path, 5)
    local kinds = durations_file.read(path)
    assert.equal(1, count(kinds))
    local kind, samples = next(kinds)
    assert.matches("^kling|fake|", kind)
    assert.equal(5, #samples)
    local second = run(path, 5)
    assert.is_true(second <= 3 * 5, "second run: " .. second .. " polls")
    assert.is_true(first >= 2 * second, "first " .. first .. " vs second " .. second)
  end)

  it("issue 15.2: a corrupt file never raises: the engine starts as with none", function()
    local path = tmpdir() .. "/durations.json"
    write(path, '{"v":1,"kinds":{"kling|fake|x":[[1,') -- cut short by a crash
    local polls = run(path, 3)
    assert.equal(run(tmpdir() .. "/none.json", 3), polls)
    assert.equal(1, count(durations_file.read(path)))
  end)

  -- The kind the fake's one-model runs are kept under (read from a first run's file).
  local function fake_kind()
    local path = tmpdir() .. "/durations.json"
    run(path, 1)
    return (next(durations_file.read(path)))
  end

  it("a sample longer than any task lives is dropped: it never reaches core.sched, which raised", function()
    local kind, path = fake_kind(), tmpdir() .. "/durations.json"
    write(path, string.format('{"v":1,"kinds":{%q:[[1,2147484000],[2,2147484000],[3,2147484000]],'
      .. '"b":[[1,86400001],[2,5]]}}', kind))
    assert.same({ b = { { 2, 5 } } }, durations_file.read(path))
    assert.is_number(run(path, 3)) -- raised "kling.sched: argument out of range" in submit_many
  end)

  it("a cache path that is a FIFO is skipped with one warning on the client's debug sink", function()
    local path = tmpdir() .. "/durations.json"
    assert(os.execute("mkfifo '" .. path .. "'"))
    local said = {}
    local f = fake.new { task_seconds = 60 }
    local c = fake.client(f, { debug = function(text)
      if text:find("learnt durations", 1, true) then
        said[#said + 1] = text
      end
    end })
    c:engine { learn_file = path, seed = 1 }
    assert.equal(2, c:wait_all(c:submit_many { { prompt = "a" }, { prompt = "b" } }).succeeded)
    assert.equal(1, #said)
    assert.matches("FIFO", said[1])
    assert.is_true(os.execute("test -p '" .. path .. "'"))
  end)

  it("a mode or sound left at the provider's default and written out are one kind (were three)", function()
    local path = tmpdir() .. "/durations.json"
    local c = fake.client(fake.new { task_seconds = 60 })
    c:engine { learn_file = path, seed = 1 }
    local base = { model = "kling-v1-6", duration = 5 }
    local reqs = {}
    for i, extra in ipairs { {}, { mode = "std", sound = false }, { mode = "std" } } do
      local r = { prompt = "shot " .. i }
      for k, v in pairs(base) do
        r[k] = v
      end
      for k, v in pairs(extra) do
        r[k] = v
      end
      reqs[i] = r
    end
    assert.equal(3, c:wait_all(c:submit_many(reqs)).succeeded)
    c:engine():save_learnt(math.huge)
    local kinds = durations_file.read(path)
    assert.equal(1, count(kinds))
    local kind, samples = next(kinds)
    assert.matches("|kling-v1-6|videos/text2video|std|5|false", kind, 1, true)
    assert.equal(3, #samples)
  end)

  it("a learnt window past the run's deadline: one last poll at the deadline sees the task ended", function()
    local kind, path = fake_kind(), tmpdir() .. "/durations.json"
    local f = fake.new { task_seconds = 3 }
    local now = os.time()
    write(path, string.format('{"v":1,"kinds":{%q:[[%d,600000],[%d,610000],[%d,620000]]}}', kind, now - 3,
      now - 2, now - 1))
    local c = fake.client(f, { poll_max = 5 })
    c:engine { learn_file = path, seed = 1, deadline = 30 }
    local r = c:wait_all(c:submit_many { { prompt = "late" } })
    assert.equal(1, r.succeeded, tostring(r[1].error))
    assert.equal(1, f.stats.polls) -- was: a timeout, "still running at the deadline", no poll at all
  end)

  it("a learnt window starting after wait_all's timeout is not waited for: the back-off sees the end", function()
    local kind, path = fake_kind(), tmpdir() .. "/durations.json"
    local f = fake.new { task_seconds = 3 }
    local now = os.time()
    write(path, string.format('{"v":1,"kinds":{%q:[[%d,600000],[%d,610000],[%d,620000]]}}', kind, now - 3,
      now - 2, now - 1))
    local c = fake.client(f, { poll_min = 1, poll_max = 5 })
    c:engine { learn_file = path, seed = 1 }
    local r = c:wait_all(c:submit_many { { prompt = "short" } }, { timeout = 40 })
    assert.equal(1, r.succeeded) -- was: 0 polls in 40 s, reported unfinished
    assert.is_true(f.stats.polls <= 4, "polls: " .. f.stats.polls)
  end)

  it("issue 10.3: on a driver inside an event loop (nginx) no file is kept: none by default, a path refused",
    function()
      local engine = require "kling.engine"
      local c = fake.client(fake.new { task_seconds = 1 })
      assert.is_string(engine.new(c, { seed = 1 }).learn_file) -- plain Lua: the default path
      c.driver.event_loop = true -- what kling.resty.driver says: a file's reads and writes would block it
      assert.is_nil(engine.new(c, { seed = 1 }).learn_file)
      assert.error_matches(function()
        engine.new(c, { learn_file = tmpdir() .. "/durations.json" })
      end, "learn_file: the driver runs inside an event loop")
      assert.is_nil(engine.new(c, { learn_file = false }).learn_file)
    end)

  it("kling.new refuses a learn_file path beside a driver inside an event loop, when the client is made", function()
    -- kling.new took it, and the first submit_many raised inside nginx (its engine options are
    -- checked by name and value when the client is made: README, kling.new).
    local driver = { event_loop = true, request = function() return { ok = false, kind = "network" } end }
    local c, err = require("kling").new { api_key = "k", base_url = "http://127.0.0.1:9", driver = driver,
      engine = { learn_file = tmpdir() .. "/durations.json" } }
    assert.is_nil(c)
    assert.equal("validation", err.kind)
    assert.equal("engine.learn_file", err.field)
    assert.matches("inside an event loop", err.message, 1, true)
    assert.is_table((require("kling").new { api_key = "k", base_url = "http://127.0.0.1:9", driver = driver,
      engine = { learn_file = false } }))
  end)

  it("issue 15.2: a batch of one kind all finish on time while its learnt window moves", function()
    -- Every finished task moves the window of samples; re-reporting the waiting tasks at
    -- each one used to push their polls later and later (most never polled in time).
    local f = fake.new { task_seconds = 20 }
    local c = fake.client(f)
    c:engine { learn_file = false, seed = 1 }
    local reqs = {}
    for i = 1, 600 do
      reqs[i] = { prompt = "shot " .. i }
    end
    local res = c:wait_all(c:submit_many(reqs), { timeout = 120 })
    assert.equal(600, res.succeeded)
    assert.is_true(f.stats.polls <= 600 * 8, "polls: " .. f.stats.polls)
  end)
end)

