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

describe("kling.http's CA store", function()
  it("issue 15.2: the CA file is parsed once per client, not again for each fresh connection", function()
    -- A copy of the simulator's CA that is broken after the first request: a later
    -- connection that parsed the file again would fail to verify (libcurl's CA store
    -- cache is skipped while a CA directory is configured too, Debian's default).
    local path = os.tmpname()
    local src = assert(io.open(sim.info().ca_file, "rb"))
    local pem = src:read("a")
    src:close()
    local function write(data)
      local f = assert(io.open(path, "wb"))
      f:write(data)
      f:close()
    end
    write(pem)
    local http = core.http { ca_file = path }
    -- POST: a fresh connection (and TLS setup) for each request
    local req = { method = "POST", url = sim.info().https .. "/_sim/stats", body = "{}" }
    local first = http:request(req)
    assert.is_true(first.ok, tostring(first.message))
    write("not a certificate\n")
    local second = http:request(req)
    os.remove(path)
    http:close()
    assert.is_true(second.ok, tostring(second.message))
    assert.are.equal(first.status, second.status)
  end)

  it("issue 15.2: verification stays on: a client whose CA file does not hold the server's CA is refused", function()
    local path = os.tmpname()
    local f = assert(io.open("/etc/ssl/certs/ca-certificates.crt", "rb"))
    local bundle = f:read("a")
    f:close()
    f = assert(io.open(path, "wb"))
    f:write(bundle)
    f:close()
    local http = core.http { ca_file = path }
    local res = http:request { method = "POST", url = sim.info().https .. "/_sim/stats", body = "{}" }
    local res2 = http:request { url = sim.info().https .. "/_sim/stats" }
    os.remove(path)
    http:close()
    assert.is_false(res.ok)
    assert.are.equal("tls", res.error)
    assert.is_false(res2.ok)
    assert.are.equal("tls", res2.error)
  end)
end)

describe("kling.http's connection cache", function()
  -- Sockets this process holds open (Linux: /proc/self/fd links to "socket:[...]").
  local function open_sockets()
    local p = io.popen("ls -l /proc/" .. io.open("/proc/self/stat"):read("n") .. "/fd 2>/dev/null")
    local count = 0
    for line in p:lines() do
      if line:find("socket:", 1, true) then
        count = count + 1
      end
    end
    p:close()
    return count
  end

  local function post_many(http, n, at_once)
    local req = { method = "POST", url = sim.info().https .. "/_sim/stats", body = "{}" }
    local started, done = 0, 0
    while done < n do
      while started < n and started - done < at_once do
        assert(http:start(req))
        started = started + 1
      end
      for _, res in ipairs(http:wait(1000)) do
        assert.is_true(res.ok, tostring(res.message))
        done = done + 1
      end
    end
  end

  it("issue 15.3: creates on fresh connections do not pile up idle TLS connections past max_connections", function()
    local base = open_sockets()
    local http = core.http { ca_file = sim.info().ca_file, max_connections = 8 }
    post_many(http, 120, 16)
    local held = open_sockets() - base
    http:close()
    -- 8 connections and the multi's wake-up socket pair; libcurl's own default kept
    -- every one of the 120 fresh connections open
    assert.is_true(held <= 8 + 2, "sockets held: " .. held)
    assert.is_true(held >= 1, "sockets held: " .. held)
  end)

  it("issue 15.3: max_connections is checked", function()
    assert.has_error(function()
      core.http { max_connections = 0 }
    end, "kling.http: field 'max_connections' must be an integer between 1 and 100000")
  end)
end)
