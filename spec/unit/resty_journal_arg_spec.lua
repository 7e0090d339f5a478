-- The one-node store and the task table take a journal (kling.resty.journal's open(path)), and
-- README names only `journal`: a path given there was taken, and the store's first reserve then
-- raised inside the worker ("attempt to call method 'append'") after its hold was made, the hold
-- left open and journaled nowhere. A journal that is not one is refused when the store is made.
local fake_dict = require "spec.support.fake_dict"

describe("a journal given as a path", function()
  it("is refused by kling.money.stores.shared.new, saying how to open one", function()
    local shared = require "kling.money.stores.shared"
    local ok, err = pcall(shared.new, { dict = fake_dict.new(), currency = "CNY", journal = "/tmp/ledger.jsonl" })
    assert.is_false(ok)
    assert.matches("kling.money.stores.shared: journal must be a kling.resty.journal", err, 1, true)
    assert.matches("got a string (a path is not a journal: open it)", err, 1, true)
  end)

  it("is refused by kling.resty.tasks.new", function()
    local tasks = require "kling.resty.tasks"
    local ok, err = pcall(tasks.new, { dict = fake_dict.new(), journal = "/tmp/tasks.jsonl" })
    assert.is_false(ok)
    assert.matches("kling.resty.tasks: journal must be a kling.resty.journal", err, 1, true)
  end)

  it("opened, is taken by both", function()
    local j = require("kling.resty.journal").open("/tmp/kling-journal-arg-spec.jsonl")
    assert.is_table(require("kling.money.stores.shared").new { dict = fake_dict.new(), currency = "CNY", journal = j })
    assert.is_table(require("kling.resty.tasks").new { dict = fake_dict.new(), journal = j })
  end)
end)

-- A journal the workers' user cannot write though its directory is theirs (a root-owned file
-- left by a start as root without 'user'): the start's message told to make the directory
-- writable by that user, which it was already.
describe("a journal file the workers' user cannot write", function()
  local is_root = io.popen("id -u"):read("*l") == "0"
  local user_ok = os.execute("id -u nobody >/dev/null 2>&1")
  local run = (is_root and user_ok) and it or pending
  run("is named as the thing to make writable, not its directory", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. " && chown nobody " .. dir .. " && : > " .. dir
      .. "/ledger.jsonl && chmod 600 " .. dir .. "/ledger.jsonl"))
    local ok, err = require("kling.resty.journal").writable(dir .. "/ledger.jsonl", "nobody")
    os.execute("rm -rf " .. dir)
    assert.is_nil(ok)
    assert.matches("(make it writable by nobody, or set the nginx 'user' directive)", err, 1, true)
  end)

  run("a new one names its directory", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. " && chmod 755 " .. dir))
    local ok, err = require("kling.resty.journal").writable(dir .. "/ledger.jsonl", "nobody")
    os.execute("rm -rf " .. dir)
    assert.is_nil(ok)
    assert.matches("(make its directory writable by nobody", err, 1, true)
  end)
end)
