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

  it("keeps nginx's own hint, and other failures, as they are", function()
    local nginx = "TLS handshake with a:443 failed: certificate refused (the CA is lua_ssl_trusted_certificate in"
      .. " nginx.conf)"
    local _, f = transport.read_result(kling, { ok = false, error = "tls", message = nginx })
    assert.are.equal(nginx, f.message)
    _, f = transport.read_result(kling, { ok = false, error = "connect", message = "Could not connect" })
    assert.are.same({ transport = "connect", message = "Could not connect" }, f)
  end)
end)
