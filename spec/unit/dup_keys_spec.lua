-- A key given twice in a JSON object a user or a client gave is refused naming its path:
-- cjson keeps the last one without a word ({"mode":"std","mode":"pro"} priced on one value and
-- sent with the other). What the network sends stays lenient (json.decode).
local json = require "kling.json"
local files = require "support.files"

local function run(args)
  local p = assert(io.popen("lua5.4 bin/kling " .. args .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  local body, status = out:match("^(.-)exit=(%d+)%s*$")
  return body, tonumber(status)
end

local function q(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

describe("keys given twice", function()
  local root
  setup(function()
    root = files.tempdir()
  end)
  teardown(function()
    files.remove(root)
  end)

  local n = 0
  local function file(text, ext)
    n = n + 1
    local path = root .. "/f" .. n .. (ext or ".json")
    files.write(path, text)
    return path
  end

  it("json.decode_strict names the path, compares decoded keys and counts items from 1", function()
    local v, err, path = json.decode_strict('{"prompt":"a","prompt":"b"}', "x.json")
    assert.is_nil(v)
    assert.are.equal("prompt", path)
    assert.matches("^x%.json: prompt: given twice", err)
    v, err, path = json.decode_strict('{"requests":[{"a":1},{"mode":"std","\\u006dode":"pro"}]}')
    assert.is_nil(v)
    assert.are.equal("requests[2].mode", path)
    assert.matches("^requests%[2%]%.mode: given twice %(a key may appear once in an object", err)
    -- the same key in different objects, and a prefix, are not twice
    v = assert(json.decode_strict('{"a":{"a":1},"b":[{"a":1},{"a":1}],"ab":{"b":1}}'))
    assert.are.equal(1, v.b[2].a)
    assert.are.equal(5, json.decode_strict("5"))
    v, err, path = json.decode_strict('{"a":')
    assert.is_nil(v)
    assert.is_nil(path)
    assert.is_string(err)
    -- a decoder for the network keeps its leniency: no answer is refused for this
    assert.are.equal(2, json.decode('{"a":1,"a":2}').a)
  end)

  it("json.decode_strict with a bound on values refuses a text over it before decoding it", function()
    local v, err, path, rule = json.decode_strict('{"a":[1,2],"b":{}}', "body", 4)
    assert.is_nil(v)
    assert.is_nil(path)
    assert.are.equal("values", rule)
    assert.are.equal("body: more than 4 JSON values (every member's value and array item counts; the first past"
      .. " the bound is at byte 16)", err)
    v = assert(json.decode_strict('{"a":[1,2],"b":{}}', nil, 5))
    assert.are.equal(2, v.a[2])
    -- within the bound, a key given twice and a text that is not JSON are named as without one
    local _, derr, dpath, drule = json.decode_strict('{"a":1,"a":2}', nil, 10)
    assert.are.equal("a", dpath)
    assert.is_nil(drule)
    assert.matches("^a: given twice", derr)
    local sv, serr, _, srule = json.decode_strict('{"a":', nil, 10)
    assert.is_nil(sv)
    assert.is_nil(srule)
    assert.is_string(serr)
    -- a million one-item members: refused on a scan of the first values (no decode, no sort)
    local text = require("support.wide_body")(1000000)
    local t0 = os.clock()
    v, _, _, rule = json.decode_strict(text, nil, 10000)
    local took = os.clock() - t0
    assert.is_nil(v)
    assert.are.equal("values", rule)
    assert.is_true(took < 0.05, "took " .. took .. " s")
  end)

  it("kling.json does not load the C core until a strict decode (the simulator uses it without)", function()
    local p = assert(io.popen([[lua5.4 -e 'require "kling.json"; io.write(tostring(package.loaded["kling.core"]))']]))
    local out = p:read("a")
    p:close()
    assert.are.equal("nil", out)
  end)

  it("a batch manifest: a JSONL row, its defaults line and a CSV JSON cell name the line and the field", function()
    local manifest = require "kling.batch.manifest"
    local rows, err = manifest.load(file('{"id":"a","prompt":"x"}\n{"id":"b","prompt":"x","mode":"std","mode":"pro"}\n',
      ".jsonl"))
    assert.is_nil(rows)
    assert.matches("f%d+%.jsonl:2: mode: given twice", err)
    rows, err = manifest.load(file('{"defaults":{"duration":5,"duration":10}}\n{"id":"a","prompt":"x"}\n', ".jsonl"))
    assert.is_nil(rows)
    assert.matches(":1: defaults%.duration: given twice", err)
    rows, err = manifest.load(file('id,prompt,multi_prompt\na,x,"[{""prompt"":""a"",""duration"":2,""duration"":3}]"\n',
      ".csv"))
    assert.is_nil(rows)
    assert.matches(":2: multi_prompt: %[1%]%.duration: given twice", err)
    rows, err = manifest.load(file("id,prompt,prompt\na,x,y\n", ".csv"))
    assert.is_nil(rows)
    assert.matches("header names 'prompt' twice", err)
  end)

  it("kling run: --defaults FILE and a field --set twice are refused before anything runs", function()
    local m = file('{"id":"a","prompt":"x"}\n', ".jsonl")
    local out, status = run("run " .. q(m) .. " --out " .. q(root .. "/o1") .. " --defaults "
      .. q(file('{"mode":"std","mode":"pro"}')))
    assert.are.equal(2, status, out)
    assert.matches("mode: given twice", out)
    out, status = run("run " .. q(m) .. " --out " .. q(root .. "/o2") .. " --set mode=std --set mode=pro")
    assert.are.equal(2, status, out)
    assert.matches("--set mode: given twice", out, 1, true)
    -- a secret given twice is named, not echoed
    out, status = run("run " .. q(m) .. " --out " .. q(root .. "/o3") .. " --set api_key=sk-one-secret"
      .. " --set api_key=sk-two-secret")
    assert.are.equal(2, status, out)
    assert.matches("--set api_key: given twice", out, 1, true)
    assert.is_nil(out:find("secret", 1, true), out)
  end)

  it("kling estimate --json and --file name the field", function()
    local out, status = run("estimate --json " .. q('{"model":"kling-v2-6","mode":"std","mode":"pro"}'))
    assert.are.equal(2, status, out)
    assert.matches("--json: mode: given twice", out, 1, true)
    out, status = run("estimate --file " .. q(file('{"duration":5,"duration":10}')))
    assert.are.equal(2, status, out)
    assert.matches("duration: given twice", out, 1, true)
  end)

  it("a rates file, a storyboard, an element cache", function()
    local hold = require "kling.money.hold"
    local r, err = hold.read_rates(file('{"currency":"CNY","rates":{"USD":"7.10","USD":"0.01"}}'))
    assert.is_nil(r)
    assert.matches("rates%.USD: given twice", err)
    local sb
    sb, err = require("kling.multishot").load(file('{"model":"kling-v3","shots":[{"prompt":"a","duration":3,'
      .. '"duration":5}]}'))
    assert.is_nil(sb)
    assert.matches("shots%[1%]%.duration: given twice", err)
    local doc
    doc, err = require("kling.element").load(file('{"version":1,"elements":{"cat":{"id":"1"},"cat":{"id":"2"}}}'))
    assert.is_nil(doc)
    assert.matches("elements%.cat: given twice", err)
  end)

  it("the gateway's config file names the account's field", function()
    local path = file('{"upstream":{"provider":"kling","base_url":"http://127.0.0.1:1","api_key":"k"},'
      .. '"journal":"/tmp/x.jsonl","accounts":[{"name":"a","api_key":"key-a-0123456789","credit":"1",'
      .. '"credit":"1000"}]}')
    local ok, err = pcall(require("kling.gateway.config").load, path)
    assert.is_false(ok)
    assert.matches("accounts%[1%]%.credit: given twice", err)
  end)
end)
