-- What a batch leaves behind and shows: output names (template, extension, safe, inside the
-- output directory), summary.json (counts, exact charges by currency, failures with their
-- reason), report.html (every output playable, escaped, no external assets) and the
-- progress line.
local json = require "kling.json"
local names = require "kling.batch.names"
local report = require "kling.batch.report"
local progress = require "kling.batch.progress"

describe("output names", function()
  it("refuses templates that leave the directory, give every row one name, or use unknown placeholders", function()
    assert.are.equal("{id}.{ext}", names.check(names.DEFAULT))
    assert.are.equal("{model}/{id}-{n}.{ext}", names.check("{model}/{id}-{n}.{ext}"))
    for t, msg in pairs {
      ["/tmp/{id}.{ext}"] = "relative to the output directory",
      ["../{id}.{ext}"] = "stay inside",
      ["a/./{id}"] = "stay inside",
      ["{id}.{format}"] = "unknown placeholder {format}",
      ["{id}.{ext"] = "a '{' or '}' outside a placeholder",
      ["{id}.ext}"] = "a '{' or '}' outside a placeholder",
      ["{{id}}.{ext}"] = "unknown placeholder {{id}",
      ["clip.{ext}"] = "must contain {id}, {row} or {task_id}",
      [""] = "non%-empty",
    } do
      local ok, err = names.check(t)
      assert.is_nil(ok, t)
      assert.matches(msg, err)
    end
  end)

  it("fills the placeholders, numbers several outputs, and keeps names safe", function()
    local row = { id = "cat/../dog 1", index = 3, task_id = "T9", request = { model = "kling-v2-6" } }
    local v = { kind = "video", url = "https://cdn.example/a/b/clip.MP4?sig=1#x" }
    assert.are.equal("cat_.._dog_1.mp4", names.name("{id}.{ext}", row, 1, v, 1))
    assert.are.equal("cat_.._dog_1-2.mp4", names.name("{id}.{ext}", row, 2, v, 2))
    assert.are.equal("kling-v2-6/3-T9-video-1", names.name("{model}/{row}-{task_id}-{kind}", row, 1, v, 3))
    assert.are.equal("png", names.ext_of("https://x/y", "image"))
    assert.are.equal("mp3", names.ext_of("https://x/file.exe", "audio"))
    assert.are.equal("webp", names.ext_of("https://x/i.webp", "image"))
    -- a leading dot made a hidden file (ls showed no output for a paid row)
    assert.are.equal("_.", names.safe(".."))
    assert.are.equal("_._evil.mp4", names.name("{id}.{ext}", { id = "../evil", index = 1, request = {} }, 1, v, 1))
    assert.are.equal("_cat", names.safe(".cat"))
    assert.are.equal("_", names.safe(""))
    assert.are.equal("_", names.safe("."))
  end)

  -- Ids that differ only in what safe() replaces gave one file to two paid tasks: the second
  -- row found the first's download in place and took it for its own.
  it("names the two rows whose outputs would get one file name, before anything is sent", function()
    local function row(id, line, model)
      return { id = id, index = line, line = line, request = { model = model or "kling-v1" } }
    end
    local rows = { row("a/b", 1), row("c", 2), row("a_b", 3) }
    assert.are.equal("3: id 'a_b' names its output a_b.{ext}, as does id 'a/b' on line 1 (a file name keeps only "
      .. "letters, digits, '-', '_' and '.'; a row's several outputs are numbered -1, -2, ...): give one of them "
      .. "another id", names.refusal(names.DEFAULT, rows, "out"))
    -- a --name template that runs what tells rows apart together
    local two = { row("a1", 1), row("a", 11) }
    assert.is_nil(names.refusal("{id}-{row}.{ext}", two, "out"))
    assert.matches("^11: id 'a' names its output a11%.{ext}, as does id 'a1' on line 1",
      names.refusal("{id}{row}.{ext}", two, "out"))
    -- a row asking for several outputs numbers them: x-1, x-2 (images, n = 2)
    local imgs = { { id = "x", index = 1, line = 1, request = { n = 2 } }, row("x-2", 2) }
    assert.matches("^2: id 'x%-2' names its output x%-2%.{ext}, as does id 'x' on line 1", names.refusal(names.DEFAULT,
      imgs, "out"))
    -- {row} and {task_id} keep rows apart
    assert.is_nil(names.refusal("{row}-{id}.{ext}", rows, "out"))
    assert.is_nil(names.refusal("{task_id}.{ext}", { row("a", 1), row("a", 2) }, "out"))
  end)

  -- `--name '{id}'` with ids journal.jsonl and .lock: charged, nothing downloaded (the batch's own
  -- files were "already in place" and listed as the videos); ids summary.json and report.html:
  -- the videos downloaded, then overwritten by the summary and the report.
  it("refuses an output named as one of the batch's own files, before anything is sent", function()
    local function row(id, line)
      return { id = id, index = line, line = line, request = { model = "kling-v1" } }
    end
    for id, what in pairs {
      ["journal.jsonl"] = "the batch's journal",
      ["summary.json"] = "the batch's summary", ["report.html"] = "the batch's report",
      ["posters"] = "the directory of the report's poster frames",
      ["summary.json.0123456789abcdef.tmp"] = "a temporary name of the batch's summary",
      ["journal.jsonl.fedcba9876543210.tmp"] = "a temporary name of the batch's journal",
      ["clip.mp4.part"] = "a download's temporary name (.part)",
    } do
      assert.are.equal("2: id '" .. id .. "' names its output " .. id .. ", " .. what .. ": give the row another id, "
        .. "or name the outputs otherwise (--name '{id}.{ext}')", names.refusal("{id}", { row("ok", 1), row(id, 2) },
        "out"), id)
      assert.is_nil(names.refusal(names.DEFAULT, { row(id, 1) }, "out"), id) -- {ext} keeps them apart
    end
    -- an id never names a dot file: '.lock' is _lock, not the batch's lock
    assert.is_nil(names.refusal("{id}", { row("ok", 1), row(".lock", 2) }, "out"))
    assert.are.equal("_lock", names.name("{id}", row(".lock", 2), 1, { kind = "video" }, 1))
    -- a directory of the template's own, and names known only at the download ({task_id})
    assert.matches("names its output posters/a%.{ext}, the directory of the report's poster frames",
      names.refusal("posters/{id}.{ext}", { row("a", 1) }, "out"))
    assert.matches("names its output a%.part/{task_id}, a download's temporary name",
      names.refusal("{id}.part/{task_id}", { row("a", 1) }, "out"))
    assert.is_nil(names.refusal("{task_id}", { row("a", 1) }, "out"))
    assert.are.equal("report.html is the batch's report", names.path_refusal("out", "report.html"))
    assert.are.equal(".lock is the batch's lock", names.path_refusal("out", ".lock"))
    assert.is_nil(names.path_refusal("out", "clips/report.html")) -- DIR/clips/ is not the batch's
    assert.is_nil(names.path_refusal("out", "a.mp4"))
  end)

  -- One row with a 128-character id and --name '{id}-{task_id}-{model}-{id}.{ext}': created and
  -- charged, then "File name too long" at the download, and the same on every run again.
  -- An --out of 4,075 bytes: the task was created, charged and downloaded, then the run failed
  -- writing summary.json's temporary name (a review of this stop's change).
  it("refuses an output directory whose path leaves no room for the batch's own files", function()
    assert.is_nil(names.dir_refusal("out"))
    assert.is_nil(names.dir_refusal(("d"):rep(4060)))
    assert.matches("^the output directory's path %(4061 bytes%) leaves no room for the batch's own files %(4096 bytes",
      names.dir_refusal(("d"):rep(4061)))
  end)

  it("refuses an output whose files the file system would refuse: NAME_MAX, PATH_MAX, before anything is sent",
    function()
      local function row(id)
        return { id = id, index = 1, line = 1, request = { model = "kling-v1" } }
      end
      local long = ("a"):rep(128)
      local err = names.refusal("{id}-{task_id}-{model}-{id}.{ext}", { row(long) }, "out")
      assert.are.equal("1: id '" .. long .. "' names its output " .. long .. "-{task_id}-kling-v1-" .. long
        .. ".{ext}: the output would have a file name of 336 bytes, over the 255 a file name may have (NAME_MAX) "
        .. "(counted with {task_id} as 64 bytes, {ext} as 4 bytes: known only after the create): give the row a "
        .. "shorter id, or a shorter --name or --out", err)
      -- {task_id} counted as 64 bytes: 185 + 1 + 64 + 5 (".part") fits 255, one more byte does not
      assert.is_nil(names.refusal("{id}-{task_id}", { row(("b"):rep(185)) }, "out"))
      assert.matches("its temporary download %(%.part%) would have a file name of 256 bytes",
        names.refusal("{id}-{task_id}", { row(("b"):rep(186)) }, "out"))
      -- the .part is the longest file name an output makes: 250 bytes and its ".part" fit
      assert.is_nil(names.refusal("{id}", { row(("c"):rep(250)) }, "out"))
      assert.matches("^1: id 'c+' names its output c+: its temporary download %(%.part%) would have a file name of "
        .. "256 bytes", names.refusal("{id}", { row(("c"):rep(251)) }, "out"))
      -- a directory of the template counts too
      assert.matches("the output would have a directory name of 300 bytes",
        names.refusal("{id}/{n}.{ext}", { row(("d"):rep(300)) }, "out"))
      -- the whole path: the poster frame's is the longest (DIR/posters/<output>.jpg); 4095 bytes fit
      local dir = ("/" .. ("e"):rep(200)):rep(19) -- 3819 bytes
      local rel = ("f"):rep(200) .. "/" .. ("g"):rep(62) -- the poster: 3819 + 9 + 263 + 4 = 4095 bytes
      assert.is_nil(names.path_refusal(dir, rel))
      assert.are.equal(rel .. "g: its poster frame (posters/<output>.jpg) would have a path of 4096 bytes (3820 of "
        .. "them the output directory's), over the 4095 a path may have (PATH_MAX, 4096, counts its terminating NUL)",
        names.path_refusal(dir, rel .. "g"))
      assert.matches("^1: id 'f+' names its output f+/f+: the output would have a path of 4221 bytes .*PATH_MAX",
        names.refusal("{id}/{id}", { row(("f"):rep(200)) }, dir))
      -- a value known only at the download, longer than counted: the download refuses it by name
      assert.matches("^" .. ("h"):rep(251) .. ": its temporary download %(%.part%) would have a file name of 256",
        names.path_refusal("out", ("h"):rep(251)))
    end)
end)

-- A row that delivers more outputs than it asked for is numbered x-1, x-2: onto the name of a
-- row "x-1". Its download found that row's file in place and took it for its own.
describe("a batch's downloads", function()
  it("never take another row's file for a row's output, nor overwrite it", function()
    local batch = require "kling.batch"
    local files = require "support.files"
    local dir = files.tempdir()
    files.write(dir .. "/x-1.mp4", "row x-1's video")
    local added, events, records = {}, {}, {}
    local b = setmetatable({ out = dir, name_template = "{id}.{ext}", claimed = {},
      downloads = { add = function(_, job) added[#added + 1] = job.rel end },
      progress = { event = function(_, line) events[#events + 1] = line end },
      journal = { append = function(_, rec) records[#records + 1] = rec return true end } }, batch.Batch)
    local other = { id = "x-1", index = 2, line = 2, attempt = 1, files = {}, request = {} }
    b.claimed["x-1.mp4"] = other
    local row = { id = "x", index = 1, line = 1, attempt = 1, files = {}, request = { model = "kling-v1" },
      outputs = { { kind = "video", url = "https://cdn.example/1.mp4" },
        { kind = "video", url = "https://cdn.example/2.mp4" } } }
    b:fetch_outputs(row)
    assert.are.same({ "x-2.mp4" }, added) -- its second output is fetched; its first is not taken
    assert.is_nil(row.files[1])
    row.pending_files = 0
    b:maybe_done(row)
    assert.are.equal("unfinished", row.st)
    assert.matches("x%-1%.mp4 is the output of row 'x%-1' %(line 2%)", row.reason)
    assert.are.equal("row x-1's video", files.read(dir .. "/x-1.mp4"))
    files.remove(dir)
  end)

  -- {task_id} is only measured before the create (names.TASK_ID_MAX bytes): the download checks
  -- the name with its value, and never takes the batch's own file for an output.
  it("refuse a name the provider's task id makes the batch's own file, or too long, and keep the row open", function()
    local batch = require "kling.batch"
    local files = require "support.files"
    local dir = files.tempdir()
    files.write(dir .. "/journal.jsonl", "the journal\n")
    local added = {}
    local b = setmetatable({ out = dir, name_template = "{task_id}", claimed = {},
      downloads = { add = function(_, job) added[#added + 1] = job.rel end },
      progress = { event = function() end },
      journal = { append = function() return true end } }, batch.Batch)
    for task_id, said in pairs {
      ["journal.jsonl"] = "download refused: journal.jsonl is the batch's journal (run the batch again with another "
        .. "--name)",
      [("7"):rep(300)] = "download refused: " .. ("7"):rep(300) .. ": the output would have a file name of 300 bytes",
    } do
      local row = { id = "x", index = 1, line = 1, attempt = 1, files = {}, task_id = task_id, request = {},
        outputs = { { kind = "video", url = "https://cdn.example/1.mp4" } } }
      b:fetch_outputs(row)
      assert.are.equal("unfinished", row.st)
      assert.are.equal(said, row.reason:sub(1, #said))
      assert.is_nil(row.files[1])
    end
    assert.are.same({}, added)
    assert.are.equal("the journal\n", files.read(dir .. "/journal.jsonl"))
    files.remove(dir)
  end)
end)

local function result()
  return {
    manifest = "jobs.jsonl", out = "out", runs = 2, elapsed_s = 12.5,
    budget = { limit = "10", spent = "0.3", reserved = "0", currency = "USD" },
    rows = {
      { id = "a", state = "succeeded", attempts = 1, task_id = "1", model = "m", prompt = "<script>alert(1)</script>",
        charge = { amount = "0.1", currency = "USD", rule = "r1" },
        files = { { path = "a b.mp4", kind = "video", bytes = 10 } } },
      { id = "b", state = "succeeded", attempts = 2, charge = { amount = "0.2", currency = "USD" },
        files = { { path = "b.png", kind = "image", bytes = 5 }, { path = "b.mp3", kind = "audio", bytes = 7 } } },
      { id = "c", state = "succeeded", charge = { amount = "3", currency = "CNY" }, files = {} },
      { id = "d", state = "succeeded", charge = { unpriced = "no price" }, files = {} },
      { id = "e", state = "failed", attempts = 3, task_id = "5",
        error = { kind = "content_policy", code = 1301, message = "refused & <bad>" } },
      { id = "f", state = "uncertain", external_task_id = "kb-f", error = { kind = "network", message = "lost" } },
      { id = "g", state = "unfinished", reason = "still running at the deadline (task 7)", task_id = "7" },
      { id = "h", state = "refused", attempts = 1, error = { kind = "unpriced", message = "no price for kling-v3" } },
    },
  }
end

describe("summary.json", function()
  it("counts rows by state, sums charges exactly by currency, and lists each failure with its reason", function()
    local s = report.summary(result())
    assert.are.equal(8, s.rows)
    assert.are.equal(4, s.succeeded)
    assert.are.equal(1, s.failed)
    assert.are.equal(1, s.uncertain)
    assert.are.equal(1, s.unfinished)
    assert.are.same({ USD = "0.3", CNY = "3" }, s.charges) -- 0.1 + 0.2, no float in sight
    assert.are.equal(1, s.unpriced_rows) -- d's delivery, uncounted; h was never sent, nothing charged
    assert.are.same({ id = "e", kind = "content_policy", code = 1301, reason = "refused & <bad>", attempts = 3,
      task_id = "5" }, s.failures[1])
    assert.are.equal(1, #s.failures)
    assert.are.equal("kb-f", s.uncertain_rows[1].external_task_id)
    assert.matches("deadline", s.unfinished_rows[1].reason)
    assert.are.equal(3, #s.outputs)
    assert(json.encode(s))
  end)

  -- Refused rows (invalid, unpriced under --budget: never sent) were counted and listed as
  -- failed: a batch whose every row was refused read as one the provider failed.
  it("counts and lists a row refused before anything was sent as refused, apart from the failed", function()
    local s = report.summary(result())
    assert.are.equal(1, s.refused)
    assert.are.same({ { id = "h", kind = "unpriced", reason = "no price for kling-v3" } }, s.refused_rows)
    local html = report.html(result())
    assert.matches('<th class="failed">failed</th><th class="refused">refused</th>', html, 1, true)
    assert.matches('<td class="refused">refused</td>', html, 1, true)
    assert.matches('"refused_rows":%[%]', assert(json.encode(report.summary({ rows = {} }))))
  end)

  it("writes an empty failure list as a JSON array", function()
    local r = result()
    r.rows = { r.rows[1] }
    local text = assert(json.encode(report.summary(r)))
    assert.matches('"failures":%[%]', text)
  end)

  it("prints a table with the counts, the charges and what did not succeed", function()
    local lines = table.concat(report.table(result(), { summary = "out/summary.json", report = "out/report.html" }),
      "\n")
    assert.matches("succeeded%s+4", lines)
    assert.matches("charges: 3 CNY, 0.3 USD %(%+1 unpriced rows%)", lines)
    assert.matches("e%s+failed%s+content_policy: refused", lines)
    assert.matches("g%s+unfinished%s+still running", lines)
    assert.matches("\n  failed +1\n  refused +1\n", lines)
    assert.matches("h%s+refused%s+unpriced: no price for kling%-v3", lines)
    assert.matches("summary: out/summary.json", lines)
  end)
end)

describe("report.html", function()
  local html = report.html(result())

  it("plays every output with the element for its kind, by its relative path", function()
    assert.matches('<video controls preload="metadata" src="a%%20b.mp4"></video>', html)
    assert.matches('<img src="b.png"', html)
    assert.matches('<audio controls preload="metadata" src="b.mp3"></audio>', html)
  end)

  it("escapes what rows say and loads nothing from elsewhere", function()
    assert.is_nil(html:find("<script>", 1, true))
    assert.matches("&lt;script&gt;alert%(1%)&lt;/script&gt;", html)
    assert.matches("refused &amp; &lt;bad&gt;", html)
    assert.is_nil(html:find("https?://"))
    assert.is_nil(html:find("<link", 1, true))
    assert.matches("<style>", html)
  end)

  -- A manifest's field "\27[31mfoo" came back raw in the summary table (the terminal turned red)
  -- and report.html carried ESC and BEL bytes (a new user's trial).
  it("writes the control characters a manifest gave as escapes, in the table and the page", function()
    local r = result()
    r.rows[5].error = { kind = "validation", field = "\27[31mfoo", message = "unknown field\7" }
    r.rows[1].prompt = "a cat\27[2J\7 on a piano\194\133"
    local lines = table.concat(report.table(r), "\n")
    assert.matches("e%s+failed%s+validation: \\x1B%[31mfoo: unknown field\\x07", lines)
    assert.is_nil(lines:find("[%z\1-\9\11-\31\127]"))
    local s = assert(json.encode(report.summary(r)))
    assert.matches('"field":"\\\\x1B[31mfoo"', s, 1, true) -- its bytes are JSON's escape's
    r.rows[5].error.field = "f\255o"
    assert.is_nil(assert(json.encode(report.summary(r))):find("\255", 1, true)) -- valid UTF-8
    local page = report.html(r)
    assert.matches("a cat\\x1B[2J\\x07 on a piano\\u0085", page, 1, true)
    assert.is_nil(page:find("[%z\1-\8\11\12\14-\31\127]"))
    assert.is_nil(page:find("\194[\128-\159]"))
  end)

  it("breaks the cost down per row and totals it per currency", function()
    assert.matches("<td>r1</td>", html)
    assert.matches('<th colspan="6">total</th><th class="num">0.3</th><th>USD</th>', html)
    assert.matches('<th colspan="6">total</th><th class="num">3</th><th>CNY</th>', html)
    assert.matches("Budget: spent 0.3 of 10 USD", html)
  end)

  -- the charge the provider reported for a delivery the catalog cannot price was journaled and left
  -- off the page: a row EvoLink charged 27 credits for read as costing nothing
  it("shows the charge a provider reported for a delivery the catalog has no price for", function()
    local r = result()
    r.rows = { { id = "u", state = "succeeded", provider = "evolink", model = "kling-v3", files = {},
      charge = { unpriced = "resolution: required to price this request on evolink", reported = "27" } } }
    assert.matches("resolution: required to price this request on evolink; the provider reported a charge of 27 "
      .. "evolink-credits (not in the totals)", report.html(r), 1, true)
  end)

  it("is written with summary.json through temporary names", function()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local paths = assert(report.write(result(), dir))
    local f = assert(io.open(paths.summary))
    local s = assert(json.decode(f:read("a")))
    f:close()
    assert.are.equal(8, s.rows)
    assert.is_nil(io.open(dir .. "/summary.json.tmp"))
    os.execute("rm -rf " .. dir)
  end)
end)

describe("the progress line", function()
  it("shows done, failed, running, spend and the ETA", function()
    local text = progress.text({ done = 5, total = 10, succeeded = 4, failed = 1, uncertain = 0, running = 3,
      spend = "4.5 CNY", eta_s = 75.4 }, 10)
    assert.are.equal("[#####-----] 5/10 done  ok 4  failed 1  running 3  spend 4.5 CNY  ETA 1:15", text)
    assert.are.equal("5/10 done  ok 2  failed 1  refused 2  running 3  spend 0  ETA --:--", progress.text({ done = 5,
      total = 10, succeeded = 2, failed = 1, refused = 2, uncertain = 0, running = 3 }))
    assert.are.equal("1:01:01", progress.clock(3661))
    assert.are.equal("--:--", progress.clock(nil))
  end)

  it("redraws in place on a terminal and prints plain lines otherwise", function()
    local out = {}
    local stream = { write = function(_, ...)
      for i = 1, select("#", ...) do
        out[#out + 1] = select(i, ...)
      end
    end, flush = function() end }
    local clock = 0
    local c = { done = 0, total = 2, succeeded = 0, failed = 0, running = 2, spend = "0" }
    local bar = progress.new { mode = "bar", stream = stream, now_ms = function()
      return clock
    end }
    bar:update(c)
    bar:update(c) -- throttled: nothing new
    bar:event("a: succeeded")
    clock = 1000
    bar:finish(c)
    local text = table.concat(out)
    assert.are.equal(2, select(2, text:gsub("\r\27%[K%[", "")))
    assert.matches("\r\27%[Ka: succeeded\n", text)
    out = {}
    local plain = progress.new { mode = "plain", stream = stream, now_ms = function()
      return clock
    end }
    plain:update(c)
    plain:event("b: failed")
    assert.is_nil(table.concat(out):find("\r", 1, true))
    assert.matches("0/2 done.*\nb: failed\n", table.concat(out))
  end)

  -- Seconds become milliseconds in one place (kling.validate.seconds_ms: rounded, at least
  -- 1 ms); math.floor(1.005 * 1000) is 1004, so an interval of 1.005 s redrew after 1004 ms.
  it("throttles by its interval in milliseconds as kling.validate.seconds_ms makes them", function()
    local lines, clock = 0, 0
    local stream = { write = function() lines = lines + 1 end, flush = function() end }
    local c = { done = 0, total = 1, succeeded = 0, failed = 0, running = 1, spend = "0" }
    local p = progress.new { mode = "plain", stream = stream, interval_s = 1.005, now_ms = function()
      return clock
    end }
    assert.equal(require("kling.validate").seconds_ms(1.005), p.interval_ms)
    p:update(c)
    clock = 1004
    p:update(c)
    assert.equal(1, lines)
    clock = 1005
    p:update(c)
    assert.equal(2, lines)
  end)
end)

-- One home for seconds -> milliseconds (kling.validate.seconds_ms for times, kling.core.seconds_ms
-- for a result's duration) outside the gateway's config (its own): a batch's deadline, the
-- progress interval and a provider's ETA were each math.floor(x * 1000), which gives 1.005 s as
-- 1004 ms and 0.0001 s as 0 ms; usage durations rounded by hand.
describe("seconds to milliseconds", function()
  it("is converted by kling.validate.seconds_ms or kling.core.seconds_ms, not by hand", function()
    local found = {}
    local list = assert(io.popen("find lua/kling -name '*.lua' -not -path 'lua/kling/gateway/*'"))
    for path in list:lines() do
      local n = 0
      for line in io.lines(path) do
        n = n + 1
        -- ngx.now() * 1000 reads nginx's clock in ms: a clock, not a time given in seconds
        local by_hand = line:match("math%.floor%(.-%*%s*1000%)") or line:match("math%.floor%(.-%*%s*1000%s*%+%s*0%.5%)")
        if by_hand and not line:find("ngx.now()", 1, true) and path ~= "lua/kling/validate.lua" then
          found[#found + 1] = path .. ":" .. n .. ": " .. line
        end
      end
    end
    list:close()
    assert.same({}, found)
  end)
end)
