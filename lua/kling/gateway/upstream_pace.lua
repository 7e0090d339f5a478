--- The upstream's pace and slots, as its refusals taught them (a 1302's Retry-After, a 1303's
-- parallel slots): what stops a node's creates before anything is read, held, journaled or
-- forwarded. One home for that policy: kling.gateway.api asks it on each create (one
-- ledger-dict read) and tells it each create's outcome; the node's first worker copies the
-- slots the other nodes learned (Redis store).
-- @module kling.gateway.upstream_pace
local core = require "kling.core"

local M = {}

-- The upstream's pace: a create it refused with 1302 (its rate limit, for the gateway's one
-- account) stops this node's creates for its Retry-After (a number of seconds; 1 s when it
-- gives none or a date; at most PAUSE_MAX_S), each refused as the upstream refuses it (429,
-- 1302, with a Retry-After) before anything is read, held, journaled or forwarded. Forwarded
-- regardless, a client's flood of creates got 1302s that cost it nothing (a release, not
-- counted in max_failed_daily: the gateway's own account's refusal) while each one was an
-- upstream call and about 1 KB of journal (5 KB with a long prompt) until the next start: a
-- disk filled at a few MB/s, and every client's creates then refused.
--
-- The upstream's slots: a create it refused with 1303 (its parallel tasks are full) was the
-- same flood, but a pause is wrong there (a slot frees as soon as a task ends). The node learns
-- the upstream's slot count instead, as the tasks it had open then (its open holds but the
-- refused one's: on the Redis store every node's), and refuses creates (429, 1303) before
-- anything is read, held, journaled or forwarded while its open tasks are at or above it. The
-- count is forgotten after SLOTS_FORGET_S (other users of the same upstream key hold slots
-- too, and end their tasks), or when a create succeeds with more open (the upstream has more
-- slots than learned). With a Redis store the count is every node's: a node that learns or
-- forgets it says so in Redis (<prefix>upstream:slots, expiring with it), and each node's first
-- worker copies it into its dict every SLOTS_SYNC_S (sync_slots): off the creates' path.
--
-- Both live in one ledger-dict key that every create reads already (nothing more is read when
-- nothing was learned): the pause alone as a number (the wall ms until which creates wait),
-- with a learned count as "<pause ms or 0>:<slots>:<wall ms until it is forgotten>". Workers
-- change it by a read and a write: two changing it at once may lose one's change (a pause or
-- a count learned again at the next refusal), never a create's money.
M.KEY = "upstream:paused" -- in the ledger dict
M.PAUSE_MAX_S = 60
M.SLOTS_FORGET_S = 10
M.SLOTS_SYNC_S = 1

-- The count in Redis (ARGV[1]: the store's prefix): set with its life (ms), forgotten, read
-- with the ms it has left.
local SLOTS_SET = "redis.call('SET', ARGV[1] .. 'upstream:slots', ARGV[2], 'PX', ARGV[3]) return 1"
local SLOTS_DEL = "redis.call('DEL', ARGV[1] .. 'upstream:slots') return 1"
local SLOTS_GET = "local k = ARGV[1] .. 'upstream:slots' return {redis.call('GET', k) or '', redis.call('PTTL', k)}"

-- upstream(G, now) -> pause until (wall ms) | nil, slots | nil, slots until (wall ms): the key's
-- parts still in force.
local function upstream(G, now, v)
  if v == nil then
    v = G.ledger_dict:get(M.KEY)
  end
  local pause, slots, until_ms
  if type(v) == "number" then
    pause = v
  elseif type(v) == "string" then
    local p, n, u = v:match("^(%d+):(%d+):(%d+)$")
    pause, slots, until_ms = tonumber(p), tonumber(n), tonumber(u)
    if slots and until_ms <= now then
      slots = nil
    end
  end
  if pause and pause <= now then
    pause = nil
  end
  return pause, slots, until_ms
end

-- Writes the key's parts (nil: none), kept while the later of them is in force.
local function set_upstream(G, now, pause, slots, until_ms)
  local last = math.max(pause or 0, slots and until_ms or 0)
  if last <= now then
    G.ledger_dict:delete(M.KEY)
    return
  end
  local v = pause
  if slots then
    v = string.format("%d:%d:%d", pause or 0, slots, until_ms)
  end
  -- never evicting the ledger's keys to make room (no room: nothing is learned, as before)
  local ok, err = G.ledger_dict:safe_set(M.KEY, v, (last - now) / 1000)
  if not ok then
    ngx.log(ngx.WARN, "kling gateway: the upstream's pace or slots are not kept: ", tostring(err))
  end
end

function M.pause(G, retry_after)
  local s = tonumber(retry_after)
  if not s or s ~= s then
    s = 1
  end
  if s <= 0 then
    return
  end
  s = math.min(s, M.PAUSE_MAX_S)
  local now = core.wall_ms()
  local _, slots, until_ms = upstream(G, now)
  set_upstream(G, now, now + s * 1000, slots, until_ms)
  return math.ceil(s)
end

-- slots(G, create, how): what a create's answer taught of the upstream's slots (needs the
-- store: cosockets with Redis; called before the create's hold is given back). A 1303 learns
-- them (unless none of the gateway's own tasks are open); a create made while more were open
-- than learned forgets them (G.slots_seen: the count this worker's last create read, so that a
-- create reads nothing more when none is learned).
function M.slots(G, c, how)
  local err = c.refused
  if how == "refused" and type(err) == "table" and err.kind == "rate_limited" and tonumber(err.code) == 1303 then
    local learned = G.meter.store:open_holds() - 1 -- the refused create's hold is open still
    if learned < 1 then
      -- none of this gateway's: the slots are other users' of the key, and no end of ours
      -- would tell when one frees (a count of 0 refused every create for SLOTS_FORGET_S)
      return
    end
    local now = core.wall_ms()
    local pause = upstream(G, now)
    if G.redis then -- every node's (Redis first: this node's sync_slots reads it there)
      local ok, rerr = G.redis:run(SLOTS_SET, string.format("%d", learned),
        string.format("%d", M.SLOTS_FORGET_S * 1000))
      if not ok then
        ngx.log(ngx.WARN, "kling gateway: the upstream's slots are learned on this node only: ", tostring(rerr))
      end
    end
    set_upstream(G, now, pause, learned, now + M.SLOTS_FORGET_S * 1000)
    G.slots_seen = learned
    ngx.log(ngx.NOTICE, "kling gateway: the upstream refused a create for its parallel slots (1303) with ",
      learned, " tasks open here: creates are refused while as many are open, for ", M.SLOTS_FORGET_S, " s")
  elseif how == "created" and G.slots_seen then
    local now = core.wall_ms()
    local pause, slots = upstream(G, now)
    G.slots_seen = slots
    local open = slots and G.meter.store:open_holds() -- this create's hold included
    if open and open > slots then
      if G.redis then
        local ok, rerr = G.redis:run(SLOTS_DEL)
        if not ok then
          ngx.log(ngx.WARN, "kling gateway: the upstream's slots are forgotten on this node only: ", tostring(rerr))
        end
      end
      set_upstream(G, now, pause)
      G.slots_seen = nil
      ngx.log(ngx.NOTICE, "kling gateway: the upstream took a create with ", open, " tasks open here: its parallel"
        .. " slots (", slots, ", learned from a 1303) are forgotten")
    end
  end
end

-- sync_slots(G): with a Redis store, the upstream's slots as the nodes learned them (M.slots),
-- copied into this node's dict (its pause kept); a count Redis no longer has is forgotten here
-- too. From a timer of the node's first worker, every SLOTS_SYNC_S; Redis away: left as it is.
function M.sync_slots(G)
  local res = G.redis:run(SLOTS_GET)
  if type(res) ~= "table" then
    return
  end
  local now = core.wall_ms()
  local pause, slots, until_ms = upstream(G, now)
  local n, left = tonumber(res[1]), tonumber(res[2])
  if n and left and left > 0 then
    local at = now + left
    if n ~= slots or math.abs(at - (until_ms or 0)) > 1000 then
      set_upstream(G, now, pause, n, at)
    end
  elseif slots then
    set_upstream(G, now, pause)
  end
end

-- refusal(G [, v]) -> reason, refusal | nil: a create stopped by the upstream key's
-- value v (read when not given: the pause, or the slots learned: M.pause, M.slots).
function M.refusal(G, v)
  local now = core.wall_ms()
  local paused, slots = upstream(G, now, v)
  G.slots_seen = slots
  if paused then
    return "upstream_paused", { status = 429, code = 1302,
      retry_after = math.max(1, math.ceil((paused - now) / 1000)),
      message = "API request too fast: the upstream asked this gateway to wait before its next create (nothing"
        .. " was forwarded); try again after Retry-After" }
  end
  local open = slots and G.meter.store:open_holds()
  if open and open >= slots then
    return "upstream_slots", { status = 429, code = 1303, retry_after = 1,
      message = "parallel task over resource pack limit: the upstream refused a create when this gateway had "
        .. slots .. " tasks open, and " .. open .. " are open now (nothing was forwarded); try again after"
        .. " Retry-After" }
  end
  return nil
end

return M
