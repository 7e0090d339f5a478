-- The libcurl driver over HTTPS against the simulator's nginx: what the server saw of our TLS.
local sim = require "support.sim"
local core = require "kling.core"

-- The simulator's access log says per request whether nginx resumed a TLS session
-- ($ssl_session_reused: "r" or "."), in the order of the requests carrying `mark`.
local function tls_reused(mark)
  local out = {}
  for line in io.lines(sim.info().dir .. "/access.log") do
    if line:find(mark, 1, true) then
      out[#out + 1] = line:match("tls_reused=(%S+)$")
    end
  end
  return out
end

describe("kling.http over HTTPS", function()
  it("issue 15.1: a second create on a fresh connection resumes the first one's TLS session", function()
    local http = core.http { ca_file = sim.info().ca_file }
    local mark = string.format("tls-%d-%d", core.wall_ms(), math.random(1e9))
    local url = sim.info().https .. "/_sim/stats?" .. mark
    -- POST: every create goes out on a fresh connection (no silent resend on a reused one)
    local req = { method = "POST", url = url, body = "{}" }
    local first = http:request(req)
    assert.is_true(first.ok, tostring(first.message))
    -- Two at once: one on the first's recycled transfer, one on a new transfer (its own
    -- handle, which has never talked to the server: without the share it would not resume).
    local a, b = assert(http:start(req)), assert(http:start(req))
    local seen = {}
    while not (seen[a] and seen[b]) do
      for _, res in ipairs(http:wait(1000)) do
        assert.is_true(res.ok, tostring(res.message))
        seen[res.id] = true
      end
    end
    assert.are.same({ ".", "r", "r" }, tls_reused(mark))
    http:close()
  end)
end)
