-- An operator changes a created account without a reload (PATCH /gateway/admin/accounts/<name>):
-- a leaked key replaced (the old one refused at once, a token signed by an old secret too), its
-- max_open, its suspension (creates refused 429, 1100, nothing held or sent; queries answered),
-- a way to sign in dropped; every change checked whole, as a new account is, before anything is
-- written; the config file's accounts are the file's. Two restarts (the journal, then its
-- compaction) bring the account back as last changed. A gateway started by `kling gateway start`
-- (one node) and a simulator of their own.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local core = require "kling.core"
local json = require "kling.json"

local ADMIN = "admin-0123456789abcdef"
local g = h.launched("gateway-accounts")
local sim, gw

local function start()
  gw = g.start {
    upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key },
    journal = g.journal, admin_key = ADMIN, poll = { min_interval = 0.3, max_interval = 0.5 },
    accounts = { { name = "alice", api_key = "gw-alice-key", credit = "100" } },
  }
end

local function admin_call(method, path, body)
  return h.request(method, gw.http .. "/gateway/admin" .. path, { headers = { authorization = "Bearer " .. ADMIN },
    body = body and (type(body) == "string" and body or json.encode(body)) })
end

local function change(body)
  return admin_call("PATCH", "/accounts/carol", body)
end

local function call(method, path, key, body)
  return h.request(method, gw.http .. path, { headers = { authorization = "Bearer " .. key },
    body = body and json.encode(body) })
end

local function balance(key)
  local res = call("GET", "/gateway/balance", key)
  return res.status, res.json and res.json.data
end

local function create(key, prompt)
  return call("POST", "/v1/videos/text2video", key, { model_name = "kling-v1", mode = "std", duration = "5",
    prompt = prompt })
end

local function token(ak, sk)
  return core.jwt_hs256(ak, sk, math.floor(core.wall_s()), 1800)
end

local function refused(res, status, field, words)
  return res.status == status and res.json and res.json.field == field
    and (not words or tostring(res.json.error):find(words, 1, true) ~= nil)
end

local function sim_creates()
  return h.sim_admin(sim, "GET", "/_sim/stats").creates
end

-- Carol as the admin API shows her.
local function carol()
  return h.gateway_admin(gw.http, ADMIN).by.carol
end

local function run()
  sim = h.sim_start(g.sim_dir, { task_seconds = 30 })
  start()
  local res = admin_call("POST", "/accounts", { name = "carol", api_key = "gw-carol-key-1", credit = "10" })
  h.check("a created account to change", res.status == 201, res.body)

  -- ---- what is refused, with nothing changed ----
  res = admin_call("PATCH", "/accounts/alice", { max_open = 3 })
  h.check("the config file's account is changed in the file (409, saying so)", res.status == 409
    and tostring(res.json and res.json.error):find("config file", 1, true) ~= nil, res.body)
  res = admin_call("PATCH", "/accounts/nobody", { max_open = 3 })
  h.check("an account that does not exist: 404", res.status == 404, res.body)
  res = change {}
  h.check("a change that sets nothing is refused, naming what it may set", res.status == 400
    and tostring(res.json and res.json.error):find("max_open", 1, true) ~= nil, res.body)
  res = change { credit = "1000" }
  h.check("credit is not changed this way (refused by name, pointing to the topup and credit routes)",
    refused(res, 400, "credit", "/gateway/admin/accounts/carol/topup")
    and refused(res, 400, "credit", "/gateway/admin/accounts/carol/credit"), res.body)
  res = change '{"max_open": 2, "max_open": 3}'
  h.check("a field given twice is refused by name", res.status == 400 and res.json and res.json.field == "max_open",
    res.body)
  res = change { api_key = "gw-alice-key" }
  h.check("another account's key is refused (409, naming api_key)",
    refused(res, 409, "api_key", "accounts[1].api_key"), res.body)
  res = change { api_key = ADMIN }
  h.check("the admin_key is refused as a key", refused(res, 409, "api_key", "admin_key"), res.body)
  res = change { api_key = "short" }
  h.check("a key too short is refused by the new account's rule", refused(res, 400, "api_key"), res.body)
  res = change { api_key = string.rep("k", 200000) }
  h.check("a key too long to be sent in a header is refused (400), nothing half written (it was journaled, then"
    .. " refused by shared memory: 503, the old key gone, the new one unusable)", refused(res, 400, "api_key",
      "at most 256 characters") and balance("gw-carol-key-1") == 200, res.body and res.body:sub(1, 200))
  res = admin_call("POST", "/accounts", { name = "bigk", api_key = string.rep("k", 200000), credit = "1" })
  h.check("... and so is a new account's (400), which then does not exist", res.status == 400
    and admin_call("PATCH", "/accounts/bigk", { max_open = 1 }).status == 404, res.body and res.body:sub(1, 200))
  res = change { max_open = 0 }
  h.check("max_open 0 is refused by the new account's rule", refused(res, 400, "max_open"), res.body)
  res = change { suspended = "yes" }
  h.check("suspended is true or false", refused(res, 400, "suspended", "true or false"), res.body)
  res = change { access_key = "gw-carol-ak" }
  h.check("half a key pair is refused, naming the missing half", refused(res, 400, "secret_key"), res.body)
  res = change { api_key = json.null }
  h.check("dropping its only way to sign in is refused", refused(res, 400, "api_key", "required"), res.body)
  h.check("... and after every refusal the account signs in with its key as before",
    balance("gw-carol-key-1") == 200, tostring(balance("gw-carol-key-1")))

  -- ---- a leaked key replaced ----
  res = change { api_key = "gw-carol-key-2" }
  h.check("a new api_key: 200, the account shown", res.status == 200 and res.json.name == "carol"
    and res.json.balance == "10", res.body)
  h.check("... the old key is refused at once (401)", balance("gw-carol-key-1") == 401)
  h.check("... and the new one signs in", balance("gw-carol-key-2") == 200)
  res = change { access_key = "gw-carol-ak", secret_key = "gw-carol-sk-1" }
  h.check("a key pair added", res.status == 200, res.body)
  local old_token = token("gw-carol-ak", "gw-carol-sk-1")
  h.check("... its tokens sign in (the api_key too)", balance(old_token) == 200
    and balance("gw-carol-key-2") == 200)
  res = change { secret_key = "gw-carol-sk-2" }
  h.check("a new secret_key alone (the access_key kept)", res.status == 200, res.body)
  h.check("... a token the old secret signed is refused, though this worker had verified it",
    balance(old_token) == 401)
  h.check("... and one the new secret signs is taken", balance(token("gw-carol-ak", "gw-carol-sk-2")) == 200)
  res = change { api_key = json.null }
  h.check("the api_key dropped (null), the pair kept", res.status == 200 and balance("gw-carol-key-2") == 401,
    res.body)

  -- ---- limits and suspension ----
  local jwt = token("gw-carol-ak", "gw-carol-sk-2")
  res = change { max_open = 1 }
  h.check("max_open set: shown", res.status == 200 and res.json.max_open == 1, res.body)
  local first = create(jwt, "a lighthouse at dusk")
  h.check("a create within it", first.status == 200, first.body)
  res = create(jwt, "a lighthouse at dawn")
  h.check("... the next is over it: 429, 1303", res.status == 429 and res.json and res.json.code == 1303, res.body)
  res = change { max_open = json.null }
  h.check("max_open dropped (null): no limit shown", res.status == 200 and res.json.max_open == nil, res.body)
  h.check("... and a second create is taken", create(jwt, "a lighthouse at noon").status == 200)
  local before, held = sim_creates(), carol()
  res = change { suspended = true }
  h.check("suspended: shown", res.status == 200 and res.json.suspended == true, res.body)
  res = create(jwt, "a lighthouse at night")
  h.check("a suspended account's create: 429, 1100 (an account exception: not retried)", res.status == 429
    and res.json and res.json.code == 1100 and tostring(res.json.message):find("suspended", 1, true) ~= nil, res.body)
  h.check("... nothing held, nothing sent upstream", carol().reserved == held.reserved and sim_creates() == before,
    json.encode { carol(), held })
  local _, shown_to_client = balance(jwt)
  h.check("... and its client sees it in GET /gateway/balance", shown_to_client and shown_to_client.suspended == true,
    json.encode(shown_to_client))
  local id = first.json and first.json.data.task_id
  res = call("GET", "/v1/videos/text2video/" .. tostring(id), jwt)
  h.check("... its tasks are still answered", res.status == 200, res.body)
  local metrics = h.request("GET", gw.http .. "/metrics").body or ""
  h.check("... and the refusal is counted by its reason", metrics:find('reason="suspended"} 1', 1, true) ~= nil,
    metrics:match("kling_gateway_refusals_total[^\n]*suspended[^\n]*"))
  res = create("gw-nobody-key", "a lighthouse unpaid for")
  local forged = create(token("gw-carol-ak", "not-carols-secret"), "a lighthouse forged")
  h.check("creates whose caller is not signed in (an unknown key, a token another secret signed): 401",
    res.status == 401 and forged.status == 401, res.body .. forged.body)
  metrics = h.request("GET", gw.http .. "/metrics").body or ""
  h.check("... counted as creates refused for reason auth",
    metrics:find('\nkling_gateway_refusals_total{reason="auth"} 2\n', 1, true) ~= nil,
    metrics:match("[^\n]*refusals_total[^\n]*auth[^\n]*"))

  -- ---- a restart from the journal, then from its compaction ----
  for _, how in ipairs { "the journal", "its compaction" } do
    g.stop()
    start()
    local c = carol()
    h.check("after a restart from " .. how .. " the account is as last changed (suspended, no max_open, credit)",
      c and c.suspended == true and c.max_open == nil and c.balance == held.balance, json.encode(c))
    h.check("... its replaced keys are refused and its pair signs in", balance("gw-carol-key-1") == 401
      and balance("gw-carol-key-2") == 401 and balance(old_token) == 401
      and balance(token("gw-carol-ak", "gw-carol-sk-2")) == 200)
    res = create(token("gw-carol-ak", "gw-carol-sk-2"), "a lighthouse in fog")
    h.check("... and its creates are still refused (1100)", res.status == 429 and res.json.code == 1100, res.body)
  end
  res = change { suspended = false }
  h.check("resumed: its creates are taken again", res.status == 200 and res.json.suspended == false
    and create(token("gw-carol-ak", "gw-carol-sk-2"), "a lighthouse in snow").status == 200, res.body)
  h.check_no_lua_error(g.srv(), "no Lua error in the error log")
end

h.main(run, g.srv, g.cleanup)
