-- The libcurl driver over HTTPS against the simulator's nginx: what the server saw of our TLS.
local sim = require "support.sim"
local core = require "kling.core"

-- The simulator's access log says per request whether nginx resumed a TLS session
-- ($ssl_session_reused: "r" or ".").

describe("kling.http over HTTPS", function()
  it("issue 15.1: a create on a handle that never talked to the server resumes the client's TLS session", function()
    -- Each round a new client: one create (a full handshake), then two at once: `a` on the
    -- first's recycled transfer, `b` on a new transfer whose handle has never talked to the
    -- server, so only the client's share handle can give it a session. Without the share `b`
    -- never resumes. (It used to fail to in about 1 round in 5: OpenSSL spent the session
    -- when `a` resumed with it; see the next test.) The test asks for resumption in at least
    -- 4 of 10 rounds, which a missing share fails every time.
    local resumed_b, rounds = 0, 10
    for round = 1, rounds do
      local http = core.http { ca_file = sim.info().ca_file }
      local mark = string.format("tls-%d-%d-%d-", core.wall_ms(), math.random(1e9), round)
      -- Connection: close: each request on a connection of its own (creates share kept-alive ones).
      local function req(tag)
        return { method = "POST", url = sim.info().https .. "/_sim/stats?" .. mark .. tag, body = "{}",
          headers = { Connection = "close" } }
      end
      local first = http:request(req("first"))
      assert.is_true(first.ok, tostring(first.message))
      local a, b = assert(http:start(req("a"))), assert(http:start(req("b")))
      local seen = {}
      while not (seen[a] and seen[b]) do
        for _, res in ipairs(http:wait(1000)) do
          assert.is_true(res.ok, tostring(res.message))
          seen[res.id] = true
        end
      end
      http:close()
      -- nginx logs a request after answering it: wait for the three lines.
      local by_tag
      for _ = 1, 100 do
        by_tag = {}
        for line in io.lines(sim.info().dir .. "/access.log") do
          local at = line:find(mark, 1, true)
          if at then
            by_tag[line:match("^(%a+)", at + #mark)] = line:match("tls_reused=(%S+)")
          end
        end
        if by_tag.first and by_tag.a and by_tag.b then
          break
        end
        core.sleep_ms(20)
      end
      assert.are.equal(".", by_tag.first)
      assert.are.equal("r", by_tag.a, "the recycled transfer resumes its own session")
      if by_tag.b == "r" then
        resumed_b = resumed_b + 1
      end
    end
    assert.is_true(resumed_b >= 4, "a new transfer resumed the client's session in " .. resumed_b .. " of "
      .. rounds .. " rounds")
  end)
end)

-- Lines of the simulator's access log holding `mark`, once `n` of them are there.
local function logged(mark, n)
  local lines
  for _ = 1, 100 do
    lines = {}
    for line in io.lines(sim.info().dir .. "/access.log") do
      if line:find(mark, 1, true) then
        lines[#lines + 1] = line
      end
    end
    if #lines >= n then
      break
    end
    core.sleep_ms(20)
  end
  return lines
end

describe("kling.http's TLS 1.3 session under concurrent creates", function()
  it("issue 15.3: creates opened while another resumes still resume (a resumption no longer spends the session)",
    function()
      -- OpenSSL removes a TLS 1.3 session from the client cache once a handshake resumed with
      -- it (single-use tickets), while libcurl 7.88 keeps handing that one session out until a
      -- new ticket arrives: 25-45 % of creates opened 32 at a time did full handshakes.
      local http = core.http { ca_file = sim.info().ca_file }
      local mark = string.format("conc-%d-%d-", core.wall_ms(), math.random(1e9))
      local function req(i) -- each on a new connection (Connection: close)
        return { method = "POST", url = sim.info().https .. "/_sim/stats?" .. mark .. i, body = "{}",
          headers = { Connection = "close" } }
      end
      assert.is_true(http:request(req(0)).ok) -- the client's first session
      local n, started, done, inflight = 128, 0, 0, 0
      while done < n do
        while inflight < 32 and started < n do
          started, inflight = started + 1, inflight + 1
          assert(http:start(req(started)))
        end
        for _, res in ipairs(http:wait(1000)) do
          assert.is_true(res.ok, tostring(res.message))
          done, inflight = done + 1, inflight - 1
        end
      end
      http:close()
      local full = 0
      for _, line in ipairs(logged(mark, n + 1)) do
        if line:find("tls_reused=.", 1, true) and not line:find(mark .. "0 ", 1, true) then
          full = full + 1
        end
      end
      assert.is_true(full <= 8, full .. " of " .. n .. " concurrent creates did a full TLS handshake")
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
    -- Connection: close: a new connection (and TLS setup) for each request
    local req = { method = "POST", url = sim.info().https .. "/_sim/stats", body = "{}",
      headers = { Connection = "close" } }
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

  it("issue 15.3: creates in bursts do not pile up idle TLS connections past max_connections", function()
    local base = open_sockets()
    local http = core.http { ca_file = sim.info().ca_file, max_connections = 8 }
    post_many(http, 120, 16)
    local held = open_sockets() - base
    http:close()
    -- 8 connections and the multi's wake-up socket pair; libcurl's own default kept every
    -- connection a burst opened (when each create opened its own: all 120)
    assert.is_true(held <= 8 + 2, "sockets held: " .. held)
    assert.is_true(held >= 1, "sockets held: " .. held)
  end)

  it("issue 15.3: max_connections is checked", function()
    assert.has_error(function()
      core.http { max_connections = 0 }
    end, "kling.http: field 'max_connections' must be an integer between 1 and 100000")
  end)
end)
