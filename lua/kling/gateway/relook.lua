-- Kept holds looked at again upstream. A task the gateway ended with its hold kept (its
-- deadline passed unanswered, the upstream lost it) was ended only by a late callback or the
-- operator: with callbacks off, or theirs given up, the upstream's end was never heard. The
-- poll leader walks the kept holds (kling.gateway.holds' list) and looks each task up again a
-- few times, spread over the window in which both its record (retention_days) and the
-- upstream (a task's 30 days after its end) still have it; an end found settles or releases
-- the hold through a late callback's path (kling.gateway.track relook). The store ends a hold
-- once: an operator's end before a look stands (the hold is no longer listed), one racing it
-- is refused.
local track = require "kling.gateway.track"

local M = {}

M.WALK_S = 2 -- a walk of one page of the kept holds, this often, on the poll leader
M.PAGE = 100
M.LOOKS_A_WALK = 4 -- at a slow pace: a page's due looks over several walks
-- When each look is due, as a share of the window after the task's end: 5 looks (30 days:
-- after about 3 h, 23 h, 4 days, 15 days and 26 days).
M.AT = { 1 / 256, 1 / 32, 1 / 8, 1 / 2, 7 / 8 }
M.UPSTREAM_KEEPS_S = 30 * 86400
-- The looks taken of a task, in the node's shared memory (a reload keeps them; a restart or
-- another node's lead takes at most one look more each).
M.KEY = "relook:"

-- window_s(G) -> the seconds after a task's end within which it may be looked up.
function M.window_s(G)
  return math.min(G.cfg.retention_days * 86400, M.UPSTREAM_KEEPS_S)
end

-- due(ended_ms, window_s, wall_ms) -> how many looks are due by now (0 to #AT).
function M.due(ended_ms, window_s, wall_ms)
  local n = 0
  for i, share in ipairs(M.AT) do
    if wall_ms >= ended_ms + share * window_s * 1000 then
      n = i
    end
  end
  return n
end

-- look(G, id, wall_ms) -> true when a look was taken | false | nil, message (the store
-- cannot be read now): one kept hold, looked at if a look is due.
local function look(G, id, wall_ms)
  local rec, final = G.tasks:get(id)
  if rec == false then
    return nil, final
  elseif not (rec and final and rec.charge == nil) then
    return false -- its record expired (the operator's: kling.gateway.holds), or its end is being moved
  end
  local window = M.window_s(G)
  local due = M.due(tonumber(rec.updated_at) or wall_ms, window, wall_ms)
  local d, key = G.tasks.dict, M.KEY .. id
  if due <= (d:get(key) or 0) then
    return false
  end
  -- Counted before it is sent: a look cut short (a reload) is not taken again and again.
  local ok, err = d:set(key, due, window)
  if not ok then
    return nil, "its looks cannot be counted: " .. tostring(err)
  end
  local _, eerr = track.relook(G, rec)
  if eerr then
    ngx.log(ngx.WARN, "kling gateway: kept hold of ", id, " looked up again, not ended: ", tostring(eerr))
  end
  return true
end

-- walk(G): one page of the kept holds, from where the last walk stopped; a page with more
-- looks due than LOOKS_A_WALK is walked again next time.
function M.walk(G)
  local next_cursor, ids = G.tasks:kept_page(G.relook_cursor or "0", M.PAGE)
  if not next_cursor then
    ngx.log(ngx.WARN, "kling gateway: the kept holds cannot be looked at again now: ", tostring(ids))
    return
  end
  local looks, wall = 0, ngx.now() * 1000
  for _, id in ipairs(ids) do
    if looks >= M.LOOKS_A_WALK then
      return -- the cursor stays: the rest of the page next walk
    end
    local took, err = look(G, id, wall)
    if took == nil then
      ngx.log(ngx.WARN, "kling gateway: kept hold of ", id, " not looked at again now: ", tostring(err))
      return
    end
    looks = looks + (took and 1 or 0)
  end
  G.relook_cursor = next_cursor
end

-- start(G): the walk's timer (init_worker); it walks only while this worker leads the poll.
function M.start(G)
  local busy = false
  local ok, err = ngx.timer.every(M.WALK_S, function(premature)
    if premature or busy or not (G.poller and G.poller.holder) then
      return
    end
    busy = true
    local wok, werr = pcall(M.walk, G)
    busy = false
    if not wok then
      ngx.log(ngx.ERR, "kling gateway: kept holds' looks: ", tostring(werr))
    end
  end)
  if not ok then
    ngx.log(ngx.ERR, "kling gateway: kept holds are not looked at again upstream: ", tostring(err))
  end
end

return M
