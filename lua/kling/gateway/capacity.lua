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
-- day (UTC); past that its creates are refused (429, 1102: a quota, not a pace a retry waits
-- out) until the day ends, which bounds what one account keeps for free to about
-- (max_failed_daily + its tasks open when it is reached) x retention_days tasks. Only what the
-- provider itself failed counts: a create whose answer was lost and that lookups did not find,
-- a task the provider forgot, a deadline are the gateway's or the upstream's trouble, and an
-- outage must not lock honest clients out for the day. The upstream's refusals of the account's
-- creates for their own sake count too (counts_refusal). Counted when a task ends so, and again
-- from the journal at a one-node start; a create reads this worker's copy of its account's
-- count, at most FAILED_FRESH_S old, so it pays no store read.
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

-- Whether an ended record is of a task the provider itself failed at no charge (gone: the
-- machine ended it for want of the task upstream, not a status of the provider's).
local function failed_free(rec)
  return rec.final == true and rec.charge == "0" and rec.upstream_id ~= nil and rec.status == "failed"
    and not rec.gone
end

-- Creates the upstream refused for the request's own sake count toward the same day: each
-- costs its client nothing, yet is an upstream call and two journal lines (until the next
-- start's compaction), so one account could send them without bound. Only the provider's own
-- answer about the request counts: its business code (err.code, from its body) of a kind that
-- is the request's (invalid, its content refused, an id it does not know). Refusals for the
-- gateway's own upstream account (its pace or slots, its key or balance), the upstream's
-- trouble, and a status with no code of the provider's (a proxy's 404 for a path the upstream
-- does not have, answered to every client alike) do not: an outage must not lock honest
-- clients out for the day.
local CLIENT_KINDS = { validation = true, content_policy = true, not_found = true }

--- counts_refusal(err) -> whether an upstream refusal of a create (the error the create's
-- machine ended it with) counts toward its account's day.
function M.counts_refusal(err)
  return type(err) == "table" and CLIENT_KINDS[err.kind] == true and err.code ~= nil
end

local count

--- failed(G, rec): counts rec's end in its account's day when the provider failed its task at
-- no charge.
function M.failed(G, rec)
  if failed_free(rec) then
    count(G, rec, "failure")
  end
end

--- refused(G, rec): counts a create the upstream refused for the client's request
-- (counts_refusal) in its account's day.
function M.refused(G, rec)
  count(G, rec, "refusal")
end

function count(G, rec, what)
  local key = failed_key(rec.account, today())
  local n, err
  if G.redis then
    n, err = G.redis:run(COUNT, key, tostring(M.FAILED_KEEP_S))
  else
    n, err = G.ledger_dict:incr(key, 1, 0, M.FAILED_KEEP_S)
  end
  if not n then
    ngx.log(ngx.WARN, "kling gateway: the ", what, " of ", rec.id, " is not counted for ", rec.account, ": ",
      tostring(err))
  end
end

--- restore(G, last): a one-node start's count of each account's failures today, from the
-- journal's final records (last: id -> its last record), which outlive a restart as the count
-- in shared memory does not.
function M.restore(G, last)
  local day, counts = today(), {}
  for _, rec in pairs(last) do
    local ended_day = math.floor((tonumber(rec.updated_at) or 0) / 86400000)
    local refused_day = rec.dropped and math.floor((tonumber(rec.refused_at) or 0) / 86400000)
    if ended_day == day and failed_free(rec) or refused_day == day then
      counts[rec.account] = (counts[rec.account] or 0) + 1
    end
  end
  for account, n in pairs(counts) do
    local ok, err = G.ledger_dict:safe_set(failed_key(account, day), n, M.FAILED_KEEP_S)
    if not ok then
      ngx.log(ngx.WARN, "kling gateway: ", account, "'s failures today are not counted: ", tostring(err))
    end
  end
end

--- failed_today(G, account) -> the count of the account's failures today, read from the store
-- now (a client's balance shows it), and its most (max_failed_daily or the default).
function M.failed_today(G, account)
  local key = failed_key(account.name, today())
  local n
  if G.redis then
    n = G.redis:run(READ, key)
  else
    n = G.ledger_dict:get(key)
  end
  return tonumber(n) or 0, account.max_failed_daily or M.MAX_FAILED_DAILY
end

--- seconds_left() -> the seconds to the end of the UTC day (a refusal's Retry-After).
function M.seconds_left()
  return 86400 - ngx.time() % 86400
end

--- admits_failed(G, account) -> true | nil, its count today, its most: whether the account may
-- create, by its tasks failed at no charge today. A store that cannot say admits (nothing of
-- money hangs on it; the create's own writes then meet the store).
function M.admits_failed(G, account)
  local most = account.max_failed_daily or M.MAX_FAILED_DAILY
  local day, now = today(), ngx.now()
  local seen = G.failed_seen[account.name]
  if not seen or seen.day ~= day or now - seen.at >= M.FAILED_FRESH_S then
    seen = { day = day, at = now, count = (M.failed_today(G, account)) }
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
