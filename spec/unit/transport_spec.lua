-- kling.transport.read_result: a driver's result read as the provider's envelope or a failure.
local transport = require "kling.transport"
local providers = require "kling.providers"

local kling = assert(providers.get("kling"))

describe("kling.transport.read_result", function()
  it("a TLS failure over an untrusted certificate says how to give the CA (new-user trial)", function()
    local _, f = transport.read_result(kling, { ok = false, error = "tls", sent = false, received = false,
      message = "SSL certificate problem: unable to get local issuer certificate" })
    assert.are.equal("tls", f.transport)
    assert.matches("unable to get local issuer certificate %(.*ca_file or KLING_CA_FILE%)$", f.message)
  end)

  -- An id above 2^53 sent as a JSON number was read as a double (its last digits lost) and
  -- refused as "no id"; EvoLink's and the gateways' ids went through tostring ("8.6e+17").
  it("reads a task id sent as a number above 2^53 exactly, on every provider", function()
    local function answer(body)
      return { ok = true, status = 200, headers = { ["content-type"] = "application/json" }, body = body }
    end
    local data = assert(transport.read_result(kling, answer('{"code": 0, "message": "SUCCEED", "request_id": "r",'
      .. ' "data": {"task_id": 861796292580000001, "task_status": "submitted", "created_at": 1700000000000}}')))
    assert.are.equal("861796292580000001", assert(kling.parse_task(data)).id)
    local evolink = assert(providers.get("evolink"))
    data = assert(transport.read_result(evolink, answer('{"id": 861796292580000003, "status": "pending"}')))
    assert.are.equal("861796292580000003", assert(evolink.parse_task(data)).id)
    for _, name in ipairs { "apiinone", "compat" } do
      local P = assert(providers.get(name))
      local raw = name == "apiinone" and '{"code": 200, "data": {"task_id": 861796292580000004, "status": "%s"}}'
        or '{"id": 861796292580000004, "status": "%s"}'
      local status = next(P.statuses)
      local t, err = P.parse_task(assert(transport.read_result(P, answer(raw:format(status)))))
      assert.is_table(t, name .. ": " .. tostring(err))
      assert.are.equal("861796292580000004", t.id, name)
    end
  end)

  it("keeps nginx's own hint, and other failures, as they are", function()
    local nginx = "TLS handshake with a:443 failed: certificate refused (the CA is lua_ssl_trusted_certificate in"
      .. " nginx.conf)"
    local _, f = transport.read_result(kling, { ok = false, error = "tls", message = nginx })
    assert.are.equal(nginx, f.message)
    _, f = transport.read_result(kling, { ok = false, error = "connect", message = "Could not connect" })
    assert.are.same({ transport = "connect", message = "Could not connect" }, f)
  end)
end)

describe("kling.transport: an envelope's nulls are no code or message", function()
  local function answer(status, body)
    return { ok = true, status = status, headers = { ["content-type"] = "application/json" }, body = body }
  end

  -- A hostile or broken upstream's {"code": null, "message": null}: the error's tostring raised
  -- ("invalid value (userdata)" inside nginx, a handler's `tostring(err)` a 500).
  it("a JSON null, table or boolean code, message or request_id leaves the error printable", function()
    local errors = require "kling.errors"
    for _, case in ipairs {
      answer(200, '{"code":null,"message":null,"request_id":null,"data":null}'),
      answer(200, '{"code":{"a":1},"message":[1,2],"request_id":true}'),
      answer(500, '{"message":{"code":null,"message":null}}'),
      answer(502, '{"error":false}'),
    } do
      local data, f = transport.read_result(kling, case)
      assert.is_nil(data)
      assert.is_true(f.code == nil or type(f.code) == "number" or type(f.code) == "string", case.body)
      assert.is_true(f.message == nil or type(f.message) == "string", case.body)
      assert.is_true(f.request_id == nil or type(f.request_id) == "string", case.body)
      local e = transport.failure(f, { kind = "protocol", retryable = false }, "kling")
      assert.are.equal("string", type(tostring(e)), case.body)
      assert.is_true(getmetatable(e) ~= nil and errors.kinds[e.kind] ~= nil)
    end
  end)

  -- A hostile upstream answered a gateway's create 200 {"code":null}: read as the provider's
  -- refusal, the create's hold was released (502) though the task may exist upstream; a malformed
  -- body in its place was looked up, its hold kept.
  it("a 2xx error envelope without a readable code is unreadable (protocol), not a refusal", function()
    for _, body in ipairs { '{"code":null,"message":"x","data":null}', '{"code":{"a":1}}', '{"code":true}' } do
      local _, f = transport.read_result(kling, answer(200, body))
      assert.are.equal("protocol", f.transport, body)
    end
    local _, f = transport.read_result(kling, answer(429, '{"code":null,"message":"busy"}'))
    assert.is_nil(f.transport) -- a refusal by its HTTP status, as before
    _, f = transport.read_result(kling, answer(200, '{"code":1303,"message":"busy"}'))
    assert.is_nil(f.transport)
    assert.are.equal(1303, f.code)
  end)

  -- No provider sends its code as a string (seeds 000-004, the API notes): "0" is not success
  -- but an answer this module does not read (transport.lua says why).
  it("a string code \"0\" on a 2xx is no success: decided as protocol, not a refusal", function()
    local core = require "kling.core"
    local data, f = transport.read_result(kling, answer(200, '{"code":"0","message":"SUCCEED","request_id":"r",'
      .. '"data":{"task_id":"t1","task_status":"submitted"}}'))
    assert.is_nil(data)
    assert.are.equal("0", f.code)
    local d = core.decide { method = "POST", attempt = 0, http_status = f.status, code = tonumber(f.code),
      codes = kling.codes, transport = f.transport, sent = true, received = true }
    assert.are.equal("protocol", d.kind)
    assert.is_false(d.retry)
  end)

  it("a number message or code is kept (as text, and as it is)", function()
    local _, f = transport.read_result(kling, answer(200, '{"code":1303,"message":42,"request_id":7}'))
    assert.are.equal(1303, f.code)
    assert.are.equal("42", f.message)
    assert.are.equal("7", f.request_id)
  end)
end)
