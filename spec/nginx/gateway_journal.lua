-- issue 12: the one-node gateway's journal compacted at start, as `kling gateway start` runs it.
-- Many creates (ended, failed, refused by the upstream and by the balance, still open, some
-- with external ids), then restarts: each start writes what the replay rebuilt as a new
-- journal and renames it over the old one. After it, and after every nginx process was
-- killed (SIGKILL) at random moments of a start's compaction and started again, the balances,
-- open reservations, every task's query, the external-id lookups and the lists are what they
-- were; the journal is smaller; a compaction that cannot be written leaves the journal as it
-- was and says why. Also: a credit lowered below an account's spend is warned of, shown and
-- refused (issue 12 (b)). KLING_JOURNAL_CREATES sets the load (default 1000); the figures
-- (bytes and start times before/after) are printed. KLING_TEST_SEED repeats a run.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local ADMIN_KEY = "gw-admin-key-0123456789"
local ALICE, BOB = "gw-alice-key", "gw-bob-key"
local N = tonumber(os.getenv("KLING_JOURNAL_CREATES") or "") or 1000
local SEED = h.seed()

local base = h.tempdir("gateway-journal")
local sim_dir, prefix, dir = base .. "/sim", base .. "/nginx", base .. "/nginx/gw"
local journal = prefix .. "/ledger.jsonl"
local sim, port, info

local function cleanup()
  h.gateway_stop(dir)
  h.tidy(base, sim_dir)
end

local function url(path)
  return "http://127.0.0.1:" .. port .. path
end

local function gw(method, path, key, body)
  return h.request(method, url(path), { body = body, headers = { authorization = "Bearer " .. key } })
end

local function admin()
  return h.gateway_admin(url(""), ADMIN_KEY)
end

local micros = h.micros

local size = h.file_size

local function first_line(path)
  local f = io.open(path, "rb")
  local l = f and f:read("*l")
  if f then
    f:close()
  end
  return l and json.decode(l) or {}
end

local function write_config(bob_credit)
  h.write(prefix .. "/gateway.json", json.encode {
    upstream = { provider = "kling", base_url = sim.http, access_key = sim.access_key, secret_key = sim.secret_key,
      timeout = 10 },
    journal = journal, admin_key = ADMIN_KEY, poll = { min_interval = 0.3, max_interval = 1 },
    accounts = { { name = "alice", api_key = ALICE, credit = "1000000" },
      { name = "bob", api_key = BOB, credit = bob_credit } },
  })
end

-- kling gateway start -> seconds it took
local function start()
  local t0 = h.now()
  local out, ok = h.sh(("lua5.4 %s/bin/kling gateway start --config %s --dir %s --port %d"):format(h.q(h.src),
    h.q(prefix .. "/gateway.json"), h.q(dir), port))
  info = ok and json.decode(out:match("{.*}") or "")
  assert(info and info.pid, "kling gateway start failed: " .. out)
  return h.now() - t0
end

local function stop()
  h.gateway_stop(dir)
end

local function error_log()
  return h.read(dir .. "/error.log") or ""
end

local BODY = { model_name = "kling-v1", mode = "std", duration = "5" }

local function body(prompt, ext)
  local b = { prompt = prompt, external_task_id = ext }
  for k, v in pairs(BODY) do
    b[k] = v
  end
  return b
end

-- n creates of one prompt, `parallel` at a time, waited for -> the ids answered 200, and the others' codes
local function load(tag, n, prompt, key)
  local urls, out = {}, base .. "/" .. tag
  for k = 1, n do
    urls[k] = url("/v1/videos/text2video")
  end
  h.posts(out, urls, json.encode(body(prompt)), key or ALICE, 8)
  local limit = h.now() + 120
  local list, done
  repeat
    h.sleep(0.2)
    list, done = h.answers(out)
  until done >= n or h.now() > limit
  local ids, codes = {}, {}
  for _, j in ipairs(list) do
    if j and j.code == 0 and j.data and j.data.task_id then
      ids[#ids + 1] = j.data.task_id
    else
      local c = tostring(j and j.code)
      codes[c] = (codes[c] or 0) + 1
    end
  end
  return ids, codes
end

-- What a client and the operator can see: balances, holds, every task's query, the lookups by
-- external id, the first page of each account's list.
local function state(ids, exts)
  local a = admin()
  local s = { accounts = {}, tasks = {}, ext = {}, lists = {} }
  for _, acct in ipairs(a.accounts) do
    s.accounts[acct.name] = { acct.limit, acct.spent, acct.reserved, acct.balance }
  end
  s.reserved, s.spent = a.reserved, a.spent
  local metrics = h.request("GET", url("/metrics")).body or ""
  s.open = metrics:match("\nkling_gateway_open_reservations (%d+)")
  for _, id in ipairs(ids) do
    local res = gw("GET", "/v1/videos/text2video/" .. id, ALICE)
    local d = res.json and res.json.data or {}
    local ended = d.task_status == "succeed" or d.task_status == "failed"
    -- (a live task's updated_at moves with its polls, which are not journaled)
    s.tasks[id] = { res.status, d.task_status, d.task_status_msg, d.final_unit_deduction, d.created_at,
      ended and d.updated_at, d.task_result, d.task_info }
  end
  for _, ext in ipairs(exts) do
    local res = gw("GET", "/v1/videos/text2video?external_task_id=" .. ext, ALICE)
    s.ext[ext] = res.status .. " " .. tostring(res.json and res.json.data and (res.json.data.task_id
      or (res.json.data[1] and res.json.data[1].task_id)))
  end
  -- Every task listed (the order of creates made at once may differ after any restart: the
  -- replay lists them in the journal's order).
  for _, key in ipairs { ALICE, BOB } do
    local list, page = {}, 1
    repeat
      local res = gw("GET", "/v1/videos/text2video?pageSize=500&pageNum=" .. page, key)
      local got = res.json and res.json.data or {}
      for _, t in ipairs(got) do
        list[#list + 1] = t.task_id
      end
      page = page + 1
    until #got == 0 or page > 100
    table.sort(list)
    s.lists[key] = table.concat(list, ",")
  end
  return s
end

-- The first difference between two states, or nil.
local function diff(a, b, path)
  path = path or ""
  if type(a) ~= "table" or type(b) ~= "table" then
    if a ~= b then
      return path .. ": " .. tostring(a):sub(1, 200) .. " then " .. tostring(b):sub(1, 200)
    end
    return nil
  end
  for k, v in pairs(a) do
    local d = diff(v, b[k], path .. "." .. tostring(k))
    if d then
      return d
    end
  end
  for k, v in pairs(b) do
    if a[k] == nil then
      return path .. "." .. tostring(k) .. ": nil then " .. tostring(v)
    end
  end
  return nil
end

local function run()
  h.sh("mkdir -p " .. h.q(prefix) .. " && chmod 755 " .. h.q(base) .. " " .. h.q(prefix))
  if h.is_root() then
    h.sh("chown nobody " .. h.q(prefix)) -- kling gateway start runs its workers as nobody
  end
  sim = h.sim_start(sim_dir, { task_seconds = 1 })
  port = h.free_port()
  write_config("30")
  start()

  -- ---- the load: ended (succeeded and failed), refused (upstream, balance), open, by external id ----
  local ids, all_codes = {}, {}
  local function add(got, codes)
    for _, id in ipairs(got) do
      ids[#ids + 1] = id
    end
    for c, n in pairs(codes or {}) do
      all_codes[c] = (all_codes[c] or 0) + n
    end
  end
  add(load("open", 20, "a lighthouse in fog [sim:seconds=3600]"))
  add(load("ended", math.floor(N * 0.6), "a paper boat on a rain-soaked street"))
  -- Then the upstream refuses a fifth of the creates (its parallel limit, before any task is
  -- made). Each 1303 teaches the gateway the upstream's slots (its tasks open then, the 20 long
  -- ones among them): it refuses creates itself while as many are open (kling.gateway.upstream_pace
  -- slots), and forgets that count SLOTS_FORGET_S after it learnt it; the loads that follow
  -- are not the upstream's slots' to refuse.
  h.sim_admin(sim, "POST", "/_sim/faults", { seed = SEED % 1000, rules = { { kind = "1303", method = "POST",
    path = "^/v1/videos", rate = 0.2 } } })
  add(load("refused", math.floor(N * 0.1), "a paper boat on a rain-soaked street"))
  h.sim_admin(sim, "DELETE", "/_sim/faults")
  h.sleep(require("kling.gateway.upstream_pace").SLOTS_FORGET_S + 0.5)
  add(load("failed", math.floor(N * 0.2), "a kite [sim:fail=the kite flew away]"))
  local bob_ids, bob_codes = load("bob", 40, "a red balloon", BOB)
  add(bob_ids, bob_codes)
  local exts = {}
  for i = 1, 20 do
    local ext = "ext-" .. SEED .. "-" .. i
    local res = gw("POST", "/v1/videos/text2video", ALICE, body("a numbered kite " .. i, ext))
    if res.status == 200 then
      ids[#ids + 1], exts[#exts + 1] = res.json.data.task_id, ext
    end
  end
  print(("# %d creates answered 200, refused by code: %s"):format(#ids, json.encode(all_codes)))
  h.check("the load has creates refused by the upstream (1303) and by the balance (1101)",
    (all_codes["1303"] or 0) > 0 and (all_codes["1101"] or 0) == 10 and #bob_ids == 30, json.encode(all_codes))
  -- Every task but the open ones ends.
  local limit = h.now() + 90
  local a
  repeat
    h.sleep(0.5)
    a = admin()
  until micros(a.reserved) == micros("20") or h.now() > limit
  h.check("every task but the 20 open ones ended (20 held)", micros(a.reserved) == micros("20"), a.reserved)
  local before = state(ids, exts)
  stop()

  -- ---- a start compacts the journal; everything a client or the operator sees is the same ----
  local bytes1, lines1 = size(journal), select(2, (h.read(journal) or ""):gsub("\n", ""))
  local t_big = start()
  local st = admin().journal
  local c = st and st.compaction or {}
  local bytes2 = size(journal)
  h.check("a start compacts the journal: smaller, its first line a compacted journal's (version 2)",
    c.compacted == true and bytes2 < bytes1 / 2 and first_line(journal).version == 2 and c.bytes_before == bytes1
    and c.bytes_after == bytes2, json.encode(c))
  h.check("... no temporary file left beside it", not h.read(journal .. ".compacting"))
  local after = state(ids, exts)
  h.check("... balances, holds, every task's query, external ids and lists are what they were", not diff(before, after),
    diff(before, after))
  stop()
  local t_small = start()
  local c2 = admin().journal.compaction
  -- (the open tasks' polls may have journaled news since: those lines are dropped again)
  h.check("a second start replays the compacted journal and keeps it as short: no more lines than the first wrote",
    (c2.skipped == "nothing to drop" and size(journal) == bytes2) or (c2.compacted and c2.lines_after <= c.lines_after),
    json.encode(c2))
  h.check("... and still answers the same", not diff(before, state(ids, exts)), diff(before, state(ids, exts)))
  print(("# figures: %d creates: journal %d bytes, %d lines -> %d bytes, %d lines (%.0f%%); replay %d ms -> %d ms;"
    .. " compaction %d ms; kling gateway start %.2f s (replay and compaction) -> %.2f s"):format(#ids, bytes1, lines1,
    bytes2, c.lines_after or -1, 100 * bytes2 / bytes1, c.replay_ms or -1, c2.replay_ms or -1, c.ms or -1, t_big,
    t_small))

  -- ---- the open tasks end after the restarts, settled; then more creates for the kills ----
  h.sim_admin(sim, "POST", "/_sim/clock", { advance = 3600 })
  limit = h.now() + 60
  repeat
    h.sleep(0.5)
    a = admin()
  until a.reserved == "0" or h.now() > limit
  h.check("the tasks open across the compactions end and are settled: nothing stays held", a.reserved == "0"
    and micros(a.spent) == h.sim_total(h.sim_admin(sim, "GET", "/_sim/ledger"), "CNY"), json.encode { a.reserved,
    a.spent })
  add(load("open2", 10, "a lantern at night [sim:seconds=7200]"))
  add(load("more", N, "a paper crane on a windowsill"))
  limit = h.now() + 90
  repeat
    h.sleep(0.5)
    a = admin()
  until micros(a.reserved) == micros("10") or h.now() > limit
  before = state(ids, exts)
  stop()

  -- ---- SIGKILL of every nginx process during a start's compaction, at random moments ----
  local conf = dir .. "/nginx.conf"
  local nginx = h.sh("command -v nginx || command -v openresty"):match("[^\n]+")
  for round = 1, 4 do
    local was = size(journal)
    h.sh("rm -f " .. h.q(dir .. "/error.log"))
    local pid = tonumber(h.sh(("umask 077; setsid %s -p %s/ -c %s -e %s/error.log -g 'daemon off;' </dev/null"
      .. " >/dev/null 2>&1 & echo $!"):format(h.q(nginx), h.q(dir), h.q(conf), h.q(dir))):match("%d+"))
    -- Round 1: as soon as the new journal is being written; 2: 0-10 ms after; 3 and 4: 0-400 ms
    -- after nginx was started (the replay, the compaction or past it).
    local wait, seen = round == 1 and 0 or round == 2 and math.random() * 0.01 or math.random() * 0.4, false
    local t0 = h.now()
    if round <= 2 then
      while h.now() - t0 < 10 and not seen do
        seen = io.open(journal .. ".compacting", "rb") ~= nil
        if not seen then
          h.sleep(0.001)
        end
      end
    end
    h.sleep(wait)
    local during = io.open(journal .. ".compacting", "rb") ~= nil
    h.sh("kill -KILL -- -" .. pid .. " 2>/dev/null; kill -KILL " .. pid .. " 2>/dev/null")
    local dead = h.now() + 5
    while h.alive(pid) and h.now() < dead do
      h.sleep(0.02)
    end
    local v = first_line(journal).version
    print(("# kill round %d: %.3f s after %s; the new journal was %s; the journal found: version %s, %d bytes"
      .. " (was %d)"):format(round, wait, round <= 2 and "the compaction began" or "nginx started",
      during and "being written" or "not being written", tostring(v), size(journal), was))
    if round == 1 then
      h.check("kill round 1: nginx was killed while the compacted journal was being written", seen and during)
    end
    start()
    local now = state(ids, exts)
    h.check(("kill round %d: restarted, everything is what it was"):format(round), not diff(before, now),
      diff(before, now))
    stop()
    if round == 2 then
      -- more lines to compact for the next rounds
      start()
      add(load("more" .. round, math.floor(N / 3), "a sandcastle at low tide"))
      limit = h.now() + 60
      repeat
        h.sleep(0.5)
      until micros(admin().reserved) == micros("10") or h.now() > limit
      before = state(ids, exts)
      stop()
    end
  end
  start()

  -- ---- fail closed: a compaction that cannot be written leaves the journal as it was ----
  add(load("more-fc", 100, "a snow globe"))
  limit = h.now() + 60
  repeat
    h.sleep(0.5)
  until micros(admin().reserved) == micros("10") or h.now() > limit
  before = state(ids, exts)
  stop()
  local was, was_text = size(journal), h.read(journal)
  h.sh("mkdir -p " .. h.q(journal .. ".compacting/x"))
  start()
  c = admin().journal.compaction or {}
  h.check("fail closed: a compaction that cannot be written leaves the journal as it was (same bytes)",
    not c.compacted and h.read(journal) == was_text and size(journal) == was, json.encode(c))
  h.check("... and says why: in the admin summary and the error log, naming the file",
    type(c.error) == "string" and c.error:find(journal .. ".compacting", 1, true)
    and error_log():find("was not compacted (it stays whole as it was)", 1, true), json.encode(c))
  h.check("... and the gateway serves from it as before", not diff(before, state(ids, exts)),
    diff(before, state(ids, exts)))
  stop()
  h.sh("rm -rf " .. h.q(journal .. ".compacting"))
  start()
  h.check("... once the way is clear the next start compacts", admin().journal.compaction.compacted == true
    and size(journal) < was)

  -- ---- issue 12 (b): a credit lowered below what the account spent ----
  stop()
  write_config("10") -- bob spent 30
  start()
  a = admin()
  h.check("issue 12 (b): a credit lowered below the spend: the start warns, naming the account and its balance",
    error_log():find("account bob has spent 30 (0 held) of a credit of 10: its balance is -20", 1, true),
    error_log():match("[^\n]*account bob[^\n]*"))
  h.check("issue 12 (b): ... the admin summary lists it as overdrawn", a.overdrawn and #a.overdrawn == 1
    and a.overdrawn[1].name == "bob" and a.overdrawn[1].balance == "-20" and a.by.bob.balance == "-20",
    json.encode(a.overdrawn))
  local metrics = h.request("GET", url("/metrics")).body or ""
  h.check("issue 12 (b): ... the metrics show its negative balance",
    metrics:find('\nkling_gateway_balance_micros{account="bob",currency="CNY"} -20000000\n', 1, true),
    metrics:match("[^\n]*balance_micros[^\n]*"))
  local res = gw("POST", "/v1/videos/text2video", BOB, body("a red balloon"))
  h.check("issue 12 (b): ... its creates are refused (429, 1101), what it spent stays spent",
    res.status == 429 and res.json and res.json.code == 1101 and admin().by.bob.spent == "30", res.body)
  res = gw("POST", "/gateway/admin/accounts/bob/topup", ADMIN_KEY, { amount = "21" })
  res = res.status == 200 and gw("POST", "/v1/videos/text2video", BOB, body("a red balloon"))
  h.check("issue 12 (b): ... a top-up past its spend takes its creates again", res and res.status == 200
    and not admin().overdrawn, res and res.body)
  -- A top-up with an id is added once, also after a restart (its compaction keeps the id): an
  -- operator's script that retries one whose answer it lost credited it twice.
  local function topup_inv(amount)
    return gw("POST", "/gateway/admin/accounts/bob/topup", ADMIN_KEY, { amount = amount, id = "inv-2026-7" })
  end
  local bob_before = admin().by.bob.balance
  res = topup_inv("2")
  local t = res.json and res.json.topup or {}
  h.check("a top-up with an id is added and says so", res.status == 200 and t.applied == true and t.id == "inv-2026-7"
    and micros(admin().by.bob.balance) == micros(bob_before) + 2000000, res.body)
  res = topup_inv("2")
  t = res.json and res.json.topup or {}
  h.check("... sent again, it adds nothing and says it was applied before", res.status == 200 and t.applied == false
    and micros(admin().by.bob.balance) == micros(bob_before) + 2000000, res.body)
  local function last_seq()
    local top = 0
    for line in (h.read(journal) or ""):gmatch("[^\n]+") do
      local e = json.decode(line)
      top = math.max(top, type(e) == "table" and type(e.seq) == "number" and e.seq or 0)
    end
    return top
  end
  local seq_before = last_seq() -- its last movements top-ups
  for _ = 1, 2 do -- the first start replays its line; the second, what the first's compaction kept
    stop()
    start()
  end
  res = topup_inv("2")
  t = res.json and res.json.topup or {}
  h.check("... also after two restarts (the journal's compaction keeps its id)", res.status == 200
    and t.applied == false and micros(admin().by.bob.balance) == micros(bob_before) + 2000000, res.body)
  gw("POST", "/gateway/admin/accounts/bob/topup", ADMIN_KEY, { amount = "0.5" })
  h.check("... and the next movement is numbered after the last before the restarts (seq " .. seq_before .. ")",
    last_seq() > seq_before, last_seq())
  res = topup_inv("3")
  h.check("... and with another amount it is refused naming id (409)", res.status == 409 and res.json
    and res.json.field == "id" and micros(admin().by.bob.balance) == micros(bob_before) + 2500000, res.body)
  -- A journal moved away or emptied where a gateway ran with it: not a fresh start.
  local spent = admin().spent
  stop()
  local whole = assert(h.read(journal))
  for _, case in ipairs {
    { "missing", nil, "is missing" }, { "empty", "", "is empty" },
    -- not empty, yet nothing in it reads: a blank line, a compressed copy
    { "blank", "\n", "holds no line it can read" }, { "binary", "\31\139\8\0\0\0\0\0\n\255\n", "holds no line" },
    -- a FIFO would block nginx's master in its open
    { "a FIFO", "fifo", "is a FIFO" },
    -- forged: what an account spent never goes below zero
    { "negative", whole .. '{"op":"balance","account":"bob","currency":"CNY","spent":"-1000","topup":"0"}\n',
      "never negative" },
  } do
    local how, text, said = case[1], case[2], case[3]
    assert(os.rename(journal, journal .. ".away"))
    if text == "fifo" then
      h.sh("mkfifo -m 600 " .. h.q(journal))
    elseif text then
      h.write(journal, text)
      h.sh("chown nobody " .. h.q(journal)) -- as the workers made it
    end
    local out, started = h.sh(("timeout 60 lua5.4 %s/bin/kling gateway start --config %s --dir %s --port %d"):format(
      h.q(h.src), h.q(prefix .. "/gateway.json"), h.q(dir), port))
    h.check("a journal " .. how .. " where a gateway ran with it refuses the start, naming it",
      not started and out:find(said, 1, true) ~= nil and out:find(journal, 1, true) ~= nil, out)
    os.remove(journal)
    assert(os.rename(journal .. ".away", journal))
  end
  start()
  h.check("... and with the journal back it starts with what was spent", admin().spent == spent, admin().spent)
  h.check("no Lua error in the error log", not error_log():find("runtime error", 1, true),
    error_log():match("[^\n]*runtime error[^\n]*"))
end

print("# seed " .. SEED .. ", " .. N .. " creates")
local ok, err = pcall(run)
if not ok then
  h.check("the test ran to its end", false, err)
  print(error_log():sub(-3000))
end
h.finish(cleanup)
