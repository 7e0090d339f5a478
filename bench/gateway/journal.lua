-- The one-node gateway's journal before and after its compaction at start (kling.gateway.compact):
-- bytes and lines, and how long a start takes on each. A simulator and a gateway of their own
-- (`kling gateway start`, one worker, callbacks on); creates by wrk until CREATES were answered
-- (one in ten failed by the simulator, 15% refused by its parallel limit), 50 left open; once every other task has
-- ended the gateway is stopped and the journal kept aside. Then PAIRS times, alternated: a start
-- on the whole journal (it replays it, then compacts it) and a start on the compacted one.
-- Run: lua5.4 bench/gateway/journal.lua (from the source tree, after cmake --build build; KEEP=1 keeps its
-- directory)
package.path = "spec/nginx/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("BUILD") or "build") .. "/?.so;" .. package.cpath
local h = require "harness"
local core = require "kling.core"
local json = require "kling.json"

local CREATES = tonumber(os.getenv("CREATES") or "") or 20000
local PAIRS = tonumber(os.getenv("PAIRS") or "") or 2
local KEY, ADMIN_KEY = "bench-key-0123", "bench-admin-key-0123456789"
local SECRET = "whsec_" .. core.b64encode("bench-simulator-to-gateway-secret")

local base = h.tempdir("bench-journal")
local sim_dir, prefix = base .. "/sim", base .. "/nginx"
local dir, journal = prefix .. "/gw", prefix .. "/ledger.jsonl"
local port = h.free_port()

local function url(path)
  return "http://127.0.0.1:" .. port .. path
end

local function admin()
  return h.gateway_admin(url(""), ADMIN_KEY)
end

-- CPU seconds nginx's master has used (its replay and compaction, nearly all of it): unlike the
-- times, it hardly moves when other jobs share the machine.
local function master_cpu()
  local pid = (h.read(dir .. "/gateway.pid") or ""):match("%d+")
  local stat = pid and h.read("/proc/" .. pid .. "/stat") or ""
  local utime, stime = stat:match("^%d+ %b() %a" .. (" %S+"):rep(10) .. " (%d+) (%d+)")
  return utime and (tonumber(utime) + tonumber(stime)) / 100 or -1
end

-- kling gateway start -> seconds it took, the master's CPU seconds
local function start()
  local t0 = h.now()
  local out, ok = h.sh(("lua5.4 %s/bin/kling gateway start --config %s --dir %s --port %d"):format(h.q(h.src),
    h.q(prefix .. "/gateway.json"), h.q(dir), port))
  assert(ok and out:find('"pid"', 1, true), "kling gateway start failed: " .. out)
  return h.now() - t0, master_cpu()
end

local function stop()
  h.sh(("lua5.4 %s/bin/kling gateway stop --dir %s"):format(h.q(h.src), h.q(dir)))
end

local size = h.file_size

local function lines(path)
  return tonumber((h.sh("wc -l < " .. h.q(path))):match("%d+")) or 0
end

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

h.sh("mkdir -p " .. h.q(prefix) .. " && chmod 755 " .. h.q(base) .. " " .. h.q(prefix))
if h.is_root() then
  h.sh("chown nobody " .. h.q(prefix))
end
local sim = h.sim_start(sim_dir, { task_seconds = 1, webhook_secret = SECRET })
local ok, err = pcall(function()
  h.write(prefix .. "/gateway.json", json.encode {
    upstream = { provider = "kling", base_url = sim.http, access_key = sim.access_key, secret_key = sim.secret_key },
    callback_url = url("/kling/callback"), webhook_secret = SECRET, journal = journal, admin_key = ADMIN_KEY,
    accounts = { { name = "bench", api_key = KEY, credit = "100000000" } },
  })
  start()
  local urls = {}
  for i = 1, 50 do
    urls[i] = url("/v1/videos/text2video")
  end
  h.racing_posts(base .. "/open", urls, json.encode { model_name = "kling-v1", mode = "std", duration = "5",
    prompt = "a lighthouse in fog [sim:seconds=36000]" }, KEY)
  h.sim_admin(sim, "POST", "/_sim/faults", { seed = 7, rules = { { kind = "1303", method = "POST",
    path = "^/v1/videos", rate = 0.15 } } })
  local t0 = h.now()
  -- wrk in slices of 2 s until CREATES creates were answered.
  local sent = 0
  repeat
    h.sh(("GW_KEY=%s timeout 30 wrk -t2 -c16 -d2s -s %s %s > %s 2>&1"):format(KEY,
      h.q(h.src .. "/bench/gateway/journal_create.lua"), h.q(url("/")), h.q(base .. "/wrk.txt")))
    sent = sent + assert(tonumber((h.read(base .. "/wrk.txt") or ""):match("(%d+) requests in")), "wrk failed")
  until sent >= CREATES or h.now() - t0 > 900
  local load_s = h.now() - t0
  h.sim_admin(sim, "DELETE", "/_sim/faults")
  local a
  local limit = h.now() + 600
  repeat
    h.sleep(1)
    a = admin()
  until a.reserved == "50" or h.now() > limit
  assert(a.reserved == "50", "the tasks did not end: " .. tostring(a.reserved) .. " held")
  local stats = h.sim_admin(sim, "GET", "/_sim/stats")
  stop()
  h.sh(("cp -p %s %s.whole"):format(h.q(journal), h.q(journal)))
  local whole_bytes, whole_lines = size(journal), lines(journal)
  local big, small, replay_big, replay_small, compaction, small_bytes, small_lines = {}, {}, {}, {}, {}, 0, 0
  local read_big, read_small, cpu_big, cpu_small = {}, {}, {}, {}
  for _ = 1, PAIRS do
    h.sh(("cp -p %s.whole %s"):format(h.q(journal), h.q(journal)))
    big[#big + 1], cpu_big[#cpu_big + 1] = start()
    local c = admin().journal.compaction
    assert(c.compacted, "not compacted: " .. json.encode(c))
    print("# " .. ((h.read(dir .. "/error.log") or ""):match("rebuilt[^\n]*") or ""))
    replay_big[#replay_big + 1], compaction[#compaction + 1], read_big[#read_big + 1] = c.replay_ms, c.ms, c.read_ms
    stop()
    small_bytes, small_lines = size(journal), lines(journal)
    small[#small + 1], cpu_small[#cpu_small + 1] = start()
    local c2 = admin().journal.compaction
    print("# " .. ((h.read(dir .. "/error.log") or ""):match("rebuilt[^\n]*") or ""))
    replay_small[#replay_small + 1], read_small[#read_small + 1] = c2.replay_ms, c2.read_ms
    stop()
  end
  print(("%d creates answered in %.0f s, %s reached the simulator (the rest refused by it), 50 left open"):format(
    sent, load_s, tostring(stats.creates)))
  print(("journal: %d bytes, %d lines -> compacted %d bytes, %d lines (%.1f%%)"):format(whole_bytes, whole_lines,
    small_bytes, small_lines, 100 * small_bytes / whole_bytes))
  print(("start (kling gateway start, median of %d): whole journal %.2f s (replay %d ms, of which reading %d ms;"
    .. " then compaction %d ms) -> compacted %.2f s (replay %d ms, reading %d ms)"):format(PAIRS, median(big),
    median(replay_big), median(read_big), median(compaction), median(small), median(replay_small),
    median(read_small)))
  print(("nginx master's CPU time at start (median): whole journal %.2f s -> compacted %.2f s (load average %s)")
    :format(median(cpu_big), median(cpu_small), (h.read("/proc/loadavg") or ""):match("^%S+")))
end)
stop()
h.sim_stop(sim_dir)
if not ok then
  print("failed: " .. tostring(err))
  print((h.read(dir .. "/error.log") or ""):sub(-2000))
  os.exit(1)
end
if not os.getenv("KEEP") then h.sh("rm -rf " .. h.q(base)) end
