-- issue 12.2: the metering gateway killed with SIGKILL (master and workers at once) in the
-- middle of a load of creates, twice, and restarted from its journal: every create answered
-- 200 is still a task and ends, nothing stays reserved, and the spend equals the
-- simulator's ledger to the micro-unit (no reservation lost, no spend forgotten or doubled).
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local core = require "kling.core"
local json = require "kling.json"

local SIM_SECRET = "whsec_" .. core.b64encode("simulator-to-gateway-secret")
local ADMIN_KEY = "gw-admin-key-0123456789"
local KEY = "gw-alice-key"
local CREDIT = "100000"

local base = h.tempdir("gateway-crash")
local sim_dir, prefix = base .. "/sim", base .. "/nginx"
h.sh("mkdir -p " .. h.q(sim_dir) .. " " .. h.q(prefix) .. " && chmod 755 " .. h.q(prefix))
local srv, sim, port

local function cleanup()
  if srv then
    srv.stop()
  end
  h.tidy(base, sim_dir)
end

local function url(path)
  return "http://127.0.0.1:" .. port .. path
end

local function admin()
  local res = h.request("GET", url("/gateway/admin"), { headers = { authorization = "Bearer " .. ADMIN_KEY } })
  assert(res.ok and res.status == 200, "gateway admin: " .. tostring(res.message or res.body))
  return json.decode(res.body)
end

local function micros(s)
  return assert(core.money_parse(tostring(s)), "not an amount: " .. tostring(s))
end

local function start_nginx()
  local conf = h.conf_head(prefix) .. "http {\n  access_log off;\n" .. h.lua_paths() .. h.temp_paths(prefix)
    .. ("  include %s/examples/nginx/http.conf;\n  server {\n    listen 127.0.0.1:%d;\n"
    .. "    include %s/examples/nginx/server.conf;\n  }\n}\n"):format(h.src, port, h.src)
  srv = h.nginx_start(prefix, conf, port)
end

-- SIGKILL to the master and every worker at once: no handler runs, no buffer is flushed.
local function kill9()
  local pids = { srv.pid }
  for _, w in ipairs(srv.workers()) do
    pids[#pids + 1] = w
  end
  h.sh("kill -KILL " .. table.concat(pids, " "))
  local limit = h.now() + 5
  for _, p in ipairs(pids) do
    while h.alive(p) and h.now() < limit do
      h.sleep(0.02)
    end
  end
  srv = nil
end

-- n creates, `parallel` at a time, by curl in the background: -> their answers' dir
local function load(tag, n, parallel)
  local urls, out = {}, base .. "/" .. tag
  for k = 1, n do
    urls[k] = url("/v1/videos/text2video")
  end
  h.posts(out, urls, json.encode { model_name = "kling-v1", mode = "std", duration = "5",
    prompt = "a paper boat on a rain-soaked street" }, KEY, parallel)
  return out
end

-- The task ids answered 200, and how many answers were anything else (cut off by the kill).
local function answered(out)
  local ids, others = {}, 0
  local list = h.answers(out)
  for _, j in ipairs(list) do
    if j and j.code == 0 and j.data and j.data.task_id then
      ids[#ids + 1] = j.data.task_id
    else
      others = others + 1
    end
  end
  return ids, others
end

local function wait_load_done(out, n)
  local limit = h.now() + 30
  while h.now() < limit do
    if select(2, h.answers(out)) >= n then
      return true
    end
    h.sleep(0.2)
  end
  return false
end

local function run()
  sim = h.sim_start(sim_dir, { task_seconds = 1, webhook_secret = SIM_SECRET })
  port = h.free_port()
  h.write(prefix .. "/gateway.json", json.encode {
    upstream = { provider = "kling", base_url = sim.http, access_key = sim.access_key, secret_key = sim.secret_key,
      timeout = 10 },
    callback_url = url("/kling/callback"), webhook_secret = SIM_SECRET, journal = prefix .. "/ledger.jsonl",
    admin_key = ADMIN_KEY, poll = { min_interval = 0.3, max_interval = 1, silence = 2, lookups = 3 },
    accounts = { { name = "alice", api_key = KEY, credit = CREDIT } },
  })
  start_nginx()

  local all = {}
  for round = 1, 2 do
    local out = load("round" .. round, 300, 16)
    h.sleep(0.6 + 0.4 * round)
    kill9()
    h.check(("round %d: nginx killed (SIGKILL) in the middle of the load"):format(round), true)
    wait_load_done(out, 300)
    local ids, others = answered(out)
    print(("# round %d: %d creates answered 200 before the kill, %d cut off"):format(round, #ids, others))
    h.check(("round %d: some creates were answered and some were cut off by the kill"):format(round),
      #ids > 0 and others > 0, json.encode { #ids, others })
    for _, id in ipairs(ids) do
      all[#all + 1] = id
    end
    start_nginx()
    local a = admin()
    h.check(("round %d: after the restart the ledger is rebuilt from the journal"):format(round),
      micros(a.spent) >= 0 and a.accounts[1].name == "alice", json.encode(a.accounts))
  end

  -- Every task answered 200 is still known, and ends.
  local missing, unended = 0, 0
  local limit = h.now() + 60
  for _, id in ipairs(all) do
    local ended
    repeat
      local res = h.request("GET", url("/v1/videos/text2video/" .. id),
        { headers = { authorization = "Bearer " .. KEY } })
      if res.status == 404 then
        missing = missing + 1
        break
      end
      local st = res.json and res.json.data and res.json.data.task_status
      ended = st == "succeed" or st == "failed"
      if not ended then
        h.sleep(0.3)
      end
    until ended or h.now() > limit
    if not ended then
      unended = unended + 1
    end
  end
  h.check(("every create answered 200 (%d) is still a task after the kills"):format(#all), missing == 0, missing)
  h.check("... and every one of them ends", unended == 0, unended)
  -- Tasks whose create was cut off by the kill end too (looked up by their external id).
  local a
  limit = h.now() + 60
  repeat
    a = admin()
    if a.reserved ~= "0" then
      h.sleep(0.5)
    end
  until a.reserved == "0" or h.now() > limit
  h.check("nothing stays reserved once every task ended (no reservation lost or left behind)", a.reserved == "0",
    a.reserved)
  local ledger = h.sim_admin(sim, "GET", "/_sim/ledger")
  h.check(("the gateway's spend (%s) equals the simulator's ledger (%s) to the micro-unit"):format(a.spent,
    ledger.units_total), micros(a.spent) == micros(ledger.units_total))
  h.check("the balance is the credit less the spend", micros(a.accounts[1].balance) == micros(CREDIT) - micros(a.spent),
    json.encode(a.accounts[1]))
  local log = srv.error_log()
  h.check("no Lua error in the error log", not log:find("runtime error", 1, true),
    log:match("[^\n]*runtime error[^\n]*"))
end

local ok, err = pcall(run)
if not ok then
  h.check("the test ran to its end", false, err)
  if srv then
    print(srv.error_log():sub(-4000))
  end
end
h.finish(cleanup)
