-- Issue 14: kling tasks, kling cancel and kling download, run as a user would (bin/kling in a
-- process of its own, keys in the environment) against the simulator, hostile input included.
local json = require "kling.json"
local sim = require "support.sim"

local root = os.tmpname()
os.remove(root)
os.execute("mkdir -p " .. root)

local q = require("support.shell").q

local function official_env()
  local i = sim.info()
  return string.format("KLING_PROVIDER=kling KLING_BASE_URL=%s KLING_ACCESS_KEY=%s KLING_SECRET_KEY=%s KLING_API_KEY= ",
    q(i.http), q(i.access_key), q(i.secret_key))
end

local function evolink_env()
  local i = sim.info()
  return string.format("KLING_PROVIDER=evolink KLING_BASE_URL=%s KLING_API_KEY=%s KLING_ACCESS_KEY= "
    .. "KLING_SECRET_KEY= ", q(i.providers.evolink), q(i.api_key))
end

-- kling ARGS (a list: each word quoted) -> exit status, stdout, stderr
local function kling(args, env)
  local words = {}
  for i, a in ipairs(args) do
    words[i] = q(a)
  end
  local err = root .. "/stderr"
  local p = io.popen((env or official_env()) .. "lua5.4 bin/kling " .. table.concat(words, " ") .. " 2>" .. q(err)
    .. "; echo \"exit=$?\"")
  local out = p:read("a")
  p:close()
  local f = assert(io.open(err))
  local errtext = f:read("a")
  f:close()
  local body, status = out:match("^(.-)exit=(%d+)%s*$")
  return tonumber(status), body, errtext
end

local function official()
  return sim.client()
end

local function evolink()
  return sim.gateway("evolink")
end

local function submit(client, prompt, model)
  return assert(client:submit { model = model or "kling-v2-6", mode = "std", duration = 5, prompt = prompt })
end

local function requests()
  return sim.stats().requests
end

describe("kling tasks, cancel and download (issue 14)", function()
  before_each(function()
    sim.clear_faults()
    sim.reset()
    sim.config { task_seconds = 0.2, max_parallel = 0 }
  end)

  teardown(function()
    os.execute("rm -rf " .. q(root))
  end)

  it("issue 14: kling tasks lists every page without --page, one page with it", function()
    local c = official()
    local ids = {}
    for i = 1, 3 do
      ids[submit(c, "cat " .. i).id] = true
    end
    local status, out, err = kling { "tasks", "--page-size", "2" }
    assert.are.equal(0, status, err)
    local listed = 0
    for id in out:gmatch("(%d+)%s+%a+") do
      assert.is_true(ids[id], "listed an unknown task " .. id)
      listed = listed + 1
    end
    assert.are.equal(3, listed, out)
    status, out, err = kling { "tasks", "--page", "2", "--page-size", "2", "--json" }
    assert.are.equal(0, status, err)
    local list = assert(json.decode(out))
    assert.are.equal(1, #list, out)
    assert.is_true(ids[list[1].id])
    assert.are.equal("videos/text2video", list[1].endpoint)
    -- a listing of nothing printed no word at all
    status, out, err = kling { "tasks", "--page", "999", "--page-size", "2" }
    assert.are.equal(0, status, err)
    assert.are.equal("", out)
    assert.matches("^kling tasks: no tasks %(page 999%)\n$", err)
  end)

  it("an --api-key given on the command line is used, not the access and secret keys of the environment", function()
    local i = sim.info()
    -- keys in the environment that would be refused: a token signed with them must not be sent
    local env = string.format("KLING_PROVIDER=kling KLING_BASE_URL=%s KLING_ACCESS_KEY=not-these "
      .. "KLING_SECRET_KEY=not-these-either KLING_API_KEY= ", q(i.http))
    local status, _, err = kling({ "tasks", "--page-size", "1", "--api-key", i.api_key }, env)
    assert.are.equal(0, status, err)
    status, _, err = kling({ "tasks", "--page-size", "1" }, env) -- the environment's, when no key is given
    assert.are.equal(1, status)
    assert.matches("1002", err, 1, true)
  end)

  it("issue 14: kling tasks refuses a bad page and a provider without a list before sending anything", function()
    local before = requests()
    for _, args in ipairs { { "tasks", "--page", "0" }, { "tasks", "--page", "1001" }, { "tasks", "--page", "x" },
      { "tasks", "--page-size", "501" }, { "tasks", "--pgae", "1" }, { "tasks", "--endpoint", "../../admin" },
      { "tasks", "--endpoint", "videos/text2video?x=1" } } do
      local status, _, err = kling(args)
      assert.are.equal(2, status, table.concat(args, " ") .. ": " .. err)
      assert.matches("^kling tasks: ", err)
    end
    local status, _, err = kling({ "tasks" }, evolink_env())
    assert.are.equal(2, status, err)
    assert.matches("no task list", err)
    assert.are.equal(before, requests())
  end)

  it("issue 14: kling cancel cancels a running EvoLink task, then says it has ended", function()
    local t = submit(evolink(), "slow [sim:seconds=60]", "kling-v3")
    local status, out, err = kling({ "cancel", t.id }, evolink_env())
    assert.are.equal(0, status, err)
    assert.matches("task " .. t.id:gsub("%-", "%%-") .. ": cancelled", out)
    assert.are.equal("cancelled", assert(evolink():get_task(t.id)).status)
    status, out, err = kling({ "cancel", t.id }, evolink_env())
    assert.are.equal(1, status, err)
    assert.are.equal("", out)
    assert.matches("already ended", err)
    status, out, err = kling({ "cancel", "task-unified-nosuch" }, evolink_env())
    assert.are.equal("", out)
    assert.are.equal(1, status, err)
    assert.matches("not_found", err)
  end)

  it("issue 14: kling cancel on a provider that cannot cancel is an error before anything is sent", function()
    local t = submit(official(), "slow [sim:seconds=60]")
    local before = requests()
    local status, out, err = kling { "cancel", t.id }
    assert.are.equal(2, status, err)
    assert.are.equal("", out)
    assert.matches("^kling cancel: provider 'kling' cannot cancel tasks", err)
    assert.are.equal(before, requests())
  end)

  it("issue 14: a TASK_ID with control characters or '/' is refused by name, nothing sent", function()
    local before = requests()
    for _, id in ipairs { "../../etc/passwd", "123/456", "12\n34", "12\r34", "12\0274", "a b", "12?x=1", "12#x",
      "%2e%2e", "" } do
      for _, cmd in ipairs { "cancel", "download", } do
        local status, out, err = kling({ cmd, id }, cmd == "cancel" and evolink_env() or nil)
        assert.are.equal(2, status, cmd .. " " .. id .. ": " .. err)
        assert.are.equal("", out)
        -- One line naming the rule, the id quoted with its control characters escaped.
        local first = err:match("^([^\n]*)\n")
        assert.matches("^kling " .. cmd .. ": TASK_ID must be .*%(got \".*\"%)$", first)
      end
    end
    assert.are.equal(before, requests())
  end)

  it("issue 14: TASK_ID '.' or '..' and a bad --endpoint are refused by name, nothing sent", function()
    local before = requests()
    for _, id in ipairs { ".", ".." } do
      for _, cmd in ipairs { "cancel", "download" } do
        local status, out, err = kling({ cmd, id }, cmd == "cancel" and evolink_env() or nil)
        assert.are.equal(2, status, cmd .. " " .. id .. ": " .. err)
        assert.are.equal("", out)
        assert.matches("^kling " .. cmd .. ": TASK_ID must not be '%.' or '%.%.'", err)
      end
    end
    for _, e in ipairs { "../../x", "videos/text2video?x=1", "videos/text2video\r\nX: 1", "audio/tts" } do
      for _, cmd in ipairs { "status", "download" } do
        local status, out, err = kling { cmd, "--endpoint", e, "123" }
        assert.are.equal(2, status, cmd .. " " .. e .. ": " .. err)
        assert.are.equal("", out)
        assert.matches("endpoint", err, 1, true)
        assert.is_nil(err:find("network", 1, true), err)
      end
    end
    assert.are.equal(before, requests())
  end)

  it("issue 14: kling download writes a finished task's outputs under --out (made when missing)", function()
    local c = official()
    local t = assert(c:run({ model = "kling-v2-6", mode = "std", duration = 5, prompt = "a cat" }, { timeout = 30 }))
    local dir = root .. "/dl/nested"
    local status, out, err = kling { "download", t.id, "--out", dir }
    assert.are.equal(0, status, err)
    local path = dir .. "/" .. t.id .. ".mp4"
    assert.are.equal(path .. "\n", out)
    local f = assert(io.open(path, "rb"))
    local size = f:seek("end")
    f:close()
    assert.is_true(size > 1000, "downloaded " .. size .. " bytes")
    -- The same bytes the library's own download gives.
    local ref = root .. "/ref.mp4"
    assert(c:download(t.videos[1].url, ref))
    assert.is_true(os.execute("cmp -s " .. q(path) .. " " .. q(ref)))
  end)

  -- `--out video.mp4` made a directory video.mp4 and wrote video.mp4/ID.mp4 in it: an --out
  -- ending in a media extension (and not an existing directory) names the file itself.
  it("kling download --out FILE.mp4 writes the task's one output to that file", function()
    local c = official()
    local t = assert(c:run({ model = "kling-v2-6", mode = "std", duration = 5, prompt = "a cat" }, { timeout = 30 }))
    local file = root .. "/named/video.mp4"
    local status, out, err = kling { "download", t.id, "--out", file }
    assert.are.equal(0, status, err)
    assert.are.equal(file .. "\n", out)
    local ref = root .. "/named-ref.mp4"
    assert(c:download(t.videos[1].url, ref))
    assert.is_true(os.execute("cmp -s " .. q(file) .. " " .. q(ref)), "the task's video is at " .. file)
    -- Never replaced: refused before anything is sent.
    local before = requests()
    status, out, err = kling { "download", t.id, "--out", file }
    assert.are.equal(2, status, err)
    assert.are.equal("", out)
    assert.matches(file .. " exists: kling download never replaces a file", err, 1, true)
    assert.matches("nothing was sent", err, 1, true)
    assert.are.equal(before, requests())
    -- An existing directory is a directory, whatever its name.
    local dir = root .. "/dir.mp4"
    assert(os.execute("mkdir -p " .. q(dir)))
    status, out, err = kling { "download", t.id, "--out", dir }
    assert.are.equal(0, status, err)
    assert.are.equal(dir .. "/" .. t.id .. ".mp4\n", out)
    -- A file of another kind than the output's is refused, naming both; nothing written.
    local png = root .. "/named/still.png"
    status, out, err = kling { "download", t.id, "--out", png }
    assert.are.equal(2, status, err)
    assert.are.equal("", out)
    assert.matches("--out " .. png .. " names an image file, and task " .. t.id .. "'s output is a video", err, 1, true)
    assert.is_nil(io.open(png))
  end)

  it("kling download --out FILE refuses a task with several outputs: nothing written", function()
    local c = official()
    local t = assert(c:run({ endpoint = "images/generations", model = "kling-v2-1", prompt = "two cats", n = 2 },
      { timeout = 30 }))
    assert.are.equal(2, #t.images)
    local file = root .. "/two/cat.png"
    local status, out, err = kling { "download", t.id, "--out", file, "--endpoint", "images/generations" }
    assert.are.equal(2, status, err)
    assert.are.equal("", out)
    assert.matches("task " .. t.id .. " has 2 output files and --out " .. file .. " names one file", err, 1, true)
    assert.is_nil(io.open(file))
  end)

  -- A text-to-audio's audio comes as an mp3 and a wav (url_mp3, url_wav): the download wrote the
  -- mp3 alone, and kling status listed it alone.
  it("kling download writes a text-to-audio's mp3 and wav, each its own name; --out FILE is refused", function()
    local c = official()
    local t = assert(c:run({ endpoint = "audio/text-to-audio", prompt = "rain on a tin roof", duration = 3.5 },
      { timeout = 30 }))
    local a = t.audios[1]
    local dir = root .. "/audio"
    local status, out, err = kling { "download", t.id, "--out", dir, "--endpoint", "audio/text-to-audio" }
    assert.are.equal(0, status, err)
    local mp3, wav = dir .. "/" .. t.id .. "-1.mp3", dir .. "/" .. t.id .. "-2.wav"
    assert.are.equal(mp3 .. "\n" .. wav .. "\n", out)
    for path, url in pairs { [mp3] = a.url_mp3, [wav] = a.url_wav } do
      local ref = root .. "/audio-ref"
      os.remove(ref)
      assert(c:download(url, ref))
      assert.is_true(os.execute("cmp -s " .. q(path) .. " " .. q(ref)), path)
    end
    local f = assert(io.open(wav, "rb"))
    assert.are.equal("RIFF", f:read(4))
    f:close()
    status, out = kling { "status", t.id, "--endpoint", "audio/text-to-audio" }
    assert.are.equal(0, status, out)
    assert.matches("  audio " .. a.url_mp3 .. " (3.5 s)\n  audio " .. a.url_wav .. " (3.5 s)\n", out, 1, true)
    -- one file named for two: refused, saying so, nothing written
    local file = root .. "/audio-one/rain.wav"
    status, out, err = kling { "download", t.id, "--out", file, "--endpoint", "audio/text-to-audio" }
    assert.are.equal(2, status, err)
    assert.are.equal("", out)
    assert.matches("task " .. t.id .. " has 2 output files (an audio is two: its mp3 and its wav) and --out " .. file
      .. " names one file: give a directory (--out DIR) to write them all: nothing was written", err, 1, true)
    assert.is_nil(io.open(file))
  end)

  it("issue 14: kling download says why when the task has no outputs yet (3) or failed (4)", function()
    local c = official()
    local running = submit(c, "slow [sim:seconds=60]")
    local status, _, err = kling { "download", running.id, "--out", root .. "/r" }
    assert.are.equal(3, status, err)
    assert.matches("nothing to download", err)
    local failed = submit(c, "doomed [sim:fail]")
    assert(failed:wait { timeout = 30 } == nil)
    status, _, err = kling { "download", failed.id, "--out", root .. "/f" }
    assert.are.equal(4, status, err)
    status, _, err = kling { "download", "999999999", "--out", root .. "/n" }
    assert.are.equal(1, status, err)
  end)

  it("issue 14: kling download refuses an --out it cannot write before anything is sent", function()
    local file = root .. "/a-file"
    local f = assert(io.open(file, "w"))
    f:write("x")
    f:close()
    local before = requests()
    for _, out in ipairs { file, file .. "/sub", "/proc/kling-not-here", "" } do
      local status, text, err = kling { "download", "123", "--out", out }
      assert.are.equal(2, status, out .. ": " .. err)
      assert.are.equal("", text)
      assert.matches("^kling download: ", err)
      assert.matches("%-%-out", err)
    end
    assert.are.equal(before, requests())
  end)

  it("kling download refuses an --out holding a control character before anything is sent", function()
    local before = requests()
    for _, out in ipairs { root .. "/o\nnl", root .. "/cr\rx" } do -- (argv cannot hold a NUL)
      local status, text, err = kling { "download", "123", "--out", out }
      assert.are.equal(2, status, err)
      assert.are.equal("", text)
      assert.matches("^kling download: %-%-out: holds a control character %(byte 0x%x%x at offset %d+%)", err)
      assert.matches("nothing was sent", err, 1, true)
    end
    assert.are.equal(before, requests())
    assert.is_nil(io.open(root .. "/o\nnl"))
  end)

  it("kling download never writes through a symbolic link planted at its temporary file", function()
    local c = official()
    local t = assert(c:run({ model = "kling-v2-6", mode = "std", duration = 5, prompt = "a cat" }, { timeout = 30 }))
    local dir, victim = root .. "/sym2", root .. "/victim2"
    local f = assert(io.open(victim, "w"))
    f:write("keep")
    f:close()
    assert(os.execute(("mkdir -p %s && ln -sf %s %s/%s.mp4.part"):format(q(dir), q(victim), q(dir), t.id)))
    local before = requests()
    local status, text, err = kling { "download", t.id, "--out", dir }
    assert.are.equal(2, status, err) -- refused before anything is written, as a name already taken is
    assert.are.equal("", text)
    assert.matches(dir .. "/" .. t.id .. ".mp4.part is a symbolic link", err, 1, true)
    assert.are.equal(before + 1, requests(), "only the task's look-up is sent, not the download")
    f = assert(io.open(victim))
    assert.are.equal("keep", f:read("a"))
    f:close()
  end)

  it("issue 14: --debug is one global flag, before or after the command", function()
    local request = { "--model", "kling-v2-6", "--mode", "pro", "--duration", "10", "--sound" }
    for _, args in ipairs { { "--debug", "estimate", table.unpack(request) },
      { "estimate", "--debug", table.unpack(request) } } do
      local status, out, err = kling(args)
      assert.are.equal(0, status, err)
      assert.matches("CNY", out)
    end
  end)

  it("issue 14: what the provider says is printed with its control characters escaped, never obeyed", function()
    -- The simulator fails the task with the message the prompt gives: ESC c resets a terminal,
    -- CR overwrites the line, LF forges a new one.
    -- The library refuses such a prompt before sending it (control characters): sent raw here,
    -- as another client of the account would.
    local c = official()
    local data = assert(require("kling.transport").call(c.ctx, { method = "POST", path = "/v1/videos/text2video",
      body = { model_name = "kling-v2-6", mode = "std", duration = "5",
        prompt = "doomed [sim:fail=\27c\rkling: forged\nline]" } }))
    local t = assert(c:get_task(data.task_id, { endpoint = "videos/text2video" }))
    local _, werr = t:wait { timeout = 20 }
    assert.are.equal("failed", werr and werr.task and werr.task.status, tostring(werr))
    local status, out, err = kling { "status", t.id }
    assert.are.equal(4, status, err)
    assert.is_nil(out:find("[\27\r]"), out)
    assert.truthy(out:find("\\x1bc\\x0dkling: forged\\x0aline", 1, false), out)
    assert.are.equal(1, select(2, out:gsub("\n", "")), out)
  end)

  it("issue 14: kling --debug and KLING_DEBUG=1 print each request and answer with every key redacted", function()
    local i = sim.info()
    local id = submit(official(), "debugged cat").id
    for _, run in ipairs {
      { args = { "--debug", "tasks" } },
      { args = { "tasks", "--debug" } },
      { args = { "tasks" }, env = "KLING_DEBUG=1 " .. official_env() },
    } do
      local status, out, err = kling(run.args, run.env)
      assert.are.equal(0, status, err)
      assert.truthy(out:find(id, 1, true), out)
      assert.matches("GET [^\n]*/v1/videos/text2video%?", err)
      assert.truthy(err:lower():find("authorization: bearer [redacted]", 1, true), err)
      for _, secret in ipairs { i.access_key, i.secret_key } do
        assert.is_nil(err:find(secret, 1, true), "a key leaked into the debug output")
      end
      -- No JWT (three base64url parts) is printed: the bearer token is redacted too.
      assert.is_nil(err:match("eyJ[%w_-]+%.[%w_-]+%.[%w_-]+"), err)
    end
    -- Without the flag or the variable, nothing is printed.
    local status, _, err = kling { "tasks" }
    assert.are.equal(0, status, err)
    assert.are.equal("", err)
  end)

  -- One line naming the option and its rule, exit 2, no Lua location or traceback; nothing sent.
  local function one_line_refusal(status, err, pattern)
    assert.are.equal(2, status, err)
    assert.matches(pattern, err)
    assert.is_nil(err:find("%.lua:%d+:"), err)
    assert.is_nil(err:find("traceback", 1, true), err)
    assert.are.equal(1, select(2, err:gsub("\n", "")), err)
  end

  it("an API key with a space, tab or CR is refused naming --api-key/KLING_API_KEY, exit 2, nothing sent", function()
    local sb = root .. "/fox.json"
    local f = assert(io.open(sb, "w"))
    f:write('[{"prompt": "a fox", "duration": 5}]')
    f:close()
    local manifest = root .. "/one.jsonl"
    f = assert(io.open(manifest, "w"))
    f:write('{"id": "a", "model": "kling-v1", "mode": "std", "duration": 5, "prompt": "x"}\n')
    f:close()
    local before = requests()
    for _, key in ipairs { "a b", "a\tb", "a\rb" } do
      local env = evolink_env() .. "KLING_API_KEY=" .. q(key) .. " "
      for _, args in ipairs {
        { "status", "123", "--endpoint", "videos/text2video" }, { "download", "123", "--out", root },
        { "cancel", "123" }, { "element", "create", "--name", "Mia", "--description", "x", "--video",
          "https://example.com/a.mp4" }, { "storyboard", sb, "--out", root .. "/sb" },
      } do
        local status, _, err = kling(args, env)
        one_line_refusal(status, err, "%-%-api%-key/KLING_API_KEY: must be non%-empty printable ASCII without spaces")
      end
      do -- EvoLink keeps no task list, whatever its key: that is said first
        local status, _, err = kling({ "tasks" }, env)
        one_line_refusal(status, err, "^kling tasks: provider 'evolink' has no task list")
      end
      local status, _, err = kling({ "run", manifest, "--out", root .. "/run-key", "--quiet" }, env)
      assert.are.equal(2, status, err)
      assert.is_nil(err:find("%.lua:%d+:"), err)
      local s = assert(io.open(root .. "/run-key/summary.json")):read("a")
      assert.matches("api_key: must be non%-empty printable ASCII without spaces %(the value of KLING_API_KEY%)", s)
    end
    assert.are.equal(before, requests())
  end)
end)
