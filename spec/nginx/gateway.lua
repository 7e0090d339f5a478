-- The metering gateway (examples/nginx) in real nginx with ONE worker, in front of a
-- simulator of its own over HTTPS: its clients' keys and JWTs, refusals before forwarding
-- (bad requests, balances too low: the simulator sees nothing), no blocking while an
-- upstream call stalls, a mixed run (successes, failures, a synchronous call, a create whose
-- answer is lost) whose ledger reconciles with the simulator's, callbacks verified both
-- ways, a reload (HUP) and a restart that keep the ledger and finish the tasks in flight.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local core = require "kling.core"
local json = require "kling.json"
local billing = require "kling.billing"

local SIM_SECRET = "whsec_" .. core.b64encode("simulator-to-gateway-secret")
local CLIENT_SECRET = "whsec_" .. core.b64encode("gateway-to-client-secret")
local PROMPT = "a paper boat on a rain-soaked street"

local base, sim_dir, prefix = h.dirs("gateway")
local srv, sim, port

local function cleanup()
  h.tidy(base, sim_dir, srv)
end

local function url(path)
  return "http://127.0.0.1:" .. port .. path
end

-- A request to the gateway as one of its clients.
local function gw(method, path, o)
  o = o or {}
  local headers = o.headers or {}
  if o.key then
    headers.authorization = "Bearer " .. o.key
  end
  return h.request(method, url(path), { headers = headers, body = o.body, timeout_ms = o.timeout_ms })
end

local ADMIN_KEY = "gw-admin-key-0123456789"

local function admin_call(method, path, body, key)
  return h.request(method, url("/gateway/admin" .. path), { body = body,
    headers = { authorization = "Bearer " .. (key or ADMIN_KEY) } })
end

local function admin()
  return h.gateway_admin(url(""), ADMIN_KEY)
end

local function sim_stats()
  return h.sim_admin(sim, "GET", "/_sim/stats")
end

-- A refusal in the official envelope {code, message, request_id}, as every refusal of the gateway.
local function refused(res, status, code)
  return res.status == status and res.json ~= nil and res.json.code == code and type(res.json.message) == "string"
    and type(res.json.request_id) == "string" and (res.headers["content-type"] or ""):find("application/json", 1, true)
    ~= nil
end

local micros = h.micros

local function create(key, endpoint, body)
  return gw("POST", "/v1/" .. endpoint, { key = key, body = body })
end

-- Polls the gateway (its own table: free) until the task ends.
local function wait_end(key, endpoint, id, timeout)
  local limit = h.now() + (timeout or 30)
  local last
  while h.now() < limit do
    local res = gw("GET", "/v1/" .. endpoint .. "/" .. id, { key = key })
    last = res.json and res.json.data
    if last and (last.task_status == "succeed" or last.task_status == "failed") then
      return last
    end
    h.sleep(0.2)
  end
  return nil, last
end

local ACCOUNTS = {
  { name = "alice", api_key = "gw-alice-key", credit = "1000" },
  { name = "bob", access_key = "gw-bob-ak", secret_key = "gw-bob-sk", credit = "50" },
  { name = "poor", api_key = "gw-poor-key", credit = "1" },
}

local function write_config(accounts)
  h.write(prefix .. "/gateway.json", json.encode {
    upstream = { provider = "kling", base_url = "https://localhost:" .. sim.https:match(":(%d+)$"),
      access_key = sim.access_key, secret_key = sim.secret_key, timeout = 30 },
    callback_url = url("/kling/callback"), webhook_secret = SIM_SECRET, client_webhook_secret = CLIENT_SECRET,
    journal = prefix .. "/ledger.jsonl", admin_key = ADMIN_KEY,
    allow_private_callbacks = true, -- the test's receiver is on loopback
    poll = { min_interval = 0.3, max_interval = 1, silence = 2, lookups = 3 },
    accounts = accounts,
  })
end

local function start_nginx()
  local conf = h.conf_head(prefix) .. "http {\n  access_log off;\n"
    .. h.lua_paths()
    .. h.temp_paths(prefix) .. ([[
  lua_ssl_trusted_certificate %s;
  lua_ssl_verify_depth 3;
  lua_shared_dict receiver 1m;
  include %s/examples/nginx/http.conf;
  server {
    listen 127.0.0.1:%d;
    include %s/examples/nginx/server.conf;
    # The gateway's clients' own callback receiver, for the test.
%s
    # A client's receiver that never answers in time (the gateway gives up after 10 s).
    location = /stall {
      content_by_lua_block { ngx.sleep(12) ngx.say("late") }
    }
  }
}
]]):format(sim.ca_file, h.src, port, h.src, h.receiver_locations())
  srv = h.nginx_start(prefix, conf, port)
end

local function run()
  sim = h.sim_start(sim_dir, { task_seconds = 1, webhook_secret = SIM_SECRET })
  port = h.free_port()
  write_config(ACCOUNTS)
  start_nginx()

  -- ---- who may call ----
  local body = { model_name = "kling-v1", mode = "std", duration = "5", prompt = PROMPT }
  local res = create(nil, "videos/text2video", body)
  h.check("no Authorization: 401 with code 1001", res.status == 401 and res.json.code == 1001, res.body)
  res = create("nobody", "videos/text2video", body)
  h.check("an unknown key: 401 with code 1002", res.status == 401 and res.json.code == 1002, res.body)
  local now = math.floor(core.wall_s())
  local jwt = core.jwt_hs256("gw-bob-ak", "gw-bob-sk", now, 1800)
  res = gw("GET", "/gateway/balance", { key = jwt })
  h.check("a JWT signed with the account's secret key is bob", res.status == 200 and res.json.data.account == "bob",
    res.body)
  res = gw("GET", "/gateway/balance", { key = core.jwt_hs256("gw-bob-ak", "gw-bob-sk", now - 4000, 1800) })
  h.check("an expired JWT: 401 with code 1004", res.status == 401 and res.json.code == 1004, res.body)
  res = gw("GET", "/gateway/balance", { key = core.jwt_hs256("gw-bob-ak", "not-the-secret", now, 1800) })
  h.check("a JWT signed with another secret: 401 with code 1002", res.status == 401 and res.json.code == 1002, res.body)

  -- ---- the admin API: loopback and admin_key; accounts and top-ups without a reload ----
  res = h.request("GET", url("/gateway/admin"))
  h.check("issue 12.1: the admin API without admin_key is refused (401)", res.status == 401, res.body)
  res = admin_call("GET", "", nil, "gw-admin-key-0123456788")
  h.check("issue 12.1: ... and with a wrong key (401)", res.status == 401, res.body)
  res = admin_call("POST", "/accounts", { name = "carol", api_key = "gw-carol-key", credit = "2", colour = "red" })
  h.check("issue 12.1: an account with an unknown field is refused by name", res.status == 400
    and res.json.error:find("colour", 1, true), res.body)
  res = admin_call("POST", "/accounts", { name = "carol", api_key = "gw-alice-key", credit = "2" })
  h.check("issue 12.1: an account with another's key is refused", res.status == 409, res.body)
  h.check("issue 12.1: ... its message names the field, as every other refusal of the admin API does",
    res.json.field == "api_key" and res.json.error:find("^api_key: ") ~= nil, res.body)
  -- an account holding the webhook secret would sign the upstream's callbacks: end others' tasks unpaid
  for _, secret in ipairs { SIM_SECRET, SIM_SECRET:sub(7), CLIENT_SECRET } do
    res = admin_call("POST", "/accounts", { name = "carol", api_key = secret, credit = "2" })
    h.check("an account whose api_key is a webhook secret (or its bare key) is refused, 409 naming api_key",
      res.status == 409 and res.json.field == "api_key" and res.json.error:find("webhook_secret", 1, true) ~= nil,
      res.body)
  end
  res = admin_call("POST", "/accounts", { name = "carol", api_key = "gw-bob-ak", credit = "2" })
  h.check("issue 12.1: an account whose api_key is another's (public) access_key is refused", res.status == 409
    and res.json.field == "api_key", res.body)
  res = admin_call("POST", "/accounts", { name = "carol", api_key = "gw-carol-key", credit = "2" })
  h.check("issue 12.1: the admin API creates an account without a reload", res.status == 201
    and res.json.balance == "2", res.body)
  res = gw("GET", "/gateway/balance", { key = "gw-carol-key" })
  h.check("issue 12.1: ... which can call at once", res.status == 200 and res.json.data.account == "carol", res.body)
  res = admin_call("POST", "/accounts/carol/topup", { amount = "3.5" })
  h.check("issue 12.1: a top-up adds credit without a reload", res.status == 200 and res.json.balance == "5.5"
    and res.json.limit == "5.5", res.body)
  h.check("the admin API shows an account's amounts as exact decimal strings only (no float micro-units)",
    res.json.balance_micros == nil and res.json.limit_micros == nil and not res.body:find("_micros", 1, true),
    res.body)
  res = admin_call("POST", "/accounts/carol/topup", { amount = "9007199254.740992" })
  h.check("a top-up of 2^53 micro-units is refused for the most a store holds, not as no amount",
    res.status == 400 and res.json.field == "amount" and res.json.error:find("would pass 9007199254.740992", 1, true),
    res.body)
  res = admin_call("POST", "/accounts/carol/topup", { amont = "1" })
  h.check("issue 12.1: a top-up with an unknown field is refused naming it and the closest known one",
    res.status == 400 and res.json.field == "amont" and res.json.error:find("did you mean amount", 1, true), res.body)

  -- ---- refused before forwarding ----
  local before = sim_stats()
  res = create("gw-alice-key", "videos/text2video", { model_name = "kling-v1", duration = "7", prompt = PROMPT })
  h.check("a request breaking a documented rule: 400 with code 1201 naming the field",
    res.status == 400 and res.json.code == 1201 and res.json.message:find("duration", 1, true), res.body)
  -- A field the gateway refuses itself (before the library's checks) is a field error too, as the
  -- official API's and the simulator's: 1201; 1200 is for a body that is not a JSON object.
  res = create("gw-alice-key", "videos/text2video", { model_name = "kling-v1", duration = "5", prompt = PROMPT,
    base_url = "http://evil.example" })
  h.check("a field the official API does not have: 400 with code 1201 naming it",
    res.status == 400 and res.json.code == 1201 and res.json.message:find("^base_url: ") ~= nil, res.body)
  res = create("gw-alice-key", "videos/text2video", { model_name = "kling-v1", duration = "5", prompt = PROMPT,
    image_tail = "https://example.com/end.png" })
  h.check("a refused field is named as the client spelled it (image_tail, not last_image)",
    res.status == 400 and res.json.code == 1201 and res.json.message:find("^image_tail: ") ~= nil, res.body)
  for _, array in ipairs { { "a JSON array" }, json.array {} } do
    res = create("gw-alice-key", "videos/text2video", array)
    h.check("a body that is not a JSON object (" .. json.encode(array) .. "): 400 with code 1200",
      res.status == 400 and res.json.code == 1200 and res.json.message:find("JSON object", 1, true) ~= nil, res.body)
  end
  res = create("gw-poor-key", "videos/text2video", { model_name = "kling-v1", mode = "pro", duration = "5",
    prompt = PROMPT })
  h.check("a client whose balance (1) cannot hold the estimate (3.5): 429 with code 1101",
    res.status == 429 and res.json.code == 1101, res.body)
  -- a path on the gateway's host (a real PNG there) is data from the network: never read
  res = create("gw-alice-key", "videos/image2video", { model_name = "kling-v1", duration = "5", prompt = PROMPT,
    image = sim_dir .. "/media/sample.png" })
  local msg = res.json and res.json.message or ""
  h.check("issue 14: an image given as a path on the gateway's host is refused (400, 1201, naming image), not read",
    res.status == 400 and res.json.code == 1201 and msg:find("^image") ~= nil
    and msg:find("URL or base64", 1, true) ~= nil and not msg:find("local file", 1, true), res.body)
  local after = sim_stats()
  h.check("the simulator saw none of these requests",
    after.requests == before.requests and after.creates == before.creates,
    json.encode { before.requests, after.requests })
  h.check("and the refused client's balance did not move", admin().by.poor.balance == "1", admin().by.poor.balance)
  local fit = create("gw-poor-key", "videos/text2video", { model_name = "kling-v1", mode = "std", duration = "5",
    prompt = PROMPT })
  h.check("an estimate that fits the balance exactly (1 of 1) is forwarded", fit.status == 200, fit.body)
  res = create("gw-poor-key", "videos/text2video", { model_name = "kling-v1", mode = "std", duration = "5",
    prompt = PROMPT })
  h.check("... and the next one is refused while it is held", res.status == 429 and res.json.code == 1101, res.body)
  h.check("only that one create reached the simulator", sim_stats().creates == after.creates + 1, sim_stats().creates)

  -- ---- no blocking: one upstream call stalls for 5 s, the worker answers everyone else ----
  local alice = "gw-alice-key"
  local first = create(alice, "videos/text2video", { model_name = "kling-v1", mode = "std", duration = "5",
    prompt = PROMPT })
  local first_id = first.json and first.json.data and first.json.data.task_id
  h.sim_admin(sim, "POST", "/_sim/faults", { rules = { { kind = "stall", method = "POST", seconds = 5, count = 1 } } })
  local posts = sim_stats().by_method.POST or 0
  local out = prefix .. "/stalled.out"
  h.sh(("curl -s -o %s.body -w '%%{http_code} %%{time_total}' -H 'Authorization: Bearer %s' "
    .. "-H 'Content-Type: application/json' -d %s %s > %s 2>/dev/null </dev/null &"):format(out, alice,
    h.q(json.encode { model_name = "kling-v1", mode = "std", duration = "5", prompt = PROMPT .. " (stalled)" }),
    h.q(url("/v1/videos/text2video")), out))
  local limit = h.now() + 5
  while (sim_stats().by_method.POST or 0) == posts and h.now() < limit do
    h.sleep(0.02)
  end
  h.check("the stalled create reached the simulator", (sim_stats().by_method.POST or 0) > posts)
  local stall_started = h.now()
  local worst, all_ok, n = 0, true, 0
  local probes = {
    function()
      return gw("GET", "/gateway/balance", { key = alice })
    end,
    function()
      return gw("GET", "/v1/videos/text2video/" .. tostring(first_id), { key = alice })
    end,
    function()
      return gw("GET", "/v1/videos/text2video?pageNum=1&pageSize=5", { key = alice })
    end,
    function()
      return create(alice, "videos/text2video", { model_name = "kling-v1", mode = "std", duration = "5",
        prompt = PROMPT .. " (during the stall)" })
    end,
  }
  while h.now() - stall_started < 3 do
    h.sleep(0.05)
    for _, probe in ipairs(probes) do
      local r = probe()
      n = n + 1
      all_ok = all_ok and r.ok and r.status == 200
      if r.seconds > worst then
        worst = r.seconds
      end
    end
  end
  print(("# %d requests during the stall, slowest %.3f s"):format(n, worst))
  h.check("the probes ran while the stalled create was still waiting for its answer",
    not (h.read(out) or ""):match("^%d%d%d "), h.read(out))
  h.check("during the 5 s stall every other request is answered (balance, query, list, create)", all_ok and n >= 8)
  h.check(("... each within 0.5 s (slowest %.3f s of %d)"):format(worst, n), worst < 0.5, worst)
  limit = h.now() + 15
  local stalled
  while h.now() < limit do
    stalled = h.read(out)
    if stalled and stalled:match("^%d%d%d ") then
      break
    end
    h.sleep(0.1)
  end
  local code, took = (stalled or ""):match("^(%d+) ([%d.]+)")
  h.check("the stalled create itself is answered once the upstream is (200 after >= 4.5 s)",
    code == "200" and tonumber(took) >= 4.5, stalled)
  local stalled_id = (json.decode(h.read(out .. ".body") or "") or { data = {} }).data.task_id

  -- ---- a mixed run ----
  local bob_jwt = core.jwt_hs256("gw-bob-ak", "gw-bob-sk", math.floor(core.wall_s()), 1800)
  local runs = {
    { alice, "videos/text2video", { model_name = "kling-v1", mode = "pro", duration = "10", prompt = PROMPT,
      callback_url = url("/receiver"), external_task_id = "alice-order-1" }, "succeed", "7" },
    { alice, "videos/text2video", { model_name = "kling-v2-6", mode = "pro", duration = "5", sound = "on",
      prompt = PROMPT }, "succeed", "5" },
    { alice, "videos/text2video", { model_name = "kling-v1", mode = "pro", duration = "10",
      prompt = PROMPT .. " [sim:fail]" }, "failed", "0" },
    { bob_jwt, "videos/text2video", { model_name = "kling-v2-5-turbo", mode = "std", duration = "10",
      prompt = PROMPT }, "succeed", "3" },
    { bob_jwt, "videos/text2video", { model_name = "kling-v2-6", mode = "pro", duration = "10", sound = "on",
      prompt = PROMPT .. " [sim:fail]" }, "failed", "0" },
  }
  local made = {}
  for i, r in ipairs(runs) do
    res = create(r[1], r[2], r[3])
    made[i] = res.json and res.json.data and res.json.data.task_id
    h.check("mixed run: create " .. i .. " accepted", res.status == 200 and made[i] ~= nil, res.body)
  end
  local held = admin()
  h.check("while they run, their estimates are held (alice 7 + 5 + 7 on top of what ran before)",
    micros(held.by.alice.reserved) >= micros("19"), held.by.alice.reserved)
  -- A create whose answer is lost (the simulator makes the task, then drops the connection).
  h.sim_admin(sim, "POST", "/_sim/faults", { rules = { { kind = "reset", method = "POST", phase = "after",
    count = 1 } } })
  local lost = create(alice, "videos/text2video", { model_name = "kling-v1-6", mode = "std", duration = "5",
    prompt = PROMPT .. " (answer lost)" })
  h.sim_admin(sim, "DELETE", "/_sim/faults")
  local lost_id = lost.json and lost.json.data and lost.json.data.task_id
  h.check("a create whose answer was lost is still a task for the client (looked up, not resent)",
    lost.status == 200 and lost_id ~= nil, lost.body)
  -- A synchronous endpoint: charged at once.
  local spent_before = micros(admin().by.alice.spent)
  res = create(alice, "audio/tts", { text = "Hello from the gateway.", voice_id = "kling_narrator_en",
    voice_language = "en" })
  h.check("a synchronous call (tts) answers at once with its audio", res.status == 200 and res.json.data
    and res.json.data.task_result and res.json.data.task_result.audios ~= nil, res.body)
  h.check("... and is charged at once (0.05)", micros(admin().by.alice.spent) - spent_before == micros("0.05"),
    admin().by.alice.spent)
  for i, r in ipairs(runs) do
    local view = made[i] and wait_end(r[1] == bob_jwt and core.jwt_hs256("gw-bob-ak", "gw-bob-sk",
      math.floor(core.wall_s()), 1800) or r[1], r[2], made[i])
    h.check(("mixed run: task %d ends %s, charged %s"):format(i, r[4], r[5]),
      view and view.task_status == r[4] and view.final_unit_deduction == r[5], json.encode(view))
  end
  local lost_view = lost_id and wait_end(alice, "videos/text2video", lost_id)
  h.check("the lost create was found by its external id and settled (2)", lost_view
    and lost_view.task_status == "succeed" and lost_view.final_unit_deduction == "2", json.encode(lost_view))
  for _, id in ipairs { first_id, stalled_id } do
    local v = id and wait_end(alice, "videos/text2video", id)
    h.check("the tasks from the stall test end too", v and v.task_status == "succeed", json.encode(v))
  end
  res = gw("GET", "/v1/videos/text2video?external_task_id=alice-order-1", { key = alice })
  h.check("a query by the client's own external_task_id", res.status == 200 and res.json.data.task_id == made[1],
    res.body)
  res = gw("GET", "/v1/videos/text2video/" .. made[1], { key = "gw-poor-key" })
  h.check("another client cannot see it", res.status == 404 and res.json.code == 1203, res.body)
  res = gw("GET", "/v1/videos/text2video?external_task_id=alice-order-1", { key = "gw-poor-key" })
  h.check("issue 12.1: nor find it by its external_task_id", res.status == 404 and res.json.code == 1203, res.body)
  res = gw("GET", "/v1/videos/text2video?external_task_id=alice-order-1&external_task_id=x", { key = alice })
  h.check("issue 12.1: a repeated external_task_id is refused naming it (no Lua value in the answer)",
    res.status == 400 and res.json.code == 1201 and res.json.message:find("^external_task_id") ~= nil
    and not res.body:find("table:", 1, true), res.body)
  res = gw("GET", "/v1/videos/text2video?external_task_id=alice-order-1&pageNum=1", { key = alice })
  h.check("a page asked beside an external_task_id is refused naming it, not ignored",
    res.status == 400 and res.json.code == 1201 and res.json.message:find("^pageNum: is not read with") ~= nil,
    res.body)
  res = gw("GET", "/v1/videos/text2video?pagenum=2&pageSize=5", { key = alice })
  h.check("issue 12.1: a misspelt list parameter is refused naming it and the closest known one",
    res.status == 400 and res.json.code == 1201 and res.json.message:find("^pagenum: ") ~= nil
    and res.json.message:find("did you mean pageNum?", 1, true) ~= nil, res.body)
  for q, why in pairs { ["pageNum=2&pageNum=3"] = "pageNum: .*given once %(given more than once%)",
    ["pageSize=0x10"] = 'pageSize: .*%(got 0x10%)', ["pageNum=1e2"] = 'pageNum: .*%(got 1e2%)',
    ["pageNum"] = "pageNum: .*%(given without a value%)" } do
    res = gw("GET", "/v1/videos/text2video?" .. q, { key = alice })
    h.check("a page parameter repeated, in hex, with an exponent or without a value is refused naming it: " .. q,
      res.status == 400 and res.json.code == 1201 and res.json.message:find(why) ~= nil, res.body)
  end
  local queried = sim_stats().by_route["GET /v1/videos/text2video/{id}"] or 0
  for _ = 1, 5 do
    gw("GET", "/v1/videos/text2video/" .. made[1], { key = alice })
  end
  h.check("queries are answered from the gateway's own table (none forwarded)",
    (sim_stats().by_route["GET /v1/videos/text2video/{id}"] or 0) - queried <= 2, queried)

  -- Reconciliation: what the gateway charged equals what the provider bills, to the micro-unit.
  h.sleep(0.5)
  local a = admin()
  local ledger = h.sim_admin(sim, "GET", "/_sim/ledger")
  h.check(("the gateway's charges (%s) equal the simulator's ledger (%s)"):format(a.spent, json.encode(ledger.totals)),
    micros(a.spent) == h.sim_total(ledger, "CNY"))
  h.check("nothing is left reserved once every task ended", a.reserved == "0", a.reserved)
  -- The journal replayed by kling.billing's own ledger gives the same balances.
  local by_acct = {}
  for l in (h.read(prefix .. "/ledger.jsonl") or ""):gmatch("[^\n]+") do
    local e = json.decode(l)
    if e and (e.op == "reserve" or e.op == "settle" or e.op == "release") then
      by_acct[e.account] = by_acct[e.account] or {}
      table.insert(by_acct[e.account], l)
    end
  end
  for _, acct in ipairs(ACCOUNTS) do
    local l = billing.ledger { limit = acct.credit, currency = "CNY", lines = by_acct[acct.name] or {} }
    h.check("the journal of " .. acct.name .. " replays in kling.billing.ledger to the same spent and balance",
      l and l:spent() == micros(a.by[acct.name].spent) and l:balance() == micros(a.by[acct.name].balance),
      l and json.encode(l:summary()) or "replay failed")
  end

  -- ---- callbacks ----
  local cbs = h.sim_admin(sim, "GET", "/_sim/callbacks?n=200")
  local delivered, signed = 0, 0
  for _, c in ipairs(cbs) do
    if c.delivered and c.status == 200 then
      delivered = delivered + 1
    end
    if c.signed then
      signed = signed + 1
    end
  end
  h.check("the simulator's signed callbacks were taken (200)", delivered > 0 and signed == #cbs,
    json.encode { delivered = delivered, signed = signed, total = #cbs })
  local forged = json.encode { task_id = "1", task_status = "succeed", task_info = { external_task_id = made[2] } }
  res = h.request("POST", url("/kling/callback"), { headers = { ["content-type"] = "application/json" },
    body = forged })
  h.check("an unsigned callback is refused (401, code 1000 in the official envelope)", refused(res, 401, 1000),
    res.body)
  local ts = tostring(math.floor(core.wall_s()))
  local function post_signed(text, secret)
    return h.request("POST", url("/kling/callback"), { headers = { ["content-type"] = "application/json",
      ["webhook-id"] = "msg_x", ["webhook-timestamp"] = ts,
      ["webhook-signature"] = core.webhook_sign { secret = secret or SIM_SECRET, id = "msg_x",
        timestamp = ts, body = text } }, body = text })
  end
  res = post_signed(forged, "whsec_" .. core.b64encode("wrong"))
  h.check("a callback signed with another secret is refused (401, code 1000)", refused(res, 401, 1000), res.body)
  res = post_signed(json.encode { task_id = "no-such-task", task_status = "succeed" })
  h.check("a signed callback for a task the gateway does not have: 404, code 1203", refused(res, 404, 1203), res.body)
  res = post_signed("not json")
  h.check("a signed callback that is not a task: 400, code 1200", refused(res, 400, 1200), res.body)
  res = h.request("GET", url("/kling/callback"))
  h.check("a callback not POSTed: 405, code 1202", refused(res, 405, 1202), res.body)
  local received = json.decode(h.request("GET", url("/received")).body) or {}
  local final_cb
  for _, r in ipairs(received) do
    local b = json.decode(r.body or "")
    if b and b.task_id == made[1] and b.task_status == "succeed" then
      final_cb = r
    end
  end
  h.check("the client's own callback_url got the task's end, as an official task object", final_cb ~= nil,
    #received)
  -- Each account verifies with its own secret (read from its balance): with one secret for
  -- every client, any client could sign a forged task end to another client's receiver.
  local own = gw("GET", "/gateway/balance", { key = alice })
  local alice_secret = own.json and own.json.data and own.json.data.webhook_secret
  local bob_secret = (gw("GET", "/gateway/balance", { key = core.jwt_hs256("gw-bob-ak", "gw-bob-sk",
    math.floor(core.wall_s()), 1800) }).json or { data = {} }).data.webhook_secret
  h.check("issue 12.1: each account reads its own client webhook secret from its balance",
    type(alice_secret) == "string" and alice_secret:find("^whsec_") and type(bob_secret) == "string"
    and alice_secret ~= bob_secret and alice_secret ~= CLIENT_SECRET, own.body)
  local function verifies(secret)
    return final_cb ~= nil and core.webhook_verify { secret = secret, id = final_cb.id, timestamp = final_cb.timestamp,
      signature = final_cb.signature, body = final_cb.body, now_s = core.wall_s() } == true
  end
  h.check("issue 12.1: ... signed with the account's own secret", alice_secret ~= nil and verifies(alice_secret))
  h.check("issue 12.1: ... which neither the shared secret nor another client's secret verifies",
    not verifies(CLIENT_SECRET) and not (bob_secret and verifies(bob_secret)))

  -- ---- issue 12 (speed): one journal line per create, its reservation carrying the record ----
  res = create(alice, "videos/text2video", { model_name = "kling-v1", mode = "std", duration = "5",
    prompt = PROMPT .. " (one journal line)" })
  local one_id = res.json and res.json.data and res.json.data.task_id
  local lines = {}
  for l in (h.read(prefix .. "/ledger.jsonl") or ""):gmatch("[^\n]+") do
    if one_id and l:find(one_id, 1, true) then
      lines[#lines + 1] = json.decode(l)
    end
  end
  h.check("issue 12 speed: a create is journaled on one line: its reservation, carrying the task record",
    res.status == 200 and #lines == 1 and lines[1].op == "reserve" and type(lines[1].record) == "table"
    and lines[1].record.id == one_id and lines[1].record.state == "creating", json.encode(lines))
  h.check("issue 12 speed: ... and the task ends and is settled from it", (wait_end(alice, "videos/text2video",
    one_id) or {}).final_unit_deduction == "1")

  -- ---- fail closed: a journal that cannot be written refuses creates, until it can again ----
  local jpath = prefix .. "/ledger.jsonl"
  -- Nothing in flight (no worker writes now): the journal replaced by a whole copy is reopened on
  -- the admin's word, then the copy by a link to /dev/full before any worker opens it (workers
  -- refuse to write through a link: every line fails).
  local quiet = h.now() + 20
  while (admin().poller or {}).tracked ~= 0 and h.now() < quiet do
    h.sleep(0.2)
  end
  h.sh(("mv %s %s.keep && cp -p %s.keep %s"):format(h.q(jpath), h.q(jpath), h.q(jpath), h.q(jpath)))
  h.check("the journal is reopened on the admin's word", admin_call("POST", "/journal/reopen").status == 200)
  h.sh(("rm %s && ln -s /dev/full %s"):format(h.q(jpath), h.q(jpath)))
  local held_before, creates_before = admin().by.alice, sim_stats().creates
  res = create(alice, "videos/text2video", { model_name = "kling-v1", mode = "std", duration = "5", prompt = PROMPT })
  h.check("issue 12.2: a create while the journal cannot be written: 503 with code 5001",
    res.status == 503 and res.json.code == 5001, res.body)
  h.check("issue 12.2: ... nothing was forwarded and nothing stays held", sim_stats().creates == creates_before
    and admin().by.alice.reserved == held_before.reserved and admin().by.alice.balance == held_before.balance,
    json.encode { held_before, admin().by.alice })
  res = admin_call("POST", "/accounts/carol/topup", { amount = "1" })
  h.check("issue 12.2: ... a top-up is refused too (503)", res.status == 503, res.body)
  h.check("issue 12.2: ... and the admin summary counts the journal errors", admin().journal_errors > 0)
  h.sh(("rm %s && mv %s.keep %s"):format(h.q(jpath), h.q(jpath), h.q(jpath)))
  admin_call("POST", "/journal/reopen")
  res = create(alice, "videos/text2video", { model_name = "kling-v1", mode = "std", duration = "5", prompt = PROMPT })
  h.check("issue 12.2: once the journal can be written again, creates are taken", res.status == 200, res.body)
  local back_id = res.json and res.json.data and res.json.data.task_id
  local bv = back_id and wait_end(alice, "videos/text2video", back_id)
  h.check("issue 12.2: ... and end, settled (1)", bv and bv.final_unit_deduction == "1", json.encode(bv))

  -- ---- metrics ----
  res = h.request("GET", url("/metrics"))
  local text = res.body or ""
  local function metric(line)
    local v = text:match("\n" .. line:gsub("[%p]", "%%%0") .. " ([%d.e+-]+)\n")
    return tonumber(v)
  end
  local am = admin()
  h.check("issue 12.4: GET /metrics answers Prometheus text", res.status == 200
    and (res.headers["content-type"] or ""):find("text/plain", 1, true) and text:find("# TYPE", 1, true), res.status)
  h.check("issue 12.4: requests by route and status",
    (metric('kling_gateway_requests_total{route="create",status="200"}') or 0) > 0
    and (metric('kling_gateway_requests_total{route="create",status="429"}') or 0) > 0, text:sub(1, 300))
  h.check("issue 12.4: creates forwarded", (metric("kling_gateway_creates_forwarded_total") or 0) >= 10)
  h.check("a series without labels is written by its bare name, never with empty braces",
    not text:find("{} ", 1, true), text:match("[^\n]*{} [^\n]*"))
  h.check("issue 12.4: refusals by reason (balance, validation, journal)",
    (metric('kling_gateway_refusals_total{reason="balance"}') or 0) >= 2
    and (metric('kling_gateway_refusals_total{reason="validation"}') or 0) >= 1
    and (metric('kling_gateway_refusals_total{reason="journal"}') or 0) >= 1)
  h.check("issue 12.4: spend by account and currency, to the micro-unit",
    metric('kling_gateway_spent_micros_total{account="alice",currency="CNY"}') == micros(am.by.alice.spent),
    metric('kling_gateway_spent_micros_total{account="alice",currency="CNY"}'))
  h.check("issue 12.4: open reservations", metric("kling_gateway_open_reservations") ~= nil)
  local creates_seen = metric('kling_gateway_upstream_seconds_bucket{op="create",le="+Inf"}')
  h.check("issue 12.4: upstream latency histogram", (creates_seen or 0) >= 10
    and metric('kling_gateway_upstream_seconds_count{op="create"}') == creates_seen
    and (metric('kling_gateway_upstream_seconds_bucket{op="create",le="10"}') or 0) <= creates_seen,
    text:match("[^\n]*upstream_seconds_count[^\n]*"))
  h.check("issue 12.4: poll lag and journal errors", (metric("kling_gateway_poll_lag_seconds") or 99) < 5
    and (metric("kling_gateway_journal_errors_total") or 0) > 0)

  -- ---- reload (HUP): shared memory keeps the ledger; a task in flight ends after it ----
  local inflight = create(alice, "videos/text2video", { model_name = "kling-v1", mode = "std", duration = "5",
    prompt = PROMPT .. " [sim:seconds=2]" })
  local inflight_id = inflight.json and inflight.json.data.task_id
  local pre = admin()
  local accounts = {}
  for i, acct in ipairs(ACCOUNTS) do
    accounts[i] = acct
  end
  accounts[3] = { name = "poor", api_key = "gw-poor-key", credit = "5" } -- a top-up, taken at the reload
  write_config(accounts)
  h.check("nginx reloads (HUP): new worker, old one gone", srv.hup())
  local post = admin()
  h.check("the ledger is the same after the reload", post.spent == pre.spent and post.entries >= pre.entries
    and post.by.alice.balance == pre.by.alice.balance and post.by.bob.balance == pre.by.bob.balance,
    json.encode { pre.spent, post.spent })
  h.check("a new worker answers", post.worker ~= pre.worker, json.encode { pre.worker, post.worker })
  h.check("the reload's new credit tops poor up by 4", micros(post.by.poor.balance) - micros(pre.by.poor.balance)
    == micros("4"), json.encode { pre.by.poor.balance, post.by.poor.balance })
  local iv = inflight_id and wait_end(alice, "videos/text2video", inflight_id)
  h.check("the task in flight across the reload ends and is settled (1)", iv and iv.task_status == "succeed"
    and iv.final_unit_deduction == "1", json.encode(iv))

  -- ---- restart: shared memory is gone, the journal rebuilds it ----
  local inflight2 = create(alice, "videos/text2video", { model_name = "kling-v1", mode = "pro", duration = "5",
    prompt = PROMPT .. " [sim:seconds=2]" })
  local inflight2_id = inflight2.json and inflight2.json.data.task_id
  pre = admin()
  srv.stop()
  start_nginx()
  post = admin()
  h.check("after a restart the journal rebuilds every balance", post.spent == pre.spent
    and post.reserved == pre.reserved and post.by.alice.balance == pre.by.alice.balance
    and post.by.poor.balance == pre.by.poor.balance, json.encode { pre = pre.by.alice, post = post.by.alice })
  h.check("issue 12.1: ... and the admin's account and top-up", post.by.carol and post.by.carol.balance == "5.5"
    and gw("GET", "/gateway/balance", { key = "gw-carol-key" }).status == 200, json.encode(post.by.carol))
  res = gw("GET", "/v1/videos/text2video/" .. made[1], { key = alice })
  h.check("... and the task table (an old task is still answered)", res.status == 200
    and res.json.data.final_unit_deduction == "7", res.body)
  iv = inflight2_id and wait_end(alice, "videos/text2video", inflight2_id)
  h.check("a task in flight across the restart ends and is settled (3.5)", iv and iv.task_status == "succeed"
    and iv.final_unit_deduction == "3.5", json.encode(iv))
  h.sleep(0.3)
  a = admin()
  ledger = h.sim_admin(sim, "GET", "/_sim/ledger")
  h.check(("at the end the gateway (%s) and the simulator (%s) still agree"):format(a.spent,
    json.encode(ledger.totals)),
    micros(a.spent) == h.sim_total(ledger, "CNY") and a.reserved == "0")

  -- ---- a client whose receiver never answers cannot take the worker's timers from the others ----
  -- One timer per task end, each waiting up to 10 s: 300 ends to a stalled receiver held more
  -- than the worker's 256 running timers, and other clients' callbacks and the poller's ticks
  -- were dropped.
  local n_stalled = 0
  for i = 1, 300 do
    res = create(alice, "images/generations", { model_name = "kling-v1", prompt = "stalled " .. i,
      callback_url = url("/stall") })
    n_stalled = n_stalled + (res.status == 200 and 1 or 0)
  end
  h.sleep(2) -- their ends come in, each queued for /stall
  res = create("gw-poor-key", "images/generations", { model_name = "kling-v1", prompt = "another client's",
    callback_url = url("/receiver") })
  local other_id = res.json and res.json.data and res.json.data.task_id
  local got
  for _ = 1, 50 do
    for _, r in ipairs(json.decode(h.request("GET", url("/received")).body) or {}) do
      got = got or (other_id and r.body and r.body:find(other_id, 1, true) and true)
    end
    if got then
      break
    end
    h.sleep(0.2)
  end
  h.check(("300 task ends to a stalled receiver (%d created): another client's callback still arrives"):format(
    n_stalled), n_stalled == 300 and got, other_id)
  h.check("... and the worker never ran out of timers", not srv.error_log():find("lua_max_running_timers", 1,
    true))

  -- ---- a rotated journal: a restart from its last part alone is refused; the whole ledger starts ----
  local jfile = prefix .. "/ledger.jsonl"
  h.sh(("mv %s %s.1"):format(h.q(jfile), h.q(jfile)))
  res = admin_call("POST", "/journal/reopen")
  h.check("issue 12 (a): journal/reopen of a journal moved away is refused at once (409), naming the path",
    res.status == 409 and ((res.json or {}).error or ""):find(jfile .. " cannot be reopened: there is no file there",
    1, true), res.body)
  res = create(alice, "videos/text2video", { model_name = "kling-v1", mode = "std", duration = "5", prompt = PROMPT })
  local rotated_id = res.json and res.json.data and res.json.data.task_id
  iv = rotated_id and wait_end(alice, "videos/text2video", rotated_id)
  h.check("issue 12 (a): ... the workers keep the file they had: a create then ends, settled (1), in the moved file",
    iv and iv.final_unit_deduction == "1" and (h.read(jfile .. ".1") or ""):find(rotated_id, 1, true)
    and not h.read(jfile), json.encode(iv))
  h.sh(("printf '%%s\\n' '{\"op\":\"task\"}' > %s"):format(h.q(jfile)))
  res = admin_call("POST", "/journal/reopen")
  h.check("issue 12 (a): ... and a new file in its place is refused too (it does not begin with the first line)",
    res.status == 409 and ((res.json or {}).error or ""):find("does not begin with the journal's first line", 1, true),
    res.body)
  h.sh(("mv %s.1 %s"):format(h.q(jfile), h.q(jfile)))
  h.check("issue 12 (a): ... the whole journal put back is reopened", admin_call("POST", "/journal/reopen").status
    == 200)
  h.sleep(0.3)
  pre = admin()
  srv.stop()
  -- Rotated by hand while stopped: its first half moved to .1, the rest left at the path.
  h.sh(("n=$(wc -l < %s) && head -n $((n / 2)) %s > %s.1 && tail -n +$((n / 2 + 1)) %s > %s.tail && mv %s.tail %s")
    :format(h.q(jfile), h.q(jfile), h.q(jfile), h.q(jfile), h.q(jfile), h.q(jfile), h.q(jfile)))
  local rstarted, rerr = pcall(start_nginx)
  rerr = tostring(rerr)
  h.check("rotation: a restart from the journal's last part alone is refused (the spent credit would come back)",
    not rstarted and rerr:find("does not begin at its start", 1, true) and rerr:find(jfile, 1, true),
    rstarted and json.encode(admin().by.alice) or rerr:sub(1, 600))
  if rstarted then
    srv.stop()
  end
  h.sh(("cat %s.1 %s > %s.whole && mv %s.whole %s"):format(h.q(jfile), h.q(jfile), h.q(jfile), h.q(jfile),
    h.q(jfile)))
  start_nginx()
  post = admin()
  h.check("rotation: ... put back whole (older part first), it starts with every balance and top-up",
    post.spent == pre.spent and post.reserved == pre.reserved and post.by.alice.balance == pre.by.alice.balance
    and post.by.carol and post.by.carol.balance == pre.by.carol.balance,
    json.encode { pre = pre.by.alice, post = post.by.alice })

  h.check_no_lua_error(srv)

  -- ---- any provider upstream: the same gateway in front of EvoLink's dialect ----
  srv.stop()
  prefix = base .. "/nginx-evolink"
  h.sh("mkdir -p " .. h.q(prefix) .. " && chmod 755 " .. h.q(prefix))
  h.write(prefix .. "/gateway.json", json.encode {
    upstream = { provider = "evolink", base_url = sim.providers.evolink, api_key = sim.api_key },
    price_provider = "evolink", journal = prefix .. "/ledger.jsonl", poll = { min_interval = 0.3, max_interval = 1 },
    accounts = { { name = "alice", api_key = alice, credit = "1000" } }, admin_key = ADMIN_KEY,
    journal_sync = true, -- this run's journal lines are fsync'd inside the workers (issue 12.2)
  })
  port = h.free_port()
  start_nginx()
  res = create(alice, "videos/text2video", { model_name = "kling-v3", mode = "pro", duration = "5", sound = "on",
    prompt = PROMPT })
  local evo_id = res.json and res.json.data and res.json.data.task_id
  h.check("EvoLink upstream: the official body is forwarded in EvoLink's dialect", res.status == 200
    and evo_id ~= nil, res.body)
  local ev = evo_id and wait_end(alice, "videos/text2video", evo_id)
  local evo = h.sim_admin(sim, "GET", "/_sim/ledger").by_dialect.evolink
  h.check("... polled to its end and charged in EvoLink's credits as the simulator bills them",
    ev and ev.task_status == "succeed" and evo and micros(ev.final_unit_deduction) == evo.micros,
    json.encode { ev, evo })
  a = admin()
  h.check("... the gateway's ledger in credits equals the simulator's EvoLink charges", a.currency == "credits"
    and evo and micros(a.spent) == evo.micros and a.reserved == "0", json.encode { a.spent, evo })
  local sent = sim_stats().requests
  res = create(alice, "videos/text2video", { model_name = "kling-v3", mode = "std", duration = "5", prompt = PROMPT,
    model_params = { quality = "1080p" } })
  h.check("EvoLink upstream: its own model_params in a client's body is 400 naming it (no catalog prices what it"
    .. " holds), nothing held or sent", res.status == 400 and res.json and res.json.code == 1201
    and tostring(res.json.message):find("^model_params: is not a field of the official API") ~= nil
    and sim_stats().requests == sent and admin().reserved == "0", res.body)

  -- ---- untrusted input stays data (this gateway: default config, no webhook_secret) ----
  local seen = sim_stats().requests
  for _, bad in ipairs {
    { "a CR LF injection", "http://host.example/cb HTTP/1.1\r\nX-Injected: yes\r\n\r\nPOST /x HTTP/1.1\r\n" },
    { "a %0d%0a injection", "http://host.example/cb%20HTTP/1.1%0d%0aX-Injected:%20yes%0d%0a" },
    { "a private address", url("/receiver") },
    { "user info", "http://user:secret@host.example/cb" },
  } do
    res = create(alice, "videos/text2video", { model_name = "kling-v3", mode = "pro", duration = "5", sound = "on",
      prompt = PROMPT, callback_url = bad[2] })
    h.check("issue 12.1: a callback_url with " .. bad[1] .. ": 400 naming callback_url", res.status == 400
      and res.json.message:find("callback_url", 1, true) ~= nil, res.body)
  end
  h.check("issue 12.1: ... and nothing was sent anywhere (the simulator saw nothing, the receiver nothing)",
    sim_stats().requests == seen and #(json.decode(h.request("GET", url("/received")).body) or {}) == 0,
    sim_stats().requests - seen)
  res = h.request("POST", url("/kling/callback"), { headers = { ["content-type"] = "application/json" },
    body = json.encode { id = "x", status = "completed" } })
  h.check("issue 12.1: without webhook_secret the callback location is off (an unsigned callback: 403, code 1200)",
    refused(res, 403, 1200), res.body)
  h.write(prefix .. "/gateway.json", json.encode {
    upstream = { provider = "evolink", base_url = sim.providers.evolink, api_key = sim.api_key },
    price_provider = "evolink", journal = prefix .. "/ledger.jsonl", poll = { min_interval = 0.3, max_interval = 1 },
    accounts = { { name = "alice", api_key = alice, credit = "1000" } },
  })
  srv.hup()
  res = h.request("GET", url("/gateway/admin"), { headers = { authorization = "Bearer " .. ADMIN_KEY } })
  h.check("issue 12.1: without admin_key the admin API is off (403)", res.status == 403, res.body)
  srv.stop()
  srv = nil

  -- ---- a journal the workers cannot write: nginx does not start, and says why ----
  prefix = base .. "/nginx-closed"
  h.sh("mkdir -p " .. h.q(prefix) .. "/private && chmod 755 " .. h.q(prefix) .. " && chmod 700 " .. h.q(prefix)
    .. "/private")
  h.write(prefix .. "/gateway.json", json.encode {
    upstream = { provider = "evolink", base_url = sim.providers.evolink, api_key = sim.api_key },
    price_provider = "evolink", journal = prefix .. "/private/ledger.jsonl",
    accounts = { { name = "alice", api_key = alice, credit = "1000" } },
  })
  port = h.free_port()
  if h.is_root() then
    local started, serr = pcall(function()
      local conf = h.conf_head(prefix):gsub("user root root;", "user nobody nogroup;") .. "http {\n  access_log off;\n"
        .. h.lua_paths() .. h.temp_paths(prefix) .. ("  include %s/examples/nginx/http.conf;\n"
        .. "  server {\n    listen 127.0.0.1:%d;\n    include %s/examples/nginx/server.conf;\n  }\n}\n"):format(
        h.src, port, h.src)
      srv = h.nginx_start(prefix, conf, port)
    end)
    serr = tostring(serr)
    h.check("issue 12.2: a gateway whose workers (nobody) cannot write the journal does not start",
      not started, "it started")
    h.check("issue 12.2: ... and says why, naming the path and the workers' user",
      serr:find(prefix .. "/private/ledger.jsonl", 1, true) and serr:find("nobody", 1, true), serr:sub(1, 600))
  else
    print("# skipped: the unwritable-journal start needs root (workers as another user)")
  end
end

h.main(run, function()
  return srv
end, cleanup)
