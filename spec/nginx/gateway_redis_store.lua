-- The Redis store's money faults an attacker review found (two gateway nodes under `kling
-- gateway start`, one Redis, the simulator): nodes whose configs disagree on a credit. The
-- store's credit stands once an account is opened (a stale node's start restored a lowered
-- credit), the node says so, and the admin API's POST /gateway/admin/accounts/<name>/credit
-- changes it for every node (409 on one node).
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local ADMIN_KEY = "gw-admin-key-0123456789"
local KEY = "gw-alice-key"

local base = h.tempdir("gateway-redis-store")
local sim_dir = base .. "/sim"
h.sh("mkdir -p " .. h.q(sim_dir) .. " " .. h.q(base .. "/redis"))
local sim, redis_port
local nodes = {}
local single -- a one-node gateway's dir

local function redis_cli(...)
  return (h.sh("redis-cli -p " .. redis_port .. " " .. table.concat({ ... }, " ")))
end

local function redis_start()
  local out, ok = h.sh(("redis-server --port %d --bind 127.0.0.1 --appendonly yes --appendfsync always --save ''"
    .. " --dir %s --daemonize yes --logfile %s"):format(redis_port, h.q(base .. "/redis"),
    h.q(base .. "/redis/redis.log")))
  assert(ok, "redis-server: " .. out)
  local limit = h.now() + 10
  while not redis_cli("ping"):find("PONG", 1, true) do
    assert(h.now() < limit, "redis did not answer")
    h.sleep(0.05)
  end
end

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

local function url(i, path)
  return "http://127.0.0.1:" .. nodes[i].port .. path
end

local function adm(method, i, path, body)
  return h.request(method, url(i, path), { headers = { authorization = "Bearer " .. ADMIN_KEY }, body = body })
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
local function create(i, body)
  return h.request("POST", url(i, "/v1/videos/text2video"), { headers = { authorization = "Bearer " .. KEY },
    body = body or BODY })
end

-- alice's credit lines in the Redis ledger, their amounts in order.
local function credit_lines(name)
  local out = {}
  for line in redis_cli("--raw lrange kgw:ledger 0 -1"):gmatch("[^\n]+") do
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

local function cleanup()
  for i = 1, #nodes do
    node_stop(i)
  end
  if single then
    gateway("stop", single)
  end
  if redis_port then
    redis_cli("shutdown nosave")
  end
  h.tidy(base, sim_dir)
end

local ok, err = pcall(function()
  sim = h.sim_start(sim_dir, { task_seconds = 1 })
  redis_port = h.free_port()
  redis_start()
  for i = 1, 2 do
    nodes[i] = { dir = base .. "/node" .. i, port = h.free_port(), config = base .. "/gateway" .. i .. ".json" }
  end
  credits()
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
