-- One node's shared memory over a long run. Every ended hold leaves a mark in the ledger's dict
-- (so that nothing ends it twice); kept for the dict's life, those marks filled a 16 MB dict
-- after about 130,000 tasks, and from then on every create was refused (503, 5001) until a
-- restart. Marks now live as long as their tasks (retention_days), and `memory` sizes the dicts.
-- A gateway started by `kling gateway start` with a 256k ledger dict and a retention of one
-- second takes rounds of synchronous calls (each one held and settled at once: one mark each)
-- well past what that dict could mark forever; then a gateway with a 512k tasks dict fills it
-- and refuses creates, naming what to raise, while every create it took ends, and refuses to
-- start with a dict too small for its journal. A simulator of their own.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local core = require "kling.core"
local json = require "kling.json"

local ROUNDS, PER_ROUND = 3, 1200 -- 3,600 marks; a 256k dict holds about 1,900
local base = h.tempdir("gateway-capacity")
local sim_dir, gw_dir, small_dir = base .. "/sim", base .. "/gw", base .. "/gw-small"
local open_dir = base .. "/gw-open"
h.sh("mkdir -p " .. h.q(sim_dir) .. " " .. h.q(base .. "/journal") .. " && chmod 777 " .. h.q(base .. "/journal"))
local sim, gw, receiver

local function cleanup()
  for _, dir in ipairs { gw_dir, small_dir, open_dir, base .. "/gw-deadline", base .. "/gw-failed" } do
    h.gateway_stop(dir)
  end
  if receiver then
    receiver.stop()
  end
  h.tidy(base, sim_dir)
end

local function call(method, path, body, at)
  return h.request(method, (at or gw).http .. path, { headers = { authorization = "Bearer gw-carol-key" },
    body = body })
end

-- start(name, extra config) -> the gateway's start line
local function start(dir, name, extra)
  local doc = {
    upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key },
    journal = base .. "/journal/" .. name .. ".jsonl", admin_key = "admin-0123456789abcdef",
    poll = { min_interval = 0.3, max_interval = 0.5 },
    accounts = { { name = "carol", api_key = "gw-carol-key", credit = "100000" } },
  }
  for k, v in pairs(extra) do
    doc[k] = v
  end
  h.write(base .. "/" .. name .. ".json", json.encode(doc))
  local out, ok = h.sh(("lua5.4 %s/bin/kling gateway start --config %s --dir %s"):format(h.q(h.src),
    h.q(base .. "/" .. name .. ".json"), h.q(dir)))
  assert(ok, "kling gateway start: " .. out)
  return assert(json.decode(out:match("{.*}")), out)
end

local function metric(text, name)
  return tonumber(text:match("\n" .. name:gsub("[%[%]%(%)%.%-%+%*%?%^%$]", "%%%0") .. " (%S+)"))
end

-- One client's share of the room (and of the upstream's parallel slots every client shares):
-- an account's max_open. Its creates past it are refused as the upstream refuses its own
-- (429, 1303), before anything is held or forwarded; another account is not touched; the
-- count comes back with a restart, and an end frees a slot.
local function open_limit()
  assert(h.sim_admin(sim, "POST", "/_sim/config", { task_seconds = 600 }))
  local accounts = { { name = "dave", api_key = "gw-dave-key", credit = "1000", max_open = 2 },
    { name = "erin", api_key = "gw-erin-key", credit = "1000" } }
  local at = start(open_dir, "open", { accounts = accounts })
  local creates_before = h.sim_admin(sim, "GET", "/_sim/stats").creates
  local function create(who)
    return h.request("POST", at.http .. "/v1/videos/text2video", { headers = { authorization = "Bearer gw-" .. who
      .. "-key" }, body = { model_name = "kling-v1", mode = "std", duration = "5", prompt = "a lantern" } })
  end
  local first, second, third = create("dave"), create("dave"), create("dave")
  h.check("max_open 2: two creates taken", first.status == 200 and second.status == 200, first.body)
  h.check("... the third refused, 429 with the upstream's own code for it (1303), naming max_open",
    third.status == 429 and third.json and third.json.code == 1303 and third.body:find("max_open 2", 1, true) ~= nil,
    third.body)
  h.check("... another account's create is taken", create("erin").status == 200)
  local d = h.gateway_admin(at.http, "admin-0123456789abcdef").by.dave
  h.check("the admin API shows its open tasks and its most, nothing of the refused one held",
    d.open == 2 and d.max_open == 2 and d.reserved == "2", json.encode(d))
  local bal = h.request("GET", at.http .. "/gateway/balance", { headers = { authorization = "Bearer gw-dave-key" } })
  local bd = bal.json and bal.json.data or {}
  h.check("... and GET /gateway/balance shows the client its own", bd.open == 2 and bd.max_open == 2, bal.body)
  local m = h.request("GET", at.http .. "/metrics").body or ""
  h.check("... /metrics counts it as a refusal of reason open", metric(m, 'kling_gateway_refusals_total{reason="open"}')
    == 1, m:match("[^\n]*refusals_total[^\n]*"))
  h.check("... and gives each account's open tasks", metric(m, 'kling_gateway_open_tasks{account="dave"}') == 2
    and metric(m, 'kling_gateway_open_tasks{account="erin"}') == 1, m:match("[^\n]*open_tasks[^\n]*"))
  h.gateway_stop(open_dir)
  at = start(open_dir, "open", { accounts = accounts })
  local again = create("dave")
  h.check("after a restart its open tasks are counted again: still refused", again.status == 429
    and again.json and again.json.code == 1303, again.body)
  local creates = h.sim_admin(sim, "GET", "/_sim/stats").creates - creates_before
  h.check("... and the simulator saw the three creates taken, none of the two refused", creates == 3, creates)
  assert(h.sim_admin(sim, "POST", "/_sim/clock", { advance = 601 }))
  local by = h.now() + 20
  repeat
    h.sleep(0.3)
    d = h.gateway_admin(at.http, "admin-0123456789abcdef").by.dave
  until d.open == 0 or h.now() > by
  h.check("once its tasks end, none is open", d.open == 0 and d.reserved == "0", json.encode(d))
  h.check("... and its next create is taken", create("dave").status == 200)
  assert(h.sim_admin(sim, "DELETE", "/_sim/config"))
end

-- A task whose end the gateway did not see by its deadline keeps its hold (the upstream may
-- bill it): the operator ends it through the admin API once the upstream's bill is read,
-- settled at what it cost (at most the hold) or released; never twice, never an open task's.
-- The client's task shows the decision, after a restart too, and its callback_url is told.
local function kept_hold_is_ended_by_the_operator()
  assert(h.sim_admin(sim, "POST", "/_sim/config", { task_seconds = 600 }))
  local dir = base .. "/gw-deadline"
  receiver = h.receiver_start(base .. "/receiver")
  -- records kept 26 s after their end: the third task's goes while its hold is kept
  local cfg = { poll = { min_interval = 0.3, max_interval = 0.5, deadline = 2 }, retention_days = 0.0003,
    allow_private_callbacks = true, -- the test's receiver is on loopback
    client_webhook_secret = "whsec_" .. ("k"):rep(32),
    accounts = { { name = "frank", api_key = "gw-frank-key", credit = "10" } } }
  local at = start(dir, "deadline", cfg)
  local function create(callback_url)
    local res = h.request("POST", at.http .. "/v1/videos/text2video", { headers = { authorization =
      "Bearer gw-frank-key" }, body = { model_name = "kling-v1", mode = "std", duration = "5", prompt = "a bell",
      callback_url = callback_url } })
    return assert(res.json and res.json.data and res.json.data.task_id, res.body)
  end
  local function admin_post(path, body)
    return h.request("POST", at.http .. "/gateway/admin/tasks/" .. path, { headers = { authorization =
      "Bearer admin-0123456789abcdef" }, body = body })
  end
  local function view(id)
    local res = h.request("GET", at.http .. "/v1/videos/text2video/" .. id, { headers = { authorization =
      "Bearer gw-frank-key" } })
    return res.json and res.json.data or {}
  end
  local one, two, three = create(receiver.url), create(), create()
  local res = admin_post(one .. "/settle", { amount = "0.4" })
  h.check("an open task's hold is not the operator's to end (409)", res.status == 409
    and res.body:find("has not ended", 1, true) ~= nil, res.body)
  local by = h.now() + 20
  repeat
    h.sleep(0.3)
  until (view(one).task_status == "failed" and view(two).task_status == "failed"
    and view(three).task_status == "failed") or h.now() > by
  local f = h.gateway_admin(at.http, "admin-0123456789abcdef").by.frank
  h.check("past the gateway's deadline the tasks failed, their holds kept (3)", view(two).task_status == "failed"
    and f.reserved == "3" and f.spent == "0", json.encode(f))
  local function kept(query)
    local r = h.request("GET", at.http .. "/gateway/admin/holds" .. (query or ""), { headers = { authorization =
      "Bearer admin-0123456789abcdef" } })
    local ids = {}
    for _, k in ipairs(r.json and r.json.holds or {}) do
      ids[#ids + 1] = k.task_id .. "=" .. k.record .. ":" .. k.held .. ":" .. k.account
    end
    return r, table.concat(ids, ",")
  end
  local list_res, list = kept()
  h.check("the operator lists the kept holds, in the order they were kept", list_res.status == 200
    and list == one .. "=ended:1:frank," .. two .. "=ended:1:frank," .. three .. "=ended:1:frank"
    and list_res.json.cursor == nil and list_res.json.holds[1].status == "failed", list_res.body)
  local page1, l1 = kept("?count=2")
  local _, l2 = kept("?count=2&cursor=" .. tostring(page1.json and page1.json.cursor))
  h.check("... a page at a time, by the cursor a page gives", l1 == one .. "=ended:1:frank," .. two
    .. "=ended:1:frank" and l2 == three .. "=ended:1:frank", l1 .. " | " .. l2)
  for _, q in ipairs { "?count=0", "?count=x", "?cursor=-1", "?cursor=99999999999999999999", "?page=2" } do
    local r = kept(q)
    h.check("a bad listing is refused naming the parameter: " .. q, r.status == 400 and r.json
      and r.json.field == q:match("^%?(%a+)"), r.body)
  end
  for _, body in ipairs { "[]", '{"amount":"-0"}', '{"amount":"0.4","note":"x"}' } do
    res = h.request("POST", at.http .. "/gateway/admin/tasks/" .. one .. (body == "[]" and "/release" or "/settle"),
      { headers = { authorization = "Bearer admin-0123456789abcdef" }, body = body })
    h.check("a body that is not {} or {amount} of digits moves nothing (400): " .. body, res.status == 400, res.body)
  end
  res = admin_post(one .. "/settle", { amount = "1.5" })
  h.check("a settle above the hold is refused naming amount (400)", res.status == 400 and res.json
    and res.json.field == "amount", res.body)
  res = admin_post(one .. "/settle", { amount = "0.4" })
  f = h.gateway_admin(at.http, "admin-0123456789abcdef").by.frank
  h.check("the operator settles one at what the upstream billed: charged 0.4, its hold ended",
    res.status == 200 and res.json.charged == "0.4" and res.json.held == "1" and f.spent == "0.4"
    and f.reserved == "2" and f.balance == "7.6", res.body .. " " .. json.encode(f))
  h.check("... the client's task shows the charge", view(one).final_unit_deduction == "0.4", json.encode(view(one)))
  local told, first_id
  by = h.now() + 10
  repeat
    h.sleep(0.2)
    for _, r in ipairs(receiver.received()) do
      local b = json.decode(r.body or "")
      local amended = b and b.task_id == one and b.final_unit_deduction == "0.4"
        and tostring(b.task_status_msg):find("charged 0.4 by the gateway's operator", 1, true)
      told = told or (amended and r)
      first_id = first_id or (b and b.task_id == one and not amended and r.id)
    end
  until told or h.now() > by
  h.check("... and its callback_url is sent the task once more, with the charge, as a message of its own (a"
    .. " webhook-id of its own: receivers drop a repeated one)", told ~= nil and first_id ~= nil
    and told.id ~= first_id, json.encode(receiver.received()))
  local marked
  for l in (h.read(base .. "/journal/deadline.jsonl") or ""):gmatch("[^\n]+") do
    local e = json.decode(l)
    if e and e.op == "settle" and e.task_key == one then
      marked = e.by
    end
  end
  h.check("... its journal line says the operator decided it", marked == "operator", tostring(marked))
  h.gateway_stop(dir)
  at = start(dir, "deadline", cfg)
  local after = view(one)
  h.check("... and after a restart the task still shows the operator's charge", after.final_unit_deduction == "0.4"
    and tostring(after.task_status_msg):find("charged 0.4 by the gateway's operator", 1, true) ~= nil,
    json.encode(after))
  res = admin_post(one .. "/release", {})
  h.check("... and its hold is not ended twice (409)", res.status == 409
    and res.body:find("holds nothing", 1, true) ~= nil, res.body)
  res = admin_post(two .. "/release", { amount = "1" })
  h.check("a release takes no amount (400, named)", res.status == 400 and res.json.field == "amount", res.body)
  res = admin_post(two .. "/release", {})
  f = h.gateway_admin(at.http, "admin-0123456789abcdef").by.frank
  h.check("the operator releases the other: charged nothing", res.status == 200
    and res.json.charged == "0" and f.spent == "0.4" and f.reserved == "1" and f.balance == "8.6",
    res.body .. " " .. json.encode(f))
  res = admin_post("gwnosuchtask/release", {})
  h.check("an unknown task: 404", res.status == 404, res.body)
  -- A hold kept past its task's record (retention_days): no end will come; the hold says whose.
  by = h.now() + 45
  repeat
    h.sleep(0.5)
    res = h.request("GET", at.http .. "/v1/videos/text2video/" .. three, { headers = { authorization =
      "Bearer gw-frank-key" } })
  until res.status == 404 or h.now() > by
  -- The first restart's compaction keeps the hold alone (its record is past retention); the
  -- second restores from that: the hold is still the operator's, not released as never made.
  for _ = 1, 2 do
    h.gateway_stop(dir)
    at = start(dir, "deadline", cfg)
  end
  f = h.gateway_admin(at.http, "admin-0123456789abcdef").by.frank
  h.check("two restarts later a kept hold whose record is gone is still held", f.reserved == "1" and f.open == 1
    and f.balance == "8.6", json.encode(f))
  list_res, list = kept()
  h.check("... and listed, its record expired; the ones ended by the operator are not", list == three
    .. "=expired:1:frank", list_res.body)
  res = admin_post(three .. "/release", {})
  f = h.gateway_admin(at.http, "admin-0123456789abcdef").by.frank
  h.check("a hold that outlived its task's record is still the operator's to release", res.status == 200
    and res.json.record == "expired" and f.reserved == "0" and f.open == 0 and f.balance == "9.6",
    res.body .. " " .. json.encode(f))
  list_res, list = kept()
  h.check("... then nothing is listed", list_res.status == 200 and list == "" and list_res.body:find('"holds":[]', 1,
    true) ~= nil, list_res.body)
  h.gateway_stop(dir)
  at = start(dir, "deadline", cfg)
  f = h.gateway_admin(at.http, "admin-0123456789abcdef").by.frank
  h.check("after a restart the journal gives the same money back", f.spent == "0.4" and f.reserved == "0",
    json.encode(f))
  h.gateway_stop(dir)
  assert(h.sim_admin(sim, "DELETE", "/_sim/config"))
end

-- A create whose handler died with its worker (kill -9 while the upstream had not answered) is
-- found by its external id, and listed with the account's other tasks: it was left out of the
-- list (only a restart's replay listed it), while the client was charged for it (stop 32 trial).
-- Its poll.deadline (8 s) is shorter than the time it may be in flight (17 s): it ended at the
-- deadline unlooked-up, failed, its hold kept, though the upstream had made and billed it.
local function cut_create_is_listed()
  local dir = base .. "/gw-cut"
  local at = start(dir, "cut", { upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key,
    timeout = 2, connect_timeout = 1 }, poll = { min_interval = 0.3, max_interval = 0.5, deadline = 8 },
    accounts = { { name = "gina", api_key = "gw-gina-key", credit = "10" } } })
  local body = json.encode { model_name = "kling-v1", mode = "std", duration = "5", prompt = "cut off" }
  local function listed()
    local r = h.request("GET", at.http .. "/v1/videos/text2video?pageNum=1&pageSize=500", { headers = {
      authorization = "Bearer gw-gina-key" } })
    return r.json and type(r.json.data) == "table" and #r.json.data or -1
  end
  local res = h.request("POST", at.http .. "/v1/videos/text2video", { headers = { authorization =
    "Bearer gw-gina-key" }, body = body })
  assert(res.status == 200 and listed() == 1, res.body)
  assert(h.sim_admin(sim, "POST", "/_sim/faults", { rules = { { kind = "stall", method = "POST",
    path = "/v1/videos/text2video", phase = "after", seconds = 20, count = 1 } } }))
  h.sh(("(curl -s -m 25 -X POST -H 'Authorization: Bearer gw-gina-key' -H 'Content-Type: application/json'"
    .. " -d %s %s/v1/videos/text2video >/dev/null 2>&1 &)"):format(h.q(body), at.http))
  h.sleep(1)
  h.sh("kill -KILL $(pgrep -P " .. at.pid .. ")")
  assert(h.sim_admin(sim, "DELETE", "/_sim/faults"))
  local by, n = h.now() + 60
  repeat
    h.sleep(0.5)
    n = listed()
  until n == 2 or h.now() > by
  local g
  by = h.now() + 20
  repeat -- listed once found; charged once it ends (the simulator's tasks take 1 s)
    g = h.gateway_admin(at.http, "admin-0123456789abcdef").by.gina
    h.sleep(0.3)
  until g.spent == "2" or h.now() > by
  h.check("a create cut off by its worker's kill -9 is found upstream, charged, and listed with the others,"
    .. " its deadline (8 s) shorter than its time in flight (17 s)",
    n == 2 and g and g.spent == "2" and g.reserved == "0", tostring(n) .. " " .. json.encode(g))
  h.gateway_stop(dir)
end

-- With callbacks on, a task is first polled after poll.silence; a deadline shorter than that
-- ended it unpolled, its hold kept, though the upstream had finished it (at 64 s for a 4 s
-- deadline, then at 4 s with no poll: stop 32's trial and its re-check).
local function short_deadline_is_polled_with_callbacks_on()
  local dir = base .. "/gw-cb"
  local at = start(dir, "cb", { webhook_secret = "whsec_" .. ("c"):rep(32), callback_url =
    "https://gateway.example.com/kling/callback", poll = { min_interval = 0.3, max_interval = 0.5, silence = 60,
    deadline = 4 }, accounts = { { name = "hana", api_key = "gw-hana-key", credit = "10" } } })
  local res = h.request("POST", at.http .. "/v1/videos/text2video", { headers = { authorization =
    "Bearer gw-hana-key" }, body = { model_name = "kling-v1", mode = "std", duration = "5", prompt = "quick" } })
  local id = res.json and res.json.data and res.json.data.task_id
  assert(id, res.body)
  local by, view = h.now() + 8
  repeat
    h.sleep(0.3)
    local r = h.request("GET", at.http .. "/v1/videos/text2video/" .. id, { headers = { authorization =
      "Bearer gw-hana-key" } })
    view = r.json and r.json.data or {}
  until view.task_status == "succeed" or view.task_status == "failed" or h.now() > by
  h.check("with callbacks on, a task whose deadline (4 s) is shorter than the silence (60 s) is polled before it:"
    .. " it succeeded and was charged", view.task_status == "succeed" and view.final_unit_deduction == "1",
    json.encode(view))
  h.gateway_stop(dir)
end

-- Tasks that fail at no charge cost their client nothing, yet each is kept retention_days: an
-- account's share of them a day (max_failed_daily), refused beyond (429, 1102, with a
-- Retry-After: a quota, not a pace to retry at); another account is not touched (attacker
-- review, stop 32). Only what the provider failed counts: a create whose answer was lost and
-- that lookups did not find is the upstream's trouble. The count outlives a restart.
local function failed_daily()
  local dir = base .. "/gw-failed"
  local accounts = { { name = "gina", api_key = "gw-gina-key", credit = "100", max_failed_daily = 2 },
    { name = "hugo", api_key = "gw-hugo-key", credit = "100" } }
  -- a short upstream timeout: a create whose answer was lost is looked up after 14 s, not 200
  local cfg = { accounts = accounts, upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key,
    timeout = 1, connect_timeout = 1 }, poll = { min_interval = 0.3, max_interval = 0.5, lookups = 1 } }
  local at = start(dir, "failed", cfg)
  local function create(who, prompt)
    return h.request("POST", at.http .. "/v1/videos/text2video", { headers = { authorization = "Bearer gw-" .. who
      .. "-key" }, body = { model_name = "kling-v1", mode = "std", duration = "5", prompt = prompt } })
  end
  local function ended(ids, want)
    local by, n = h.now() + 40
    repeat
      h.sleep(0.3)
      n = 0
      for _, id in ipairs(ids) do
        local q = h.request("GET", at.http .. "/v1/videos/text2video/" .. id, { headers = { authorization =
          "Bearer gw-gina-key" } })
        local v = q.json and q.json.data or {}
        n = n + ((v.task_status == "failed" and v.final_unit_deduction == "0") and 1 or 0)
      end
    until n == want or h.now() > by
    return n
  end
  -- the upstream fails two creates' answers (502): nothing was made there; found by no lookup
  h.sim_admin(sim, "POST", "/_sim/faults", { rules = { { kind = "5xx", status = 502, method = "POST",
    path = "text2video", count = 2 } } })
  local lost = {}
  for i = 1, 2 do
    local r = create("gina", "a lighthouse at dusk")
    lost[i] = r.json and r.json.data and r.json.data.task_id
    assert(lost[i], r.body)
  end
  h.check("max_failed_daily 2: two creates whose answers the upstream lost end failed, at no charge",
    ended(lost, 2) == 2)
  h.sim_admin(sim, "DELETE", "/_sim/faults")
  h.sleep(1.1) -- past a worker's copy of the count
  local ids = {}
  for i = 1, 2 do
    local r = create("gina", "a kite [sim:fail]")
    ids[i] = r.json and r.json.data and r.json.data.task_id
    h.check("... they do not count: failed task " .. i .. " of the upstream's own is taken", ids[i] ~= nil, r.body)
  end
  h.check("... two tasks fail upstream at no charge", ended(ids, 2) == 2)
  h.sleep(1.1) -- past a worker's copy of the count (capacity.FAILED_FRESH_S)
  local third = create("gina", "a lighthouse at dusk")
  local wait = tonumber(third.headers and third.headers["retry-after"])
  h.check("... the account's next create is refused, 429 with a quota's code (1102, never retried by a client),"
    .. " naming max_failed_daily, a Retry-After to the end of the UTC day", third.status == 429 and third.json
    and third.json.code == 1102 and third.body:find("max_failed_daily 2", 1, true) ~= nil and wait ~= nil
    and wait > 0 and wait <= 86400, third.body .. " Retry-After: " .. tostring(wait))
  local bal = h.request("GET", at.http .. "/gateway/balance", { headers = { authorization = "Bearer gw-gina-key" } })
  local bd = bal.json and bal.json.data or {}
  h.check("... GET /gateway/balance shows the client its failures today and its most",
    bd.failed_today == 2 and bd.max_failed_daily == 2, bal.body)
  local other = create("hugo", "a lighthouse at dusk")
  h.check("... another account's create is taken", other.status == 200, other.body)
  local g = h.gateway_admin(at.http, "admin-0123456789abcdef").by.gina
  h.check("... nothing of the refused create is held", g.reserved == "0" and g.spent == "0", json.encode(g))
  local m = h.request("GET", at.http .. "/metrics").body or ""
  h.check("... /metrics counts it as a refusal of reason failed_daily",
    metric(m, 'kling_gateway_refusals_total{reason="failed_daily"}') == 1, m:match("[^\n]*failed_daily[^\n]*"))
  h.gateway_stop(dir)
  at = start(dir, "failed", cfg)
  local again = create("gina", "a lighthouse at dusk")
  h.check("... and after a restart, still refused (the count is read back from the journal)", again.status == 429
    and again.json and again.json.code == 1102, again.body)
  h.gateway_stop(dir)
end

local function run()
  sim = h.sim_start(sim_dir, { task_seconds = 1 })
  gw = start(gw_dir, "gateway", { retention_days = 1 / 86400, memory = { tasks = "4m", ledger = "256k" } })

  local conf = h.read(gw_dir .. "/nginx.conf") or ""
  h.check("memory: the conf's dicts have the sizes the config gives",
    conf:find("lua_shared_dict kling_gateway_tasks 4m;", 1, true)
    and conf:find("lua_shared_dict kling_gateway_ledger 256k;", 1, true), conf:match("[^\n]*shared_dict[^\n]*"))
  local m = h.request("GET", gw.http .. "/metrics").body or ""
  h.check("memory: /metrics gives each dict's capacity",
    metric(m, 'kling_gateway_memory_capacity_bytes{dict="tasks"}') == 4 * 2 ^ 20
    and metric(m, 'kling_gateway_memory_capacity_bytes{dict="ledger"}') == 256 * 1024, m:match("[^\n]*capacity[^\n]*"))

  local refused, first_refusal = 0, nil
  for round = 1, ROUNDS do
    for _ = 1, PER_ROUND do
      local res = call("POST", "/v1/audio/tts", { text = "Hello.", voice_id = "kling_narrator_en",
        voice_language = "en" })
      if res.status ~= 200 then
        refused = refused + 1
        first_refusal = first_refusal or (round .. ": " .. tostring(res.status) .. " " .. tostring(res.body))
      end
    end
    h.sleep(2.2) -- past the marks' life (a retention of 1 s, and as much again)
  end
  h.check(("%d synchronous calls in %d rounds, more than a 256k ledger dict could mark for good, are all taken")
    :format(ROUNDS * PER_ROUND, ROUNDS), refused == 0,
    refused .. " refused, the first in round " .. tostring(first_refusal))

  -- A task still ends and settles after them (the tasks dict has room too).
  local res = call("POST", "/v1/videos/text2video", { model_name = "kling-v1", mode = "std", duration = "5",
    prompt = "a lighthouse at dusk" })
  local id = res.json and res.json.data and res.json.data.task_id
  h.check("an asynchronous create is taken after them", res.status == 200 and id ~= nil, res.body)
  local status, limit = nil, h.now() + 30
  while id and h.now() < limit and status ~= "succeed" do
    local q = call("GET", "/v1/videos/text2video/" .. id)
    status = q.json and q.json.data and q.json.data.task_status
    h.sleep(0.2)
  end
  h.check("... and ends", status == "succeed", tostring(status))

  local a = h.gateway_admin(gw.http, "admin-0123456789abcdef").by.carol
  local ledger = h.sim_admin(sim, "GET", "/_sim/ledger")
  h.check(("the gateway's charges (%s) equal the simulator's ledger (%s), nothing held"):format(a.spent,
    json.encode(ledger.totals)), core.money_parse(a.spent) == h.sim_total(ledger, "CNY")
    and a.reserved == "0")
  m = h.request("GET", gw.http .. "/metrics").body or ""
  h.check("memory: /metrics gives the ledger dict's free bytes, and it has room",
    (metric(m, 'kling_gateway_memory_free_bytes{dict="ledger"}') or 0) > 0, m:match("[^\n]*free_bytes[^\n]*"))
  local lres = h.request("GET", gw.http .. "/gateway/admin/ledger", { headers = {
    authorization = "Bearer admin-0123456789abcdef" } })
  h.check("one node has no ledger list to archive: its journal is the record (409, naming it)", lres.status == 409
    and lres.body:find("gateway.jsonl", 1, true) ~= nil, lres.body)

  -- A dict that is full of what must be kept refuses creates, and the operator is told what to
  -- raise; every create it took still ends (room for the ends is kept at admission).
  -- A node that ran longer than its retention starts again: ends past it are not put back.
  h.gateway_stop(gw_dir)
  local ok_restart, restarted = pcall(start, gw_dir, "gateway", { retention_days = 1 / 86400,
    memory = { tasks = "4m", ledger = "256k" } })
  h.check("the gateway restarts after more ends than its ledger dict could hold, all past its retention",
    ok_restart, tostring(restarted))
  if ok_restart then
    gw = restarted
    local again = h.gateway_admin(gw.http, "admin-0123456789abcdef").by.carol
    h.check("... with its balance as it was", again.spent == a.spent and again.reserved == "0", again.spent)
  end

  local units_before = h.sim_total(h.sim_admin(sim, "GET", "/_sim/ledger"), "CNY")
  -- carol's max_failed_daily above the 2,500 refusals below: they count toward it (each is an
  -- upstream call and journal lines), and what is measured here is the dicts' room
  local small = start(small_dir, "small", { memory = { tasks = "512k", ledger = "256k" },
    accounts = { { name = "carol", api_key = "gw-carol-key", credit = "100000", max_failed_daily = 1000000 } } })
  -- Creates the upstream refuses cost their client nothing: their ends must not fill the ledger's
  -- dict for retention_days (one client would have every client's creates refused).
  local refused_upstream, other = 0, {}
  for _ = 1, 2500 do
    local r = call("POST", "/v1/videos/text2video", { model_name = "kling-v1", mode = "std", duration = "5",
      prompt = "a kite [sim:bogus]" }, small)
    if r.status >= 400 and r.status < 500 and r.json and r.json.code ~= 5001 then
      refused_upstream = refused_upstream + 1
    else
      other[#other + 1] = r.body
    end
  end
  h.check("2,500 creates the upstream refuses are each refused as such, none 503 for want of memory",
    refused_upstream == 2500, other[1])
  local codes = {}
  for _ = 1, 700 do
    local r = call("POST", "/v1/videos/text2video", { model_name = "kling-v1", mode = "std", duration = "5",
      prompt = "a lighthouse at dusk" }, small)
    local code = tostring(r.json and r.json.code)
    codes[code] = (codes[code] or 0) + 1
  end
  local taken = codes["0"] or 0
  h.check("a 512k tasks dict, full of tasks kept for 30 days, refuses creates with 5001 (nothing forwarded)",
    (codes["5001"] or 0) > 0 and taken > 0 and taken + (codes["5001"] or 0) == 700, json.encode(codes))
  local sa, settle_by
  settle_by = h.now() + 40
  repeat
    h.sleep(0.5)
    sa = h.gateway_admin(small.http, "admin-0123456789abcdef").by.carol
  until sa.reserved == "0" or h.now() > settle_by
  local billed = h.sim_total(h.sim_admin(sim, "GET", "/_sim/ledger"), "CNY") - units_before
  h.check(("... every one of the %d creates it took ends and is settled, as the simulator billed them"):format(taken),
    sa.reserved == "0" and core.money_parse(sa.spent) == billed and billed == taken * 10 ^ 6,
    json.encode { sa.spent, sa.reserved, billed })
  local small_log = h.read(small_dir .. "/error.log") or ""
  h.check("... none failed to end for want of memory", not small_log:find("no memory", 1, true),
    small_log:match("[^\n]*no memory[^\n]*"))
  h.check("... and the error log names the dict and the config field to raise",
    small_log:find("kling_gateway_tasks has no room left for more tasks", 1, true)
      and small_log:find("raise memory.tasks", 1, true), small_log:match("[^\n]*cannot take more tasks[^\n]*"))
  local sm = h.request("GET", small.http .. "/metrics").body or ""
  h.check("... counted as refusals of reason capacity", metric(sm, 'kling_gateway_refusals_total{reason="capacity"}')
    == codes["5001"], sm:match("[^\n]*refusals_total[^\n]*"))

  -- A start with a dict too small for what its journal holds is refused, naming the field, and
  -- changes nothing (no compaction of a partial replay); the right size starts with every task.
  h.gateway_stop(small_dir)
  local jpath = base .. "/journal/small.jsonl"
  local journal_before = h.read(jpath)
  local doc = json.decode(h.read(base .. "/small.json"))
  doc.memory.tasks = "256k"
  h.write(base .. "/small.json", json.encode(doc))
  local out, started = h.sh(("lua5.4 %s/bin/kling gateway start --config %s --dir %s 2>&1"):format(h.q(h.src),
    h.q(base .. "/small.json"), h.q(small_dir)))
  local why = out .. (h.read(small_dir .. "/error.log") or "")
  h.check("a start with memory.tasks too small for its journal's tasks is refused, naming memory.tasks",
    not started and why:find("raise memory.tasks", 1, true) ~= nil, out)
  h.check("... and its journal is as it was", h.read(jpath) == journal_before)
  small = start(small_dir, "small", { memory = { tasks = "512k", ledger = "256k" } })
  local again = h.gateway_admin(small.http, "admin-0123456789abcdef").by.carol
  h.check("... started with the size it had, every balance is back", again.spent == sa.spent and again.reserved == "0",
    json.encode { again.spent, again.reserved })

  open_limit()
  kept_hold_is_ended_by_the_operator()
  cut_create_is_listed()
  short_deadline_is_polled_with_callbacks_on()
  failed_daily()

  local log = h.read(gw_dir .. "/error.log") or ""
  h.check("no full dict in the error log", not log:find("no memory", 1, true) and not log:find("is full", 1, true),
    log:match("[^\n]*no memory[^\n]*") or log:match("[^\n]*is full[^\n]*"))
end

h.main(run, function() return nil end, cleanup)
