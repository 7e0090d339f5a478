-- The admin API's faults, each with the check that found it: on one node (`kling gateway
-- start`, a journal) and on a node of a Redis store, each with a simulator of its own.
--   - journal/reopen refuses an unknown field by name, as every other admin route does.
--   - a top-up's id is remembered for retention_days (here 0.0003: 26 s), across a restart and
--     the journal's compaction, then forgotten: kept for good, the ids grew without bound.
--   - with Redis, a config file account named as an account the admin API created before signs
--     nothing in, and is not opened over it: balances and tasks are kept by name, so it saw the
--     created account's tasks and balance and spent its credit.
--   - creates the upstream refuses for the request's sake count toward the account's
--     max_failed_daily (429, 1102 past it, nothing sent), across a restart: they cost nothing,
--     so one client could send them upstream and into the journal without bound.
--   - an account the admin API creates may not take the name of an account the store still keeps
--     (one dropped from the config file), in any case: it got that account's balance and tasks
--     (and ZED beside a dropped zed made the file that put zed back refused at start).
--   - with Redis away, an account this node never read (created on another node) is "cannot be
--     read now" (503) to a top-up, a credit and a change, not "no account" (404).
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local ADMIN = "admin-0123456789abcdef"
local g = h.launched("gateway-admin-api")
local gr = h.launched("gateway-admin-api-redis")
local sim, gw, redis
local current = g

local function admin_call(method, path, body)
  return h.request(method, gw.http .. "/gateway/admin" .. path, { headers = { authorization = "Bearer " .. ADMIN },
    body = body and (type(body) == "string" and body or json.encode(body)) })
end

local function refused(res, status, field, words)
  return res.status == status and res.json ~= nil and res.json.field == field
    and (not words or tostring(res.json.error):find(words, 1, true) ~= nil)
end

local WINDOW_S = 26 -- retention_days 0.0003, in whole seconds: how long a top-up's id is remembered (two
-- restarts must fit in it: 9 s did not on a loaded machine)

local function config(extra)
  local doc = {
    upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key }, retention_days = 0.0003,
    admin_key = ADMIN, poll = { min_interval = 0.3, max_interval = 0.5 },
    accounts = { { name = "alice", api_key = "gw-alice-key", credit = "100" },
      { name = "rita", api_key = "gw-rita-key", credit = "100", max_failed_daily = 2 } },
  }
  for k, v in pairs(extra) do
    doc[k] = v
  end
  return doc
end

-- A top-up of alice with id -> its "applied", or the answer's status and body.
local function topup(amount, id)
  local res = admin_call("POST", "/accounts/alice/topup", { amount = amount, id = id })
  if res.status ~= 200 then
    return res.status, res.body
  end
  return res.json.topup.applied, res.json.balance
end

-- A top-up's id, within its window and past it; restart(): the node started again (nil: none).
local function topup_window(where, restart)
  local t0 = h.now()
  local applied = topup("1", "inv-1")
  h.check(where .. ": a top-up with an id is applied", applied == true, tostring(applied))
  applied = topup("1", "inv-1")
  h.check(where .. ": ... and sent again within its window adds nothing", applied == false, tostring(applied))
  if restart then
    restart()
    applied = topup("1", "inv-1")
    h.check(where .. ": ... nor after a restart (the journal read back)", applied == false, tostring(applied))
    restart()
    applied = topup("1", "inv-1")
    h.check(where .. ": ... nor after a second (the journal compacted by the first: the id with its expiry)",
      applied == false, tostring(applied))
  end
  h.sleep(math.max(0, t0 + WINDOW_S + 1.5 - h.now()))
  local bal
  applied, bal = topup("1", "inv-1")
  h.check(where .. ": past its window (retention_days) the id is forgotten: the same top-up adds again",
    applied == true and bal == "102", tostring(applied) .. " " .. tostring(bal))
end

local function create(key)
  return h.request("POST", gw.http .. "/v1/videos/text2video", { headers = { authorization = "Bearer " .. key },
    body = json.encode { model_name = "kling-v1", mode = "std", duration = "5", prompt = "a paper boat" } })
end

local capacity_fresh_s = 1 -- kling.gateway.capacity FAILED_FRESH_S

local function sim_creates()
  return h.sim_admin(sim, "GET", "/_sim/stats").creates
end

-- rita's creates refused upstream (404, 1203: a fault of the simulator's) count toward her day;
-- restart(): the node started again (nil: none).
local function refusals(where, restart)
  h.sim_admin(sim, "POST", "/_sim/faults", { rules = { { kind = "not_found", method = "POST",
    path = "^/v1/videos", count = 3 } } })
  local a, b = create("gw-rita-key"), create("gw-rita-key")
  h.check(where .. ": two creates the upstream refuses (404, 1203), costing nothing", a.status == 404
    and b.status == 404 and b.json and b.json.code == 1203, a.body .. " " .. b.body)
  if restart then
    restart()
  end
  h.sleep(capacity_fresh_s + 0.3) -- a create reads its worker's copy of the count, at most this old
  local before = sim_creates()
  local c = create("gw-rita-key")
  h.check(where .. ": ... count toward max_failed_daily (2): the third is refused 429, 1102, with a Retry-After,"
    .. " and nothing is sent upstream"
    .. (restart and " (after two restarts too: read back from the journal, kept by its compaction)" or ""),
    c.status == 429 and c.json and c.json.code == 1102 and tonumber(c.headers["retry-after"]) ~= nil
      and sim_creates() == before, c.body)
  local res = h.request("GET", gw.http .. "/gateway/balance", { headers = { authorization = "Bearer gw-rita-key" } })
  h.check(where .. ": ... her balance counts them (failed_today 2), and is whole (nothing charged)",
    res.json and res.json.data and res.json.data.failed_today == 2 and res.json.data.balance == "100", res.body)
  local other = create("gw-alice-key")
  h.check(where .. ": ... another account's creates go on (the upstream's refusals of rita are hers)",
    other.status == 404 and other.json and other.json.code == 1203, other.body)
  h.sim_admin(sim, "DELETE", "/_sim/faults")
end

-- The pids of pid's worker processes, as a set.
-- kill -HUP of the gateway's master, waiting until its old workers are gone and new ones run.
local function reload(doc)
  current.write_config(doc)
  assert(h.hup(gw.pid, 15), "the gateway did not reload")
  h.sleep(0.5) -- its first worker's timer at 0 (the store's check)
end

local function balance(key)
  local res = h.request("GET", gw.http .. "/gateway/balance", { headers = { authorization = "Bearer " .. key } })
  return res.status, res.json and res.json.data, res.body
end

-- A file account dropped from the config keeps its balance and tasks under its name: the admin
-- API refuses that name to a new account. restart(doc): the node started again with doc (nil: none).
local function dropped_name(where, restart)
  local doc = config(current == g and { journal = g.journal }
    or { store = { redis = "redis://127.0.0.1:" .. redis.port .. "/0" } })
  doc.accounts[#doc.accounts + 1] = { name = "zed", api_key = "gw-zed-key-1", credit = "10" }
  reload(doc)
  local res = admin_call("POST", "/accounts/zed/topup", { amount = "2" })
  h.check(where .. ": a file account zed, topped up", res.status == 200 and res.json.balance == "12", res.body)
  doc.accounts[#doc.accounts] = nil
  reload(doc)
  res = admin_call("POST", "/accounts", { name = "zed", api_key = "gw-zed-key-2", credit = "1" })
  h.check(where .. ": zed dropped from the file, a new account of its name is refused (409, naming name): it"
    .. " would get zed's balance and tasks", refused(res, 409, "name", "kept by name"), res.body)
  res = admin_call("POST", "/accounts", { name = "ZED", api_key = "gw-zed-key-3", credit = "1" })
  h.check(where .. ": ... and so is ZED (409, naming name: names are one account's in any case): putting zed back"
    .. " in the file would be refused beside it", refused(res, 409, "name", "differ in case only"), res.body)
  if restart then
    restart(doc)
    res = admin_call("POST", "/accounts", { name = "zed", api_key = "gw-zed-key-2", credit = "1" })
    h.check(where .. ": ... after a restart too (its spend and top-ups read back from the journal)",
      refused(res, 409, "name"), res.body)
    res = admin_call("POST", "/accounts", { name = "Zed", api_key = "gw-zed-key-3", credit = "1" })
    h.check(where .. ": ... Zed too after a restart", refused(res, 409, "name", "differ in case only"), res.body)
  end
end

local function one_node()
  gw = g.start(config { journal = g.journal })
  -- ---- journal/reopen: no fields ----
  local res = admin_call("POST", "/journal/reopen", { generaton = 1 })
  h.check("journal/reopen: an unknown field is refused by name (400), nothing reopened", refused(res, 400,
    "generaton", "not a known field of a reopen of the journal"), res.body)
  res = admin_call("POST", "/journal/reopen", "[1]")
  h.check("journal/reopen: a body that is no JSON object is refused (400)", res.status == 400, res.body)
  res = admin_call("POST", "/journal/reopen", '{"a": 1, "a": 2}')
  h.check("journal/reopen: a field given twice is refused by name", refused(res, 400, "a"), res.body)
  res = admin_call("POST", "/journal/reopen")
  h.check("journal/reopen: no body reopens (200), as the README's curl sends it", res.status == 200, res.body)
  res = admin_call("POST", "/journal/reopen", {})
  h.check("journal/reopen: {} reopens (200)", res.status == 200, res.body)
  -- A whole copy metered in another unit (its first line): the next start would refuse it, so a
  -- reopen does too, and the workers keep the file they have. Copies keep the journal's owner.
  local j = g.journal
  h.sh("cp -p " .. h.q(j) .. " " .. h.q(j .. ".keep") .. " && cp -p " .. h.q(j) .. " " .. h.q(j .. ".other"))
  local f = assert(io.open(j, "rb"))
  local text = f:read("a")
  f:close()
  local first = json.decode(text:match("^[^\n]*"))
  f = assert(io.open(j .. ".other", "wb"))
  f:write((text:gsub("^[^\n]*", json.encode { op = "journal", version = first.version, currency = "credits",
    price_provider = "evolink" }, 1)))
  f:close()
  assert(os.rename(j .. ".other", j))
  res = admin_call("POST", "/journal/reopen")
  local other = res
  assert(os.rename(j .. ".keep", j))
  h.check("journal/reopen: a whole journal metered in another unit is refused (409, naming price_provider and what"
    .. " to do), nothing reopened", first.currency == "CNY" and first.price_provider == "kling"
    and refused(other, 409, "journal", "metered in credits priced by evolink, but this gateway meters in CNY priced"
    .. " by kling"), json.encode(first) .. " " .. tostring(other.body))
  res = admin_call("POST", "/journal/reopen")
  h.check("journal/reopen: ... and the journal put back reopens (200)", res.status == 200, res.body)

  -- ---- hostile input ----
  res = admin_call("POST", "/accounts", { name = "huge", api_key = "gw-huge-key-1", credit = "99999999999" })
  h.check("a new account's credit past 2^53 micro-units is refused (400, naming credit): the stores' doubles"
    .. " would lose micro-units, as for a top-up past it", refused(res, 400, "credit", "out of range"), res.body)

  dropped_name("one node", function(doc)
    g.stop()
    gw = g.start(doc)
  end)

  -- two restarts: the first's compaction rewrites the journal (the refused creates leave no
  -- task), and the second must still count the day's refusals
  refusals("one node", function()
    for _ = 1, 2 do
      g.stop()
      gw = g.start(config { journal = g.journal })
    end
  end)

  -- ---- a top-up's id: remembered for retention_days ----
  topup_window("one node", function()
    g.stop()
    gw = g.start(config { journal = g.journal })
  end)
  h.check_no_lua_error(g.srv())
  g.stop()
end

local function redis_node()
  current = gr
  redis = h.redis(gr.base .. "/redis")
  redis.start()
  gw = gr.start(config { store = { redis = "redis://127.0.0.1:" .. redis.port .. "/0" } })
  -- the file's accounts sign in once the first worker has checked them against the store's
  -- (503 until then: README)
  local limit = h.now() + 10
  while h.now() < limit and balance("gw-alice-key") ~= 200 do
    h.sleep(0.1)
  end
  local res = admin_call("POST", "/journal/reopen", { path = "/tmp/x" })
  h.check("journal/reopen with Redis: an unknown field is refused by name too", refused(res, 400, "path"), res.body)

  refusals("Redis")
  dropped_name("Redis")
  -- zed is now as another node's file account: in the store, in no file of this node's. A new
  -- ZED passed (kept asked the exact name), and that node's next check of its file (any case)
  -- found its zed taken: not opened, signing nothing in, its balance stranded.
  res = admin_call("POST", "/accounts", { name = "ZED", api_key = "gw-zed-key-3", credit = "1" })
  h.check("Redis: a new account named as one the store keeps in all but case is refused (409, naming name):"
    .. " the node whose file has zed would find it taken at its next start and lock its client out",
    refused(res, 409, "name", "differ in case only"), res.body)

  -- ---- a file account named as a created one ----
  res = admin_call("POST", "/accounts", { name = "erin", api_key = "gw-erin-created", credit = "10" })
  h.check("Redis: an account created by the admin API", res.status == 201, res.body)
  local doc = config { store = { redis = "redis://127.0.0.1:" .. redis.port .. "/0" } }
  doc.accounts[2] = { name = "erin", api_key = "gw-erin-file-key", credit = "50" }
  reload(doc)
  local status, _, body = balance("gw-erin-file-key")
  h.check("Redis: a file account named as the created one signs nothing in (401): it would see the"
    .. " created account's tasks and balance, and spend its credit", status == 401, tostring(status) .. " " .. body)
  status = balance("gw-erin-created")
  h.check("Redis: ... nor does the created one (the file has its name)", status == 401, tostring(status))
  h.check("Redis: ... the file's account is not opened over it in the store (the created one's credit stands)",
    redis.cli("--raw hget kgw:a:erin limit"):match("%d+") == "10000000", redis.cli("--raw hgetall kgw:a:erin"))
  res = admin_call("POST", "/accounts/erin/topup", { amount = "5" })
  h.check("Redis: ... a top-up sent to that name is refused (409, naming name): it would be the created one's",
    refused(res, 409, "name") and redis.cli("--raw hget kgw:a:erin limit"):match("%d+") == "10000000", res.body)
  h.check("Redis: ... and the error log names it", gr.srv().error_log():find("the config file's account erin is not"
    .. " opened and signs nothing in", 1, true) ~= nil)
  doc.accounts[2] = nil
  reload(doc)
  local data
  status, data = balance("gw-erin-created")
  h.check("Redis: the file fixed and reloaded, the created account signs in again, its balance its own",
    status == 200 and data and data.balance == "10", tostring(status))

  topup_window("Redis")
  local ttl = tonumber(redis.cli("ttl kgw:tu:alice:inv-1"):match("%-?%d+"))
  h.check("Redis: a top-up's id is a key that expires with its window (kgw:tu:<account>:<id>)",
    ttl and ttl > 0 and ttl <= WINDOW_S, tostring(ttl))

  -- ---- Redis away: an account another node created ----
  redis.cli("hset kgw:accounts cn:ghost " .. h.q(json.encode { name = "ghost", api_key = "gw-ghost-key-1",
    credit = "5" }))
  redis.stop()
  local t, c, p = admin_call("POST", "/accounts/ghost/topup", { amount = "1" }),
    admin_call("POST", "/accounts/ghost/credit", { credit = "6" }), admin_call("PATCH", "/accounts/ghost",
      { max_open = 2 })
  h.check("Redis away: an account created on another node is not 'no account' (404) but cannot be read now (503),"
    .. " to a top-up, a credit and a change", t.status == 503 and c.status == 503 and p.status == 503,
    t.body .. " " .. c.body .. " " .. p.body)
  h.check_no_lua_error(gr.srv())
  gr.stop()
end

local function run()
  sim = h.sim_start(g.sim_dir, { task_seconds = 2 })
  one_node()
  redis_node()
end

h.main(run, function()
  return current.srv()
end, function()
  if redis then
    redis.stop()
  end
  g.cleanup()
  gr.cleanup()
end)
