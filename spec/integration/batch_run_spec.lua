-- kling.batch against the simulator: a mixed manifest (successes downloaded, a content-policy
-- refusal never retried, a failing task retried under a new external id), a journal left by
-- a killed run (a create adopted by its external id, a task tracked by its id, a lost create
-- on a provider without lookups reported uncertain and never resent), the budget kept across
-- runs, a deadline, CSV with a row on another provider, names, files already in place, an
-- edited manifest refused, and the lock. The simulator's creates counter proves that no
-- task is ever made twice; its ledger, that the budget's spend is what it billed.
local sim = require "support.sim"
local files = require "support.files"
local images = require "support.images"
local core = require "kling.core"
local json = require "kling.json"
local batch = require "kling.batch"
local manifest = require "kling.batch.manifest"

local write, slurp, jsonl, records = files.write, files.read, files.jsonl, files.journal
local root = files.tempdir()
local fresh_dir = files.subdirs(root, "b")

local function of_row(recs, id, t)
  local out = {}
  for _, r in ipairs(recs) do
    if r.row == id and (t == nil or r.t == t) then
      out[#out + 1] = r
    end
  end
  return out
end

local function run(dir, opts)
  local i = sim.info()
  local o = { out = dir, manifest = dir .. "/rows.jsonl", provider = "kling", base_url = i.http,
    access_key = i.access_key, secret_key = i.secret_key, poll_min = 0.2, poll_max = 0.5, estimate = 1,
    progress = "none", stdout = false }
  for k, v in pairs(opts or {}) do
    if v == false then
      o[k] = nil -- false: leave it to the row or the environment
    else
      o[k] = v
    end
  end
  return batch.run(o)
end

local function states(result)
  local s = {}
  for _, r in ipairs(result.rows) do
    s[r.id] = r.state
  end
  return s
end

local V1 = { model = "kling-v1", mode = "std", duration = 5 }

describe("a batch against the simulator", function()
  before_each(sim.fresh)

  after_each(function()
    sim.clear_faults()
    sim.config { task_seconds = 1, max_parallel = 0 }
  end)

  teardown(function()
    os.execute("rm -rf " .. root)
  end)

  it("a raise inside the run is reported as README says: 'internal error: ...', exit 1", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", json.encode { id = "a", prompt = "p", model = "kling-v1" } .. "\n")
    local start = batch.start
    batch.start = function()
      error("boom")
    end
    local ok, res, msg, status = pcall(run, dir)
    batch.start = start
    assert.is_true(ok, tostring(res))
    assert.is_nil(res)
    assert.matches("^internal error: .*boom", msg)
    assert.equal(1, status)
  end)

  it("downloads successes, never retries a content-policy refusal, retries a failure as a new task", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl {
      { defaults = V1 },
      { id = "ok1", prompt = "a cat on a piano" },
      { id = "ok2", prompt = "a lighthouse", model = "kling-v2-6", mode = "pro", sound = true },
      { id = "policy", prompt = "refused [sim:fail=content policy violation]" },
      { id = "flaky", prompt = "breaks [sim:fail=the renderer crashed]" },
    })
    local result, err, status = run(dir, { retries = 1, budget = "100", parallel = 3 })
    assert(result, err)
    assert.are.equal(0, status)
    assert.are.same({ ok1 = "succeeded", ok2 = "succeeded", policy = "failed", flaky = "failed" }, states(result))
    assert.are.equal(5, sim.stats().creates) -- 4 rows, and flaky once more
    local recs = records(dir)
    local intents = of_row(recs, "flaky", "intent")
    assert.are.equal(2, #intents)
    assert.are_not.equal(intents[1].ext, intents[2].ext)
    assert.are.equal(1, #of_row(recs, "flaky", "retry"))
    assert.are.equal(1, #of_row(recs, "policy", "intent"))
    for _, id in ipairs { "ok1", "ok2", "policy", "flaky" } do
      assert.are.equal(1, #of_row(recs, id, "final"), id)
    end
    local summary = assert(json.decode(assert(slurp(dir .. "/summary.json"))))
    assert.are.equal(2, summary.succeeded)
    assert.are.equal(2, summary.failed)
    assert.are.equal("6", summary.charges.CNY) -- 1 + 5: failures are free
    local kinds = {}
    for _, f in ipairs(summary.failures) do
      kinds[f.id] = f.kind .. "/" .. f.attempts
    end
    assert.are.same({ policy = "content_policy/1", flaky = "server/2" }, kinds)
    assert.are.equal(sim.charges("kling"), core.money_parse(result.budget.spent))
    for _, id in ipairs { "ok1", "ok2" } do
      local body = assert(slurp(dir .. "/" .. id .. ".mp4"))
      assert.are.equal("ftyp", body:sub(5, 8))
    end
    assert.matches("<video", assert(slurp(dir .. "/report.html")))
  end)

  it("resumes a killed run: adopts a create by external id, tracks a task by id, creates only the rest", function()
    local dir = fresh_dir()
    local rows = { { defaults = V1 }, { id = "a", prompt = "adopted" }, { id = "b", prompt = "tracked" },
      { id = "c", prompt = "never sent" }, { id = "d", prompt = "ended, not downloaded" },
      { id = "e", prompt = "failed, not yet decided" } }
    write(dir .. "/rows.jsonl", jsonl(rows))
    local parsed = assert(manifest.load(dir .. "/rows.jsonl"))
    -- What a run killed mid-way leaves: a's create reached the provider but not the journal,
    -- b's task id was journaled, c's intent was written and the process died before the POST.
    local client = sim.client()
    local ta = assert(client:submit { model = "kling-v1", mode = "std", duration = 5, prompt = "adopted",
      external_task_id = "kb-pre-a" })
    local tb = assert(client:submit { model = "kling-v1", mode = "std", duration = 5, prompt = "tracked",
      external_task_id = "kb-pre-b" })
    -- d ended and was charged but its file was not written; e failed and the run died before
    -- deciding about a retry.
    local td = assert(client:run({ model = "kling-v1", mode = "std", duration = 5, prompt = "d",
      external_task_id = "kb-pre-d" }, { timeout = 30 }))
    local te = assert(client:submit { model = "kling-v1", mode = "std", duration = 5, prompt = "e",
      external_task_id = "kb-pre-e" })
    write(dir .. "/journal.jsonl", jsonl {
      { t = "batch", v = 1, rows = 5 },
      { t = "intent", row = "d", attempt = 1, ext = "kb-pre-d", hash = parsed[4].hash },
      { t = "created", row = "d", attempt = 1, task_id = td.id, endpoint = "videos/text2video" },
      { t = "end", row = "d", attempt = 1, status = "succeeded", task_id = td.id, charge = { amount = "1",
        currency = "CNY" }, outputs = { { kind = "video", url = td.videos[1].url, duration = 5 } } },
      { t = "intent", row = "e", attempt = 1, ext = "kb-pre-e", hash = parsed[5].hash },
      { t = "created", row = "e", attempt = 1, task_id = te.id, endpoint = "videos/text2video" },
      { t = "end", row = "e", attempt = 1, status = "failed", task_id = te.id,
        error = { kind = "content_policy", message = "refused" } },
      { t = "intent", row = "a", attempt = 1, ext = "kb-pre-a", hash = parsed[1].hash },
      { t = "intent", row = "b", attempt = 1, ext = "kb-pre-b", hash = parsed[2].hash },
      { t = "created", row = "b", attempt = 1, task_id = tb.id, endpoint = "videos/text2video" },
      { t = "intent", row = "c", attempt = 1, ext = "kb-never-c", hash = parsed[3].hash },
    })
    local result, err, status = run(dir)
    assert(result, err)
    assert.are.equal(0, status)
    assert.are.same({ a = "succeeded", b = "succeeded", c = "succeeded", d = "succeeded", e = "failed" },
      states(result))
    local st = sim.stats()
    assert.are.equal(5, st.creates) -- a, b, d and e made once, before; c now
    assert.are.equal(2, st.by_route["GET /v1/videos/text2video?external_task_id"]) -- a found, c not
    local recs = records(dir)
    assert.are.equal(ta.id, of_row(recs, "a", "created")[1].task_id)
    assert.are.equal("kb-never-c", of_row(recs, "c", "created")[1].ext)
    assert.are.equal("ftyp", assert(slurp(dir .. "/d.mp4")):sub(5, 8))
    assert.are.equal(1, #of_row(recs, "e", "final"))
    assert.are.equal(0, #of_row(recs, "e", "retry")) -- content policy: never retried
    assert.are.equal(2, result.runs)
  end)

  it("issue 10.4: with a budget, each attempt's hold is its machine's, under the row's key, across a kill: "
    .. "held once, ended once, the ends a killed run left open ended by machines taken up on them", function()
    local dir = fresh_dir()
    local rows = { { defaults = V1 }, { id = "a", prompt = "adopted" }, { id = "b", prompt = "tracked" },
      { id = "d", prompt = "ended, its settle lost" }, { id = "e", prompt = "failed, its release lost" },
      { id = "f", prompt = "fresh" } }
    write(dir .. "/rows.jsonl", jsonl(rows))
    local parsed = assert(manifest.load(dir .. "/rows.jsonl"))
    local client = sim.client()
    local req = { model = "kling-v1", mode = "std", duration = 5 }
    local function with(prompt, ext)
      local r = { prompt = prompt, external_task_id = ext }
      for k, v in pairs(req) do
        r[k] = v
      end
      return r
    end
    local ta = assert(client:submit(with("adopted", "kb-h-a")))
    local tb = assert(client:submit(with("tracked", "kb-h-b")))
    local td = assert(client:run(with("d", "kb-h-d"), { timeout = 30 }))
    local te = assert(client:submit(with("e", "kb-h-e")))
    -- A run killed with every hold on disk (each written before its create) and no end of
    -- one: d's end is journaled but not its settle, e's failure but not its release.
    local function hold(key, n)
      return { t = "ledger", seq = n, op = "reserve", task_key = key, amount = "1", currency = "CNY",
        reserved_amount = "1" }
    end
    write(dir .. "/journal.jsonl", jsonl {
      { t = "batch", v = 1, rows = 5 },
      hold("a#1", 1), { t = "intent", row = "a", attempt = 1, ext = "kb-h-a", key = "a#1", hash = parsed[1].hash },
      hold("b#1", 2), { t = "intent", row = "b", attempt = 1, ext = "kb-h-b", key = "b#1", hash = parsed[2].hash },
      { t = "created", row = "b", attempt = 1, task_id = tb.id, endpoint = "videos/text2video" },
      hold("d#1", 3), { t = "intent", row = "d", attempt = 1, ext = "kb-h-d", key = "d#1", hash = parsed[3].hash },
      { t = "created", row = "d", attempt = 1, task_id = td.id, endpoint = "videos/text2video" },
      { t = "end", row = "d", attempt = 1, status = "succeeded", task_id = td.id, charge = { amount = "1",
        currency = "CNY" }, outputs = { { kind = "video", url = td.videos[1].url, duration = 5 } } },
      hold("e#1", 4), { t = "intent", row = "e", attempt = 1, ext = "kb-h-e", key = "e#1", hash = parsed[4].hash },
      { t = "created", row = "e", attempt = 1, task_id = te.id, endpoint = "videos/text2video" },
      { t = "end", row = "e", attempt = 1, status = "failed", task_id = te.id,
        error = { kind = "content_policy", message = "refused" } },
    })
    local result, err, status = run(dir, { budget = "10" })
    assert(result, err)
    assert.are.equal(0, status, json.encode(result.rows))
    assert.are.same({ a = "succeeded", b = "succeeded", d = "succeeded", e = "failed", f = "succeeded" },
      states(result))
    assert.are.equal(ta.id, of_row(records(dir), "a", "created")[1].task_id)
    -- Every key held once and ended once, the way its task ended.
    local moves = {}
    for _, r in ipairs(records(dir)) do
      if r.t == "ledger" then
        moves[r.task_key] = (moves[r.task_key] and (moves[r.task_key] .. " ") or "") .. r.op
      end
    end
    assert.are.same({ ["a#1"] = "reserve settle", ["b#1"] = "reserve settle", ["d#1"] = "reserve settle",
      ["e#1"] = "reserve release", ["f#1"] = "reserve settle" }, moves)
    assert.are.same({ limit = "10", spent = "4", reserved = "0", currency = "CNY" }, result.budget)
    assert.are.equal(5, sim.stats().creates) -- a, b, d, e before; f now
  end)

  it("reports a lost create uncertain where the provider cannot look it up, and never sends it again", function()
    local dir = fresh_dir()
    local i = sim.info()
    write(dir .. "/rows.jsonl", jsonl { { defaults = { duration = 5 } }, { id = "lost", prompt = "lost" },
      { id = "fine", prompt = "fine" } })
    local parsed = assert(manifest.load(dir .. "/rows.jsonl"))
    write(dir .. "/journal.jsonl", jsonl { { t = "batch", v = 1, rows = 2 },
      { t = "intent", row = "lost", attempt = 1, hash = parsed[1].hash } })
    local opts = { provider = "evolink", base_url = i.providers.evolink, api_key = i.api_key, access_key = false,
      secret_key = false }
    local result, err, status = run(dir, opts)
    assert(result, err)
    assert.are.equal(4, status)
    assert.are.same({ lost = "uncertain", fine = "succeeded" }, states(result))
    assert.are.equal(1, sim.stats().creates)
    assert.matches("never resent", result.rows[1].error.message)
    result, err, status = run(dir, opts)
    assert(result, err)
    assert.are.equal(4, status)
    assert.are.equal(1, sim.stats().creates)
    assert.are.equal(1, #of_row(records(dir), "lost", "final"))
  end)

  it("a lost create whose lookups miss is never a second task: uncertain, held, adopted by the next run", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl { { id = "nf", model = "kling-v2-6", mode = "pro", duration = 5,
      prompt = "nf [sim:seconds=2]" } })
    sim.faults { { kind = "reset", method = "POST", phase = "after", count = 1 },
      { kind = "not_found", method = "GET", path = "^/v1/videos/text2video$", count = 10 } }
    local result, err, status = run(dir, { budget = "10CNY", estimate = false })
    assert(result, err)
    assert.are.equal(4, status)
    assert.are.same({ nf = "uncertain" }, states(result))
    local e = result.rows[1].error.message
    assert.matches("^uncertain: ", e)
    assert.matches("looks it up again by external_task_id " .. result.rows[1].external_task_id, e, 1, true)
    assert.is_nil(e:find("cannot look it up", 1, true))
    assert.are.same({ limit = "10", spent = "0", reserved = "2.5", currency = "CNY" }, result.budget)
    assert.are.equal(1, sim.stats().creates) -- the second POST, under the same id, was refused
    assert.are.equal(0, #of_row(records(dir), "nf", "final"))
    sim.clear_faults()
    result, err, status = run(dir, { budget = "10CNY", estimate = false })
    assert(result, err)
    assert.are.equal(0, status)
    assert.are.same({ nf = "succeeded" }, states(result))
    assert.are.same({ limit = "10", spent = "2.5", reserved = "0", currency = "CNY" }, result.budget)
    assert.are.equal(sim.charges("kling"), core.money_parse(result.budget.spent))
    assert.are.equal(1, sim.stats().creates)
    assert.truthy(io.open(dir .. "/nf.mp4")):close()
  end)

  -- A poll refused (HTTP 401, 1002: the keys) ended the row failed: its task went on at the
  -- provider and was billed, never downloaded, its hold released
  it("a poll refused for its keys leaves a created task open and held: the next run downloads it, once paid",
    function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl { { id = "k", model = "kling-v2-6", mode = "pro", duration = 5,
      prompt = "k [sim:seconds=1]" } })
    sim.faults { { kind = "auth", method = "GET", count = 50 } }
    local result, err, status = run(dir, { budget = "10CNY", estimate = false })
    assert(result, err)
    assert.are.equal(3, status)
    assert.are.same({ k = "unfinished" }, states(result))
    assert.are.same({ limit = "10", spent = "0", reserved = "2.5", currency = "CNY" }, result.budget)
    assert.are.equal(0, #of_row(records(dir), "k", "final"))
    sim.clear_faults()
    result, err, status = run(dir, { budget = "10CNY", estimate = false })
    assert(result, err)
    assert.are.equal(0, status)
    assert.are.same({ k = "succeeded" }, states(result))
    assert.are.equal(1, sim.stats().creates)
    assert.are.equal(sim.charges("kling"), core.money_parse(result.budget.spent))
    assert.truthy(io.open(dir .. "/k.mp4")):close()
  end)

  it("keeps to its budget across runs: rows past it wait for a larger one, the spend carried over", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl { { defaults = V1 }, { id = "x1", prompt = "one" }, { id = "x2", prompt = "two" },
      { id = "x3", prompt = "three" } })
    local result, err, status = run(dir, { budget = "2", parallel = 2 })
    assert(result, err)
    assert.are.equal(3, status)
    local s = states(result)
    assert.are.equal(1, (s.x1 == "unfinished" and 1 or 0) + (s.x2 == "unfinished" and 1 or 0)
      + (s.x3 == "unfinished" and 1 or 0))
    assert.are.equal("2", result.budget.spent)
    assert.are.equal(2, sim.stats().creates)
    result, err, status = run(dir, { budget = "3", parallel = 2 })
    assert(result, err)
    assert.are.equal(0, status)
    assert.are.equal("3", result.budget.spent)
    assert.are.equal(3, sim.stats().creates)
    assert.are.equal(sim.charges("kling"), core.money_parse(result.budget.spent))
    -- Without the flag the journal's budget holds.
    result = assert(run(dir, { parallel = 2 }))
    assert.are.same({ limit = "3", spent = "3", reserved = "0", currency = "CNY" }, result.budget)
  end)

  it("uses a row's api_key, not the access and secret keys the options give for the other rows", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl { { defaults = V1 },
      { id = "own", prompt = "own key", api_key = sim.info().api_key } })
    local result, err, status = run(dir, { access_key = "not-these", secret_key = "not-these-either" })
    assert(result, err)
    assert.are.equal(0, status, json.encode(result.rows))
    assert.are.same({ own = "succeeded" }, states(result))
  end)

  it("refuses a later run whose budgets leave out a currency earlier runs spent in, naming it", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl { { defaults = V1 }, { id = "c1", prompt = "one" } })
    assert(run(dir, { budget = "5" }))
    local result, err = run(dir, { budget = "300:evolink-credits" })
    assert.is_nil(result)
    assert.matches("earlier runs of this batch spent in CNY .* give a budget in CNY too", tostring(err))
    assert(run(dir, { budget = { "300:evolink-credits", "5CNY" } }))
  end)

  it("says a row's own timeout passed, not the run's deadline, when no deadline was given", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl { { defaults = V1 }, { id = "t1", prompt = "slow [sim:seconds=4]" } })
    local result, err, status = run(dir, { timeout = 1 })
    assert(result, err)
    assert.are.equal(3, status)
    assert.matches("^still running at its timeout %(%-%-timeout 1 s%) %(task ", result.rows[1].reason)
  end)

  it("leaves rows running at its deadline open, and the next run tracks them to the end", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl { { defaults = V1 }, { id = "s1", prompt = "slow [sim:seconds=4]" },
      { id = "s2", prompt = "slow too [sim:seconds=4]" } })
    local t0 = core.now_ms()
    local result, err, status = run(dir, { deadline = 1 })
    assert(result, err)
    assert.is_true(core.now_ms() - t0 < 3500)
    assert.are.equal(3, status)
    assert.are.same({ s1 = "unfinished", s2 = "unfinished" }, states(result))
    assert.matches("still running at the run's deadline", result.rows[1].reason)
    result, err, status = run(dir)
    assert(result, err)
    assert.are.equal(0, status)
    assert.are.same({ s1 = "succeeded", s2 = "succeeded" }, states(result))
    assert.are.equal(2, sim.stats().creates)
  end)

  -- A batch has no callback intake: its rows with a callback_url waited the engine's 60 s of
  -- callback silence before their first poll.
  it("polls a row with a callback_url as any other (nothing delivers callbacks to a batch)", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl { { defaults = V1 },
      { id = "c1", prompt = "called back [sim:seconds=1]", callback_url = "https://example.com/hook" } })
    local result, err, status = run(dir, { deadline = 15 })
    assert(result, err)
    assert.are.equal(0, status)
    assert.are.same({ c1 = "succeeded" }, states(result))
  end)

  it("takes CSV with a row on another provider, names outputs, refuses a file in place, prints no key", function()
    local dir = fresh_dir()
    local i = sim.info()
    write(dir .. "/rows.csv", "id,provider,base_url,api_key,prompt,model,mode,duration\n"
      .. "k1,,,,a kite,kling-v1,std,5\n"
      .. string.format("e1,evolink,%s,%s,a boat,kling-v3,,5\n", i.providers.evolink, i.api_key))
    os.execute("mkdir -p " .. dir .. "/clips")
    write(dir .. "/clips/k1.mp4", "x")
    local result, err, status = run(dir, { manifest = dir .. "/rows.csv", name = "clips/{id}.{ext}" })
    assert(result, err)
    assert.are.equal(6, status)
    assert.are.same({ k1 = "refused", e1 = "succeeded" }, states(result))
    assert.are.equal("x", slurp(dir .. "/clips/k1.mp4")) -- someone's file: neither replaced nor taken
    assert.are.equal("ftyp", assert(slurp(dir .. "/clips/e1.mp4")):sub(5, 8))
    assert.are.same({}, of_row(records(dir), "k1", "file"))
    assert.are.equal(1, sim.stats().creates)
    for _, name in ipairs { "journal.jsonl", "summary.json", "report.html" } do
      local text = assert(slurp(dir .. "/" .. name))
      assert.is_nil(text:find(i.api_key, 1, true), name)
      assert.is_nil(text:find(i.secret_key, 1, true), name)
    end
  end)

  -- CSV booleans: the README's true/false (in any letter case) and nothing else; what the API gets.
  it("sends a CSV's TRUE and false as the API's on and off, and refuses yes or 1 naming the line", function()
    local dir = fresh_dir()
    write(dir .. "/rows.csv", "id,prompt,model,mode,duration,sound\ns1,a,kling-v2-6,pro,5,TRUE\n"
      .. "s0,b,kling-v2-6,pro,5,false\n")
    local result, err, status = run(dir, { manifest = dir .. "/rows.csv" })
    assert(result, err)
    assert.are.equal(0, status)
    local sent = {}
    for _, r in ipairs(result.rows) do
      sent[r.id] = sim.admin("GET", "/_sim/tasks/" .. r.task_id).request.sound
    end
    assert.are.same({ s1 = "on", s0 = "off" }, sent)
    for _, cell in ipairs { "yes", "1", "on" } do
      local d = fresh_dir()
      write(d .. "/rows.csv", "id,prompt,model,mode,duration,sound\ns1,a,kling-v2-6,pro,5," .. cell .. "\n")
      result, err, status = run(d, { manifest = d .. "/rows.csv" })
      assert.is_nil(result)
      assert.are.equal(2, status)
      assert.matches(":2: sound: must be true or false (in any letter case: TRUE, False), got '" .. cell .. "'", err, 1,
        true)
    end
    assert.are.equal(2, sim.stats().creates)
  end)

  -- A new user's batch took "my notes" at boat.mp4 for the paid video and never saved it.
  it("refuses a row whose output, .part or poster name holds a file it did not write; keeps its own on a re-run",
    function()
      local dir = fresh_dir()
      write(dir .. "/rows.jsonl", jsonl { { defaults = V1 }, { id = "a", prompt = "a" }, { id = "b", prompt = "b" },
        { id = "c", prompt = "c" }, { id = "d", prompt = "d" } })
      write(dir .. "/a.mp4", "my notes")
      write(dir .. "/b.mp4.part", "a part of mine")
      assert(os.execute("mkdir -p " .. dir .. "/posters"))
      write(dir .. "/posters/c.mp4.jpg", "a poster of mine")
      local result, err, status = run(dir)
      assert(result, err)
      assert.are.equal(6, status) -- d ran; a, b and c were refused, nothing sent for them
      assert.are.same({ a = "refused", b = "refused", c = "refused", d = "succeeded" }, states(result))
      assert.are.equal(1, sim.stats().creates)
      local by_id = {}
      for _, r in ipairs(result.rows) do
        by_id[r.id] = r
      end
      assert.matches(dir .. "/a.mp4 exists (the output) and this batch's journal has no record of writing it",
        by_id.a.error.message, 1, true)
      assert.matches(dir .. "/b.mp4.part exists (its temporary download (.part))", by_id.b.error.message, 1, true)
      assert.matches(dir .. "/posters/c.mp4.jpg exists (its poster frame", by_id.c.error.message, 1, true)
      assert.are.equal("my notes", slurp(dir .. "/a.mp4"))
      assert.are.equal("a part of mine", slurp(dir .. "/b.mp4.part"))
      assert.are.equal("a poster of mine", slurp(dir .. "/posters/c.mp4.jpg"))
      -- moved away: the same command runs them
      os.remove(dir .. "/a.mp4")
      os.remove(dir .. "/b.mp4.part")
      os.remove(dir .. "/posters/c.mp4.jpg")
      result, err, status = run(dir)
      assert(result, err)
      assert.are.equal(0, status)
      assert.are.equal(4, sim.stats().creates)
      assert.are.equal("ftyp", assert(slurp(dir .. "/a.mp4")):sub(5, 8))
      -- the files the journal shows it wrote are kept: nothing fetched or created again
      local gets = sim.stats().by_route["GET /media/{file}"]
      result, err, status = run(dir)
      assert(result, err)
      assert.are.equal(0, status)
      assert.are.equal(4, sim.stats().creates)
      assert.are.equal(gets, sim.stats().by_route["GET /media/{file}"])
    end)

  it("never replaces nor takes for its output a file that appears at its name while the task runs", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl { { defaults = V1 }, { id = "late", prompt = "late [sim:seconds=3]" } })
    -- planted after the check before the create, before the download
    assert(os.execute("(sleep 1; printf planted > " .. dir .. "/late.mp4) >/dev/null 2>&1 &"))
    local result, err, status = run(dir, { poll_min = 0.5, estimate = 3 })
    assert(result, err)
    assert.are.equal(3, status)
    assert.are.same({ late = "unfinished" }, states(result))
    assert.matches(dir .. "/late.mp4 exists and this batch's journal has no record of writing it: kept as it is",
      result.rows[1].reason, 1, true)
    assert.are.equal("planted", slurp(dir .. "/late.mp4"))
    assert.are.equal(1, sim.stats().creates)
    os.remove(dir .. "/late.mp4")
    result, err, status = run(dir)
    assert(result, err)
    assert.are.equal(0, status)
    assert.are.equal("ftyp", assert(slurp(dir .. "/late.mp4")):sub(5, 8))
    assert.are.equal(1, sim.stats().creates) -- paid once, fetched by the next run
    -- a file appearing between the download's last check and its move into place: kept, the download refused
    local downloads = require("kling.batch.download").new {}
    local said
    local ended = of_row(records(dir), "late", "end")
    downloads:add { url = ended[#ended].outputs[1].url, path = dir .. "/race.mp4",
      on_place = function()
        write(dir .. "/race.mp4", "planted at the last moment")
      end,
      on_done = function(_, p, msg)
        said = { p, msg }
      end }
    for _ = 1, 100 do
      if said then
        break
      end
      downloads:step(100)
    end
    downloads:close()
    assert.is_nil(said[1])
    assert.matches("download refused: " .. dir .. "/race.mp4 exists: it is never replaced", said[2], 1, true)
    assert.are.equal("planted at the last moment", slurp(dir .. "/race.mp4"))
    assert.is_nil(io.open(dir .. "/race.mp4.part"))
  end)

  it("a download moved into place just before a kill is the row's on resume; another file there is not", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl { { defaults = V1 }, { id = "p", prompt = "p" } })
    assert(run(dir))
    local placing = of_row(records(dir), "p", "placing")
    assert.are.equal(1, #placing)
    -- the journal as a kill right after the move left it: the placing record, no file, no final
    local function cut()
      local keep = {}
      for _, r in ipairs(records(dir)) do
        if not (r.row == "p" and (r.t == "file" or r.t == "final")) then
          keep[#keep + 1] = r
        end
      end
      write(dir .. "/journal.jsonl", jsonl(keep))
    end
    cut()
    local gets = sim.stats().by_route["GET /media/{file}"]
    local result, err, status = run(dir)
    assert(result, err)
    assert.are.equal(0, status)
    assert.are.equal(gets, sim.stats().by_route["GET /media/{file}"], "kept, not fetched again")
    assert.are.equal(1, #of_row(records(dir), "p", "file"))
    -- the same name holding another file (a copy: another inode) is not the batch's
    cut()
    local video = slurp(dir .. "/p.mp4")
    os.remove(dir .. "/p.mp4")
    write(dir .. "/p.mp4", video .. "edited")
    result, err, status = run(dir)
    assert(result, err)
    assert.are.equal(3, status)
    assert.matches("p.mp4 exists and this batch's journal has no record of writing it", result.rows[1].reason, 1,
      true)
    assert.are.equal(video .. "edited", slurp(dir .. "/p.mp4"))
    assert.are.equal(1, sim.stats().creates)
  end)

  -- Found only at the download, the links cost a paid task each: now the rows are refused before
  -- their creates, and the download checks its path again for a link planted later.
  it("never writes an output through a symbolic link planted at its name or its .part, nor pays for it",
    function()
      local dir = fresh_dir()
      write(dir .. "/rows.jsonl", jsonl { { defaults = V1 }, { id = "a", prompt = "a" }, { id = "b", prompt = "b" },
        { id = "c", prompt = "c" } })
      write(root .. "/victim", "keep")
      write(root .. "/empty-victim", "")
      assert(os.execute(("ln -s %s/victim %s/a.mp4.part && ln -s %s/empty-victim %s/b.mp4"):format(root, dir, root,
        dir)))
      local result, err, status = run(dir)
      assert(result, err)
      assert.are.equal(6, status) -- c ran; a and b were refused (the manifest's directory must change)
      local by_id = {}
      for _, r in ipairs(result.rows) do
        by_id[r.id] = r
      end
      assert.are.equal("succeeded", by_id.c.state)
      assert.are.equal("ftyp", assert(slurp(dir .. "/c.mp4")):sub(5, 8))
      assert.are.equal(1, sim.stats().creates, "only c was created")
      assert.are.equal(1, sim.stats().by_route["GET /media/{file}"], "only c's output was fetched")
      assert.are.equal("keep", slurp(root .. "/victim"))
      assert.are.equal("", slurp(root .. "/empty-victim"))
      assert.are.same({ "refused", "refused" }, { by_id.a.state, by_id.b.state })
      assert.matches(dir .. "/a.mp4.part is a symbolic link", by_id.a.error.message, 1, true)
      assert.matches(dir .. "/b.mp4 is a symbolic link", by_id.b.error.message, 1, true)
      -- a link planted after the create: the download refuses it, sending nothing
      local downloads = require("kling.batch.download").new {}
      assert(os.execute(("ln -s %s/victim %s/late.mp4"):format(root, dir)))
      local said
      downloads:add { url = sim.info().http .. "/media/late.mp4", path = dir .. "/late.mp4",
        on_done = function(_, p, msg)
          said = { p, msg }
        end }
      downloads:step(0)
      downloads:close()
      assert.is_nil(said[1])
      assert.matches("download refused: path: " .. dir .. "/late.mp4 is a symbolic link", said[2], 1, true)
      assert.are.equal(1, sim.stats().by_route["GET /media/{file}"])
      assert.are.equal("keep", slurp(root .. "/victim"))
    end)

  -- A batch's downloads had no cap but libcurl's 2 GiB, and a body stopped there was tried again, 4 times:
  -- a misbehaving server filled the disk. They stop at the row's client's max_download_bytes, once.
  it("stops a download past its cap, leaves nothing, and does not fetch it again", function()
    local dir = fresh_dir()
    local downloads = require("kling.batch.download").new {}
    local said
    downloads:add { url = sim.info().http .. "/media/sample.mp4", path = dir .. "/big.mp4", max_bytes = 100,
      on_done = function(_, p, msg)
        said = { p, msg }
      end }
    while not said do
      downloads:step(100)
    end
    downloads:close()
    assert.is_nil(said[1])
    assert.matches("download larger than its limit (100 bytes)", said[2], 1, true)
    assert.is_nil(io.open(dir .. "/big.mp4"))
    assert.is_nil(io.open(dir .. "/big.mp4.part"))
    assert.are.equal(1, sim.stats().by_route["GET /media/{file}"])
  end)

  it("stops creating when the provider refuses the account, and leaves the rows for the next run", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl { { defaults = V1 }, { id = "k1", prompt = "one" }, { id = "k2", prompt = "two" },
      { id = "k3", prompt = "three" }, { id = "k4", prompt = "four" } })
    local result, err, status = run(dir, { secret_key = "not-the-secret", parallel = 2 })
    assert(result, err)
    assert.are.equal(3, status)
    assert.are.same({ k1 = "unfinished", k2 = "unfinished", k3 = "unfinished", k4 = "unfinished" }, states(result))
    assert.matches("^auth", result.rows[1].reason)
    assert.matches("refused the account", result.rows[4].reason)
    local posts = sim.stats().by_route["POST /v1/videos/text2video"] or 0
    assert.is_true(posts <= 2, posts .. " creates sent after the account was refused")
    result, err, status = run(dir)
    assert(result, err)
    assert.are.equal(0, status)
    assert.are.equal(4, sim.stats().creates)
  end)

  it("issue 14: a row's relative image path is read from the manifest's directory, not the current one", function()
    local dir = fresh_dir()
    os.execute("mkdir -p " .. dir .. "/frames")
    write(dir .. "/frames/start.png", images.png(640, 360))
    write(dir .. "/rows.jsonl", jsonl { { id = "still", model = "kling-v1", mode = "std", duration = 5,
      prompt = "the frame comes alive", image = "frames/start.png" } })
    assert.is_nil(io.open("frames/start.png")) -- nothing by that name where the test runs
    local result = assert(run(dir))
    assert.are.same({ still = "succeeded" }, states(result))
    assert.are.equal(1, sim.stats().creates)
  end)

  -- The README said "a manifest edited under its journal is refused", yet a row appended to a
  -- finished batch ran. What the code does, pinned: rows added run; a row nothing was sent for
  -- (refused, or not started) may be fixed, changed or removed; a row whose create was sent may
  -- neither change nor go.
  it("takes rows added and rows nothing was sent for changed or removed; refuses a sent row changed or removed",
    function()
      local dir = fresh_dir()
      local i = sim.info()
      local evolink = { provider = "evolink", base_url = i.providers.evolink, api_key = i.api_key, model = "kling-v3" }
      local function rows(list)
        table.insert(list, 1, { defaults = V1 })
        write(dir .. "/rows.jsonl", jsonl(list))
      end
      local function with(t, extra)
        for k, v in pairs(extra) do
          t[k] = v
        end
        return t
      end
      rows { { id = "m", prompt = "first version" }, { id = "bad", prompt = "x", duration = -1 },
        with({ id = "later", prompt = "not started" }, evolink) }
      local result, err, status = run(dir, { budget = { "10CNY" } }) -- no budget in evolink-credits: later waits
      assert(result, err)
      assert.are.equal(3, status)
      assert.are.same({ m = "succeeded", bad = "refused", later = "unfinished" }, states(result))
      assert.are.equal(1, sim.stats().creates)
      -- added, fixed, changed before it was sent: all run
      rows { { id = "m", prompt = "first version" }, { id = "bad", prompt = "x", duration = 5 },
        with({ id = "later", prompt = "changed before it was sent" }, evolink), { id = "added", prompt = "y" } }
      result, err, status = run(dir, { budget = { "10CNY", "100:evolink-credits" } })
      assert(result, err)
      assert.are.equal(0, status)
      assert.are.same({ m = "succeeded", bad = "succeeded", later = "succeeded", added = "succeeded" }, states(result))
      assert.are.equal(4, sim.stats().creates)
      -- a row refused (nothing sent) may go: kling status agrees with the run
      rows { { id = "m", prompt = "first version" }, { id = "bad", prompt = "x", duration = 5 },
        with({ id = "later", prompt = "changed before it was sent" }, evolink), { id = "added", prompt = "y" },
        { id = "typo", prompt = "z", duraton = 5 } }
      result, err, status = run(dir)
      assert(result, err)
      assert.are.equal(6, status)
      rows { { id = "m", prompt = "first version" }, { id = "bad", prompt = "x", duration = 5 },
        with({ id = "later", prompt = "changed before it was sent" }, evolink), { id = "added", prompt = "y" } }
      result, err, status = run(dir)
      assert(result, err)
      assert.are.equal(0, status)
      assert.are.equal(1, #of_row(records(dir), "typo", "dropped"))
      local cstatus, out = require("support.cli").kling("status " .. dir .. " --json")
      assert.are.equal(0, cstatus, out)
      local st = assert(json.decode(out:match("^[^\n]*")))
      assert.are.same({ rows = 4, succeeded = 4 }, { rows = st.rows, succeeded = st.counts.succeeded })
      assert.is_nil(st.counts.refused)
      assert.are.equal(4, sim.stats().creates)
      -- a row whose create was sent: neither changed nor removed
      local before = sim.stats().requests
      rows { { id = "m", prompt = "second version" }, { id = "bad", prompt = "x", duration = 5 },
        with({ id = "later", prompt = "changed before it was sent" }, evolink), { id = "added", prompt = "y" } }
      result, err, status = run(dir)
      assert.is_nil(result)
      assert.are.equal(2, status)
      assert.matches("row 'm' (line 2) has changed since its attempt 1 was sent: a row whose create was sent may "
        .. "not change", err, 1, true)
      rows { { id = "bad", prompt = "x", duration = 5 },
        with({ id = "later", prompt = "changed before it was sent" }, evolink), { id = "added", prompt = "y" } }
      result, err, status = run(dir)
      assert.is_nil(result)
      assert.are.equal(2, status)
      assert.matches("the journal names row 'm', which the manifest has not: its create was sent, so the row may "
        .. "not be removed", err, 1, true)
      assert.are.equal(before, sim.stats().requests)
    end)

  it("refuses a manifest edited under its journal, and a directory another live process runs", function()
    local dir = fresh_dir()
    write(dir .. "/rows.jsonl", jsonl { { defaults = V1 }, { id = "m", prompt = "first version" } })
    assert(run(dir))
    local before = sim.stats().requests
    write(dir .. "/rows.jsonl", jsonl { { defaults = V1 }, { id = "m", prompt = "second version" } })
    local result, err, status = run(dir)
    assert.is_nil(result)
    assert.are.equal(2, status)
    assert.matches("row 'm' %(line 2%) has changed", err)
    write(dir .. "/rows.jsonl", jsonl { { defaults = V1 }, { id = "other", prompt = "x" } })
    result, err, status = run(dir)
    assert.is_nil(result)
    assert.are.equal(2, status)
    assert.matches("the journal names row 'm'", err)
    assert.are.equal(before, sim.stats().requests)
    -- Another process holds the lock (an flock on DIR/.lock, as a running batch does).
    local p = io.popen("flock " .. dir .. "/.lock sh -c 'echo $$ > " .. dir .. "/.lock; echo $$; sleep 3' "
      .. "2>/dev/null & sleep 0.3")
    local pid = p:read("l")
    p:close()
    result, err, status = run(dir)
    assert.is_nil(result)
    assert.are.equal(5, status)
    assert.matches("another process %(pid " .. pid .. "%)", err)
  end)
end)
