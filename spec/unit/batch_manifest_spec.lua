-- Batch manifests: JSONL with a defaults line, CSV with typed cells (RFC 4180 quoting), row
-- ids, the split between what is sent and what configures the row, and the row hash that
-- lets a resumed batch notice an edited manifest (keys never in it).
local stderr = require "support.stderr"
local manifest = require "kling.batch.manifest"
local json = require "kling.json"

local dir = os.tmpname()
os.remove(dir)
os.execute("mkdir -p " .. dir)

local n = 0
local function file(text, ext)
  n = n + 1
  local path = string.format("%s/m%d.%s", dir, n, ext or "jsonl")
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

teardown(function()
  os.execute("rm -rf " .. dir)
end)

describe("a JSONL manifest", function()
  it("puts the defaults line under every row, the row winning, and numbers rows without an id", function()
    local rows, info = assert(manifest.load(file([[
# a comment, then the defaults
{"defaults": {"model": "kling-v1", "mode": "std", "duration": 5}}

{"id": "a", "prompt": "first"}
{"prompt": "second", "mode": "pro"}
// another comment
{"id": 7, "prompt": "third", "duration": 10}
]])))
    assert.are.equal(3, #rows)
    assert.are.equal("jsonl", info.format)
    assert.are.same({ model = "kling-v1", mode = "std", duration = 5, prompt = "first" }, rows[1].request)
    assert.are.equal("a", rows[1].id)
    assert.are.equal("row-2", rows[2].id)
    assert.are.equal("pro", rows[2].request.mode)
    assert.are.equal("7", rows[3].id)
    assert.are.equal(10, rows[3].request.duration)
    assert.are.equal(7, rows[3].line)
    assert.are.equal(rows[1], info.by_id.a)
  end)

  it("lets flag defaults override the manifest's, and rows override both", function()
    local rows = assert(manifest.load(file('{"defaults": {"mode": "std", "duration": 5}}\n'
      .. '{"prompt": "x"}\n{"prompt": "y", "duration": 10}\n'), { defaults = { duration = 10, sound = true } }))
    assert.are.equal(10, rows[1].request.duration)
    assert.is_true(rows[1].request.sound)
    assert.are.equal("std", rows[2].request.mode)
  end)

  it("keeps provider, base URL and keys out of the request, and keys out of the hash", function()
    local a = assert(manifest.load(file('{"id": "r", "prompt": "x", "provider": "evolink", "base_url": '
      .. '"https://gw.example", "api_key": "secret-1"}\n')))[1]
    local b = assert(manifest.load(file('{"id": "r", "prompt": "x", "provider": "evolink", "base_url": '
      .. '"https://gw.example", "api_key": "secret-2"}\n')))[1]
    local c = assert(manifest.load(file('{"id": "r", "prompt": "y", "provider": "evolink", "base_url": '
      .. '"https://gw.example", "api_key": "secret-1"}\n')))[1]
    assert.are.same({ prompt = "x" }, a.request)
    assert.are.same({ provider = "evolink", base_url = "https://gw.example", api_key = "secret-1" }, a.meta)
    assert.are.equal(a.hash, b.hash)
    assert.are_not.equal(a.hash, c.hash)
    assert.is_nil(a.hash:find("secret"))
  end)

  it("names the line and the rule when a row is wrong", function()
    local cases = {
      { '{"id": "a"}\n{"id": "a"}\n', "m%d+%.jsonl:2: id 'a' is also the id of the row on line 1" },
      { '{"id": "a"}\n[1, 2]\n', ":2: each line must be a JSON object" },
      { '{"id": "a"}\n [ ]\n', ":2: each line must be a JSON object %(got an array%)" }, -- not an empty row
      { '{"id": "a"}\n{"defaults": {}}\n', ":2: a defaults line must come before the first row" },
      -- two were merged, a field both give kept last: model kling-v3 ran where kling-v2-6 was meant
      { '{"defaults": {"model": "kling-v2-6"}}\n{"defaults": {"model": "kling-v3"}}\n{"id": "a"}\n',
        ":2: a manifest has one defaults line, and line 1 is one %(put its fields in one object%)" },
      { '{"id": ""}\n', ":1: id must be 1 to 128 characters .*%(got 0 characters%)" },
      { '{"id": "a\\u200bb"}\n', ":1: id must be .*invisible characters %(got U%+200B%)" },
      { '{"id": "a\\u00a0b"}\n', ":1: id must be .*%(got U%+00A0%)" },
      { '{"id": "\\ufeffa"}\n', ":1: id must be .*%(got U%+FEFF%)" },
      { '{"id": "   "}\n', ":1: id must be .*%(got a space at its start%)" },
      { '{"id": "bad\255\254utf8"}\n', ":1: id must be .*%(got bytes that are not UTF%-8%)" },
      { '{"id": "' .. ("a"):rep(129) .. '"}\n', ":1: id must be .*%(got 129 characters%)" },
      { '{"id": "unicode\\u202egnp.exe"}\n', ":1: id must be .*bidirectional" },
      { '{"id": "a\\u2028b"}\n', ":1: id must be .*one line of text" },
      { '{"id": "a", "provider": 3}\n', ":1: provider must be a non%-empty string" },
      { '{"defaults": {"mode": "std"}}\n', "no rows" },
      -- a defaults line with a field beside it is no row: run as one, the others lost their defaults
      { '{"defaults": {"mode": "std"}, "x": 1}\n{"id": "a"}\n',
        ':1: a defaults line holds {"defaults": {...}} alone %(this one also has x: put such fields inside '
        .. 'defaults%)' },
      { '{"id": "a"\n', ":1: each line must be a JSON object" },
      -- one task per external id: after a lost answer, row b was given row a's task (and its charge again)
      { '{"id": "a", "external_task_id": "e"}\n{"id": "b", "external_task_id": "e"}\n',
        ":2: external_task_id 'e' is also row 'a''s %(line 1%): a provider keeps one task per external id" },
      { '{"id": "a", "external_task_id": "e"}\n{"id": "b", "external_task_id": "e-2"}\n',
        ":2: external_task_id 'e%-2' is the one row 'a' %(line 1, 'e'%) takes for its attempt 2" },
      { '{"defaults": {"external_task_id": "e"}}\n{"id": "a"}\n{"id": "b"}\n', ":3: external_task_id 'e' is also" },
      -- an id among the defaults was dropped without a word, the rows named row-N
      { '{"defaults": {"id": "dup"}}\n{"prompt": "a"}\n', "id is each row's own name, not a default" },
    }
    for _, c in ipairs(cases) do
      local rows, err = manifest.load(file(c[1]))
      assert.is_nil(rows)
      assert.matches(c[2], err)
    end
    local rows, err = manifest.load(file('{"prompt": "a"}\n'), { defaults = { id = "x" } }) -- --set id=x, --defaults
    assert.is_nil(rows)
    assert.matches("id is each row's own name, not a default %(the defaults give it a string %(\"x\"%)%)", err)
    -- counted in characters, not bytes: 128 of three bytes each
    local cats = assert(manifest.load(file('{"id": "' .. ("猫"):rep(128) .. '"}\n')))
    assert.equal(384, #cats[1].id)
    rows, err = manifest.load(dir .. "/missing.jsonl")
    assert.is_nil(rows)
    assert.matches("cannot read the manifest", err)
  end)

  -- A JSONL file saved "UTF-8 with BOM" was refused whole ("each line must be a JSON object")
  -- while a CSV one was read.
  it("takes a UTF-8 byte order mark at the start of the file, and names the line of one anywhere else", function()
    local bom = "\239\187\191"
    local text = bom .. '{"defaults": {"mode": "std"}}\n{"id": "a", "prompt": "x"}\n'
    for _, ext in ipairs { "jsonl", "txt" } do -- by extension, and by content
      local rows, info = assert(manifest.load(file(text, ext)))
      assert.are.equal("jsonl", info.format)
      assert.are.same({ mode = "std", prompt = "x" }, rows[1].request)
      assert.are.equal("a", rows[1].id)
    end
    assert(manifest.load(file(bom .. '{"id": "a", "prompt": "x"}\n')))
    for _, c in ipairs {
      { '{"id": "a"}\n' .. bom .. '{"id": "b"}\n',
        ":2: a byte order mark %(U%+FEFF, bytes EF BB BF%) at byte 1: one is taken only at the start of the file" },
      { bom .. bom .. '{"id": "a"}\n', ":1: a byte order mark .* at byte 1" },
      { '{"id": "a"} ' .. bom .. '\n', ":1: a byte order mark .* at byte 13" },
      { '\n' .. bom .. '{"id": "a"}\n', ":2: a byte order mark" },
    } do
      local rows, err = manifest.load(file(c[1]))
      assert.is_nil(rows)
      assert.matches(c[2], err)
    end
    -- inside a string it is the string's (an id refuses it by its own rule)
    local _, err = manifest.load(file('{"id": "' .. bom .. 'a"}\n'))
    assert.matches(":1: id must be .*%(got U%+FEFF%)", err)
  end)
end)

describe("a CSV manifest", function()
  it("types its cells and honours RFC 4180 quoting", function()
    local rows = assert(manifest.load(file(
      'id,prompt,duration,sound,element_list,camera_control,mode\r\n'
      .. 'a,"a cat, on a ""piano""",5,true,e1;e2,"{""type"":""down_back""}",\r\n'
      .. 'b,"two\nlines",10,FALSE,,,pro\n', "csv")))
    assert.are.equal(2, #rows)
    local a = rows[1].request
    assert.are.equal('a cat, on a "piano"', a.prompt)
    assert.are.equal(5, a.duration)
    assert.is_true(math.type(a.duration) == "integer")
    assert.is_true(a.sound)
    assert.are.same({ "e1", "e2" }, a.element_list)
    assert.are.same({ type = "down_back" }, a.camera_control)
    assert.is_nil(a.mode) -- an empty cell is no value
    local b = rows[2].request
    assert.are.equal("two\nlines", b.prompt)
    assert.is_false(b.sound)
    assert.are.equal("pro", b.mode)
    assert.are.equal(3, rows[2].line)
  end)

  it("takes true and false in any letter case for a boolean cell", function()
    local rows = assert(manifest.load(file("id,sound\na,TRUE\nb,True\nc,false\nd,False\n", "csv")))
    assert.are.same({ true, true, false, false }, { rows[1].request.sound, rows[2].request.sound,
      rows[3].request.sound, rows[4].request.sound })
  end)

  it("is recognised by its content without the extension, and a BOM is ignored", function()
    local rows, info = assert(manifest.load(file("\239\187\191id,prompt\nx,hello\n", "txt")))
    assert.are.equal("csv", info.format)
    assert.are.equal("x", rows[1].id)
  end)

  -- manifest.cell read numbers with tonumber: a duration cell of 0x5, " 5" or 1e1 was taken,
  -- where --duration and every number flag refuse them
  it("reads a number cell by the command line's number rule: decimal digits only", function()
    local flags = require "kling.cli.flags"
    local flag = flags.number("--duration")
    for _, t in ipairs { "0x5", " 5", "5 ", "1e1", "5e0", "+5", "inf", "-inf", "nan", "0x0A", "1" .. ("0"):rep(400),
      "5,0", "--5", "." } do
      for _, field in ipairs { "duration", "n", "cfg_scale", "estimate" } do
        local v, err = manifest.cell(field, t)
        assert.is_nil(v, field .. " = '" .. t .. "'")
        assert.matches("must be a number in decimal digits", err, 1, true)
      end
      assert.is_nil(flag(t), t)
      local rows, err = manifest.load(file('id,duration\na,"' .. t .. '"\n', "csv"))
      assert.is_nil(rows, t)
      assert.matches(":2: duration: must be a number in decimal digits", err, 1, true)
    end
    for t, want in pairs { ["5"] = 5, ["-2"] = -2, ["0.5"] = 0.5, [".5"] = 0.5, ["5."] = 5, ["10.0"] = 10,
      ["007"] = 7 } do
      assert.are.equal(want, manifest.cell("duration", t), t)
      assert.are.equal(want, flag(t), t)
      assert.are.equal(math.type(flag(t)), math.type(manifest.cell("duration", t)), t)
    end
    assert.are.equal("integer", math.type(manifest.cell("duration", "5")))
    local rows = assert(manifest.load(file("id,duration,cfg_scale\na,10,0.5\n", "csv")))
    assert.are.equal(10, rows[1].request.duration)
    assert.are.equal(0.5, rows[1].request.cfg_scale)
  end)

  it("names the line and the column of a bad cell", function()
    local cases = {
      { "id,duration\na,five\n", ":2: duration: must be a number in decimal digits, e.g. 5 or 0.5 %(got 'five'%)" },
      { "id,sound\na,maybe\n", ":2: sound: must be true or false" },
      -- what the README names, and nothing else: yes, on, 1 were read as true (and no, off, 0 as false)
      { "id,sound\na,yes\n", ":2: sound: must be true or false %(in any letter case: TRUE, False%), got 'yes'" },
      { "id,sound\na,on\n", ":2: sound: must be true or false .*got 'on'" },
      { "id,multi_shot\na,1\n", ":2: multi_shot: must be true or false .*got '1'" },
      { "id,sound\na,0\n", ":2: sound: must be true or false .*got '0'" },
      { "id,keep_original_sound\na,no\n", ":2: keep_original_sound: must be true or false .*got 'no'" },
      { "id,prompt\na,b,c\n", ":2: 3 cells, the header has 2" },
      { "id,prompt,duration\na,b,5\nc,d\n", ":3: 2 cells, the header has 3" },
      { 'id,prompt\na,"open\n', "line 2: a quoted field is not closed" },
      { "id,id\na,b\n", "header names 'id' twice" },
      { 'id,prompt\na,x"y\n', "a quote inside an unquoted field" },
    }
    for _, c in ipairs(cases) do
      local rows, err = manifest.load(file(c[1], "csv"))
      assert.is_nil(rows, c[1])
      assert.matches(c[2], err)
    end
  end)
end)

describe("canonical JSON", function()
  it("is the same text for the same table, whatever the insertion order", function()
    local a, b = {}, {}
    for _, k in ipairs { "z", "a", "m", "b" } do
      a[k] = k
    end
    for _, k in ipairs { "b", "m", "a", "z" } do
      b[k] = k
    end
    a.list, b.list = { 1, 2.0, { y = 1, x = 2 } }, { 1, 2, { x = 2, y = 1 } }
    assert.are.equal(json.canonical(a), json.canonical(b))
    assert.are.equal('{"a":"a","b":"b","list":[1,2,{"x":2,"y":1}],"m":"m","z":"z"}', json.canonical(a))
  end)
end)

describe("kling.batch.run with a manifest it cannot read", function()
  it("issue 14: refuses it (usage) before making or locking the out directory", function()
    local batch = require "kling.batch"
    local out = dir .. "/never-made"
    local res, err, status = batch.run { manifest = dir .. "/missing.jsonl", out = out, provider = "kling",
      access_key = "ak", secret_key = "sk" }
    assert.is_nil(res)
    assert.matches("cannot read the manifest", err)
    assert.are.equal(batch.EXIT.usage, status)
    assert.is_nil(io.open(out .. "/.lock"), "the out directory was locked")
    assert.is_true(os.execute("test ! -e " .. out), "the out directory was made")
  end)
end)

-- batch.run{paralel = 1} ran with 4 rows at once and said nothing; kling run passed argparse's
-- whole result (command, quiet, set, defaults_file ...) as batch.run's options
describe("kling.batch.run with an option name it does not know", function()
  it("raises naming it and the closest known one, before the out directory; kling run passes only its options",
    function()
    local batch = require "kling.batch"
    local out = dir .. "/unknown-never-made"
    for name, near in pairs { paralel = "parallel", retires = "retries", budgets = "budget", manifst = "manifest",
      frobnicate = false } do
      local ok, err = pcall(batch.run, { manifest = dir .. "/missing.jsonl", out = out, [name] = 1 })
      assert.is_false(ok, name)
      assert.matches("kling.batch.run: unknown option '" .. name .. "'" .. (near and ("; did you mean " .. near
        .. "%?") or "$"), err)
    end
    assert.is_false((pcall(batch.run, "jobs.jsonl")))
    assert.is_true(os.execute("test ! -e " .. out), "the out directory was made")
    -- every option kling run has reaches batch.run by its name, and nothing else does
    local cli = require "kling.cli"
    local rates = dir .. "/unknown-rates.json" -- a file to read: --rates, and --ca-file (read before the manifest)
    local f = assert(io.open(rates, "w"))
    f:write('{"currency": "CNY", "rates": {"USD": "7.10"}}')
    f:close()
    f = assert(io.open(dir .. "/el.json", "w")) -- a cache named on purpose is read first
    f:write('{"version": 1, "elements": {}}')
    f:close()
    local given
    local real = batch.run
    batch.run = function(o)
      given = o
      return real(o)
    end
    local ok, status, err = stderr.capture(cli.main, { "run", dir .. "/missing.jsonl", "--out", out,
      "--provider", "kling", "--base-url", "http://127.0.0.1:9", "--ca-file", rates, "--api-key", "k",
      "--set", "mode=pro",
      "--format", "jsonl", "--parallel", "2", "--retries", "1", "--budget", "5", "--currency", "CNY",
      "--rates", rates, "--deadline", "9", "--timeout", "60", "--estimate", "5", "--poll-min", "1", "--poll-max", "2",
      "--name", "{id}.{ext}", "--elements", dir .. "/el.json", "--quiet", "--debug" })
    batch.run = real
    assert.is_true(ok, tostring(status))
    assert.are.equal(2, status, err)
    assert.matches("^kling run: cannot read the manifest", err)
    assert.are.same({ manifest = dir .. "/missing.jsonl", out = out, format = "jsonl", defaults = { mode = "pro" },
      provider = "kling", base_url = "http://127.0.0.1:9", ca_file = rates, api_key = "k", parallel = 2,
      retries = 1, budget = { "5" }, currency = "CNY", rates = rates, deadline = 9, timeout = 60, estimate = 5,
      poll_min = 1, poll_max = 2, name = "{id}.{ext}", element_cache = dir .. "/el.json", progress = "none",
      stdout = false, debug = true }, given)
    assert.is_true(os.execute("test ! -e " .. out), "the out directory was made")
  end)
end)

describe("kling.batch.run with options the clients and engines would refuse", function()
  it("refuses them (usage) by the one rule, before the out directory: never every row refused nor a raise", function()
    local batch = require "kling.batch"
    local rows = dir .. "/opts.jsonl"
    local f = assert(io.open(rows, "w"))
    f:write('{"id":"a","model":"kling-v2-6","mode":"pro","duration":5,"prompt":"p"}\n')
    f:close()
    for _, c in ipairs {
      { { parallel = 2000000 }, "parallel must be a whole number from 1 to 1000000 %(got 2000000%)" },
      { { parallel = 1e20 }, "parallel must be a whole number from 1 to 1000000" },
      { { parallel = 0 }, "parallel must be a whole number from 1" },
      { { deadline = 1e300 }, "deadline must be a positive number of seconds, at most 2147483" },
      { { timeout = 3e6 }, "timeout must be a positive number of seconds, at most 2147483" },
      { { poll_min = 1e300 }, "poll_min must be a positive number of seconds" },
      { { poll_max = 3e6 }, "poll_max must be a positive number of seconds" },
      { { estimate = 0 }, "estimate must be a positive number of seconds" },
      -- in an order no client takes (kling.new's rule): the out directory was made, every row refused
      { { poll_min = 5, poll_max = 1 }, "poll_min %(5 s%) is longer than poll_max %(1 s%)" },
      { { poll_min = 20 }, "poll_min %(20 s%) is longer than poll_max %(15 s%)" },
      -- a number is a float: 123456789.123456 ran under the cap tostring made of it, 123456789.12346
      { { budget = 123456789.123456 }, "a budget is a decimal amount .*, a string %(got 123456789.12346%)" },
      { { budget = { "5CNY", 7 } }, "a budget is a decimal amount .*, a string %(got 7%)" },
      -- a fraction of a retry, a progress mode that is none (it drew as "plain"), defaults that are no
      -- table (it raised "bad argument #1 to 'for iterator'" from the manifest's reader)
      { { retries = 1.5 }, "retries must be a whole number >= 0 %(got 1.5%)" },
      { { progress = "loud" }, "progress must be one of auto, bar, plain, none" },
      { { defaults = 5 }, "defaults must be a table of request fields" },
      -- what every row's client is made with: a misspelt provider or a debug = "yes" made the out
      -- directory, its journal and report, and refused every row (by kling.new's rules)
      { { provider = "klingg" }, "unknown provider 'klingg' %(did you mean kling%?" },
      { { base_url = "ftp://x" }, "base_url must be an http%(s%) URL" },
      { { ca_file = dir .. "/no-such-ca.pem" }, "ca_file cannot be read: " },
      { { debug = "yes" }, "debug must be true, false or a function%(text%)" },
      -- a currency no bare budget amount takes was dropped unchecked: it ran with no cap in it
      { { currency = "XYZ" }, "currency is the unit of a bare budget amount .*no budget is one" },
      { { currency = "USD", budget = "5CNY" }, "currency is the unit of a bare budget amount" },
      { { currency = "USD", budget = { "5CNY", "300:evolink-credits" } }, "currency is the unit of a bare budget" },
    } do
      local out = dir .. "/opts-never-made"
      local o = { manifest = rows, out = out, provider = "kling", access_key = "ak", secret_key = "sk",
        progress = "none" }
      for k, v in pairs(c[1]) do
        o[k] = v
      end
      local ok, res, err, status = pcall(batch.run, o)
      assert.is_true(ok, tostring(res))
      assert.is_nil(res, c[2])
      assert.matches(c[2], err)
      assert.are.equal(batch.EXIT.usage, status)
      assert.is_true(os.execute("test ! -e " .. out), "the out directory was made")
    end
  end)
end)

-- kling run --format csv on a JSON Lines manifest said "line 1: a quote inside an unquoted field"
describe("a manifest read in the other format", function()
  it("says what the file looks like and the format to use, given or taken from its extension", function()
    local jsonl = '# rows\n{"prompt": "a"}\n{"prompt": "b"}\n'
    local _, err = manifest.load(file(jsonl), { format = "csv" })
    assert.matches(": read as CSV (format csv given), but it looks like JSON Lines (its first line opens a JSON "
      .. "object): give format jsonl (kling run --format jsonl), or none", err, 1, true)
    _, err = manifest.load(file(jsonl, "csv"))
    assert.matches("read as CSV (by its .csv extension), but it looks like JSON Lines", err, 1, true)
    assert.matches("or name it .jsonl", err, 1, true)
    _, err = manifest.load(file("prompt,duration\na,5\n", "csv"), { format = "jsonl" })
    assert.matches("read as JSON Lines (format jsonl given), but it looks like CSV (its first line is not a JSON "
      .. "object: a CSV header, 'prompt,duration'): give format csv (kling run --format csv)", err, 1, true)
    -- a file in the format it is read as keeps its own message; so does a JSON array
    _, err = manifest.load(file('{"prompt": "a"}\n{"prompt": "b",}\n'), { format = "jsonl" })
    assert.matches(":2: each line must be a JSON object", err, 1, true)
    _, err = manifest.load(file('[{"prompt": "a"}]\n', "json"))
    assert.matches(":1: each line must be a JSON object (got an array)", err, 1, true)
  end)
end)
