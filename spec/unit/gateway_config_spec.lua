local config = require "kling.gateway.config"
local json = require "kling.json"

describe("kling.gateway.config", function()
  local function with(extra)
    local path = os.tmpname()
    local doc = { upstream = { provider = "kling", base_url = "http://127.0.0.1:1", api_key = "upstream-key" },
      journal = "/tmp/kling-gateway-config-spec.jsonl",
      accounts = { { name = "alice", api_key = "key-alice-0123456789", credit = "1" } } }
    for k, v in pairs(extra) do
      doc[k] = v
    end
    local f = assert(io.open(path, "w"))
    f:write(json.encode(doc))
    f:close()
    local ok, res = pcall(config.load, path)
    os.remove(path)
    return ok, res
  end

  local function load(accounts)
    return with { accounts = accounts }
  end

  it("upstream.reuse_posts is true or false, as every flag of the config: \"true\" was read as false", function()
    local up = { provider = "kling", base_url = "http://127.0.0.1:1", api_key = "upstream-key" }
    up.reuse_posts = "true"
    local ok, err = with { upstream = up }
    assert.is_false(ok)
    assert.matches("upstream.reuse_posts", tostring(err), 1, true)
    assert.matches("must be true or false", tostring(err), 1, true)
    up.reuse_posts = true
    local ok2, c = with { upstream = up }
    assert.is_true(ok2, tostring(c))
    assert.is_true(c.upstream.reuse_posts)
  end)

  it("store.redis: a port outside 1..65535 or not digits is refused naming the field and the rule", function()
    for url, rule in pairs { ["redis://127.0.0.1:99999/0"] = "from 1 to 65535 (got 99999)",
      ["redis://127.0.0.1:0"] = "from 1 to 65535 (got 0)", ["redis://127.0.0.1:abc/0"] = "redis://[:password@]host" } do
      local ok, err = with { store = { redis = url } }
      assert.is_false(ok, url)
      assert.matches("store.redis: ", tostring(err), 1, true)
      assert.matches(rule, tostring(err), 1, true)
    end
    for url, want in pairs { ["redis://127.0.0.1:6380/2"] = 6380, ["redis://:pw@10.0.0.5/1"] = 6379,
      ["redis://127.0.0.1:65535"] = 65535 } do
      local ok, c = with { store = { redis = url } }
      assert.is_true(ok, tostring(c))
      assert.are.equal(want, c.store.redis.port)
    end
  end)

  it("an account's max_open is read as given, and absent by default", function()
    local ok, c = load { { name = "alice", api_key = "key-alice-0123456789", credit = "1", max_open = 7 },
      { name = "bob", api_key = "key-bob-0123456789", credit = "1" } }
    assert.is_true(ok, tostring(c))
    assert.equal(7, c.accounts[1].max_open)
    assert.is_nil(c.accounts[2].max_open)
  end)

  it("an account's keys are at most 256 characters: a longer one could never be sent in a header", function()
    local ok, c = load { { name = "alice", api_key = string.rep("k", 256), credit = "1" } }
    assert.is_true(ok, tostring(c))
    for _, f in ipairs { "api_key", "secret_key" } do
      local acct = { name = "alice", credit = "1", api_key = "key-alice-0123456789", access_key = "ak-alice",
        secret_key = "sk-alice-0123456789" }
      acct[f] = string.rep("k", 257)
      ok, c = load { acct }
      assert.is_false(ok)
      assert.matches("accounts[1]." .. f .. ": must be at most 256 characters (got 257)", tostring(c), 1, true)
    end
  end)

  it("an account's suspended is true or false, absent (nil) by default, and refused by name otherwise", function()
    local ok, c = load { { name = "alice", api_key = "key-alice-0123456789", credit = "1", suspended = true },
      { name = "bob", api_key = "key-bob-0123456789", credit = "1", suspended = false },
      { name = "carol", api_key = "key-carol-0123456789", credit = "1" } }
    assert.is_true(ok, tostring(c))
    assert.is_true(c.accounts[1].suspended)
    assert.is_nil(c.accounts[2].suspended)
    assert.is_nil(c.accounts[3].suspended)
    for _, bad in ipairs { "yes", 1, json.null } do
      ok, c = load { { name = "alice", api_key = "key-alice-0123456789", credit = "1", suspended = bad } }
      assert.is_false(ok)
      assert.matches("accounts[1].suspended", tostring(c), 1, true)
    end
  end)

  -- One rule for a JSON null, in the file and in a new account (config.account): refused
  -- naming the field. A null key was taken as absent while a null max_open, max_failed_daily
  -- or suspended was refused.
  it("refuses a JSON null for any field of an account or of the file, naming the field", function()
    local pair = { name = "alice", access_key = "ak-alice-01", secret_key = "sk-alice-0123456789", credit = "1" }
    for _, f in ipairs { "api_key", "max_open", "max_failed_daily", "suspended" } do
      local a = {}
      for k, v in pairs(pair) do
        a[k] = v
      end
      a[f] = json.null
      local ok, err = load { a }
      assert.is_false(ok, f)
      assert.matches("accounts[1]." .. f .. ": must not be null", tostring(err), 1, true)
    end
    for _, f in ipairs { "callback_url", "client_webhook_secret", "retention_days", "journal_sync" } do
      local ok, err = with { [f] = json.null }
      assert.is_false(ok, f)
      assert.matches(f .. ": must not be null", tostring(err), 1, true)
    end
  end)

  it("an account's max_failed_daily is read as given, absent by default, refused when not a whole count", function()
    local ok, c = load { { name = "alice", api_key = "key-alice-0123456789", credit = "1", max_failed_daily = 20 },
      { name = "bob", api_key = "key-bob-0123456789", credit = "1" } }
    assert.is_true(ok, tostring(c))
    assert.equal(20, c.accounts[1].max_failed_daily)
    assert.is_nil(c.accounts[2].max_failed_daily)
    for _, bad in ipairs { 0, 1.5, "3", -1 } do
      ok, c = load { { name = "alice", api_key = "key-alice-0123456789", credit = "1", max_failed_daily = bad } }
      assert.is_false(ok)
      assert.matches("accounts%[1%]%.max_failed_daily: must be a whole number of tasks", c)
    end
  end)

  it("issue 12.1: distinct keys load", function()
    local ok, c = load { { name = "alice", access_key = "ak-alice", secret_key = "sk-alice-0123456789", credit = "1" },
      { name = "bob", api_key = "key-bob-0123456789", credit = "1" } }
    assert.is_true(ok, tostring(c))
    assert.equal("bob", c.by_key["key-bob-0123456789"].name)
  end)

  -- Half a pair signs nothing; an api_key beside a whole pair is a second way in (a new user's
  -- trial asked which the README meant).
  it("an access_key without its secret_key, or the reverse, is refused naming the missing one", function()
    local ok, err = load { { name = "alice", api_key = "key-alice-0123456789", access_key = "ak-alice",
      credit = "1" } }
    assert.is_false(ok)
    assert.matches("accounts%[1%]%.secret_key: is required with access_key", tostring(err))
    ok, err = load { { name = "alice", secret_key = "sk-alice-0123456789", credit = "1" } }
    assert.is_false(ok)
    assert.matches("accounts%[1%]%.access_key: is required with secret_key", tostring(err))
    ok, err = load { { name = "alice", access_key = "ak-alice", credit = "1" } }
    assert.is_false(ok)
    assert.matches("accounts%[1%]%.secret_key: is required with access_key", tostring(err))
    ok, err = load { { name = "alice", credit = "1" } }
    assert.is_false(ok)
    assert.matches("accounts%[1%]%.api_key: an api_key, or an access_key with its secret_key", tostring(err))
    ok, err = load { { name = "alice", api_key = "key-alice-0123456789", secret_key = "sk-alice-0123456789",
      credit = "1" } }
    assert.is_false(ok)
    assert.matches("accounts%[1%]%.access_key: is required with secret_key", tostring(err))
    ok, err = load { { name = "alice", api_key = "key-alice-0123456789", access_key = "ak-alice",
      secret_key = "sk-alice-0123456789", credit = "1" } }
    assert.is_true(ok, tostring(err))
  end)

  -- An access key is public (it is the iss of every JWT its owner sends): as another
  -- account's API key it would let anyone who saw one JWT spend that account's credit.
  it("issue 12.1: an api_key equal to another account's access_key (or the reverse) is refused", function()
    local ok, err = load { { name = "alice", access_key = "shared-0123456789", secret_key = "sk-alice-0123456789",
      credit = "1" }, { name = "bob", api_key = "shared-0123456789", credit = "1" } }
    assert.is_false(ok)
    assert.matches("accounts%[2%]%.api_key", tostring(err))
    ok, err = load { { name = "bob", api_key = "shared-0123456789", credit = "1" }, { name = "alice",
      access_key = "shared-0123456789", secret_key = "sk-alice-0123456789", credit = "1" } }
    assert.is_false(ok)
    assert.matches("accounts%[2%]%.access_key", tostring(err))
  end)

  -- Every key and secret is one role's: a client whose api_key is another's secret_key signs
  -- that one's tokens; an admin_key or upstream key a client holds makes it admin or lets it
  -- skip the gateway; an access_key (public) that is a secret gives the secret away.
  it("a key or secret used twice, in any two roles, is refused naming both places, never the value", function()
    local sk = "c2tib2IwMTIzNDU2Nzg5YWJjZGVm" -- base64: whsec_ .. sk is a webhook secret that verifies
    local cases = {
      { { accounts = { { name = "bob", access_key = "ak-bob", secret_key = sk, credit = "1" },
        { name = "frank", api_key = sk, credit = "1" } } },
        "accounts%[2%]%.api_key: is already used as accounts%[1%]%.secret_key" },
      { { accounts = { { name = "bob", access_key = "ak-bob", secret_key = sk, credit = "1" },
        { name = "eve", access_key = "ak-eve", secret_key = sk, credit = "1" } } },
        "accounts%[2%]%.secret_key: is already used as accounts%[1%]%.secret_key" },
      { { accounts = { { name = "bob", access_key = sk, secret_key = sk, credit = "1" } } },
        "accounts%[1%]%.secret_key: is already used as accounts%[1%]%.access_key" },
      -- a whsec_ secret that is no base64 was taken, then every upstream callback raised in C
      { { webhook_secret = "whsec_" .. ("!"):rep(20), accounts = { { name = "bob", api_key = "key-bob-0123456789",
        credit = "1" } } }, "webhook_secret: after whsec_ must come the key in base64" },
      { { admin_key = "admin-key-0123456789", accounts = { { name = "bob", api_key = "admin-key-0123456789",
        credit = "1" } } }, "accounts%[1%]%.api_key: is already used as admin_key" },
      { { accounts = { { name = "bob", api_key = "upstream-key", credit = "1" } } },
        "accounts%[1%]%.api_key: is already used as upstream%.api_key" },
      -- a client holding the webhook secret signs the upstream's callbacks (ends others' tasks)
      { { webhook_secret = "whsec_" .. sk, accounts = { { name = "bob", api_key = "whsec_" .. sk, credit = "1" } } },
        "accounts%[1%]%.api_key: is already used as webhook_secret" },
      { { webhook_secret = "whsec_" .. sk, accounts = { { name = "bob", api_key = sk, credit = "1" } } },
        "accounts%[1%]%.api_key: is already used as webhook_secret" },
      { { client_webhook_secret = sk, accounts = { { name = "bob", access_key = "ak-bob", secret_key = sk,
        credit = "1" } } }, "accounts%[1%]%.secret_key: is already used as client_webhook_secret" },
      { { admin_key = sk, webhook_secret = sk, accounts = { { name = "bob", api_key = "key-bob-0123456789",
        credit = "1" } } }, "webhook_secret: is already used as admin_key" },
    }
    for _, c in ipairs(cases) do
      local ok, err = with(c[1])
      assert.is_false(ok)
      assert.matches(c[2], tostring(err))
      assert.is_nil(tostring(err):find(sk, 1, true))
    end
    local ok, c = with { admin_key = "admin-key-0123456789" }
    assert.is_true(ok, tostring(c))
    local field, why = config.key_clash(c.key_owner, { api_key = "admin-key-0123456789" })
    assert.equal("api_key", field)
    assert.matches("already used as admin_key", why)
    assert.is_nil(config.key_clash(c.key_owner, { access_key = "ak-new", secret_key = "sk-new-0123456789" }))
    ok, c = with { webhook_secret = "whsec_" .. sk, client_webhook_secret = "client-hook-0123456789" }
    assert.is_true(ok, tostring(c))
    field, why = config.key_clash(c.key_owner, { api_key = "whsec_" .. sk })
    assert.equal("api_key", field)
    assert.matches("already used as webhook_secret", why)
    field, why = config.key_clash(c.key_owner, { api_key = "client-hook-0123456789" })
    assert.equal("api_key", field)
    assert.matches("already used as client_webhook_secret", why)
  end)

  it("an empty array where an object is due is refused by name, as the file itself", function()
    local base = '{"upstream": {"provider": "kling", "base_url": "http://127.0.0.1:1", "api_key": "upstream-key"},'
      .. ' "journal": "/tmp/kling-gateway-config-spec.jsonl", "accounts": [{"name": "alice",'
      .. ' "api_key": "key-alice-0123456789", "credit": "1"}]'
    local function load_text(text)
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write(text)
      f:close()
      local ok, res = pcall(config.load, path)
      os.remove(path)
      return ok, res
    end
    for _, c in ipairs {
      { " [ ] ", "(file): must be a JSON object" },
      { base .. ', "memory": []}', "memory: must be an object" },
      { base .. ', "poll" : [ ]}', "poll: must be an object" },
      { base .. ', "poll": [1]}', "poll: must be an object" },
    } do
      local ok, err = load_text(c[1])
      assert.is_false(ok, c[1])
      assert.matches(c[2], tostring(err), 1, true)
    end
    local ok, c = load_text(base .. ', "memory": {}, "poll": {}, "currency": "CNY"}')
    assert.is_true(ok, tostring(c))
    assert.equal(1, c.poll.min_interval)
  end)

  it("timeouts, intervals, ages and counts are refused outside what the parts that use them take", function()
    for _, c in ipairs {
      { { upstream = { provider = "kling", base_url = "http://127.0.0.1:1", api_key = "upstream-key",
        timeout = 2000000 } }, "upstream.timeout: must be a number of seconds from 1 to 3600" },
      { { upstream = { provider = "kling", base_url = "http://127.0.0.1:1", api_key = "upstream-key",
        connect_timeout = 0.0001 } }, "upstream.connect_timeout: must be a number of seconds from 0.1 to 300" },
      { { poll = { lookups = 1.5 } }, "poll.lookups: must be a whole number of lookups from 1 to 100" },
      { { poll = { deadline = 1e9 } }, "poll.deadline: must be a number of seconds from 1 to 2000000" },
      { { poll = { max_interval = 1e6 } }, "poll.max_interval: must be a number of seconds from 0.01 to 86400" },
      { { retention_days = 1e9 }, "retention_days: must be a number of days from 0.00001 to 3650 (got" },
      { { accounts = { { name = "a", api_key = "key-alice-0123456789", credit = "1", max_open = 0 } } },
        "accounts[1].max_open: must be a whole number of tasks from 1 to 1000000" },
      { { accounts = { { name = "a", api_key = "key-alice-0123456789", credit = "1", max_open = 2.5 } } },
        "accounts[1].max_open: must be a whole number of tasks from 1 to 1000000" },
      { { accounts = { { name = "a", api_key = "key-alice-0123456789", credit = "1", max_open = "5" } } },
        "accounts[1].max_open: must be a whole number of tasks from 1 to 1000000" },
      { { accounts = { { name = "a", api_key = "key-alice-0123456789", credit = "1", max_opn = 5 } } },
        "accounts[1].max_opn: is not a known field (did you mean max_open?)" },
    } do
      local ok, err = with(c[1])
      assert.is_false(ok)
      assert.matches(c[2], tostring(err), 1, true)
    end
  end)

  -- Balances are kept by account name: a second "alice" shared the first one's balance and
  -- its own credit vanished.
  it("two accounts of one name are refused, naming the second and the first", function()
    local ok, err = load { { name = "alice", api_key = "key-alice-0123456789", credit = "10" },
      { name = "alice", api_key = "key-bob-0123456789", credit = "20.00" } }
    assert.is_false(ok)
    assert.matches("accounts[2].name: 'alice' is already accounts[1]'s", tostring(err), 1, true)
    ok, err = load { { name = "alice", api_key = "key-alice-0123456789", credit = "10" },
      { name = "Alice", api_key = "key-bob-0123456789", credit = "20.00" } }
    assert.is_false(ok)
    assert.matches("accounts[2].name: 'Alice' is already accounts[1]'s ('alice': names differ in case only)",
      tostring(err), 1, true)
  end)

  it("keys and secrets: printable without spaces or CR/LF, and long enough where the gateway trusts them alone",
    function()
    local cases = {
      { { accounts = { { name = "a", api_key = "x", credit = "1" } } }, "accounts[1].api_key: must be at least 8" },
      { { accounts = { { name = "a", api_key = "key-alice-01234\r\n", credit = "1" } } },
        "accounts[1].api_key: must be printable ASCII" },
      { { admin_key = "admin-0123456789abcdef\r\n" }, "admin_key: must be printable ASCII" },
      { { client_webhook_secret = "x" }, "client_webhook_secret: must be at least 16" },
      { { webhook_secret = "notwhsec" }, "webhook_secret: must be at least 16" },
      { { accounts = { { name = "a", api_key = "aaaa.bbbb.cccc", credit = "1" } } },
        "accounts[1].api_key: must not have the shape of a JWT" },
      { { upstream = { provider = "kling", base_url = "http://u:SECRETPASS@127.0.0.1:1", api_key = "upstream-key" } },
        "upstream.base_url: must not hold user info" },
      { { upstream = { provider = "kling", base_url = "http://127.0.0.1:1", api_key = "up key" } },
        "upstream.api_key: must be printable ASCII" },
    }
    for _, case in ipairs(cases) do
      local ok, err = with(case[1])
      assert.is_false(ok, case[2])
      assert.matches(case[2], tostring(err), 1, true)
    end
  end)

  it("issue 12.1: resolver names the name servers callback hosts are asked of, checked by name", function()
    local ok, c = with {}
    assert.is_true(ok, tostring(c))
    assert.is_nil(c.resolver) -- resolv.conf's, read by the worker
    ok, c = with { resolver = { "192.0.2.53", "127.0.0.1:5353" } }
    assert.is_true(ok, tostring(c))
    assert.are.same({ "192.0.2.53", "127.0.0.1:5353" }, c.resolver)
    for _, bad in ipairs { {}, "192.0.2.53", { "ns.example.com" }, { "1.2.3.4:99999" }, { a = "1.2.3.4" } } do
      ok, c = with { resolver = bad }
      assert.is_false(ok)
      assert.matches("resolver", tostring(c))
    end
  end)

  it("issue 12.1: a config file that is a JSON array is refused as '(file): must be a JSON object'", function()
    local ok, err = pcall(config.check, { { upstream = {} } })
    assert.is_false(ok)
    assert.matches("kling gateway config: (file): must be a JSON object", err, 1, true)
  end)

  it("issue 12.1: a credit written as a JSON number is refused naming the field and the form it needs", function()
    local ok, err = load { { name = "alice", api_key = "key-alice-0123456789", credit = 100 } }
    assert.is_false(ok)
    assert.matches("accounts%[1%]%.credit: must be a decimal string such as \"100.00\", not a number", err)
  end)

  -- The one rule of the config's and the admin API's amounts (a credit, a top-up, a settle).
  it("reads an amount as a decimal string: no sign, exponent, leading zero or 7th decimal", function()
    assert.equal(25000000, config.amount("25.00"))
    assert.equal(500000, config.amount("0.5"))
    assert.equal(0, config.amount("0"))
    for s, why in pairs { ["01"] = "a leading zero", ["-1"] = "negative", ["+1"] = "not a decimal number",
      ["1e3"] = "not a decimal number", [" 1"] = "not a decimal number", ["0.0000001"] = "more than 6 decimals" } do
      local m, err = config.amount(s)
      assert.is_nil(m, s)
      assert.matches(why, err, 1, true)
    end
    assert.is_nil(config.amount(5))
  end)

  it("issue 12.1: a credit that is not a decimal amount says why (exponent, range, decimals)", function()
    for credit, why in pairs { ["1e9"] = "not a decimal number", ["99999999999999999999"] = "out of range",
      ["1.1234567"] = "more than 6 decimals", ["-5"] = "negative", ["01"] = "a leading zero",
      ["007.50"] = "a leading zero" } do
      local ok, err = load { { name = "alice", api_key = "key-alice-0123456789", credit = credit } }
      assert.is_false(ok)
      assert.matches("accounts%[1%]%.credit: must be a decimal string such as \"100.00\"", err)
      assert.matches(why, err, 1, true)
      if why ~= "negative" then
        assert.not_matches("negative", err)
      end
    end
  end)

  it("issue 12.1: an unknown upstream provider is refused naming the field and the closest known one", function()
    local ok, err = with { upstream = { provider = "klingg", base_url = "http://127.0.0.1:1", api_key = "k" } }
    assert.is_false(ok)
    assert.matches("upstream%.provider: must be one of kling, .* %(got klingg; did you mean kling%?%)", err)
    for _, name in ipairs(require("kling.providers").names) do
      ok, err = with { upstream = { provider = name, base_url = "http://127.0.0.1:1", api_key = "k" } }
      assert.is_true(ok, tostring(err))
    end
  end)

  it("issue 12.2: journal_sync is a known flag, off by default, refused when not a boolean", function()
    local ok, c = with {}
    assert.is_true(ok, tostring(c))
    assert.is_false(c.journal_sync)
    ok, c = with { journal_sync = true }
    assert.is_true(ok, tostring(c))
    assert.is_true(c.journal_sync)
    ok, c = with { journal_sync = "yes" }
    assert.is_false(ok)
    assert.matches("journal_sync", c)
  end)

  it("allow_private_media is a known flag, off by default, refused when not a boolean", function()
    local ok, c = with {}
    assert.is_true(ok, tostring(c))
    assert.is_false(c.allow_private_media)
    ok, c = with { allow_private_media = true }
    assert.is_true(ok, tostring(c))
    assert.is_true(c.allow_private_media)
    ok, c = with { allow_private_media = "yes" }
    assert.is_false(ok)
    assert.matches("allow_private_media", c)
  end)

  it("issue 12.2: a journal asked to sync fsyncs each line, and fails closed when it cannot", function()
    local journal = require "kling.resty.journal"
    local path = os.tmpname()
    local j = journal.open(path, { sync = true })
    assert.is_true(j:append { op = "reserve", amount = "1" })
    j:close()
    local f = assert(io.open(path))
    assert.matches('"op":"reserve"', f:read("a"))
    f:close()
    os.remove(path)
    local core = require "kling.core"
    local saved = core.fsync_path
    core.fsync_path = nil
    local j2 = journal.open(path, { sync = true })
    local ok, err = j2:append { op = "reserve", amount = "1" }
    core.fsync_path = saved
    j2:close()
    os.remove(path)
    assert.is_nil(ok)
    assert.matches("cannot fsync", err)
  end)

  it("issue 12.2: a journal lock whose recorded holder is a zombie (a master just killed with kill -9) says it is gone",
    function()
    local journal = require "kling.resty.journal"
    local path = os.tmpname()
    -- Lines of a command run in the background, each "<tag> <value>", read in any order (the
    -- background process and the shell that started it race to print first on a loaded machine).
    local function tagged(cmd, n)
      local p = assert(io.popen("{ " .. cmd .. "; } 2>/dev/null")) -- nothing of theirs on the test's stderr
      local out = {}
      for _ = 1, n do
        local tag, v = assert(p:read("l")):match("^(%S+) ?(.*)$")
        out[tag] = v
      end
      return out, p -- closed once its processes are killed (a close waits for them)
    end
    -- a zombie: `sleep 0` ends under a parent (`exec sleep 30`) that never reaps it; made again
    -- (at most three times) should its shell have reaped it before the exec
    local zp, parent, zombie, state
    for _ = 1, 3 do
      local z
      z, zp = tagged("sh -c 'sleep 0 & echo zombie $!; exec sleep 30' & echo parent $!", 2)
      parent, zombie = assert(tonumber(z.parent)), assert(tonumber(z.zombie))
      for _ = 1, 200 do -- until `sleep 0` has ended (a zombie); a loaded machine (CI) took over 2 s
        local st = io.open("/proc/" .. zombie .. "/stat")
        state = st and st:read("l"):match("^%d+ %b() (%a)")
        if st then
          st:close()
        end
        if state == "Z" or not st then
          break
        end
        os.execute("sleep 0.05")
      end
      if state == "Z" then
        break
      end
      os.execute("kill " .. parent .. " 2>/dev/null")
      zp:close()
    end
    assert.equal("Z", state, "the child never became a zombie: the check below would test nothing")
    -- another process holds the lock (the workers), the file naming the dead master
    local held, hp = tagged("flock -n " .. path .. ".lock sh -c 'echo held; exec sleep 30' & echo holder $!", 2)
    local holder = assert(tonumber(held.holder))
    assert.equal("", held.held)
    local f = assert(io.open(path .. ".lock", "w"))
    f:write(zombie, "\n")
    f:close()
    local ok, err = journal.lock(path)
    -- the holder's child (its sleep) too, found in /proc: pkill deadlocks under the sanitizers'
    -- preload (a futex wait that never ended: the sanitized run timed out at 600 s)
    local kids = io.open("/proc/" .. holder .. "/task/" .. holder .. "/children")
    local children = kids and kids:read("a") or ""
    if kids then
      kids:close()
    end
    os.execute("kill " .. parent .. " " .. holder .. " " .. children .. " 2>/dev/null")
    zp:close()
    hp:close()
    os.remove(path .. ".lock")
    os.remove(path)
    assert.is_nil(ok)
    assert.matches("pid " .. zombie .. " is gone", err, 1, true)
  end)
  -- One node's shared memory holds its tasks for retention_days and the marks of ended holds:
  -- a busy node needs more than the defaults, written into nginx.conf at its start.
  it("memory: sizes as nginx writes them, defaults 128m and 16m, anything else refused by name", function()
    local ok, c = with {}
    assert.is_true(ok, tostring(c))
    assert.same({ text = "128m", bytes = 128 * 2 ^ 20 }, c.memory.tasks)
    assert.same({ text = "16m", bytes = 16 * 2 ^ 20 }, c.memory.ledger)
    ok, c = with { memory = { tasks = "2G", ledger = "262144" } }
    assert.is_true(ok, tostring(c))
    assert.same({ text = "2048m", bytes = 2 * 2 ^ 30 }, c.memory.tasks) -- nginx reads no g there
    assert.equal(262144, c.memory.ledger.bytes)
    for _, case in ipairs {
      { { tasks = "128 m" }, "memory.tasks: must be a size from 256k to 64g" },
      { { tasks = 128 }, "memory.tasks: must be a size" },
      { { ledger = "100k" }, "memory.ledger: must be a size from 256k" },
      { { ledger = "65g" }, "memory.ledger: must be a size" },
      { { ledger = "16m;" }, "memory.ledger: must be a size" },
      { { ledger = "99999999999999999999m" }, "memory.ledger: must be a size" },
      { { task = "1g" }, "memory.task: is not a known field (did you mean tasks?)" },
      { "1g", "memory: must be an object" },
    } do
      local bad, err = with { memory = case[1] }
      assert.is_false(bad)
      assert.matches(case[2], tostring(err), 1, true)
    end
  end)

  it("a relative journal path and an account name over 64 characters are refused, named", function()
    local ok, err = with { journal = "ledger.jsonl" }
    assert.is_false(ok)
    assert.matches("journal: must be an absolute path (got ledger.jsonl)", tostring(err), 1, true)
    ok, err = load { { name = string.rep("a", 65), api_key = "key-alice-0123456789", credit = "1" } }
    assert.is_false(ok)
    assert.matches("accounts[1].name: 1 to 64 letters", tostring(err), 1, true)
    ok = load { { name = string.rep("a", 64), api_key = "key-alice-0123456789", credit = "1" } }
    assert.is_true(ok)
    -- A name is an admin API path segment: "." and ".." could be created, never topped up.
    for _, name in ipairs { ".", "..", "-x", "_x" } do
      ok, err = load { { name = name, api_key = "key-alice-0123456789", credit = "1" } }
      assert.is_false(ok, name)
      assert.matches("accounts[1].name: 1 to 64 letters, digits, '.', '_' and '-' only, the first a letter or digit",
        tostring(err), 1, true)
    end
  end)

  -- `kling gateway start --config FIFO` hung for ever: the file was opened with io.open, which
  -- blocks on a FIFO until a writer comes (and nginx's master would at a reload).
  it("a config that is not a regular file (a FIFO, a directory) is refused before any open", function()
    local shell = require "support.shell"
    local dir = shell.run("mktemp -d /tmp/kling-gateway-config-spec.XXXXXX"):gsub("%s+$", "")
    finally(function()
      shell.run("rm -rf " .. shell.q(dir))
    end)
    local fifo = dir .. "/config.json"
    assert(os.execute("mkfifo " .. shell.q(fifo)))
    local ok, err = pcall(config.load, dir)
    assert.is_false(ok)
    assert.equal("kling gateway config: " .. dir .. " is a directory; only a regular file is read", tostring(err))
    -- the FIFO in a child with a time limit: a hang is a failure here, not a stuck suite
    local out, code = shell.run("timeout 10 lua5.4 bin/kling gateway start --config " .. shell.q(fifo) .. " 2>&1")
    assert.equal(2, code, out)
    assert.equal("kling gateway: --config " .. fifo .. " is a FIFO (named pipe); only a regular file is read\n", out)
    assert.is_true(os.execute("test -p " .. shell.q(fifo))) -- left as it was
    -- a file that is not there is still said as before
    ok, err = pcall(config.load, dir .. "/none.json")
    assert.is_false(ok)
    assert.equal("kling gateway config: cannot read " .. dir .. "/none.json: No such file or directory", tostring(err))
  end)
end)
