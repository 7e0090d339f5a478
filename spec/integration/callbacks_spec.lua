-- Callbacks end to end: a throwaway nginx receives the simulator's official callbacks (the
-- top-level task object on each status change, with nobody polling), which verify with
-- kling.webhook and parse into the same canonical task as a poll; unsigned, tampered or
-- foreign ones are refused. The sender (kling_sim.callbacks) is also driven directly inside
-- the same throwaway nginx: retry schedule, give-up, timeouts, both kinds of secret.
local sim = require "support.sim"
local nginx = require "support.nginx"
local socket = require "socket"
local json = require "kling.json"
local core = require "kling.core"
local webhook = require "kling.webhook"

local SECRET = "whsec_" .. core.b64encode("callbacks spec signing key, 32 b")

-- /hook/ok/<tag> answers 200; /hook/flaky/<tag> answers 500 to the first two deliveries of
-- each body; /hook/down/<tag> always 503; /hook/slow/<tag> waits 2 s. /received lists all.
local RECEIVER = [[
    location /hook/ {
      content_by_lua_block {
        local dict = ngx.shared.received
        ngx.req.read_body()
        local body = ngx.req.get_body_data() or ""
        local mode = ngx.var.uri:match("^/hook/(%w+)")
        local n = dict:incr("hits:" .. ngx.var.uri .. ngx.md5(body), 1, 0)
        local seq = dict:incr("seq", 1, 0)
        dict:set("r:" .. seq, require("cjson").encode { uri = ngx.var.uri, body = body, n = n, t = ngx.now(),
          headers = ngx.req.get_headers(), method = ngx.req.get_method() })
        if mode == "slow" then ngx.sleep(2) end
        if (mode == "flaky" and n <= 2) or mode == "down" then
          ngx.status = mode == "down" and 503 or 500
          return ngx.say("not now")
        end
        ngx.say("ok")
      }
    }
    location = /received {
      content_by_lua_block {
        local dict, out = ngx.shared.received, {}
        for i = 1, dict:get("seq") or 0 do
          out[#out + 1] = dict:get("r:" .. i)
        end
        ngx.say("[" .. table.concat(out, ",") .. "]")
      }
    }
    location = /schedule {
      content_by_lua_block {
        ngx.req.read_body()
        local o = require("cjson").decode(ngx.req.get_body_data())
        local id, err = require("kling_sim.callbacks").schedule(o)
        ngx.say(require("cjson").encode { id = id or ngx.null, error = err or ngx.null })
      }
    }
    location = /attempts {
      content_by_lua_block {
        ngx.say(require("kling.json").encode(require("kling_sim.callbacks").recent(1000)))
      }
    }
]]

local srv, http

local function get(url, method, body)
  local res = http:request { method = method or "GET", url = url, body = body,
    headers = body and { ["content-type"] = "application/json" } or nil }
  assert(res.ok and res.status == 200, "request to " .. url .. " failed: " .. tostring(res.message or res.status))
  return json.decode(res.body)
end

-- The entries of the receiver's list at `path` whose `field` is `value`, oldest first.
local function listed(path, field, value)
  local out = {}
  for _, r in ipairs(get(srv.url .. path)) do
    if r[field] == value then
      out[#out + 1] = r
    end
  end
  return out
end

-- The receiver's requests whose uri is `uri`.
local function received(uri)
  return listed("/received", "uri", uri)
end

-- Waits until pred() is true (at most `seconds`), without touching the simulator's API.
local function eventually(seconds, pred)
  local deadline = socket.gettime() + seconds
  while socket.gettime() < deadline do
    local v = pred()
    if v then
      return v
    end
    socket.sleep(0.05)
  end
  return pred()
end

-- The callbacks received at uri once the last of them reports task_status (within 10 s), or nil.
local function callbacks_until(uri, task_status)
  return eventually(10, function()
    local l = received(uri)
    return #l > 0 and json.decode(l[#l].body).task_status == task_status and l
  end)
end

local function statuses(list)
  local out = {}
  for i, r in ipairs(list) do
    out[i] = json.decode(r.body).task_status
  end
  return out
end

-- The canonical fields two readings of one task must share (raw bytes, the endpoint and the
-- request id belong to the reading, not the task).
local function canonical(t)
  local out = {}
  for k, v in pairs(t) do
    if k ~= "raw" and k ~= "endpoint" and k ~= "request_id" and k ~= "client" and k ~= "request" then
      out[k] = v
    end
  end
  return out
end

describe("official callbacks", function()
  local client

  setup(function()
    http = core.http { timeout_ms = 10000 }
    srv = nginx.start(RECEIVER, { http = "lua_shared_dict received 8m; lua_shared_dict kling_sim_log 4m;\n" })
    sim.reset()
    sim.config { task_seconds = 1, webhook_secret = SECRET }
    client = sim.client()
  end)

  teardown(function()
    sim.config { webhook_secret = "", task_seconds = 1 }
    if srv then
      srv.stop()
    end
  end)

  it("arrive signed on each status change with nobody polling, and parse into the polled task", function()
    local uri = "/hook/ok/signed"
    local t = assert(client:submit { prompt = "a kite over dunes", callback_url = srv.url .. uri })
    local list = callbacks_until(uri, "succeed")
    assert(list, "no succeed callback arrived")
    -- the simulator advanced the task by itself: nobody asked for it meanwhile
    assert.is_nil(sim.stats().by_route["GET /v1/videos/text2video/{id}"])
    assert.are.same({ "submitted", "processing", "succeed" }, statuses(list))
    local last
    for _, r in ipairs(list) do
      assert.are.equal("POST", r.method)
      assert.are.equal("application/json", r.headers["content-type"])
      local doc = json.decode(r.body)
      assert.is_nil(doc.code) -- the task object itself, not the {code, data} envelope
      assert.are.equal(t.id, doc.task_id)
      assert.are.equal(t.external_task_id, doc.task_info.external_task_id)
      last = assert(webhook.parse("kling", r.body, r.headers, { secret = SECRET }))
    end
    local polled = assert(client:get_task(t.id))
    assert.are.same(canonical(polled), canonical(last))
    assert.are.equal("succeeded", last.status)
    assert.are.equal("1", last.charge)
    -- the same bytes refused when tampered with, unsigned, or checked with another key
    local r = list[#list]
    local _, err = webhook.parse("kling", r.body:gsub("succeed", "failed"), r.headers, { secret = SECRET })
    assert.are.equal("auth", err.kind)
    _, err = webhook.parse("kling", r.body, { ["content-type"] = "application/json" }, { secret = SECRET })
    assert.are.equal("auth", err.kind)
    assert.matches("unsigned", err.message)
    _, err = webhook.parse("kling", r.body, r.headers, { secret = "whsec_" .. core.b64encode("not the key") })
    assert.are.equal("auth", err.kind)
  end)

  it("report a failed task with its message", function()
    local uri = "/hook/ok/failed"
    local t = assert(client:submit { prompt = "x [sim:fail=the lighthouse was refused]",
      callback_url = srv.url .. uri })
    local list = callbacks_until(uri, "failed")
    assert(list, "no failed callback arrived")
    local f = assert(webhook.parse("kling", list[#list].body, list[#list].headers, { secret = SECRET }))
    assert.are.equal(t.id, f.id)
    assert.are.equal("failed", f.status)
    assert.are.equal("the lighthouse was refused", f.message)
  end)

  it("issue 10.8: only the statuses [sim:callbacks=...] names are called back: the others are lost", function()
    local uri = "/hook/ok/only-processing"
    assert(client:submit { prompt = "x [sim:seconds=0.5] [sim:callbacks=processing]", callback_url = srv.url .. uri })
    local list = callbacks_until(uri, "processing")
    assert(list, "no processing callback arrived")
    socket.sleep(1) -- the task has ended meanwhile: its end's callback is lost, not late
    assert.are.same({ "processing" }, statuses(received(uri)))
  end)

  it("are retried on the schedule (1 s, 2 s) until a 2xx, with one webhook-id per message", function()
    local uri = "/hook/flaky/retry"
    local t = assert(client:submit { prompt = "x [sim:seconds=0.5]", callback_url = srv.url .. uri })
    -- Each message sent is delivered on its third try, the end's included. How many messages
    -- there are depends on the sender's 0.1 s passes: on a loaded machine a late pass sees
    -- the task already past `processing` and sends no message for it (as Kling may).
    local sent -- distinct statuses called back
    local list = eventually(30, function()
      local l = received(uri)
      local tries, ended = {}, false
      for _, r in ipairs(l) do
        local status = json.decode(r.body).task_status
        tries[status] = math.max(tries[status] or 0, r.n)
        ended = ended or status == "succeed"
      end
      sent = 0
      for _, n in pairs(tries) do
        if n < 3 then
          return false
        end
        sent = sent + 1
      end
      return ended and l
    end)
    assert(list, "the retried callbacks did not all arrive")
    assert.is_true(sent >= 2, "only " .. sent .. " message(s)") -- at least the first status seen and the end
    local attempts = {}
    for _, a in ipairs(sim.admin("GET", "/_sim/callbacks?n=1000")) do
      if a.meta and a.meta.task_id == t.id then
        attempts[a.id] = attempts[a.id] or {}
        table.insert(attempts[a.id], a)
      end
    end
    local messages = 0
    for id, list_of in pairs(attempts) do
      messages = messages + 1
      assert.are.equal(3, #list_of, id)
      assert.are.same({ 500, 500, 200 }, { list_of[1].status, list_of[2].status, list_of[3].status })
      assert.are.same({ false, false, true }, { list_of[1].final, list_of[2].final, list_of[3].final })
      assert.is_true(list_of[3].delivered)
      local gap1 = (list_of[2].time_ms - list_of[1].time_ms) / 1000
      local gap2 = (list_of[3].time_ms - list_of[2].time_ms) / 1000
      assert.is_true(gap1 >= 0.9 and gap1 < 1.8, "first retry after " .. gap1 .. " s")
      assert.is_true(gap2 >= 1.9 and gap2 < 2.8, "second retry after " .. gap2 .. " s")
      for _, a in ipairs(list_of) do
        assert.are.equal(id, a.headers["webhook-id"])
      end
    end
    assert.are.equal(sent, messages)
  end)

  it("are unsigned when no secret is set, and then refused by a receiver that expects one", function()
    sim.config { webhook_secret = "" }
    local uri = "/hook/ok/unsigned"
    assert(client:submit { prompt = "x [sim:seconds=0.2]", callback_url = srv.url .. uri })
    local list = callbacks_until(uri, "succeed")
    assert(list, "no callback arrived")
    local r = list[#list]
    assert.is_nil(r.headers["webhook-signature"])
    assert(webhook.parse("kling", r.body, r.headers))
    local _, err = webhook.parse("kling", r.body, r.headers, { secret = SECRET })
    assert.are.equal("auth", err.kind)
    sim.config { webhook_secret = SECRET }
  end)

  it("are signed from the start with kling sim start --webhook-secret", function()
    local dir = nginx.tempdir()
    local secret = "whsec_" .. core.b64encode("started with a webhook secret!!!")
    local cmd = "lua5.4 bin/kling sim start --dir " .. dir .. " --task-seconds 0.2 --webhook-secret " .. secret
    local p = assert(io.popen(cmd .. " 2>&1"))
    local line = p:read("a")
    p:close()
    local info = assert(json.decode(line), line)
    local ok, err = pcall(function()
      assert.are.equal(secret, info.webhook_secret)
      local c = sim.client { base_url = info.http, access_key = info.access_key, secret_key = info.secret_key }
      local uri = "/hook/ok/flag"
      assert(c:submit { prompt = "flag", callback_url = srv.url .. uri })
      local list = callbacks_until(uri, "succeed")
      assert(list, "no callback from the second simulator")
      assert(webhook.parse("kling", list[#list].body, list[#list].headers, { secret = secret }))
    end)
    os.execute("lua5.4 bin/kling sim stop --dir " .. dir .. " >/dev/null 2>&1; rm -rf " .. dir)
    assert(ok, err)
  end)
end)

describe("the callback sender", function()
  setup(function()
    http = http or core.http { timeout_ms = 10000 }
    srv = nginx.start(RECEIVER, { http = "lua_shared_dict received 8m; lua_shared_dict kling_sim_log 4m;\n" })
  end)

  teardown(function()
    srv.stop()
  end)

  local function schedule(o)
    return get(srv.url .. "/schedule", "POST", assert(json.encode(o)))
  end

  local function attempts_of(id)
    return listed("/attempts", "id", id)
  end

  it("gives up after the last retry of its schedule", function()
    local r = schedule { url = srv.url .. "/hook/down/x", body = '{"a":1}', schedule_s = { 0.1, 0.2, 0.3 } }
    local list = eventually(5, function()
      local l = attempts_of(r.id)
      return #l == 4 and l[4].final and l
    end)
    assert(list, "the sender did not make 4 attempts")
    for i, a in ipairs(list) do
      assert.are.equal(503, a.status)
      assert.is_false(a.delivered)
      assert.are.equal(i == 4, a.final)
    end
    socket.sleep(0.5)
    assert.are.equal(4, #attempts_of(r.id))
  end)

  it("signs with a whsec_ secret and with a raw one, as the C verifier reads them", function()
    for _, secret in ipairs { SECRET, "a raw secret, not base64" } do
      local tag = secret == SECRET and "whsec" or "raw"
      local r = schedule { url = srv.url .. "/hook/ok/" .. tag, body = '{"task_id":"1"}', sign_secret = secret,
        headers = { ["X-Extra"] = "yes" } }
      local got = eventually(5, function()
        return received("/hook/ok/" .. tag)[1]
      end)
      assert(got, "nothing arrived for " .. tag)
      assert.are.equal(r.id, got.headers["webhook-id"])
      assert.are.equal("yes", got.headers["x-extra"])
      assert(core.webhook_verify { secret = secret, id = got.headers["webhook-id"],
        timestamp = got.headers["webhook-timestamp"], signature = got.headers["webhook-signature"], body = got.body,
        now_s = core.wall_s() })
    end
  end)

  it("bounds an attempt by timeout_s and retries it", function()
    local r = schedule { url = srv.url .. "/hook/slow/x", body = "{}", schedule_s = { 0.1 }, timeout_s = 0.3 }
    local list = eventually(5, function()
      local l = attempts_of(r.id)
      return #l == 2 and l
    end)
    assert(list, "two attempts expected")
    assert.matches("timeout", list[1].error)
    assert.is_true(list[1].elapsed_ms < 1500)
  end)

  it("refuses what it cannot send, naming the argument", function()
    local cases = {
      { { url = "ftp://x/y", body = "{}" }, "http" },
      { { url = srv.url .. "/hook/ok/x", body = 5 }, "body" },
      { { url = srv.url .. "/hook/ok/x", body = "{}", schedule_s = { -1 } }, "schedule_s%[1%]" },
      { { url = srv.url .. "/hook/ok/x", body = "{}", timeout_s = 0 }, "timeout_s" },
      { { url = srv.url .. "/hook/ok/x", body = "{}", sign_secret = "whsec_!!" }, "sign_secret" },
      { { url = srv.url .. "/hook/ok/x", body = "{}", headers = { ["Bad Name"] = "x" } }, "headers" },
    }
    for _, c in ipairs(cases) do
      local r = schedule(c[1])
      assert.are.equal(json.null, r.id)
      assert.matches(c[2], r.error)
    end
  end)
end)
