-- The result table of a transfer that got no response at all (src/http_result.c). Under the
-- sanitizer build (ctest -L sanitize) UBSan halts on undefined behaviour, so this spec is the
-- regression test of issue 11.17 there; in the normal build it checks the same table.
local core = require "kling.core"
local nginx = require "support.nginx"

describe("kling.core.http result without a response", function()
  it("issue 11.17: no header bytes (a refused connection) give an empty headers table, no UB", function()
    local h = core.http {}
    local port = nginx.free_port()
    local r = h:request { url = "http://127.0.0.1:" .. port .. "/x", connect_timeout_ms = 2000 }
    assert.is_false(r.ok)
    assert.equal("connect", r.error)
    assert.is_nil(r.status)
    assert.same({}, r.headers or {})
    h:close()
  end)
end)
