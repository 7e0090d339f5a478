-- Lua VM instructions a poll costs the engine, flat out, on a fake transport: no network, a fake
-- clock, one seed, so the figure is the same on every run (it does not move with the machine's
-- load as CPU seconds do). It is the CPU figure of `inflight.lua N S OUT 0.25 30` without the C
-- side (libcurl, the collector): every task due every 0.25 s, its answer "processing".
--
--   lua5.4 bench/poll_cost.lua [N [FOR]]                 this tree (from its root, LUA_PATH set as
--                                                        below): tasks N (300), for FOR s (30)
--   lua5.4 bench/poll_cost.lua [N [FOR]] --tree DIR ...   each tree DIR (a checkout with its own
--                                                        build/), run in a process of its own
--   lua5.4 bench/poll_cost.lua [N [FOR]] --profile       where this tree's instructions go, by
--                                                        function (slow: use a smaller N or FOR)
--   lua5.4 bench/poll_cost.lua [N [FOR]] --lines         the same by line
--   lua5.4 bench/poll_cost.lua [N] --creates ...         count the creates instead: submit_many of N
--                                                        requests, every answer included (combines
--                                                        with --tree, --profile, --lines)
--   lua5.4 bench/poll_cost.lua ... --budget               the client holds a budget (every create reserves
--                                                        its estimate first)
--   lua5.4 bench/poll_cost.lua [N [FOR]] --plain         nothing counted, the collector as it is:
--                                                        for valgrind (machine instructions with
--                                                        the C side and the collector: run FOR=30
--                                                        and FOR=10, divide the difference of the
--                                                        two totals by that of the polls)
-- LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;'. To compare with an older commit:
--   git worktree add /tmp/old COMMIT && (cd /tmp/old && cmake -S . -B build && cmake --build build)
--   lua5.4 bench/poll_cost.lua --tree /tmp/old --tree .
-- Counted: every Lua instruction from the first poll to the end of wait_all (a count hook of 1),
-- less the fake's own (its start and wait run with the hook off); divided by the polls the fake
-- answered meanwhile. The request's C work (libcurl) and the collector's are not Lua instructions.
local args, trees, profile, lines, plain, creates, budget = {}, {}, false, false, false, false, false
do
  local i = 1
  while arg[i] do
    if arg[i] == "--tree" then
      trees[#trees + 1] = assert(arg[i + 1], "--tree DIR")
      i = i + 1
    elseif arg[i] == "--plain" then
      plain = true
    elseif arg[i] == "--creates" then
      creates = true
    elseif arg[i] == "--budget" then
      budget = true
    elseif arg[i] == "--profile" or arg[i] == "--lines" then
      profile, lines = true, arg[i] == "--lines"
    else
      args[#args + 1] = assert(tonumber(arg[i]), "N and FOR are numbers")
    end
    i = i + 1
  end
end
local n, run_for = args[1] or 300, args[2] or 30

if #trees > 0 then -- each tree in a process of its own, this script run against its modules
  local script = arg[0]
  if script:sub(1, 1) ~= "/" then
    script = os.getenv("PWD") .. "/" .. script
  end
  for _, dir in ipairs(trees) do
    local cmd = string.format("cd '%s' && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' "
      .. "lua5.4 '%s' %d %g%s%s", dir, script, n, run_for, creates and " --creates" or "", budget and " --budget" or "")
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    local rev = io.popen("git -C '" .. dir .. "' rev-parse --short HEAD 2>/dev/null"):read("l") or "?"
    io.write(string.format("%-28s %s %s", dir, rev, out))
  end
  return
end

local sethook = debug.sethook
local count = 0
local function tick()
  count = count + 1
end
local by_fn = {}
local getinfo = debug.getinfo
local function tick_profile()
  local i = getinfo(2, lines and "Sl" or "S")
  local k = i.short_src .. ":" .. (lines and i.currentline or i.linedefined)
  by_fn[k] = (by_fn[k] or 0) + 1
  count = count + 1
end
local hook = profile and tick_profile or tick
-- The Lua heap's growth while counting (the collector stopped, the fake's own not counted):
-- what a poll allocates, which the collector's work follows.
local gcount = collectgarbage
local on, kib, kib0 = false, 0, 0
local function hook_on()
  if plain then
    return
  end
  on = true
  kib0 = gcount("count")
  sethook(hook, "", 1)
end
local function hook_off()
  if plain then
    return
  end
  sethook()
  kib = kib + (gcount("count") - kib0)
end

-- The fake provider (Kling's official API), a libcurl-style multi handle, 5 ms from request to
-- answer; every task is "processing" for ever. Its work is not counted.
local ANSWER_MS = 5
-- sig: a digest of which task was polled when, in order (the same in every tree that schedules alike)
local f = { t = 1000000, seq = 0, pending = {}, polls = 0, bodies = {}, sig = 0 }
local BODY = '{"code":0,"message":"SUCCEED","request_id":"rq","data":{"task_id":"%s","task_status":"%s",'
  .. '"task_status_msg":"","created_at":%d,"updated_at":%d,"task_info":{"external_task_id":"%s"}}}'

local function answer(status, body)
  return { ok = true, status = status, headers = { ["content-type"] = "application/json" }, body = body,
    sent = true, received = true }
end

local function serve(req)
  if req.method == "POST" then
    f.seq = f.seq + 1
    local id = tostring(800000 + f.seq)
    local ext = req.body:match('"external_task_id":"([^"]+)"') or ""
    f.bodies[id] = string.format(BODY, id, "processing", f.t, f.t, ext)
    return answer(200, string.format(BODY, id, "submitted", f.t, f.t, ext))
  end
  f.polls = f.polls + 1
  local id = req.url:match("/([^/?]+)$")
  f.sig = (f.sig * 31 + f.t * 7 + tonumber(id)) % 4294967291
  return answer(200, assert(f.bodies[id], "no such task"))
end

local http = {}
function http.start(_, req)
  local was = on
  if was then
    hook_off()
  end
  f.next_id = (f.next_id or 0) + 1
  local res = serve(req)
  res.id = f.next_id
  f.pending[#f.pending + 1] = { at = f.t + ANSWER_MS, res = res }
  if was then
    hook_on()
  end
  return res.id
end

function http.wait(_, timeout)
  local was = on
  if was then
    hook_off()
  end
  local first
  for _, p in ipairs(f.pending) do
    if not first or p.at < first then
      first = p.at
    end
  end
  local out = {}
  if not first or first > f.t + timeout then
    f.t = f.t + timeout
  else
    f.t = math.max(f.t, first)
    local keep = {}
    for _, p in ipairs(f.pending) do
      if p.at <= f.t then
        out[#out + 1] = p.res
      else
        keep[#keep + 1] = p
      end
    end
    f.pending = keep
  end
  if was then
    hook_on()
  end
  return out
end

function http.cancel(_, id)
  for i, p in ipairs(f.pending) do
    if p.res.id == id then
      table.remove(f.pending, i)
      return true
    end
  end
  return false
end

local driver = {
  http = http,
  now_ms = function()
    return f.t
  end,
  wall_s = function()
    return 1700000000 + f.t // 1000
  end,
  sleep_ms = function(_, ms)
    f.t = f.t + ms
  end,
}
local has_seam, multi = pcall(require, "kling.driver.multi") -- the asynchronous seam, where the tree has one
if has_seam then
  multi.install(driver)
end

local kling = require "kling"
local client = assert(kling.new { provider = "kling", access_key = "ak-fake", secret_key = "sk-fake",
  base_url = "http://fake", driver = driver, budget = budget and { limit = "100000000", currency = "CNY" } or nil })
local eopts = { min_interval = 0.25, max_interval = 0.25, backoff = 1, learn = false, seed = 1, max_requests = 64 }
client:engine(eopts)
local reqs = {}
for i = 1, n do
  reqs[i] = { prompt = string.format("poll cost %d", i) }
end
local function report(what, per, ops)
  io.write(string.format("%s %d instructions %d per %s %.1f bytes per %s %.0f\n", what, ops, count, per,
    count / ops, per, kib * 1024 / ops))
  if profile then
    local rows = {}
    for k, c in pairs(by_fn) do
      rows[#rows + 1] = { k, c }
    end
    table.sort(rows, function(a, b)
      return a[2] > b[2]
    end)
    for i = 1, math.min(#rows, lines and 250 or 60) do
      io.write(string.format("%8.1f  %s\n", rows[i][2] / ops, rows[i][1]))
    end
  end
end

if creates then -- the create path: validation, quote, the machine's start, the request, its answer
  collectgarbage("collect")
  collectgarbage("stop")
  hook_on()
  local tasks = client:submit_many(reqs)
  hook_off()
  on = false
  collectgarbage("restart")
  assert(#tasks == n and f.seq == n, "every request created once")
  report("creates", "create", n)
  return
end
local tasks = client:submit_many(reqs)
local polls0 = f.polls
collectgarbage("collect")
if not plain then
  collectgarbage("stop")
end
kib = 0
hook_on()
local res = client:wait_all(tasks, { timeout = run_for })
hook_off()
on = false
collectgarbage("restart")
local polls = f.polls - polls0
assert(res.unfinished == n, "every task still runs at the end")
if plain then
  io.write(string.format("polls %d\n", polls))
  return
end
io.write(string.format("schedule %08x ", f.sig))
report("polls", "poll", polls)
