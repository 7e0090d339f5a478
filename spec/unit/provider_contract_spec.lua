-- Issue 10: every provider file keeps one contract, checked by the registry when it hands the
-- provider out; the business codes, the token-renewal and the slot rules are the dialect's
-- (data the runners read), and C holds no provider's codes.
local providers = require "kling.providers"
local transport = require "kling.transport"
local core = require "kling.core"

-- A shallow copy of a provider with some fields replaced (false removes one).
local function variant(name, changes)
  local P = {}
  for k, v in pairs(require("kling.providers." .. name)) do
    P[k] = v
  end
  for k, v in pairs(changes) do
    P[k] = v or nil
  end
  return P
end

-- Runs f with package.loaded["kling.providers.<name>"] replaced by P.
local function with_loaded(name, P, f)
  local key = "kling.providers." .. name
  local saved = package.loaded[key]
  package.loaded[key] = P
  local ok, err = pcall(f)
  package.loaded[key] = saved
  assert(ok, err)
end

describe("the provider contract (issue 10)", function()
  it("issue 10: every shipped provider keeps it, and the registry lists each once", function()
    local seen = {}
    for _, name in ipairs(providers.names) do
      assert.is_nil(seen[name])
      seen[name] = true
      local P = assert(providers.get(name))
      assert.is_true(providers.check(P, name))
      assert.equal("kling.prices." .. name, P.prices)
      assert.is_table(require(P.prices).rules)
    end
    assert.same(providers.names, require("kling.billing").providers)
  end)

  it("issue 10: a provider missing a field is refused at load with the field named", function()
    for _, field in ipairs { "codes", "statuses", "parse_task", "prices", "slot_full_codes" } do
      with_loaded("apiinone", variant("apiinone", { [field] = false }), function()
        local ok, err = pcall(providers.get, "apiinone")
        assert.is_false(ok)
        assert.matches("provider 'apiinone' is missing " .. field .. " %(", err)
      end)
    end
    local ok, why = providers.check(variant("kling", { codes = {} }), "kling")
    assert.is_nil(ok)
    assert.matches("codes must be a kling.codes", why)
    ok, why = providers.check(variant("kling", { name = "other" }), "kling")
    assert.is_nil(ok)
    assert.matches("names itself 'other'", why)
  end)
end)

-- common.escape(nil) was "nil": a path builder given no id polled /v1/tasks/nil (and {} its
-- address, "" the list /v1/tasks/): an id that is no non-empty string is the caller's bug
describe("every dialect's path builders", function()
  it("raise on an id that is no non-empty string, naming the rule; a real id is percent-encoded", function()
    local common = require "kling.providers.common"
    for _, bad in ipairs { { nil, "got nil" }, { "", "got a string %(\"\"%)" }, { 5, "got 5" },
      { {}, "got an empty array or object" }, { true, "got a boolean" } } do
      local ok, err = pcall(common.escape, bad[1])
      assert.is_false(ok, bad[2])
      assert.matches("^[^\n]*kling%.providers%.escape: a task id in a URL must be a non%-empty string %("
        .. bad[2], err)
    end
    for _, name in ipairs(providers.names) do
      local P = assert(providers.get(name))
      -- query_path(endpoint, id), external_query_path(endpoint, id), cancel_path(id, endpoint)
      local builders = { P.query_path, P.external_query_path, P.cancel_path and function(endpoint, id)
        return P.cancel_path(id, endpoint)
      end }
      for _, build in pairs(builders) do
        for _, bad in ipairs { false, "", 861796292580000001 } do
          local ok, err = pcall(build, "videos/text2video", bad or nil)
          assert.is_false(ok, name .. ": " .. tostring(bad))
          assert.matches("must be a non%-empty string", err, 1, false)
        end
        local path = build("videos/text2video", "a b/1")
        assert.matches("a%%20b%%2F1", path, 1, false)
        assert.is_nil(path:find("nil", 1, true), path)
      end
    end
  end)
end)

describe("the dialect's external ids", function()
  it("are taken where the provider has them and the endpoint takes the field, nowhere else", function()
    local kling = assert(providers.get("kling"))
    assert.is_true(providers.takes_external_id(kling, "videos/text2video"))
    assert.is_false(providers.takes_external_id(kling, "general/custom-elements"))
    for _, name in ipairs { "apiinone", "apimodels", "compat", "evolink" } do
      assert.is_false(providers.takes_external_id(assert(providers.get(name)), "videos/text2video"), name)
    end
  end)
end)

describe("the dialect's retry rules (issue 10)", function()
  it("issue 10: token renewal and slot refusals are read from the provider's own codes", function()
    local kling, evolink = assert(providers.get("kling")), assert(providers.get("evolink"))
    assert.is_true(providers.token_expired(kling, { status = 401, code = 1004 }))
    assert.is_false(providers.token_expired(kling, { status = 401, code = 1003 }))
    assert.is_false(providers.token_expired(evolink, { status = 401, code = 1004 }))
    assert.is_true(providers.slot_full(kling, { status = 429, code = 1303 }))
    assert.is_false(providers.slot_full(kling, { status = 429, code = 1302 }))
    assert.is_true(providers.slot_full(kling, { status = 429 })) -- a bare 429
    assert.is_false(providers.slot_full(evolink, { status = 429, code = 1303 }))
    assert.is_true(providers.slot_full(evolink, { status = 429, code = "rate_limit_exceeded" }))
    -- The business-code table is the provider's, not C's.
    assert.same({ "quota", false }, { core.classify(429, 1102, kling.codes) })
    assert.same({ "rate_limited", true }, { core.classify(429, 1102, evolink.codes) })
  end)

  -- A driver that answers from a script and counts what it was asked.
  local function scripted(answers)
    local d = { sent = 0, t = 0 }
    function d.request(_, _)
      d.sent = d.sent + 1
      local a = table.remove(answers, 1)
      return { ok = true, status = a.status, headers = { ["content-type"] = "application/json" },
        body = a.body, sent = true, received = true }
    end
    function d.now_ms() return d.t end
    function d.wall_s() return 1700000000 end
    function d.sleep_ms(_, ms) d.t = d.t + ms end
    return d
  end

  local function auth()
    local a = { renewed = 0 }
    function a.bearer() return "Bearer x" end
    function a.invalidate() a.renewed = a.renewed + 1 end
    return a
  end

  local function call(P, answers)
    local driver, a = scripted(answers), auth()
    local data, err = transport.call({ core = core, driver = driver, provider = P, base_url = "http://x", auth = a,
      max_attempts = 3, base_ms = 1, cap_ms = 1, call_budget_ms = 60000 }, { method = "GET", path = "/t" })
    return data, err, a.renewed, driver.sent
  end

  it("issue 10: the blocking runner renews the token on the code the dialect names, once", function()
    local expired = { status = 401, body = '{"code":1004,"message":"expired","request_id":"r"}' }
    local fine = { status = 200, body = '{"code":0,"message":"ok","request_id":"r","data":{"task_id":"1"}}' }
    local kling = assert(providers.get("kling"))
    local data, _, renewed, sent = call(kling, { expired, fine })
    assert.equal("1", data.task_id)
    assert.equal(1, renewed)
    assert.equal(2, sent)
    -- A dialect that names another code renews on that one, and not on Kling's.
    local other = variant("kling", { renew_token_codes = { [77] = true } })
    local _, err
    _, err, renewed, sent = call(other, { expired, fine })
    assert.equal("auth", err.kind)
    assert.equal(0, renewed)
    assert.equal(1, sent)
    data, _, renewed = call(other, { { status = 401, body = '{"code":77,"message":"x","request_id":"r"}' }, fine })
    assert.equal("1", data.task_id)
    assert.equal(1, renewed)
  end)
end)
