-- The pure parts of issue 12's review of the gateway as an attacker would use it.
local billing = require "kling.billing"
local hold = require "kling.money.hold"
local kling = require "kling.providers.kling"

local function estimate(req, endpoint)
  local r = { provider = "kling", endpoint = endpoint, method = "POST" }
  for k, v in pairs(req) do
    r[k] = v
  end
  return assert(billing.estimate(r)).micros
end

describe("gateway holds (issue 12 review)", function()
  -- The provider bills these by the real length of media the client only describes.
  local CASES = {
    { "videos/avatar/image2video", { image = "https://e.x/a.png", audio_id = "1", mode = "pro", duration = 2 }, 300 },
    { "videos/advanced-lip-sync", { session_id = "s", duration = 2 }, 60 },
    { "audio/video-to-audio", { video_url = "https://e.x/v.mp4", duration = 3 }, 20 },
    { "videos/motion-control", { model = "kling-v2-6", mode = "std", character_orientation = "image", duration = 3 },
      10 },
    { "videos/motion-control", { model = "kling-v2-6", mode = "std", character_orientation = "video", duration = 3 },
      30 },
    { "videos/video-extend", { model = "kling-v1", mode = "std", video_id = "1", duration = 4 }, 5 },
    { "videos/omni-video", { model = "kling-video-o1", mode = "std",
      video_list = { { video_url = "https://e.x/v.mp4", refer_type = "base" } } }, 10 },
  }

  it("issue 12.5: a duration the media decides is held at the endpoint's longest", function()
    for _, c in ipairs(CASES) do
      local endpoint, req, longest = c[1], c[2], c[3]
      local top = hold.ceiling(kling.endpoints[endpoint], req)
      assert.is_table(top, endpoint)
      assert.equal(longest, top.duration, endpoint)
      assert.is_nil(req.duration == longest or nil, endpoint) -- the client's request is not changed
      assert.is_true(estimate(top, endpoint) >= estimate(req, endpoint), endpoint)
    end
    -- avatar pro is 0.8 a second: 2 s declared held 1.6, the ceiling 240
    local avatar = CASES[1][2]
    assert.equal(240000000, estimate(hold.ceiling(kling.endpoints[CASES[1][1]], avatar), CASES[1][1]))
  end)

  it("issue 12.5: requests that say their own length have no other ceiling", function()
    assert.is_nil(hold.ceiling(kling.endpoints["videos/text2video"], { prompt = "p", duration = 5 }))
    assert.is_nil(hold.ceiling(kling.endpoints["videos/omni-video"], { prompt = "p", duration = 5,
      aspect_ratio = "16:9" }))
    assert.is_nil(hold.ceiling(kling.endpoints["videos/avatar/image2video"], { duration = 300 }))
    assert.is_nil(hold.ceiling(nil, { duration = 5 }))
  end)
end)

describe("gateway config and launcher (issue 12 review)", function()
  local config = require "kling.gateway.config"
  local launcher = require "kling.gateway.launcher"

  local function doc(base_url)
    return { upstream = { provider = "kling", base_url = base_url, api_key = "k" }, journal = "/tmp/j.jsonl",
      accounts = { { name = "a", api_key = "key-account-a", credit = "1" } } }
  end

  it("issue 12.3: an upstream base_url that nginx would read as syntax is refused naming the field", function()
    for _, u in ipairs { "http://127.0.0.1 max_fails=0;}server{listen 47123;return 200 x;}upstream u{server 127.0.0.1",
      "http://h;x", "http://h{", "http://h\nx", "http://user:pw@h", "http://h:0", "http://h:99999", "http://h:1x",
      "http://h/p?q=1", "http://h/p#f", "http://h/a b", "http://h/$x", "ftp://h", "http://-h", "http://",
      "https://h.example/v1/" } do -- the last: the provider's own prefix (requests went to /v1/v1/...)
      local ok, err = pcall(config.check, doc(u))
      assert.is_false(ok, u)
      assert.matches("upstream.base_url:", err, 1, true)
    end
    for _, u in ipairs { "http://127.0.0.1:8080", "https://api-singapore.klingai.com", "http://127.0.0.1:1/compat",
      "https://h.example/kling/", "http://localhost" } do
      assert.equal(u, config.check(doc(u)).upstream.base_url)
    end
  end)

  it("issue 12.3: a path written into nginx.conf with nginx syntax, a space or a control character is refused",
    function()
      for _, p in ipairs { "/tmp/g;error_log /tmp/pwned", "/tmp/a b", "/tmp/a\nb", "/tmp/{x}", "/tmp/$x", "/tmp/#",
        "/tmp/\"x", "/tmp/'x", "/tmp/a\\b", "/tmp/\tx" } do
        assert.matches("^%-%-dir: .* cannot be written into nginx.conf", launcher.conf_path_problem("--dir", p))
      end
      assert.is_nil(launcher.conf_path_problem("--dir", "/tmp/kling-gateway.Ab3_x-1/d.2@,+="))
      -- issue 14.1: the path is shown as the user wrote it, not with JSON's escaped slashes
      assert.matches('^%-%-dir: "/tmp/a b" cannot', launcher.conf_path_problem("--dir", "/tmp/a b"))
    end)

  it("issue 12.3: start refuses such a --dir or --ca-file before anything is made or started", function()
    local tmp = assert(io.popen("mktemp -d /tmp/kling-attack-spec.XXXXXX")):read("l")
    local cfg = tmp .. "/gateway.json"
    local f = assert(io.open(cfg, "w"))
    f:write(require("kling.json").encode(doc("http://127.0.0.1:9")))
    f:close()
    local dir = tmp .. "/g;error_log " .. tmp .. "/pwned"
    local info, err = launcher.start { config = cfg, dir = dir }
    assert.is_nil(info)
    assert.matches("--dir: ", err, 1, true)
    info, err = launcher.start { config = cfg, dir = tmp .. "/gw", ca_file = "/etc/ssl/x.pem;include /etc/passwd" }
    assert.is_nil(info)
    assert.matches("--ca-file: ", err, 1, true)
    local ls = assert(io.popen("ls -A " .. tmp)):read("a")
    os.execute("rm -rf " .. tmp)
    assert.equal("gateway.json\n", ls)
  end)

  -- A --ca-file that is not there failed only as nginx's start error (exit 1), after D was made.
  it("start refuses a --ca-file it cannot read as bad usage (exit 2), naming the flag, nothing made", function()
    local tmp = assert(io.popen("mktemp -d /tmp/kling-attack-spec.XXXXXX")):read("l")
    local cfg = tmp .. "/gateway.json"
    local f = assert(io.open(cfg, "w"))
    f:write(require("kling.json").encode(doc("http://127.0.0.1:9")))
    f:close()
    local info, err, kind = launcher.start { config = cfg, dir = tmp .. "/gw", ca_file = tmp .. "/missing.pem" }
    assert.is_nil(info)
    assert.equal("usage", kind)
    assert.matches("^%-%-ca%-file: " .. tmp:gsub("%p", "%%%0") .. "/missing%.pem cannot be read: ", err)
    local p = assert(io.popen("lua5.4 bin/kling gateway start --config " .. cfg .. " --dir " .. tmp .. "/gw2 --ca-file "
      .. tmp .. "/missing.pem 2>&1; echo \"exit $?\""))
    local out = p:read("a")
    p:close()
    local ls = assert(io.popen("ls -A " .. tmp)):read("a")
    os.execute("rm -rf " .. tmp)
    assert.matches("^kling gateway: %-%-ca%-file: .* cannot be read: .*\nexit 2\n$", out)
    assert.equal("gateway.json\n", ls)
  end)
end)

describe("gateway auth (issue 12 review)", function()
  local auth = require "kling.gateway.auth"
  local core = require "kling.core"
  local json = require "kling.json"

  local ACCOUNTS = {
    by_access = function(_, ak)
      return ({ ["bob-ak"] = { name = "bob", secret_key = "bob-sk" },
        ["eve-ak"] = { name = "eve", secret_key = "eve-sk" } })[ak]
    end,
    by_key = function()
      return nil
    end,
  }
  local NOW = 1800000000

  local function token(header, claims, secret)
    local h = core.b64url_encode(header)
    local p = core.b64url_encode(claims)
    return "Bearer " .. h .. "." .. p .. "." .. core.b64url_encode(core.hmac_sha256(secret, h .. "." .. p))
  end

  it("issue 12.1: JSON's numbers only: NaN, Infinity and hex are not read", function()
    for _, s in ipairs { '{"exp":NaN}', '{"exp":Infinity}', '{"exp":-Infinity}', '{"duration":0xA}' } do
      assert.is_nil(json.decode(s), s)
    end
    assert.equal(1000, json.decode('{"a":1e3}').a)
  end)

  it("issue 12.1: a signed token whose exp is NaN is refused (it never expired)", function()
    local acct, err = auth.account(ACCOUNTS, token('{"alg":"HS256","typ":"JWT"}', '{"iss":"bob-ak","exp":NaN}',
      "bob-sk"), NOW)
    assert.is_nil(acct)
    assert.equal(1002, err.code)
  end)

  it("issue 12.1: alg none, another account's iss, expired and future tokens are refused", function()
    local good = '{"iss":"bob-ak","exp":' .. (NOW + 60) .. ',"nbf":' .. (NOW - 5) .. '}'
    assert.equal("bob", auth.account(ACCOUNTS, token('{"alg":"HS256"}', good, "bob-sk"), NOW).name)
    local cases = {
      { token('{"alg":"none"}', good, "bob-sk"), 1002 },
      { token('{"alg":"HS256"}', '{"iss":"eve-ak","exp":' .. (NOW + 60) .. '}', "bob-sk"), 1002 },
      { token('{"alg":"HS256"}', '{"iss":"bob-ak","exp":' .. NOW .. '}', "bob-sk"), 1004 },
      { token('{"alg":"HS256"}', '{"iss":"bob-ak"}', "bob-sk"), 1002 }, -- no exp: invalid, not expired
      { token('{"alg":"HS256"}', '{"iss":"bob-ak","exp":' .. (NOW + 60) .. ',"nbf":' .. (NOW + 60) .. '}', "bob-sk"),
        1003 },
      { "Bearer " .. string.rep("a", 5000), 1002 },
    }
    for i, c in ipairs(cases) do
      local acct, err = auth.account(ACCOUNTS, c[1], NOW)
      assert.is_nil(acct, i)
      assert.equal(c[2], err.code, i)
    end
  end)
end)

describe("what an ended task keeps of its request (kling.gateway.follows source_form)", function()
  it("keeps every field, a long string as a note of its length: an extend is priced by it, 20 MB creates"
    .. " are not kept 30 days", function()
    local follows = require "kling.gateway.follows"
    local json = require "kling.json"
    local req = json.decode('{"endpoint":"videos/text2video","model":"kling-v1-6","mode":"pro","prompt":"'
      .. ("p"):rep(300) .. '","image_list":[{"image":"' .. ("A"):rep(5000) .. '"}],"n":1,"camera_control":{}}')
    local kept = follows.source_form(req)
    assert.are.same({ endpoint = "videos/text2video", model = "kling-v1-6", mode = "pro", prompt = "(300 bytes)",
      image_list = { { image = "(5000 bytes)" } }, n = 1, camera_control = {} }, kept)
    assert.are.equal('[{"image":"(5000 bytes)"}]', json.encode(kept.image_list)) -- an array stays one
    assert.is_nil(follows.source_form(nil))
  end)
end)

describe("an upstream id the upstream hands out twice (attacker review, stop 32)", function()
  local owners = require "kling.gateway.owners"
  it("stays the account's that was shown it first (one node: add, not set)", function()
    local store, logged = {}, {}
    local dict = { get = function(_, k) return store[k] end }
    local G = { cfg = { retention_days = 1 }, tasks = { dict = dict, shm = { write = function(_, how, k, v)
      assert.are.equal("safe_add", how)
      if store[k] then
        return false, "exists"
      end
      store[k] = v
      return true
    end } } }
    local saved = rawget(_G, "ngx")
    rawset(_G, "ngx", { WARN = 5, log = function(_, ...) logged[#logged + 1] = table.concat({ ... }) end })
    local ok, err = pcall(function()
      assert(owners.record(G, { id = "gw1", account = "alice", upstream_id = "DUP1",
        result = { videos = { { id = "85DUP" } } } }))
      assert(owners.record(G, { id = "gw2", account = "bob", upstream_id = "DUP1",
        result = { videos = { { id = "85DUP" } } } }))
      assert(owners.record(G, { id = "gw1", account = "alice", upstream_id = "DUP1" })) -- its own again: quiet
    end)
    rawset(_G, "ngx", saved)
    assert(ok, err)
    assert.are.equal("alice|gw1", store["o:DUP1"])
    assert.are.equal("alice|gw1", store["o:85DUP"])
    assert.are.equal(2, #logged)
    assert.matches("stays theirs", logged[1])
    -- A restart replays a compacted journal, whose ended tasks come in no order of their ends:
    -- the one that ended first still keeps the id.
    for k in pairs(store) do
      store[k] = nil
    end
    local now_ms = 1796600000000
    rawset(_G, "ngx", { WARN = 5, log = function() end, time = function() return now_ms // 1000 end })
    ok, err = pcall(function()
      assert(owners.restore(G, {
        { op = "task", record = { id = "gw2", account = "bob", final = true, updated_at = now_ms - 1000,
          upstream_id = "DUP1" } },
        { op = "task", record = { id = "gw1", account = "alice", final = true, updated_at = now_ms - 5000,
          upstream_id = "DUP1" } },
      }))
    end)
    rawset(_G, "ngx", saved)
    assert(ok, err)
    assert.are.equal("alice|gw1", store["o:DUP1"])
  end)
end)

describe("an upstream id named as a JSON number (issue 12 review)", function()
  local owners = require "kling.gateway.owners"
  it("is looked up in its digits, as owners are recorded, never as tostring's exponent form", function()
    assert.are.equal("860000000000000000", owners.id_text(8.6e17))
    assert.are.equal("860000000000000000", owners.id_text("860000000000000000"))
    assert.are.equal("12", owners.id_text(12))
    assert.are.equal("1.5", owners.id_text(1.5)) -- not an id: the request's check refuses it
  end)
end)

describe("an id a client names in another form than ids are handed out (owners.id_problem)", function()
  local owners = require "kling.gateway.owners"
  it("is refused: the upstream may read 0851..., +851... or ' 851...' as another account's 851...", function()
    for _, id in ipairs { "851796586942000002", "0", "kling_narrator_en", "reader_en_m-v1", "gw0123abcd",
      "0a1b2c3d-e89b-12d3", "829826751244537879" } do
      assert.is_nil(owners.id_problem(id), id)
    end
    for _, id in ipairs { "0851796586942000002", "+851796586942000002", " 851796586942000002",
      "851796586942000002 ", "-851", "00", "0x353", "851e0", "8_51", "851.0", "85\n1", "", ("1"):rep(257) } do
      assert.is_string(owners.id_problem(id), id)
    end
  end)
  it("foreign refuses one before anything is looked up, naming the field (owned ids or not)", function()
    local looked = 0
    local saved = rawget(_G, "ngx")
    rawset(_G, "ngx", { shared = { [owners.DICT] = { get = function(_, k)
      looked = looked + 1
      return k == "o:851796586942000002" and "bob|gw1" or nil
    end } } })
    local ok, err = pcall(function()
      local G = { cfg = {} }
      for _, req in ipairs { { video_id = "0851796586942000002" }, { video_id = "+851796586942000002" },
        { audio_id = " 851796586942000002" }, { face_choose = { { face_id = "0", audio_id = "0851" } } } } do
        local field, id, err, why = owners.foreign(G, "alice", req)
        assert.is_nil(err)
        assert.is_string(why)
        assert.is_true(field == "video_id" or field == "audio_id", tostring(field))
        assert.is_string(id)
      end
      assert.are.equal(0, looked)
      assert.are.equal("video_id", (owners.foreign(G, "alice", { video_id = "851796586942000002" })))
      assert.is_nil(owners.foreign(G, "bob", { video_id = "851796586942000002", voice_list = {
        { voice_id = "kling_narrator_en" } } }))
    end)
    rawset(_G, "ngx", saved)
    assert(ok, err)
  end)
end)
