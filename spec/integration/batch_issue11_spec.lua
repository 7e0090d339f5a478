-- Issue 11 (money-correctness holes found by using the module as a new user would), the
-- workflow points: each test runs the real bin/kling, in processes of its own, against the
-- simulator, and is named after the point it covers.
local sim = require "support.sim"
local cli = require "support.cli"
local files = require "support.files"
local json = require "kling.json"

local env, kling = cli.env, cli.kling
local write, slurp, journal = files.write, files.read, files.journal
local root = files.tempdir()
local fresh_dir = files.subdirs(root)

describe("issue 11", function()
  before_each(sim.fresh)

  teardown(function()
    os.execute("chmod -R u+w " .. root .. " 2>/dev/null; rm -rf " .. root)
  end)

  it("issue 11.1: of 20 kling run started at once on one DIR exactly one runs, the rest exit 5, one create per row",
    function()
      local dir = fresh_dir()
      local m = dir .. "/rows.jsonl"
      write(m, '{"defaults": {"model": "kling-v1", "mode": "std", "duration": 5}}\n'
        .. '{"id": "a", "prompt": "a"}\n{"id": "b", "prompt": "b"}\n{"id": "c", "prompt": "c [sim:seconds=3]"}\n')
      local out = dir .. "/out"
      -- 20 processes held at a barrier (a FIFO) and released together. Where strace is
      -- installed, every system call on DIR/.lock returns 0.2 s late: that widens the moment
      -- between looking at the lock and taking it (a check-then-write lock lets most of the
      -- 20 through then), and changes nothing for a lock taken in one step.
      local wrap = os.execute("command -v strace >/dev/null 2>&1") and string.format(
        "strace -f -qq -o /dev/null -P %s/.lock -e inject=openat:delay_exit=200000 ", out) or ""
      local script = { "mkfifo " .. dir .. "/go" }
      for k = 1, 20 do
        script[#script + 1] = string.format("(cat %s/go >/dev/null; %s%slua5.4 bin/kling run %s --out %s --quiet "
          .. "--poll-min 0.2 >%s/log.%d 2>&1; echo $? > %s/status.%d) &", dir, env(), wrap, m, out, dir, k, dir, k)
      end
      script[#script + 1] = "sleep 0.5; echo go > " .. dir .. "/go; wait"
      assert(os.execute(table.concat(script, "\n")))
      local by = {}
      for k = 1, 20 do
        local s = assert(tonumber(slurp(dir .. "/status." .. k)))
        by[s] = (by[s] or 0) + 1
        if s == 5 then
          assert.matches("another process", slurp(dir .. "/log." .. k))
        end
      end
      assert.are.same({ [0] = 1, [5] = 19 }, by)
      assert.are.equal(3, sim.stats().creates)
      local intents = {}
      for _, r in ipairs(journal(out)) do
        if r.t == "intent" then
          intents[r.row] = (intents[r.row] or 0) + 1
        end
      end
      assert.are.same({ a = 1, b = 1, c = 1 }, intents)
    end)

  it("issue 11.16: a read-only out dir exits 1 naming the lock file, not 5 (another process)", function()
    local dir = fresh_dir()
    local m = dir .. "/rows.jsonl"
    write(m, '{"id": "a", "prompt": "a", "model": "kling-v1", "mode": "std", "duration": 5}\n')
    local out = dir .. "/ro"
    os.execute("mkdir -p " .. out .. " && chmod 555 " .. out)
    -- root writes anywhere: the command runs as nobody then.
    local p = io.popen("id -u")
    local uid = p:read("l")
    p:close()
    local as = uid == "0" and "setpriv --reuid=65534 --regid=65534 --clear-groups " or ""
    local status, text = kling("run " .. m .. " --out " .. out, env() .. as)
    assert.are.equal(1, status, text)
    assert.matches("cannot open " .. out:gsub("%p", "%%%0") .. "/%.lock: Permission denied", text)
    assert.is_nil(text:find("another process", 1, true))
    assert.are.equal(0, sim.stats().requests)
  end)

  it("issue 11.14: a CSV prompt starting with [ is text; a number cell 1e999 exits 2 naming the line", function()
    local dir = fresh_dir()
    local m = dir .. "/rows.csv"
    write(m, 'id,prompt,model,mode,duration,multi_prompt\n'
      .. 'wide,"[Wide shot] A dog runs",kling-v1,std,5,\n'
      .. 'braces,"{close-up} a cat",kling-v1,std,5,\n')
    local status, out = kling("run " .. m .. " --out " .. dir .. "/out --quiet --poll-min 0.2")
    assert.are.equal(0, status, out)
    assert.are.equal(2, sim.stats().creates)
    local html = slurp(dir .. "/out/report.html")
    assert.truthy(html:find("[Wide shot] A dog runs", 1, true))
    assert.truthy(html:find("{close-up} a cat", 1, true))
    write(m, 'id,prompt,model,duration\nok,fine,kling-v1,5\nhuge,x,kling-v1,1e999\n')
    sim.reset()
    status, out = kling("run " .. m .. " --out " .. dir .. "/out2")
    assert.are.equal(2, status, out)
    -- refused as no decimal number (the number flags' rule), before it could be infinite
    assert.matches("rows%.csv:3: duration: must be a number in decimal digits, e.g. 5 or 0.5 %(got '1e999'%)", out)
    assert.are.equal(0, sim.stats().requests)
  end)

  local function refused_batch()
    local dir = fresh_dir()
    local m = dir .. "/rows.jsonl"
    write(m, '{"defaults": {"model": "kling-v1", "mode": "std"}}\n{"id": "good", "prompt": "a", "duration": 5}\n'
      .. '{"id": "bad", "prompt": "b", "duration": 7}\n')
    local status, out = kling("run " .. m .. " --out " .. dir .. "/out --progress plain --poll-min 0.2")
    return dir .. "/out", status, out
  end

  it("issue 11.18: the summary table, summary.json and report.html name the field of a validation failure",
    function()
      local dir, status, out = refused_batch()
      assert.are.equal(6, status, out) -- one row ran, one was refused: not a success
      assert.matches("bad: refused: [^\n]*duration: ", out) -- the live line
      assert.matches("\n  bad +refused +validation: duration: ", out) -- the table
      local summary = json.decode(slurp(dir .. "/summary.json"))
      assert.are.equal(1, #summary.refused_rows)
      assert.are.equal("duration", summary.refused_rows[1].field)
      assert.matches("^duration: ", summary.refused_rows[1].reason)
      assert.matches("<td>duration: [^<]+</td></tr>", slurp(dir .. "/report.html"))
    end)

  it("issue 11.19: kling status DIR and the run's summary agree: refused rows are journaled", function()
    local dir, status, out = refused_batch()
    assert.are.equal(6, status, out)
    local summary = json.decode(slurp(dir .. "/summary.json"))
    local st, text = kling("status " .. dir .. " --json")
    assert.are.equal(status, st, text)
    local counts = json.decode(text:match("^[^\n]*")).counts
    assert.are.same({ succeeded = 1, failed = 0, refused = 1 },
      { succeeded = summary.succeeded, failed = summary.failed, refused = summary.refused })
    assert.are.same({ succeeded = summary.succeeded, refused = summary.refused },
      { succeeded = counts.succeeded, refused = counts.refused })
    assert.is_nil(counts.failed)
    assert.are.equal(0, counts.pending or 0)
    st, text = kling("status " .. dir)
    assert.are.equal(6, st, text)
    assert.matches("refused +1", text)
    assert.is_nil(text:find("failed", 1, true), text)
    -- The refused row is looked at again by the next run (and refused again: nothing sent).
    local before = sim.stats().creates
    st = kling("run " .. dir:gsub("/out$", "") .. "/rows.jsonl --out " .. dir .. " --quiet")
    assert.are.equal(6, st)
    assert.are.equal(before, sim.stats().creates)
    assert.are.equal(6, (kling("status " .. dir)))
  end)

  it("issue 11.5: each provider's unit is its own currency: apart in the summary, one budget per currency, rates",
    function()
      local i = sim.info()
      local dir = fresh_dir()
      local m = dir .. "/rows.jsonl"
      local function gw(name)
        return string.format('"provider": "%s", "base_url": "%s", "api_key": "%s"', name, i.providers[name], i.api_key)
      end
      write(m, '{"id": "cny", "prompt": "a", "model": "kling-v1", "mode": "std", "duration": 5}\n'
        .. '{"id": "aio", "prompt": "b", "model": "kling-v3", "mode": "std", "duration": 5, "sound": false, '
        .. gw("apiinone") .. '}\n'
        .. '{"id": "evo", "prompt": "c", "model": "kling-v3", "mode": "std", "duration": 5, "sound": false, '
        .. gw("evolink") .. '}\n')
      local out = dir .. "/out"
      -- A CNY budget only: the gateway rows wait for a budget in their own unit (not failed).
      local status, text = kling("run " .. m .. " --out " .. out .. " --budget 50CNY --poll-min 0.2 --progress plain")
      assert.are.equal(3, status, text)
      local summary = json.decode(slurp(out .. "/summary.json"))
      assert.are.same({ succeeded = 1, failed = 0, unfinished = 2 },
        { succeeded = summary.succeeded, failed = summary.failed, unfinished = summary.unfinished })
      assert.matches("no budget in apiinone%-credits", text)
      assert.matches("no budget in evolink%-credits", text)
      assert.are.equal(1, sim.stats().creates)
      -- One budget per currency: every row runs, each currency kept apart.
      status, text = kling("run " .. m .. " --out " .. out .. " --budget 50CNY --budget 1000:apiinone-credits "
        .. "--budget 300:evolink-credits --poll-min 0.2")
      assert.are.equal(0, status, text)
      summary = json.decode(slurp(out .. "/summary.json"))
      assert.are.same({ CNY = "1", ["apiinone-credits"] = "200", ["evolink-credits"] = "27" }, summary.charges)
      assert.are.equal(3, #summary.budgets)
      for _, b in ipairs(summary.budgets) do
        assert.are.equal(summary.charges[b.currency], b.spent)
      end
      assert.matches("charges: 1 CNY, 200 apiinone%-credits, 27 evolink%-credits", text)
      assert.matches("budget: spent 27 of 300 evolink%-credits", text)
      assert.is_nil(text:find(" credits", 1, true))
      local html = slurp(out .. "/report.html")
      assert.matches("<th class=\"num\">200</th><th>apiinone%-credits</th>", html)
      assert.matches("<th class=\"num\">27</th><th>evolink%-credits</th>", html)
      local st, stext = kling("status " .. out)
      assert.are.equal(0, st, stext)
      assert.matches("budget: spent 200 of 1000 apiinone%-credits", stext)
      -- "credits" alone is no currency: refused before anything is sent.
      local before = sim.stats().requests
      status, text = kling("run " .. m .. " --out " .. dir .. "/outc --budget 400 --currency credits")
      assert.are.equal(2, status, text)
      assert.matches("credits\" is not one currency", text)
      assert.are.equal(before, sim.stats().requests)
      -- A currency no provider charges in and no rate converts (a typo): refused by name, not a
      -- run whose rows wait for ever.
      status, text = kling("run " .. m .. " --out " .. dir .. "/outx --budget 50XYZ")
      assert.are.equal(2, status, text)
      assert.matches("budget 50 XYZ: no provider charges in XYZ", text)
      assert.matches("CNY, USD, apiinone%-credits, evolink%-credits", text)
      assert.are.equal(before, sim.stats().requests)
      -- With rates, one CNY budget counts everything (credits converted at the user's rates).
      sim.reset()
      local rates = dir .. "/rates.json"
      write(rates, '{"currency": "CNY", "rates": {"apiinone-credits": "0.072", "evolink-credits": "0.1"}}')
      local out2 = dir .. "/out2"
      status, text = kling("run " .. m .. " --out " .. out2 .. " --budget 50CNY --rates " .. rates .. " --poll-min 0.2")
      assert.are.equal(0, status, text)
      summary = json.decode(slurp(out2 .. "/summary.json"))
      assert.are.equal("18.1", summary.budgets[1].spent) -- 1 + 200 x 0.072 + 27 x 0.1
      assert.are.equal(1, #summary.budgets)
      -- ... and a budget too small for the converted amount holds the rows back.
      sim.reset()
      status, text = kling("run " .. m .. " --out " .. dir .. "/out3 --budget 5CNY --rates " .. rates
        .. " --parallel 1")
      assert.are.equal(3, status, text)
      assert.are.equal(2, sim.stats().creates) -- 1 CNY and 2.7 CNY fit in 5; 14.4 CNY does not
      assert.matches("aio +unfinished +budget: ", text)
    end)

  it("issue 11.20: status refuses a path-like argument, names no guessed endpoint, prints charges with their "
    .. "currency; storyboard takes --api-key", function()
    local i = sim.info()
    local dir = fresh_dir()
    -- A mistyped batch directory is not sent to the API as a task id.
    for _, arg in ipairs { "out2", dir .. "/out2", dir, "./out2" } do
      local status, text = kling("status " .. arg)
      assert.are.equal(2, status, arg .. ": " .. text)
      assert.matches("is not a batch directory", text)
    end
    assert.are.equal(0, sim.stats().requests)
    -- An EvoLink text-to-video task: no "(videos/image2video)", its charge in evolink-credits.
    local client = sim.gateway("evolink")
    local t = assert(client:submit { model = "kling-v3", mode = "std", duration = 5, sound = false, prompt = "a" })
    assert(t:wait { timeout = 30 })
    local evo = string.format("KLING_PROVIDER=evolink KLING_BASE_URL='%s' KLING_API_KEY='%s' ",
      i.providers.evolink, i.api_key)
    local status, text = kling("status " .. t.id, evo)
    assert.are.equal(0, status, text)
    assert.is_nil(text:find("image2video", 1, true), text)
    assert.matches("charge reported: 27 evolink%-credits", text)
    -- kling storyboard takes the key as a flag, as kling run does.
    local sb = dir .. "/sb.json"
    write(sb, '{"model": "kling-v3", "mode": "std", "shots": [{"prompt": "a", "duration": 5}]}')
    local bare = string.format("KLING_PROVIDER=kling KLING_BASE_URL='%s' KLING_ACCESS_KEY= KLING_SECRET_KEY= "
      .. "KLING_API_KEY= ", i.http)
    status, text = kling("storyboard " .. sb .. " --out " .. dir .. "/sb --api-key " .. i.api_key
      .. " --poll-min 0.2", bare)
    assert.are.equal(0, status, text)
  end)

  it("issue 11.4: storyboards with a relative --out are joined; one segment needs no join; a segment paid for "
    .. "is never made again; exit 2 only when nothing was sent", function()
    local p = io.popen("pwd")
    local repo = p:read("l")
    p:close()
    local dir = fresh_dir()
    local function at_repo(cmd)
      return cmd:gsub("lua5.4 bin/kling", "lua5.4 " .. repo .. "/bin/kling")
    end
    local two = dir .. "/two.json"
    write(two, '{"model": "kling-v3", "mode": "std", "shots": [{"prompt": "a", "duration": 3}, '
      .. '{"prompt": "b", "duration": 3}]}')
    local function run_sb(args, extra)
      local cmd = at_repo((extra or env()) .. "lua5.4 bin/kling storyboard " .. args .. " --poll-min 0.2")
      local h = io.popen("cd " .. dir .. " && " .. cmd .. " 2>&1; echo \"exit=$?\"")
      local text = h:read("a")
      h:close()
      return tonumber(text:match("exit=(%d+)%s*$")), text
    end
    -- (run_sb runs from DIR, so that --out may be relative)
    local status, text = run_sb("two.json --out sb1 --split")
    assert.are.equal(0, status, text)
    assert.matches("storyboard: sb1/storyboard%.mp4 %(6 s asked, 2 segment%(s%)", text)
    assert.truthy(slurp(dir .. "/sb1/storyboard.mp4"))
    assert.are.equal(2, sim.stats().creates)
    -- The same storyboard into the same DIR named by its absolute path: nothing is made again.
    status, text = run_sb("two.json --out " .. dir .. "/sb1 --split")
    assert.are.equal(0, status, text)
    assert.are.equal(2, sim.stats().creates)
    assert.matches("segment 2: [^\n]*%(already made%)", text)
    -- One segment: no join, no ffmpeg needed (PATH without it).
    local bin = dir .. "/bin"
    os.execute("mkdir -p " .. bin .. " && ln -sf \"$(command -v mkdir)\" " .. bin .. "/mkdir && ln -sf "
      .. "\"$(command -v lua5.4)\" " .. bin .. "/lua5.4")
    write(dir .. "/one.json", '{"model": "kling-v3", "mode": "std", "shots": [{"prompt": "c", "duration": 5}]}')
    status, text = run_sb("one.json --out one", env() .. "PATH=" .. bin .. " ")
    assert.are.equal(0, status, text)
    assert.truthy(slurp(dir .. "/one/storyboard.mp4"))
    assert.are.equal(3, sim.stats().creates)
    -- Something planted where the joined file goes is refused before any segment is paid for.
    os.execute("mkdir -p " .. dir .. "/sb3/storyboard.mp4")
    status, text = run_sb("two.json --out sb3 --split")
    assert.are.equal(2, status, text)
    assert.matches("sb3/storyboard.mp4 is a directory", text, 1, true)
    assert.matches("(nothing was sent: move it away, or give another --out)", text, 1, true) -- never "remove it"
    assert.are.equal(3, sim.stats().creates)
    -- A join that fails after segments were paid for (an ffmpeg that cannot concat) is exit 1
    -- (something was sent), not 2.
    local fake = dir .. "/fakebin"
    os.execute("mkdir -p " .. fake)
    local which = io.popen("command -v ffmpeg")
    local real = which:read("l")
    which:close()
    write(fake .. "/ffmpeg", '#!/bin/sh\ncase "$*" in *concat*) echo "cannot join" >&2; exit 1;; esac\n'
      .. 'exec ' .. real .. ' "$@"\n')
    os.execute("chmod +x " .. fake .. "/ffmpeg")
    status, text = run_sb("two.json --out sb4 --split", env() .. "PATH=" .. fake .. ":\"$PATH\" ")
    assert.are.equal(1, status, text)
    assert.matches("cannot join", text, 1, true)
    assert.are.equal(5, sim.stats().creates)
  end)

  it("issue 11.22: report.html shows a poster frame (ffmpeg) for each video and the provider of every row",
    function()
      local dir = fresh_dir()
      local m = dir .. "/rows.jsonl"
      write(m, '{"defaults": {"model": "kling-v1", "mode": "std", "duration": 5}}\n'
        .. '{"id": "one", "prompt": "a"}\n{"id": "two", "prompt": "b"}\n')
      local out = dir .. "/out"
      for run = 1, 2 do -- the second run finds every row ended in the journal
        local status, text = kling("run " .. m .. " --out " .. out .. " --quiet --poll-min 0.2")
        assert.are.equal(0, status, text)
        local html = slurp(out .. "/report.html")
        for _, id in ipairs { "one", "two" } do
          local poster = html:match('<video [^>]*poster="(posters/' .. id .. '%.mp4%.jpg)"')
          assert.is_string(poster, "run " .. run .. ": no poster for " .. id)
          assert.are.equal("\255\216\255", slurp(out .. "/" .. poster):sub(1, 3)) -- a JPEG
          assert.matches("<tr><td>" .. id .. "</td><td class=\"succeeded\">succeeded</td><td>kling</td>", html)
        end
      end
      assert.are.equal(2, sim.stats().creates)
    end)
end)
