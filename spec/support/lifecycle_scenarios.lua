-- The lifecycle scenarios (issue 10): one table of what can happen to a task, each with the
-- end it must reach and the money lines it must leave, and a driver that feeds one scenario
-- to the lifecycle machine alone on a fake clock (spec/unit/lifecycle_spec.lua). Answers are
-- the official API's own (its envelope, codes and statuses) as a driver returns them, so the
-- machine reads them through the real dialect.
--
-- A scenario: {name, profile = "engine" | "blocking" (which options the machine runs with:
-- both look an uncertain create up and queue a refused one again; the blocking one within
-- the client's call budget), budget (default true), reserve = "ok" | "budget" | "unpriced",
-- create = {answers}, lookup = {answers}, poll = {answers} (each list is used in turn, the
-- last repeating), callbacks = {{at = "before_answer" | "after_answer", send = k, status}}
-- (delivered around the k-th request), callback = true (a callback_url is set), cancel_at_wake
-- = k (the caller cancels at the k-th wake-up), timeout_ms (the wait's deadline), call_budget_ms
-- (the blocking profile's create phase: the client's call_budget),
-- expect = {status, err, sends = {purposes}, money = {the ledger lines' ops}, uncertain}}.
local json = require "kling.json"

local M = {}

local EXT = "kl-" .. string.rep("0", 23) .. "1" -- the first id the scenario's random source gives
M.EXT = EXT

-- ---- answers, as a driver returns them ---------------------------------------------------

local function envelope(status, code, data, extra_headers)
  local headers = { ["content-type"] = "application/json", ["x-request-id"] = "req-1" }
  for k, v in pairs(extra_headers or {}) do
    headers[k] = v
  end
  return { ok = true, status = status, headers = headers, sent = true, received = true,
    body = json.encode { code = code, message = code == 0 and "SUCCEED" or "refused", request_id = "req-1",
      data = data } }
end

local function task_object(status)
  local d = { task_id = "t-1", task_status = status, task_status_msg = "", created_at = 1700000000000,
    updated_at = 1700000000000, task_info = { external_task_id = EXT } }
  if status == "succeed" then
    d.task_result = { videos = { { id = "v-1", url = "https://cdn.example.com/v.mp4", duration = "5.1" } } }
  elseif status == "failed" then
    d.task_status_msg = "the model could not render the scene"
  end
  return d
end

-- The answers by name: a task status, or a fault.
local ANSWERS = {
  submitted = function() return envelope(200, 0, task_object("submitted")) end,
  processing = function() return envelope(200, 0, task_object("processing")) end,
  succeed = function() return envelope(200, 0, task_object("succeed")) end,
  failed = function() return envelope(200, 0, task_object("failed")) end,
  found = function() return envelope(200, 0, { task_object("processing") }) end,
  not_found = function() return envelope(404, 1203, nil) end,
  unknown_status = function() return envelope(200, 0, task_object("paused")) end,
  ["5xx"] = function() return envelope(500, 5000, nil) end,
  ["429"] = function() return envelope(429, 1302, nil, { ["retry-after"] = "0" }) end,
  ["1303"] = function() return envelope(429, 1303, nil) end,
  ["1004"] = function() return envelope(401, 1004, nil) end,
  auth = function() return envelope(401, 1002, nil) end,
  reset = function() return { ok = false, error = "reset", sent = true, received = false } end,
  stall = function() return { ok = false, error = "timeout", sent = true, received = false } end,
  connect = function() return { ok = false, error = "connect", sent = false, received = false } end,
  malformed = function()
    return { ok = true, status = 200, headers = { ["content-type"] = "application/json" }, body = "{\"code\": 0, ",
      sent = true, received = true }
  end,
  content_type = function()
    return { ok = true, status = 200, headers = { ["content-type"] = "text/html" }, body = "<html></html>",
      sent = true, received = true }
  end,
}
M.ANSWERS = ANSWERS

-- ---- the table ---------------------------------------------------------------------------

local OK_MONEY = { "reserve", "settle" }
local FAIL_MONEY = { "reserve", "release" }
local HELD = { "reserve" } -- the task exists or may: the reservation stays until it is seen ended

local S = {}
M.scenarios = S

local function add(s)
  s.profile = s.profile or "engine"
  S[#S + 1] = s
end

add { name = "success", poll = { "processing", "succeed" },
  expect = { status = "succeeded", sends = { "create", "poll", "poll" }, money = OK_MONEY } }
add { name = "task failure", poll = { "processing", "failed" },
  expect = { status = "failed", err = "server", sends = { "create", "poll", "poll" }, money = FAIL_MONEY } }
add { name = "budget refusal", reserve = "budget",
  expect = { status = "pending", err = "budget", sends = {}, money = {} } }
add { name = "unpriced request", reserve = "unpriced",
  expect = { status = "pending", err = "unpriced", sends = {}, money = {} } }
add { name = "no budget", budget = false, poll = { "succeed" },
  expect = { status = "succeeded", sends = { "create", "poll" }, money = {} } }

-- every fault kind on the create
add { name = "create: connect (never sent), then sent again", create = { "connect", "submitted" }, poll = { "succeed" },
  expect = { status = "succeeded", sends = { "create", "create", "poll" }, money = OK_MONEY } }
for _, kind in ipairs { "5xx", "reset", "stall", "malformed", "content_type" } do
  add { name = "create: " .. kind .. " (uncertain), then found by external id", create = { kind },
    lookup = { "found" }, poll = { "succeed" },
    expect = { status = "succeeded", sends = { "create", "lookup", "poll" }, money = OK_MONEY } }
  -- a blocking submit follows it up as the engine does (issue 10: one lifecycle): its hold
  -- goes with the task it finds
  add { name = "create: " .. kind .. " (uncertain), blocking: found by external id, settled",
    profile = "blocking", create = { kind }, lookup = { "found" }, poll = { "succeed" },
    expect = { status = "succeeded", sends = { "create", "lookup", "poll" }, money = OK_MONEY } }
end
add { name = "create: uncertain, then not found: sent once more under the same external id",
  create = { "reset", "submitted" }, lookup = { "not_found" }, poll = { "succeed" },
  expect = { status = "succeeded", sends = { "create", "lookup", "lookup", "lookup", "create", "poll" },
    money = OK_MONEY } }
add { name = "create: uncertain, not found, resent and refused as a duplicate: looked up again",
  create = { "reset", "not_found_dup" }, lookup = { "not_found", "not_found", "not_found", "found" },
  poll = { "succeed" },
  expect = { status = "succeeded", sends = { "create", "lookup", "lookup", "lookup", "create", "lookup", "poll" },
    money = OK_MONEY } }
-- The lookups may lag: a duplicate refusal proves the task exists, so it is never a failure
-- and never a third create; the end says uncertain, with the external id, the hold kept.
add { name = "create: uncertain, resent and refused as a duplicate, never found: ends uncertain, held",
  create = { "reset", "not_found_dup" }, lookup = { "not_found" },
  expect = { status = "pending", err = "network", uncertain = true, money = HELD,
    sends = { "create", "lookup", "lookup", "lookup", "create", "lookup", "lookup", "lookup" } } }
for _, kind in ipairs { "429", "1303" } do
  add { name = "create: " .. kind .. " (refused, nothing made), queued again", create = { kind, "submitted" },
    poll = { "succeed" },
    expect = { status = "succeeded", sends = { "create", "create", "poll" }, money = OK_MONEY,
      refused = { kind == "1303" } } }
  add { name = "create: " .. kind .. " (refused, nothing made), blocking: sent again after at least 1 s",
    profile = "blocking", create = { kind, "submitted" }, poll = { "succeed" },
    expect = { status = "succeeded", sends = { "create", "create", "poll" }, money = OK_MONEY,
      refused = { kind == "1303" } } }
end
add { name = "create: 1303 every time, blocking: refused past the call budget, released", profile = "blocking",
  create = { "1303" }, call_budget_ms = 2500,
  expect = { status = "pending", err = "rate_limited", money = FAIL_MONEY } }
add { name = "create: 1004 (token expired in flight): renewed and sent again once", create = { "1004", "submitted" },
  poll = { "succeed" },
  expect = { status = "succeeded", sends = { "create", "create", "poll" }, money = OK_MONEY, renewals = 1 } }
add { name = "create: 1004 twice: an auth error, nothing made", create = { "1004", "1004" },
  expect = { status = "pending", err = "auth", sends = { "create", "create" }, money = FAIL_MONEY, renewals = 1 } }

-- every fault kind on a poll
for _, kind in ipairs { "5xx", "429", "1303", "reset", "stall", "connect", "malformed", "content_type" } do
  add { name = "poll: " .. kind .. " is survived", poll = { kind, kind, "succeed" },
    expect = { status = "succeeded", sends = { "create", "poll", "poll", "poll" }, money = OK_MONEY } }
end
for _, profile in ipairs { "engine", "blocking" } do
  add { name = "poll: not found (not visible yet) is survived, the task settled", profile = profile,
    poll = { "not_found", "not_found", "succeed" },
    expect = { status = "succeeded", sends = { "create", "poll", "poll", "poll" }, money = OK_MONEY } }
  -- The provider gave the task's id: it made the task, which may be billed whatever its polls
  -- say. Ended as gone and released after 3, a batch created its row again and paid each copy.
  add { name = "poll: not found at every poll: polled to the deadline, ended held (never released)",
    profile = profile, poll = { "not_found" }, timeout_ms = 30000,
    expect = { status = "queued", err = "timeout", money = HELD } }
end
add { name = "poll: 1004: renewed and polled again at once", poll = { "1004", "succeed" },
  expect = { status = "succeeded", sends = { "create", "poll", "poll" }, money = OK_MONEY, renewals = 1 } }
add { name = "poll: unknown status is an error, the reservation held", poll = { "unknown_status" },
  expect = { status = "queued", err = "protocol", sends = { "create", "poll" }, money = HELD } }

-- callbacks
add { name = "callback before a poll", callback = true,
  callbacks = { { at = "after_answer", send = 1, status = "processing" } }, poll = { "succeed" },
  expect = { status = "succeeded", sends = { "create", "poll" }, money = OK_MONEY } }
add { name = "callback instead of polls", callback = true,
  callbacks = { { at = "after_answer", send = 1, status = "succeed" } },
  expect = { status = "succeeded", sends = { "create" }, money = OK_MONEY } }
add { name = "callback after a poll", poll = { "processing", "processing" },
  callbacks = { { at = "after_answer", send = 2, status = "succeed" } },
  expect = { status = "succeeded", sends = { "create", "poll" }, money = OK_MONEY } }
add { name = "callback before the create's answer", callback = true,
  callbacks = { { at = "before_answer", send = 1, status = "processing" },
    { at = "after_answer", send = 1, status = "succeed" } },
  expect = { status = "succeeded", sends = { "create" }, money = OK_MONEY } }
add { name = "duplicate callback: settled once", callback = true,
  callbacks = { { at = "after_answer", send = 1, status = "succeed" },
    { at = "after_answer", send = 1, status = "succeed" } },
  expect = { status = "succeeded", sends = { "create" }, money = OK_MONEY } }
add { name = "callback out of order: a stale 'processing' after 'succeed' changes nothing",
  poll = { "processing", "processing" },
  callbacks = { { at = "after_answer", send = 2, status = "succeed" },
    { at = "after_answer", send = 2, status = "processing" } },
  expect = { status = "succeeded", sends = { "create", "poll" }, money = OK_MONEY } }

-- resuming (adopt): the external id is looked up before anything is created
add { name = "adopt: found by external id, never created again", adopt = true, lookup = { "found" },
  poll = { "succeed" },
  expect = { status = "succeeded", sends = { "lookup", "poll" }, money = OK_MONEY } }
add { name = "adopt: nothing under the external id, so it is created", adopt = true, lookup = { "not_found" },
  poll = { "succeed" },
  expect = { status = "succeeded", sends = { "lookup", "create", "poll" }, money = OK_MONEY } }
add { name = "lookup: a transient error, looked up again, found", create = { "reset" },
  lookup = { "5xx", "found" }, poll = { "succeed" },
  expect = { status = "succeeded", sends = { "create", "lookup", "lookup", "poll" }, money = OK_MONEY } }
add { name = "poll: an auth error ends the wait, the reservation held", poll = { "auth" },
  expect = { status = "queued", err = "auth", sends = { "create", "poll" }, money = HELD } }
add { name = "create: refused until the deadline leaves no time: the refusal, released", create = { "1303" },
  timeout_ms = 5000,
  expect = { status = "pending", err = "rate_limited", money = FAIL_MONEY } }

-- the end otherwise
add { name = "deadline: a timeout, the task runs on, the reservation held", poll = { "processing" },
  timeout_ms = 30000,
  expect = { status = "running", err = "timeout", money = HELD } }
add { name = "cancel before the create is sent", create = { "connect", "submitted" }, cancel_at_wake = 1,
  expect = { status = "cancelled", err = "cancelled", sends = { "create" }, money = FAIL_MONEY } }
add { name = "cancel where the provider cannot: refused, the task goes on", poll = { "processing", "succeed" },
  cancel_at_wake = 1,
  expect = { status = "succeeded", sends = { "create", "poll", "poll" }, money = OK_MONEY, cancel_refused = true } }
add { name = "validation: nothing sent, nothing held", request = { prompt = "", model = "kling-v1" },
  expect = { status = "pending", err = "validation", sends = {}, money = {} } }

-- A resent create refused because its external id exists (the first create happened).
ANSWERS.not_found_dup = function() return envelope(400, 1201, nil) end

-- ---- driving the machine alone -------------------------------------------------------------

M.REQUEST = { prompt = "a lighthouse at dusk", model = "kling-v1", mode = "std", duration = 5 }

--- The machine options of a scenario's profile.
function M.machine_options(sc)
  local engine = sc.profile == "engine"
  -- (the blocking profile is client:submit's: the same decisions, within the call budget)
  return { lookups = 3, requeue_refused = true, callback = sc.callback, adopt = sc.adopt,
    callback_silence_ms = 60000,
    create_budget_ms = engine and (sc.timeout_ms or 600000) or sc.call_budget_ms or 120000 }
end

--- Drives one scenario through a machine on a fake clock. Returns what happened:
-- {status, err, sends = {purposes}, money = {ops}, renewals, refused = {slot_full...}, cancel_refused}.
function M.drive(sc, machine, provider, core)
  local now = 1000000
  local n = 0
  local random = function(nbytes)
    n = n + 1
    return string.format("%0" .. (nbytes * 2) .. "x", n):sub(-nbytes * 2)
  end
  local o = M.machine_options(sc)
  o.provider, o.request, o.random, o.budget = provider, sc.request or M.REQUEST, random, sc.budget ~= false
  local m = machine.new(o)
  local sched = core.sched { min_interval_ms = 1000, max_interval_ms = 15000, seed = 7 }
  local out = { sends = {}, money = {}, renewals = 0, refused = {} }
  local used = { create = 0, lookup = 0, poll = 0 }
  local function answer(purpose)
    used[purpose] = used[purpose] + 1
    local list = sc[purpose] or ({ create = { "submitted" }, lookup = { "not_found" }, poll = { "succeed" } })[purpose]
    local name = list[math.min(used[purpose], #list)]
    return assert(ANSWERS[name], name)()
  end
  local queue = m:watch(now, sched, now + (sc.timeout_ms or 600000))
  for _, a in ipairs(m:start(now)) do
    queue[#queue + 1] = a
  end
  local wakes, i = 0, 1
  local function push(acts)
    for _, a in ipairs(acts) do
      queue[#queue + 1] = a
    end
  end
  local function callbacks(at, k)
    for _, cb in ipairs(sc.callbacks or {}) do
      if cb.at == at and cb.send == k then
        local fields = assert(provider.parse_task(task_object(cb.status), m.task.endpoint))
        push(m:callback(now, fields))
      end
    end
  end
  for _ = 1, 10000 do
    local act = queue[i]
    if act == nil then
      if not m.wake_at then
        break
      end
      now = math.max(now, m.wake_at)
      wakes = wakes + 1
      if sc.cancel_at_wake == wakes then
        push(m:cancel(now))
      end
      push(m:timer(now))
    else
      i = i + 1
      if act.type == "send" then
        out.sends[#out.sends + 1] = act.purpose
        local k = #out.sends
        callbacks("before_answer", k)
        now = now + 50 -- the answer's latency
        push(m:answer(now, answer(act.purpose), 1700000000))
        callbacks("after_answer", k)
      elseif act.type == "reserve" then
        local r = sc.reserve or "ok"
        if r == "ok" then
          out.money[#out.money + 1] = "reserve" -- a ledger line only when the reservation is made
          push(m:reserved(now, { micros = 1000000, currency = "CNY" }))
        else
          push(m:reserved(now, nil, { kind = r, message = "refused" }))
        end
      elseif act.type == "settle" or act.type == "release" then
        out.money[#out.money + 1] = act.type
      elseif act.type == "renew_token" then
        out.renewals = out.renewals + 1
      elseif act.type == "refused" then
        out.refused[#out.refused + 1] = act.slot_full
      elseif act.type == "refused_cancel" then
        out.cancel_refused = true
      elseif act.type == "done" then
        out.done = (out.done or 0) + 1
        out.err = act.err
      end
    end
  end
  out.status = m.task.status
  out.machine = m
  out.now = now
  return out
end

return M
