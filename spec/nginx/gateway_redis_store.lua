-- The Redis store's three money faults an attacker review found (two gateway nodes under
-- `kling gateway start`, one Redis, the simulator):
--   1. nodes whose configs disagree on a credit: the store's credit stands once an account is
--      opened (a stale node's start restored a lowered credit), the node says so, and the admin
--      API's POST /gateway/admin/accounts/<name>/credit changes it for every node (409 on one node);
--   2. a node whose currency or price_provider is not the store's meters nothing (503, 5001),
--      names both in its error log, and recovers once its config is fixed and reloaded;
--   3. a Redis that lost its data (FLUSHALL) is refused as reset by a running node, a reloaded
--      one and a restarted one (its file), until started afresh on purpose (the file removed);
--   4. a Redis that went back in time (an older copy of its AOF put back: what a power loss
--      under appendfsync everysec or a failover to a lagging replica does) is refused by the
--      node that saw the lost movements, running or restarted (its file), and by every other
--      (the mark in the meta), until started afresh on purpose;
--   a Redis without AOF, or whose CONFIG is refused, is said at open.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local ADMIN_KEY = "gw-admin-key-0123456789"
local KEY = "gw-alice-key"

local base = h.tempdir("gateway-redis-store")
local sim_dir = base .. "/sim"
h.sh("mkdir -p " .. h.q(sim_dir) .. " " .. h.q(base .. "/redis"))
local sim, redis_port
local redis -- the test's redis-server (harness.redis), once made
local nodes = {}
local single -- a one-node gateway's dir

local function gateway(verb, dir, extra)
  return h.sh(("lua5.4 %s/bin/kling gateway %s --dir %s%s"):format(h.q(h.src), verb, h.q(dir), extra or ""))
end

-- Each node its own config file (they are to disagree).
local function configure(i, fields)
  local doc = {
    upstream = { provider = "kling", base_url = sim.http, access_key = sim.access_key, secret_key = sim.secret_key,
      timeout = 5 },
    admin_key = ADMIN_KEY, store = { redis = "redis://127.0.0.1:" .. redis_port .. "/0" },
    poll = { min_interval = 0.3, max_interval = 1, silence = 2, lookups = 3 },
    accounts = { { name = "alice", api_key = KEY, credit = "100" } },
  }
  for k, v in pairs(fields or {}) do
    doc[k] = v
  end
  h.write(nodes[i].config, json.encode(doc))
end

local function node_start(i)
  local n = nodes[i]
  local out, ok = gateway("start", n.dir, (" --config %s --port %d"):format(h.q(n.config), n.port))
  assert(ok, "kling gateway start: " .. out)
  n.info = assert(json.decode(out:match("{.*}")), out)
end

local function node_stop(i)
  gateway("stop", nodes[i].dir)
end

local function log_of(i)
  return h.read(nodes[i].dir .. "/error.log") or ""
end

-- Waits until node i's error log holds `text` (plain) -> whether it does.
local function logged(i, text, seconds)
  local limit = h.now() + (seconds or 10)
  repeat
    if log_of(i):find(text, 1, true) then
      return true
    end
    h.sleep(0.1)
  until h.now() > limit
  return false
end

-- kill -HUP of node i's master, waiting until its old workers are gone and new ones run.
local function reload(i)
  assert(h.hup(nodes[i].info.pid, 15), "node " .. i .. " did not reload")
  h.sleep(0.3) -- its first worker's timer at 0 (the store's check)
end

local function url(i, path)
  return "http://127.0.0.1:" .. nodes[i].port .. path
end

local function adm(method, i, path, body)
  return h.request(method, url(i, path), { headers = { authorization = "Bearer " .. ADMIN_KEY }, body = body })
end

-- Node i's count of creates refused for reason (kling_gateway_refusals_total), at least `least`:
-- each worker moves its counts into the shared dict every second, so a few seconds are waited.
local function refusals(i, reason, least)
  local name, n = 'kling_gateway_refusals_total{reason="' .. reason .. '"}'
  local limit = h.now() + 5
  repeat
    local text = h.request("GET", url(i, "/metrics")).body or ""
    n = tonumber(text:match("\n" .. name:gsub("%p", "%%%0") .. " (%d+)\n")) or 0
    if n >= (least or 0) then
      return n
    end
    h.sleep(0.2)
  until h.now() > limit
  return n
end

-- Node i's admin summary, its accounts by name (nil unless it answers 200).
local function summary(i)
  local res = adm("GET", i, "/gateway/admin")
  if res.status ~= 200 or not res.json then
    return nil, res
  end
  res.json.by = {}
  for _, a in ipairs(res.json.accounts or {}) do
    res.json.by[a.name] = a
  end
  return res.json
end

-- Waits until node i's summary shows alice (its first worker opened the accounts).
local function opened(i)
  local limit = h.now() + 15
  repeat
    local s = summary(i)
    if s and s.by.alice then
      return s
    end
    h.sleep(0.1)
  until h.now() > limit
  error("node " .. i .. " did not open its accounts: " .. log_of(i):sub(-1500))
end

local BODY = { model_name = "kling-v1", mode = "std", duration = "5", prompt = "a paper boat on a rain-soaked street" }
-- Priced by the kling catalog (CNY) and by apimodels' (USD): a node of either gets as far as its hold.
local BOTH = { model_name = "kling-v2-6", mode = "pro", duration = "5", prompt = "a lantern over a dark lake" }

local function create(i, body)
  return h.request("POST", url(i, "/v1/videos/text2video"), { headers = { authorization = "Bearer " .. KEY },
    body = body or BODY })
end

local function sim_creates()
  return h.sim_admin(sim, "GET", "/_sim/stats").creates
end

-- alice's credit lines in the Redis ledger, their amounts in order.
local function credit_lines(name)
  local out = {}
  for line in redis.cli("--raw lrange kgw:ledger 0 -1"):gmatch("[^\n]+") do
    local e = json.decode(line)
    if e and e.op == "credit" and e.account == (name or "alice") then
      out[#out + 1] = e.amount
    end
  end
  return table.concat(out, ",")
end

local function count(text, plain)
  local n, at = 0, 1
  while true do
    local s, e = text:find(plain, at, true)
    if not s then
      return n
    end
    n, at = n + 1, e + 1
  end
end

local function wait_settled(i, seconds)
  local limit = h.now() + seconds
  local s
  repeat
    h.sleep(0.3)
    s = summary(i) or s
  until (s and s.reserved == "0") or h.now() > limit
  return s
end

-- ---- 1. credits ----
local function credits()
  configure(1)
  configure(2, { accounts = { { name = "alice", api_key = KEY, credit = "50" } } })
  node_start(1)
  opened(1)
  node_start(2)
  opened(2)
  local warned = logged(2, "alice's credit in the Redis store is 100, not the 50 this node's config gives it")
  local a1, a2 = summary(1), summary(2)
  h.check("credit: a node whose config says 50 for an account the store opened with 100 changes nothing (both"
    .. " nodes show 100; one credit line, 100)", a1.by.alice.limit == "100" and a2.by.alice.limit == "100"
    and credit_lines() == "100", json.encode { a1.by.alice.limit, a2.by.alice.limit, credit_lines() })
  local log2 = log_of(2)
  h.check("... and says so once in its error log, naming both credits and the admin API's route", warned
    and count(log2, "alice's credit in the Redis store") == 1
    and log2:find("POST /gateway/admin/accounts/alice/credit {\"credit\": \"50\"}", 1, true) ~= nil,
    log2:match("[^\n]*credit in the Redis store[^\n]*"))

  -- one task charged (1), a top-up (10): the credit changed below keeps both
  local res = create(1)
  assert(res.status == 200, res.body)
  wait_settled(1, 30)
  res = adm("POST", 2, "/gateway/admin/accounts/alice/topup", { amount = "10" })
  assert(res.status == 200, res.body)
  res = adm("POST", 2, "/gateway/admin/accounts/alice/credit", { credit = "50.00" })
  a1 = summary(1)
  h.check("credit: POST .../alice/credit {credit: 50.00} on node 2 sets it for every node, top-ups kept, the"
    .. " balance moved by the difference (limit 60, spent 1, balance 59), a ledger line 50",
    res.status == 200 and res.json and res.json.limit == "60" and a1 and a1.by.alice.limit == "60"
      and a1.by.alice.spent == "1" and a1.by.alice.balance == "59" and credit_lines() == "100,50",
    tostring(res.status) .. " " .. tostring(res.body) .. " " .. credit_lines())

  local bad = {
    { { credit = "50", amount = "1" }, 400, "amount" },
    { { credit = "-5" }, 400, "credit" },
    { { credit = 50 }, 400, "credit" },
    { { credit = "5e1" }, 400, "credit" },
  }
  local strict = true
  for _, b in ipairs(bad) do
    res = adm("POST", 1, "/gateway/admin/accounts/alice/credit", b[1])
    if not (res.status == b[2] and res.json and res.json.field == b[3]) then
      strict = false
      print("# " .. json.encode(b[1]) .. ": " .. tostring(res.status) .. " " .. tostring(res.body))
    end
  end
  res = adm("POST", 1, "/gateway/admin/accounts/nobody/credit", { credit = "5" })
  h.check("credit: strict input (an unknown field named, a negative, a number, an exponent refused naming credit;"
    .. " an unknown account 404), nothing changed", strict and res.status == 404
    and summary(2).by.alice.limit == "60" and credit_lines() == "100,50", res.body)

  res = adm("POST", 1, "/gateway/admin/accounts", { name = "carol", api_key = "gw-carol-key", credit = "3" })
  local res2 = adm("POST", 2, "/gateway/admin/accounts/carol/credit", { credit = "7" })
  local carol = h.request("GET", url(1, "/gateway/balance"), { headers = { authorization = "Bearer gw-carol-key" } })
  h.check("credit: an account created through the admin API has its credit changed the same way (3 -> 7)",
    res.status == 201 and res2.status == 200 and carol.json and carol.json.data.credit == "7"
      and carol.json.data.balance == "7" and credit_lines("carol") == "3,7", tostring(res2.body) .. " " .. carol.body)

  -- node 1's config still says 100: its restart changes nothing
  node_stop(1)
  node_start(1)
  opened(1)
  local said = logged(1, "alice's credit in the Redis store is 50, not the 100 this node's config gives it")
  a1, a2 = summary(1), summary(2)
  h.check("credit: a restart of a node whose config says 100 leaves the credit set through the admin API (limit"
    .. " 60 on both nodes, no credit line), and says so", said and a1.by.alice.limit == "60"
    and a2.by.alice.limit == "60" and credit_lines() == "100,50",
    json.encode { said, a1.by.alice.limit, credit_lines() })

  -- one node: its credits are the config's (a reload would move them again)
  single = base .. "/single"
  -- its journal is the workers' (nobody's when started as root); start makes the dir 755
  h.sh("mkdir -p " .. h.q(single .. "/journal") .. " && chmod 777 " .. h.q(single .. "/journal"))
  local doc = json.decode(h.read(nodes[1].config))
  doc.store, doc.journal = nil, single .. "/journal/journal.jsonl"
  h.write(single .. "/gateway.json", json.encode(doc))
  local port = h.free_port()
  local out, ok = gateway("start", single, (" --config %s --port %d"):format(h.q(single .. "/gateway.json"), port))
  assert(ok, out)
  res = h.request("POST", "http://127.0.0.1:" .. port .. "/gateway/admin/accounts/alice/credit",
    { headers = { authorization = "Bearer " .. ADMIN_KEY }, body = { credit = "5" } })
  gateway("stop", single)
  h.check("credit: on one node the route is refused (409), saying its credits are the config file's and a reload's",
    res.status == 409 and res.body:find("config file", 1, true) ~= nil and res.body:find("reload", 1, true) ~= nil,
    tostring(res.status) .. " " .. tostring(res.body))
end

-- ---- 2. another unit ----
local function another_unit()
  configure(2, { price_provider = "apimodels" }) -- USD
  reload(2)
  local said = logged(2, "this node meters in currency USD priced by apimodels, but the Redis store kgw: at")
    and log_of(2):find("holds its balances in CNY priced by kling", 1, true) ~= nil
  local before_sim, before_len, before = sim_creates(), redis.cli("llen kgw:ledger"), summary(1)
  local refused_before = refusals(2, "store")
  local res = create(2, BOTH)
  h.check("another unit: a create on a node whose config meters in USD (apimodels) on a CNY (kling) store is"
    .. " refused, 503 code 5001", res.status == 503 and res.json and res.json.code == 5001,
    tostring(res.status) .. " " .. tostring(res.body))
  local refused = refusals(2, "store", refused_before + 1)
  h.check("... counted in /metrics as a create refused for reason store", refused == refused_before + 1,
    refused_before .. " -> " .. refused)
  local topup = adm("POST", 2, "/gateway/admin/accounts/alice/topup", { amount = "1" })
  local credit = adm("POST", 2, "/gateway/admin/accounts/alice/credit", { credit = "70" })
  local sum = adm("GET", 2, "/gateway/admin")
  local made = adm("POST", 2, "/gateway/admin/accounts", { name = "dora", api_key = "gw-dora-key", credit = "5" })
  local bal = h.request("GET", url(2, "/gateway/balance"), { headers = { authorization = "Bearer " .. KEY } })
  local head = adm("GET", 2, "/gateway/admin/ledger?limit=5")
  local trim = adm("POST", 2, "/gateway/admin/ledger/trim", { lines = 1, sha1 = string.rep("0", 40) })
  local kept = adm("GET", 2, "/gateway/admin/holds")
  local after = summary(1)
  h.check("... nothing forwarded, held or written (the simulator, the ledger list and alice as they were)",
    sim_creates() == before_sim and redis.cli("llen kgw:ledger") == before_len
      and after.by.alice.reserved == before.by.alice.reserved and after.by.alice.limit == before.by.alice.limit,
    json.encode { sim_creates(), before_sim, after.by.alice })
  h.check("... its admin API refuses a top-up, a credit, a new account (not written) and its summary, 503 naming"
    .. " both units; its clients' balance 503 (5001)", topup.status == 503 and topup.body:find("USD", 1, true) ~= nil
    and topup.body:find("CNY", 1, true) ~= nil and credit.status == 503 and sum.status == 503
    and sum.body:find("CNY", 1, true) ~= nil and made.status == 503
    and redis.cli("hexists kgw:accounts cn:dora"):match("%d+") == "0" and bal.status == 503 and bal.json
    and bal.json.code == 5001,
    json.encode { topup.status, topup.body, credit.status, sum.status, sum.body, made.status, bal.status })
  h.check("... its admin API refuses to read or trim the ledger list too, 503 naming both units",
    head.status == 503 and head.body:find("USD", 1, true) ~= nil and head.body:find("CNY", 1, true) ~= nil
    and trim.status == 503 and trim.body:find("CNY", 1, true) ~= nil,
    json.encode { head.status, head.body, trim.status, trim.body })
  h.check("... and to list the kept holds (503 naming both units, not a list of amounts in another unit)",
    kept.status == 503 and kept.body:find("USD", 1, true) ~= nil and kept.body:find("CNY", 1, true) ~= nil,
    json.encode { kept.status, kept.body })
  h.check("... its error log names both (USD priced by apimodels, CNY priced by kling)", said)
  -- the one node left is refused: the poll's lock (kgw:poller, "<hex>:<worker pid>") stays free
  node_stop(1)
  local mine, held = {}, nil
  for _, w in ipairs(h.workers(nodes[2].info.pid)) do
    mine[tostring(w)] = true
  end
  local limit = h.now() + 3
  repeat
    local owner = redis.cli("--raw get kgw:poller"):match("%x+:(%d+)")
    held = held or (owner and mine[owner] and owner)
    h.sleep(0.1)
  until h.now() > limit
  h.check("... and it does not lead the poll: alone, for 3 s, it never takes the lock", not held
    and redis.cli("exists kgw:poller"):match("%d+") == "0", tostring(held))
  node_start(1)
  opened(1)
  configure(2)
  reload(2)
  res = create(2, BOTH)
  h.check("another unit: the node meters again once its config is fixed and reloaded", res.status == 200,
    tostring(res.status) .. " " .. tostring(res.body))
  wait_settled(1, 30)
end

local function store_file(i)
  local dir = nodes[i].dir .. "/kling-store"
  local name = h.sh("ls " .. h.q(dir)):match("(%x+%.json)")
  return name and (dir .. "/" .. name), dir
end

-- ---- 3. a store that lost its data ----
local function reset()
  local id = redis.cli("--raw hget kgw:meta id"):match("%x+")
  local file = store_file(1)
  local kept = file and json.decode(h.read(file) or "")
  local owner = file and h.sh("stat -c %U " .. h.q(file)):match("%S+")
  h.check("reset: the store records its id, currency and price provider (kgw:meta), and each node keeps the id in"
    .. " a file of its dir (written by its workers: nobody's when started as root)", id ~= nil and kept
    and kept.id == id and redis.cli("--raw hget kgw:meta currency"):match("%S+") == "CNY"
    and redis.cli("--raw hget kgw:meta price_provider"):match("%S+") == "kling"
    and (not h.is_root() or owner == "nobody"), json.encode { id, kept, owner })

  -- a task left open: its hold is what a reset would lose
  assert(h.sim_admin(sim, "POST", "/_sim/config", { task_seconds = 600 }))
  local res = create(1)
  assert(res.status == 200, res.body)
  assert(h.sim_admin(sim, "DELETE", "/_sim/config"))
  res = adm("POST", 1, "/gateway/admin/accounts", { name = "ella", api_key = "gw-ella-key", credit = "5" })
  assert(res.status == 201, res.body)
  redis.cli("flushall")
  local before_sim = sim_creates()
  res = create(1)
  local running = res.status == 503 and res.json and res.json.code == 5001
  reload(1)
  res = create(1)
  local sum = adm("GET", 1, "/gateway/admin")
  local topup = adm("POST", 1, "/gateway/admin/accounts/alice/topup", { amount = "1" })
  local said = logged(1, "the store was reset: the Redis store kgw: at 127.0.0.1:" .. redis_port
    .. "/0 has lost its meta hash kgw:meta, yet this node saw store " .. tostring(id))
  h.check("reset: after FLUSHALL a running node refuses creates (503, 5001), also after a reload, and nothing is"
    .. " forwarded", running and res.status == 503 and res.json and res.json.code == 5001
    and sim_creates() == before_sim, tostring(res.status) .. " " .. tostring(res.body))
  h.check("... its admin API 503 (summary, top-up) saying the store was reset; its error log says so",
    said and sum.status == 503 and sum.body:find("the store was reset", 1, true) ~= nil and topup.status == 503
    and topup.body:find("the store was reset", 1, true) ~= nil, json.encode { said, sum.body, topup.body })
  h.sleep(1)
  h.check("... and it writes nothing back (no meta, no account: spent credit is not given back)",
    redis.cli("exists kgw:meta"):match("%d+") == "0" and redis.cli("exists kgw:a:alice"):match("%d+") == "0",
    redis.cli("--raw keys '*'"))

  node_stop(2)
  node_start(2)
  h.sleep(0.5)
  res = create(2)
  h.check("reset: a node restarted after it (shared memory empty) refuses it too: its file knows the store",
    res.status == 503 and res.json and res.json.code == 5001 and logged(2, "the store was reset")
    and redis.cli("exists kgw:a:alice"):match("%d+") == "0", tostring(res.status) .. " " .. tostring(res.body))
  local ella = h.request("GET", "http://127.0.0.1:" .. nodes[2].port .. "/gateway/balance",
    { headers = { authorization = "Bearer gw-ella-key" } })
  h.check("... and the key of an account the admin API made, which the store lost, answers 503 (5001) there, not 401"
    .. " 'unknown key' (which clients take for their keys refused for good)", ella.status == 503 and ella.json
    and ella.json.code == 5001, tostring(ella.status) .. " " .. tostring(ella.body))

  -- afresh on purpose: node 1 stopped, its file removed, started
  node_stop(1)
  local _, dir1 = store_file(1)
  h.sh("rm -rf " .. h.q(dir1))
  node_start(1)
  opened(1)
  res = create(1)
  local fresh = redis.cli("--raw hget kgw:meta id"):match("%x+")
  h.check("reset: a node whose file was removed starts the store afresh (a new id; its config's credit, 100)",
    res.status == 200 and fresh ~= nil and fresh ~= id and summary(1).by.alice.limit == "100",
    tostring(res.body) .. " " .. tostring(fresh))
  res = create(2)
  h.check("... while a node that saw the old store refuses the new one (503, 5001), naming both ids",
    res.status == 503 and res.json and res.json.code == 5001
    and logged(2, "is store " .. tostring(fresh) .. " now, but this node saw store " .. tostring(id)),
    tostring(res.status) .. " " .. tostring(res.body))
  -- The new store numbers its ledger lines from 0 again: an archiver reading it through the node
  -- that saw the old one wrote them over the old store's archived parts of the same offsets.
  local head = adm("GET", 2, "/gateway/admin/ledger?limit=5")
  local trim = adm("POST", 2, "/gateway/admin/ledger/trim", { lines = 1, sha1 = string.rep("0", 40) })
  local new_head = adm("GET", 1, "/gateway/admin/ledger?limit=5")
  local holds = adm("GET", 2, "/gateway/admin/holds")
  h.check("... and to list the kept holds (503, the store was reset), not an empty list", holds.status == 503
    and holds.body:find("the store was reset", 1, true) ~= nil, json.encode { holds.status, holds.body })
  h.check("... and refuses to read or trim its ledger list (503, the store was reset), which the new node answers"
    .. " from offset 0", head.status == 503 and head.body:find("the store was reset", 1, true) ~= nil
    and trim.status == 503 and trim.body:find("the store was reset", 1, true) ~= nil and new_head.status == 200
    and new_head.headers["x-kling-ledger-offset"] == "0",
    json.encode { head.status, head.body, trim.status, new_head.status, new_head.headers["x-kling-ledger-offset"] })
  node_stop(2)
  local _, dir2 = store_file(2)
  h.sh("rm -rf " .. h.q(dir2))
  node_start(2)
  opened(2)
  res = create(2)
  h.check("... until its file is removed too (it takes the new store)", res.status == 200, res.body)
end

-- ---- 4. a store that went back in time ----
local redis_dir, redis_copy = base .. "/redis", base .. "/redis-copy"

-- Redis stopped whole (SHUTDOWN writes its AOF out), its data copied, started again.
local function copy_redis()
  redis.cli("shutdown")
  local limit = h.now() + 10
  while redis.cli("ping"):find("PONG", 1, true) do
    assert(h.now() < limit, "redis did not stop")
    h.sleep(0.05)
  end
  h.sh("rm -rf " .. h.q(redis_copy) .. " && cp -a " .. h.q(redis_dir) .. " " .. h.q(redis_copy))
  redis.start()
end

-- Redis stopped, the copy's data put back, started: every write since the copy lost.
local function put_copy_back()
  redis.stop()
  h.sh("rm -rf " .. h.q(redis_dir) .. " && cp -a " .. h.q(redis_copy) .. " " .. h.q(redis_dir))
  redis.start()
end

local function seq()
  return tonumber(redis.cli("get kgw:seq"):match("%d+")) or 0
end

-- Both nodes stopped, their files removed, started: the store started afresh on purpose.
local function afresh()
  for i = 1, 2 do
    node_stop(i)
    local _, dir = store_file(i)
    h.sh("rm -rf " .. h.q(dir))
  end
  for i = 1, 2 do
    node_start(i)
    opened(i)
  end
end

local function settled_creates(i, n)
  for _ = 1, n do
    local res = create(i)
    assert(res.status == 200, res.body)
  end
  wait_settled(i, 30)
end

local function rollback()
  local id = redis.cli("--raw hget kgw:meta id"):match("%x+")
  copy_redis()
  settled_creates(1, 3)
  local then_seq = seq()
  put_copy_back()
  local before_sim, now_seq = sim_creates(), seq()
  local res = create(1)
  h.check(("rollback: Redis back at an older copy (%d movements, not %d): the running node that made the lost ones"
    .. " refuses its next create (503, 5001), nothing forwarded"):format(now_seq, then_seq), now_seq < then_seq
    and res.status == 503 and res.json and res.json.code == 5001 and sim_creates() == before_sim,
    tostring(res.status) .. " " .. tostring(res.body))
  local said = logged(1, "the store went back in time: the Redis store kgw: at 127.0.0.1:" .. redis_port .. "/0 has "
    .. now_seq .. " movements now, but a gateway node saw")
  h.check("... names it in its error log (the movements there and seen), and marks the store for every node"
    .. " (kgw:meta rolled_back), its id kept", said
    and redis.cli("--raw hget kgw:meta rolled_back"):match("^(%d+) %d+") == tostring(now_seq)
    and redis.cli("--raw hget kgw:meta id"):match("%x+") == id, redis.cli("--raw hgetall kgw:meta"))
  res = create(2)
  local sum = adm("GET", 2, "/gateway/admin")
  h.check("... the other node refuses it too: a create 503 (5001), its admin summary 503 saying so",
    res.status == 503 and res.json and res.json.code == 5001 and sum.status == 503
    and sum.body:find("went back in time", 1, true) ~= nil and sim_creates() == before_sim,
    tostring(res.status) .. " " .. tostring(sum.body))
  node_stop(1)
  node_start(1)
  h.sleep(0.5)
  res = create(1)
  h.check("... and so does a node restarted", res.status == 503 and res.json and res.json.code == 5001,
    tostring(res.status) .. " " .. tostring(res.body))
  afresh()
  res = create(1)
  local fresh = redis.cli("--raw hget kgw:meta id"):match("%x+")
  h.check("rollback: started afresh on purpose (every node stopped, its file removed): a new id, the mark gone,"
    .. " creates made on both nodes", res.status == 200 and create(2).status == 200 and fresh ~= id
    and redis.cli("hexists kgw:meta rolled_back"):match("%d+") == "0", tostring(res.body))
  wait_settled(1, 30)

  -- every node stopped before the loss: only the nodes' files know what they saw
  copy_redis()
  settled_creates(1, 3)
  then_seq = seq()
  node_stop(1)
  node_stop(2)
  local kept = json.decode(h.read((store_file(1))) or "")
  h.check("rollback: a node that stops writes the movements it saw to its file", kept and type(kept.seq) == "number"
    and kept.seq > 0 and kept.seq <= then_seq, json.encode(kept))
  put_copy_back()
  before_sim = sim_creates()
  node_start(1)
  said = logged(1, "the store went back in time")
  res = create(1)
  h.check("rollback: a node restarted after the loss refuses the store from its file (503, 5001; its error log"
    .. " says so; nothing forwarded)", said and res.status == 503 and res.json and res.json.code == 5001
    and sim_creates() == before_sim, tostring(res.status) .. " " .. tostring(res.body))
  afresh()
  res = create(2)
  h.check("... until started afresh on purpose", res.status == 200, res.body)
  wait_settled(2, 30)
end

-- ---- Redis's persistence, said at open ----
local function persistence()
  redis.cli("config set appendonly no")
  node_stop(1)
  node_start(1)
  -- what a restart then does, as the store's check does it (it said the snapshot's balances were taken back)
  h.check("a node opening a Redis with appendonly no warns", logged(1, "Redis's appendonly is no")
    and logged(1, "from an RDB snapshot, as gone back in time, and meter nothing until the operator acts"))
  redis.cli("config set appendonly yes")
  redis.cli("acl setuser default -config")
  node_stop(1)
  node_start(1)
  local said = logged(1, "Redis's appendonly could not be checked")
  redis.cli("acl setuser default +config")
  h.check("... and says when it could not be checked (CONFIG refused)", said)
end

local function cleanup()
  for i = 1, #nodes do
    node_stop(i)
  end
  if single then
    gateway("stop", single)
  end
  if redis then
    redis.stop()
  end
  h.tidy(base, sim_dir)
end

local ok, err = pcall(function()
  sim = h.sim_start(sim_dir, { task_seconds = 1 })
  redis = h.redis(base .. "/redis")
  redis_port = redis.port
  redis.start()
  for i = 1, 2 do
    nodes[i] = { dir = base .. "/node" .. i, port = h.free_port(), config = base .. "/gateway" .. i .. ".json" }
  end
  credits()
  another_unit()
  reset()
  rollback()
  persistence()
end)
if not ok then
  h.check("the test ran to its end", false, err)
  for i = 1, #nodes do
    print(("# node %d error.log tail:\n%s"):format(i, log_of(i):sub(-2500)))
  end
end
local lua_errors = false
for i = 1, #nodes do
  lua_errors = lua_errors or log_of(i):find("runtime error", 1, true) ~= nil
end
h.check("no Lua error in the nodes' error logs", not lua_errors)
h.finish(cleanup)
