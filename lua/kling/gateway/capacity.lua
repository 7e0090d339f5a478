-- One node's room for its tasks in shared memory (with a Redis store, Redis holds them). A
-- create is admitted only while every task already open could still end: a task's record
-- grows when it ends (its result, charge and times: about 1.5 KB kept for retention_days,
-- against 0.8 KB while it runs; README, Sizing one node), and an end that finds no room
-- cannot be written, so its task would stay open for its client while the provider bills it.
-- Each open task keeps ROOM_PER_OPEN bytes of whole free pages in the tasks dict (its final
-- record is of a larger size than its running one, so it needs a page of its own size's). The
-- ledger dict needs none: an end's mark takes the slot its hold leaves (money.stores.shared).
local M = {}

M.ROOM_PER_OPEN = 2048

--- admits(G) -> true | nil, the full dict's name in the config ("tasks")
function M.admits(G)
  if G.redis or G.tasks.shm:room(M.ROOM_PER_OPEN * (G.meter.store:open_holds() + 1)) then
    return true
  end
  return nil, "tasks"
end

-- Tasks that failed at no charge: free to make, yet each is kept like any other (its record and
-- indexes for retention_days): an account whose tasks kept failing could fill the node's
-- memory (or Redis's) and have every account's creates refused (attacker review, stop 32).
-- Each account may have at most its max_failed_daily (MAX_FAILED_DAILY by default) of them a
-- day (UTC); past that its creates are refused (429, 1302) until the day ends, which bounds
-- what one account can keep for free to max_failed_daily x retention_days tasks. Counted when a
-- task ends so; a create reads this worker's copy of its account's count, at most
-- FAILED_FRESH_S old, so it pays no store read (the bound may be passed by what fails meanwhile).
M.MAX_FAILED_DAILY = 1000
M.FAILED_FRESH_S = 1
M.FAILED_KEEP_S = 2 * 86400 -- a day's count outlives its day

local function today()
  return math.floor(ngx.time() / 86400)
end

local function failed_key(account, day)
  return "ff:" .. account .. ":" .. day
end

local COUNT = "local n = redis.call('INCR', ARGV[1] .. ARGV[2]) "
  .. "if n == 1 then redis.call('EXPIRE', ARGV[1] .. ARGV[2], ARGV[3]) end return n"
local READ = "return redis.call('GET', ARGV[1] .. ARGV[2])"

--- failed(G, rec): counts rec's end in its account's day when its task failed at no charge.
function M.failed(G, rec)
  if rec.status == "succeeded" or rec.charge ~= "0" then
    return
  end
  local key = failed_key(rec.account, today())
  local n, err
  if G.redis then
    n, err = G.redis:run(COUNT, key, tostring(M.FAILED_KEEP_S))
  else
    n, err = G.ledger_dict:incr(key, 1, 0, M.FAILED_KEEP_S)
  end
  if not n then
    ngx.log(ngx.WARN, "kling gateway: the failure of ", rec.id, " is not counted for ", rec.account, ": ",
      tostring(err))
  end
end

--- admits_failed(G, account) -> true | nil, its count today, its most: whether the account may
-- create, by its tasks failed at no charge today. A store that cannot say admits (nothing of
-- money hangs on it; the create's own writes then meet the store).
function M.admits_failed(G, account)
  local most = account.max_failed_daily or M.MAX_FAILED_DAILY
  local day, now = today(), ngx.now()
  local seen = G.failed_seen[account.name]
  if not seen or seen.day ~= day or now - seen.at >= M.FAILED_FRESH_S then
    local key = failed_key(account.name, day)
    local n
    if G.redis then
      n = G.redis:run(READ, key)
    else
      n = G.ledger_dict:get(key)
    end
    seen = { day = day, at = now, count = tonumber(n) or 0 }
    G.failed_seen[account.name] = seen
  end
  if seen.count >= most then
    return nil, seen.count, most
  end
  return true
end

--- What the operator reads when a dict has no room: which one, and what to raise.
function M.full(G, name)
  return "the shared dict " .. G.dicts[name] .. " has no room left for more tasks (what the open ones need to end"
    .. " is kept, and its expired entries were freed): raise memory." .. name .. " in the config (README: Sizing"
    .. " one node) and restart"
end

return M
