-- issue 12.2: the metering gateway killed with SIGKILL (master and workers at once) in the
-- middle of a load of creates, and restarted from its journal: every create answered 200 is
-- still a task and ends, nothing stays reserved, and the spend equals the simulator's ledger
-- to the micro-unit (no reservation lost, no spend forgotten or doubled). Twice in each of its
-- two shapes: embedded (examples/nginx: creates forwarded by the Lua client) and as `kling
-- gateway start` runs it (creates admitted in access_by_lua and sent by the location's own
-- proxy_pass, kling.gateway.forward: the same journal line per create), there three times,
-- at random moments (the seed is printed; KLING_TEST_SEED repeats a run).
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local core = require "kling.core"
local json = require "kling.json"

local SIM_SECRET = "whsec_" .. core.b64encode("simulator-to-gateway-secret")
local ADMIN_KEY = "gw-admin-key-0123456789"
local KEY = "gw-alice-key"
local CREDIT = "100000"
local SEED = h.seed()

local base = h.tempdir("gateway-crash")
local sim_dir, prefix, srv, sim, port
local sims = {}

local function cleanup()
  if srv then
    srv.stop()
  end
  for _, dir in ipairs(sims) do
    h.sim_stop(dir)
  end
  h.tidy(base)
end

local function url(path)
  return "http://127.0.0.1:" .. port .. path
end

local function admin()
  return h.gateway_admin(url(""), ADMIN_KEY)
end

local micros = h.micros

-- Embedded: examples/nginx's parts in a conf of the test's own.
local function start_embedded()
  local conf = h.conf_head(prefix) .. "http {\n  access_log off;\n" .. h.lua_paths() .. h.temp_paths(prefix)
    .. ("  include %s/examples/nginx/http.conf;\n  server {\n    listen 127.0.0.1:%d;\n"
    .. "    include %s/examples/nginx/server.conf;\n  }\n}\n"):format(h.src, port, h.src)
  srv = h.nginx_start(prefix, conf, port)
end

-- As operators run it: kling gateway start (its own conf, creates by proxy_pass).
local function start_cli()
  local out, ok = h.sh(("lua5.4 %s/bin/kling gateway start --config %s --dir %s --port %d"):format(h.q(h.src),
    h.q(prefix .. "/gateway.json"), h.q(prefix .. "/gw"), port))
  local info = ok and json.decode(out:match("{.*}") or "")
  assert(info and info.pid, "kling gateway start failed: " .. out)
  local pid = info.pid
  srv = { pid = pid }
  function srv.workers()
    return h.workers(pid)
  end
  function srv.stop()
    h.gateway_stop(prefix .. "/gw")
  end
  function srv.error_log()
    return h.read(prefix .. "/gw/error.log") or ""
  end
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

-- run(mode): a simulator of its own, the gateway started, `rounds` kills under load.
local function run(mode)
  local start = mode == "cli" and start_cli or start_embedded
  local rounds = mode == "cli" and 3 or 2
  sim_dir, prefix = base .. "/" .. mode .. "/sim", base .. "/" .. mode .. "/nginx"
  h.sh("mkdir -p " .. h.q(sim_dir) .. " " .. h.q(prefix) .. " && chmod 755 " .. h.q(base .. "/" .. mode) .. " "
    .. h.q(prefix))
  if mode == "cli" and h.is_root() then
    h.sh("chown nobody " .. h.q(prefix)) -- kling gateway start runs its workers as nobody
  end
  sims[#sims + 1] = sim_dir
  sim = h.sim_start(sim_dir, { task_seconds = 1, webhook_secret = SIM_SECRET })
  port = h.free_port()
  h.write(prefix .. "/gateway.json", json.encode {
    -- a create cut off by a kill is looked up once it cannot be in flight: 3 x 10 + 1 + 10 s
    upstream = { provider = "kling", base_url = sim.http, access_key = sim.access_key, secret_key = sim.secret_key,
      timeout = 10, connect_timeout = 1 },
    callback_url = url("/kling/callback"), webhook_secret = SIM_SECRET, journal = prefix .. "/ledger.jsonl",
    admin_key = ADMIN_KEY, poll = { min_interval = 0.3, max_interval = 1, silence = 2, lookups = 3 },
    accounts = { { name = "alice", api_key = KEY, credit = CREDIT } },
  })
  start()

  local all = {}
  for round = 1, rounds do
    local t0 = h.now()
    local out = load(mode .. "-round" .. round, 300, 16)
    -- The kill falls after a number of answers, not a time: a fast machine answered all 300
    -- before a kill 1.4 s in, and nothing was cut off.
    local after = mode == "cli" and math.random(20, 200) or 60 * round
    local limit = h.now() + 60
    while select(2, h.answers(out)) < after and h.now() < limit do
      h.sleep(0.02)
    end
    local wait = h.now() - t0
    kill9()
    h.check(("%s, round %d: every nginx process killed (SIGKILL) %.2f s into the load, %d or more answers in")
      :format(mode, round, wait, after), true)
    wait_load_done(out, 300)
    local ids, others = answered(out)
    print(("# %s, round %d: %d creates answered 200 before the kill, %d cut off"):format(mode, round, #ids, others))
    h.check(("%s, round %d: some creates were answered and some were cut off by the kill"):format(mode, round),
      #ids > 0 and others > 0, json.encode { #ids, others })
    for _, id in ipairs(ids) do
      all[#all + 1] = id
    end
    start()
    local a = admin()
    h.check(("%s, round %d: after the restart the ledger is rebuilt from the journal"):format(mode, round),
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
  h.check(("%s: every create answered 200 (%d) is still a task after the kills"):format(mode, #all), missing == 0,
    missing)
  h.check(mode .. ": ... and every one of them ends", unended == 0, unended)
  -- Tasks whose create was cut off by the kill end too (looked up by their external id).
  local a
  limit = h.now() + 60
  repeat
    a = admin()
    if a.reserved ~= "0" then
      h.sleep(0.5)
    end
  until a.reserved == "0" or h.now() > limit
  h.check(mode .. ": nothing stays reserved once every task ended (no reservation lost or left behind)",
    a.reserved == "0",
    a.reserved)
  local ledger = h.sim_admin(sim, "GET", "/_sim/ledger")
  h.check(("%s: the gateway's spend (%s) equals the simulator's ledger (%s) to the micro-unit"):format(mode, a.spent,
    json.encode(ledger.totals)), micros(a.spent) == h.sim_total(ledger, "CNY"))
  h.check(mode .. ": the balance is the credit less the spend",
    micros(a.accounts[1].balance) == micros(CREDIT) - micros(a.spent), json.encode(a.accounts[1]))
  local log = srv.error_log()
  h.check(mode .. ": no Lua error in the error log", not log:find("runtime error", 1, true),
    log:match("[^\n]*runtime error[^\n]*"))
  srv.stop()
  srv = nil
end

print("# seed " .. SEED)
for _, mode in ipairs { "embedded", "cli" } do
  local ok, err = pcall(run, mode)
  if not ok then
    h.check(mode .. ": the test ran to its end", false, err)
    if srv then
      print(srv.error_log():sub(-4000))
    end
  end
end
h.finish(cleanup)
