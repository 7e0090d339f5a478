-- The embedder's constructors inside nginx took any key and ignored the ones they did not know:
-- resty.driver{timeot_ms = 5000} kept the 60 s default, stores.shared.new{jurnal = j} wrote no
-- movement anywhere (no balance back after a restart), callback.handle{secrt = ...} refused
-- every callback as if no secret had been given. Each refuses an unknown key by name, with the
-- closest it takes, as kling.new does (validate.options).
local fake_dict = require "spec.support.fake_dict"

local function refused(fn, opts, want)
  local ok, err = pcall(fn, opts)
  assert.is_false(ok, "taken: " .. want)
  assert.matches(want, tostring(err), 1, true)
end

describe("an unknown option", function()
  it("of kling.resty.driver is refused by name", function()
    refused(require("kling.resty").driver, { timeot_ms = 5000 },
      "kling.resty.driver: unknown option 'timeot_ms'; did you mean timeout_ms?")
    assert.is_table(require("kling.resty").driver { timeout_ms = 5000, reuse_posts = true })
  end)

  it("of kling.resty.tasks.new is refused by name", function()
    refused(require("kling.resty.tasks").new, { dict = fake_dict.new(), retention = 60 },
      "kling.resty.tasks.new: unknown option 'retention'")
  end)

  it("of kling.money.stores.shared.new is refused by name", function()
    refused(require("kling.money.stores.shared").new, { dict = fake_dict.new(), currency = "CNY", jurnal = {} },
      "kling.money.stores.shared: unknown option 'jurnal'; did you mean journal?")
  end)

  it("of kling.resty.poller.start is refused by name", function()
    local tasks = require("kling.resty.tasks").new { dict = fake_dict.new() }
    refused(require("kling.resty.poller").start, { tasks = tasks, poll = function() end, intervall = 1 },
      "kling.resty.poller.start: unknown option 'intervall'; did you mean interval?")
  end)

  it("of kling.resty.callback.handle is refused by name", function()
    refused(require("kling.resty.callback").handle, { provider = "kling", secrt = "whsec_x", on_task = function() end },
      "kling.resty.callback.handle: unknown option 'secrt'; did you mean secret?")
  end)
end)

-- A value poller.start took and its timer then raised on every tick (logged, nothing ever
-- polled: no task ended, no hold settled), or that kept its lock for good (lock_ttl = 0: a
-- holder that died never handed over), is refused when it starts, naming the option.
describe("a bad value of kling.resty.poller.start", function()
  local tasks = require("kling.resty.tasks").new { dict = fake_dict.new() }
  for _, c in ipairs {
    { { batch = 0 }, "batch must be a positive whole number, at least 1, got 0" },
    { { lock_ttl = 0.0001 }, "lock_ttl must be a positive number, at least 0.001" },
    { { interval = 1e-9 }, "interval must be a positive number, at least 0.001" },
    { { batch = 2.5 }, "batch must be a positive whole number" },
    { { interval = -1 }, "interval must be a positive number" },
    { { lock_ttl = 0 }, "lock_ttl must be a positive number" },
    { { silence_ms = "60" }, "silence_ms must be a positive number" },
    { { min_interval_ms = -5 }, "min_interval_ms must be between 1 and" },
    { { min_interval_ms = 50000, max_interval_ms = 1000 }, "max_interval_ms must be between min_interval_ms and" },
  } do
    it("is refused: " .. c[2], function()
      local opts = c[1]
      opts.tasks, opts.poll = tasks, function() end
      refused(require("kling.resty.poller").start, opts, "kling.resty.poller.start: " .. c[2])
    end)
  end
end)

-- callback.handle{secret = ""} was a secret: unsigned callbacks were refused as unsigned, and a
-- signed one raised from the C core ("webhook_verify: secret must be non-empty"). A secret
-- that cannot verify is refused by name, by the one rule of secrets (kling.webhook).
describe("a secret kling.resty.callback.handle cannot verify with", function()
  for _, s in ipairs { "", "whsec_!!not base64!!", 42 } do
    it("is refused, naming secret: " .. tostring(s), function()
      refused(require("kling.resty.callback").handle, { provider = "kling", secret = s, on_task = function() end },
        "kling.resty.callback.handle: secret ")
    end)
  end
end)

-- Values kling.resty.driver read by truth or sent as they were: verify = "no" verified and
-- reuse_posts = "yes" did not reuse; a server_name or user_agent that cannot be sent failed
-- every request. Each is refused by name when the driver is made.
describe("a bad value of kling.resty.driver", function()
  for _, c in ipairs {
    { { verify = "no" }, "verify must be a boolean" },
    { { reuse_posts = "yes" }, "reuse_posts must be a boolean" },
    { { server_name = 5 }, "server_name must be a host name" },
    { { server_name = "a.example\r\nX: 1" }, "server_name must be a host name" },
    { { user_agent = "me\r\nX-Evil: 1" }, "user_agent must be 1..256 printable ASCII characters" },
  } do
    it("is refused: " .. c[2], function()
      refused(require("kling.resty").driver, c[1], "kling.resty.driver: " .. c[2])
    end)
  end
  it("a good one is taken", function()
    assert.is_table(require("kling.resty").driver { verify = false, reuse_posts = true, server_name = "api.example.com",
      user_agent = "me/1" })
  end)
end)

-- A time to live nginx cannot keep (math.huge, NaN, 1e300, 1e-4: an expiry of 0, never) was taken by
-- the task table's retention_s and the store's ended_ttl and topup_id_ttl: ended records and
-- end marks were then kept for good, until the dict was full and refused every create.
describe("a time to live no entry can have", function()
  for _, v in ipairs { math.huge, 0 / 0, 1e300, 1e-4 } do
    it("is refused by kling.resty.tasks.new and kling.money.stores.shared.new: " .. tostring(v), function()
      local ok, err = pcall(require("kling.resty.tasks").new, { dict = fake_dict.new(), retention_s = v })
      assert.is_false(ok)
      assert.matches("kling.resty.tasks: retention_s must be a positive number of seconds, from 0.001 to", err, 1, true)
      for _, k in ipairs { "ended_ttl", "topup_id_ttl" } do
        ok, err = pcall(require("kling.money.stores.shared").new, { dict = fake_dict.new(), currency = "CNY", [k] = v })
        assert.is_false(ok)
        assert.matches("kling.money.stores.shared: " .. k .. " must be a positive number of seconds, from 0.001 to",
          err, 1, true)
      end
    end)
  end
end)

-- A number kling.resty.driver took and nginx could not use: timeout_ms = 0.4 became 0 (every
-- request timed out at once), math.huge or 1e12 had every request raise "bad timeout value".
describe("a number of kling.resty.driver out of what nginx takes", function()
  for _, c in ipairs { { "timeout_ms", 0.4 }, { "timeout_ms", math.huge }, { "connect_timeout_ms", 1e12 },
    { "pool_size", 0.5 }, { "keepalive_ms", -1 } } do
    it("is refused: " .. c[1] .. " = " .. tostring(c[2]), function()
      refused(require("kling.resty").driver, { [c[1]] = c[2] },
        "kling.resty.driver: " .. c[1] .. " must be a positive number from 1 to 2147483647")
    end)
  end
end)
