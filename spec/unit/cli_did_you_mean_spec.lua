-- Issue 14: a mistyped command or option names the closest known one and exits 2 (usage error).
local shell = require "support.shell"

-- sh(cmd) -> stdout and stderr, exit status
local function sh(cmd)
  return shell.run(cmd .. " 2>&1")
end

describe("kling CLI: did you mean", function()
  it("issue 14.1: kling rnu names run and exits 2", function()
    local out, code = sh("lua5.4 bin/kling rnu")
    assert.equals(2, code)
    assert.matches("kling: unknown command 'rnu'; did you mean run%?", out)
  end)

  it("issue 14.1: a command nothing is close to gets no guess", function()
    local out, code = sh("lua5.4 bin/kling zzzzzzzzzz")
    assert.equals(2, code)
    assert.matches("unknown command 'zzzzzzzzzz'\n", out)
    assert.not_matches("did you mean", out)
  end)

  it("issue 14.1: a mistyped option names the closest one of its command and exits 2", function()
    local out, code = sh("lua5.4 bin/kling run m.jsonl --out d --paralel 3")
    assert.equals(2, code)
    assert.matches("^kling run: unknown option '%-%-paralel'; did you mean %-%-parallel%?\n", out)
    out, code = sh("lua5.4 bin/kling run m.jsonl --out d --bogus")
    assert.equals(2, code)
    assert.matches("^kling run: unknown option '%-%-bogus'\n", out)
    assert.not_matches("did you mean", out)
  end)

  it("issue 14.1: a mistyped subcommand names the closest one", function()
    local out, code = sh("lua5.4 bin/kling sim strat")
    assert.equals(2, code)
    assert.matches("^kling sim: unknown command 'strat'; did you mean start%?\n", out)
  end)

  it("issue 14.1: several close options are all named, on one line", function()
    local out, code = sh("lua5.4 bin/kling run m.jsonl --out d --poll-mix 1")
    assert.equals(2, code)
    assert.matches("^kling run: unknown option '%-%-poll%-mix'; did you mean one of %-%-poll%-max, "
      .. "%-%-poll%-min%?\n", out)
  end)

  -- of an option given twice, the value after the last was named: "(got 'none'); did you mean none?"
  it("names the refused value of an option given twice, not the last", function()
    local out, code = sh("lua5.4 bin/kling run m.jsonl --out d --progress fancy --progress none")
    assert.equals(2, code)
    assert.matches("must be one of 'auto', 'bar', 'plain', 'none' (got 'fancy')\n", out, 1, true)
  end)

  -- a command and kling itself both take -h/--help: "did you mean one of -h, -h?" named it twice
  it("names an option a command shares with kling once", function()
    local out, code = sh("lua5.4 bin/kling status --hel")
    assert.equals(2, code)
    assert.matches("^kling status: unknown option '%-%-hel'; did you mean %-%-help%?\n", out)
    out, code = sh("lua5.4 bin/kling element -x")
    assert.equals(2, code)
    assert.matches("^kling element: unknown option '%-x'; did you mean %-h%?\n", out)
  end)

  -- argparse named every option one edit away however far the others were, and no choice at all
  it("names only the closest option, and the closest choice of a refused one (kling help rnu)", function()
    local out, code = sh("lua5.4 bin/kling estimate --sond")
    assert.equals(2, code)
    assert.matches("^kling estimate: unknown option '%-%-sond'; did you mean %-%-sound%?\n", out)
    out, code = sh("lua5.4 bin/kling help rnu")
    assert.equals(2, code)
    assert.matches("^kling help: argument 'topic' must be one of [^\n]* %(got 'rnu'%); did you mean run%?\n", out)
    out, code = sh("lua5.4 bin/kling estimate --model kling-v3 --format=jsn")
    assert.equals(2, code)
    assert.matches("must be one of 'text', 'json' %(got 'jsn'%); did you mean json%?\n", out)
  end)

  it("issue 14.1: kling's own options are kling's: a wrong one before the command names no command", function()
    local out, code = sh("lua5.4 bin/kling --debgu run m.jsonl --out d")
    assert.equals(2, code)
    assert.matches("^kling: unknown option '%-%-debgu'; did you mean %-%-debug%?\n", out)
  end)
end)
