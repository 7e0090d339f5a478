-- Following the gateway's tasks after their create: the OpenResty runner of the lifecycle
-- machine over the gateway's task table. The poller's poll, an upstream callback and a
-- synchronous answer each become an event of a machine made afresh from the task's record
-- (kling.lifecycle.machine track: nothing but the record outlives an event, so a restart, a
-- new poll leader or a callback in another worker or node picks the task up as it stands);
-- kling.runner.resty carries the machine's actions out, and this file says what each does to
-- the record: news is saved, the end (the machine's settle or release, or its deadline) ends
-- the record once and moves the money through kling.lifecycle.effects, then forwards the end
-- to the client's own callback_url. Nothing here decides a retry, a lookup, a task's end or
-- its money: the machine does.
local core = require "kling.core"
local effects = require "kling.lifecycle.effects"
local json = require "kling.json"
local machine = require "kling.lifecycle.machine"
local usage = require "kling.money.usage"
local runner = require "kling.runner.resty"
local deliveries = require "kling.gateway.deliveries"
local follows = require "kling.gateway.follows"
local official = require "kling.gateway.official"
local owners = require "kling.gateway.owners"
local metrics = require "kling.gateway.metrics"
local capacity = require "kling.gateway.capacity"

local M = {}

local TERMINAL = machine.TERMINAL
M.TERMINAL = TERMINAL

local function now_ms()
  return core.wall_ms()
end

-- The secret an account's forwarded callbacks are signed with (kling.gateway.deliveries).
M.client_secret = deliveries.client_secret

-- The gateway's money: its create handler reserves (kling.gateway.api), the machine's end
-- settles or releases; every movement goes through kling.lifecycle.effects over G.meter
-- (the gateway's Ledger: kling.money.ledger over kling.money.stores.shared or .redis, its
-- accounts the gateway's clients).

-- reserve(G, rec, micros, s [, open_max]) -> entry | nil, err: the estimate held before
-- anything is forwarded; s (the record as JSON) is journaled with it, one line for both.
-- open_max: the most tasks its account may have open (its holds) at once.
function M.reserve(G, rec, micros, s, open_max)
  return effects.meter_reserve(G.meter, rec.id, micros, { task_id = rec.id, account = rec.account, record = s,
    open_max = open_max })
end

-- create_held(G, rec, micros, s [, open_max]) -> entry | nil, err, stage ("task": the record
-- was refused, err a message; "hold": the reservation was, err an error): the task recorded
-- and its estimate held, journaled on one line (or, with Redis, in one round trip), before
-- anything is forwarded.
function M.create_held(G, rec, micros, s, open_max)
  if G.tasks.held_writes then -- Redis: one script writes the record and holds
    local call, read = effects.meter_reserve_call(G.meter, rec.id, micros, { task_id = rec.id, account = rec.account,
      open_max = open_max }, G.tasks:held_writes(rec, s))
    return G.tasks:create_held(rec, call, read)
  end
  local ok, err = G.tasks:create(rec, s)
  if not ok then
    return nil, err, "task"
  end
  local e, herr = M.reserve(G, rec, micros, s, open_max)
  if not e then
    G.tasks:drop(rec, false)
    return nil, herr, "hold"
  end
  return e
end

-- drop(G, rec [, err]): a create that was refused upstream: its record goes, and its hold with
-- it (nothing was made: it costs nothing). The other half of create_held. err: the upstream's
-- refusal; one the client's request caused counts toward its account's day
-- (kling.gateway.capacity counts_refusal).
function M.drop(G, rec, err)
  effects.meter_account(G.meter, { type = "release", key = rec.id }, nil, { task_id = rec.id, forgotten = true })
  local counted = capacity.counts_refusal(err)
  G.tasks:drop(rec, nil, counted and now_ms() or nil)
  if counted then
    capacity.refused(G, rec)
  end
end

-- kept(G, ids): tasks that ended with their hold kept, listed for the operator (GET
-- /gateway/admin/holds) until an end of theirs (kling.gateway.holds).
local function kept(G, ids)
  local ok, err = G.tasks:keep(ids)
  if not ok then
    ngx.log(ngx.WARN, "kling gateway: kept holds of ", table.concat(ids, ", "), " not listed now: ", tostring(err))
  end
end

-- owed(G, id, rec) -> entry | nil, err | nil (nothing owed): the movement an ended record
-- whose hold is still open owes, as its final record says (the machine decided it before the
-- record was ended): its charge settled, or a release for a charge of "0"; none (its fate
-- upstream unknown) leaves the hold.
local agree
local function owed(G, id, rec)
  local info = { task_id = rec.upstream_id }
  if rec.status == "succeeded" then
    local m = core.money_parse(tostring(rec.charge))
    if m then
      local e, err = effects.meter_account(G.meter, { type = "settle", key = id }, m, info)
      agree(G, rec, e)
      return e, err
    end
  elseif rec.charge == "0" then
    return effects.meter_account(G.meter, { type = "release", key = id }, nil, info)
  end
end

-- restore(G, entries): after a restart (the journal's entries), the money the records owe.
-- A task ended in the journal whose money movement never made it there
-- (nginx died in between) gets it now, as its final record says (the machine decided it
-- before the record was ended: a charge, or "0" for a release, or none when the hold
-- stays); a create refused after its hold (its record dropped) is released. A hold with no
-- record in the journal stays: a create's reservation is journaled on its record's line, so
-- such a hold is one a compaction kept alone, its task's record gone past retention_days
-- while the hold was kept (the upstream may have billed it: the operator's to end,
-- kling.gateway.holds). Released here, a second restart gave it back unpaid.
function M.restore(G, entries)
  local last = {}
  for _, e in ipairs(entries) do
    if (e.op == "task" or e.op == "reserve") and type(e.record) == "table" and e.record.id then
      local prev = last[e.record.id]
      if not (prev and prev.final) then
        last[e.record.id] = e.record
      end
    end
  end
  local keep = {}
  for id, rec in pairs(last) do
    if rec.final and G.meter:hold(id) and not owed(G, id, rec) and rec.charge == nil then
      keep[#keep + 1] = id
    end
  end
  for key in pairs(G.meter.store:holds()) do
    if not last[key] then
      keep[#keep + 1] = key
    elseif last[key].dropped then
      effects.meter_account(G.meter, { type = "release", key = key }, nil, { task_id = key })
    end
  end
  table.sort(keep) -- listed in a stable order
  kept(G, keep)
  capacity.restore(G, last) -- each account's failures today (max_failed_daily)
end

-- sweep(G, cursor) -> the next cursor ("0": a pass is over) | nil, message: one page of the
-- Redis store's holds, each whose task has a final record given what that record owes. A
-- task's end and its money are two scripts (FINISH, then END); an END lost to a kill -9, a
-- reload or a Redis outage longer than move's retries left the hold open for good, the task
-- ended (attacker review, stop 29). A hold ended meanwhile by its own move is refused a second
-- end by the store (one end per hold).
M.SWEEP_PAGE = 500
function M.sweep(G, cursor)
  local next_cursor, keys = G.meter.store:hold_page(cursor, M.SWEEP_PAGE)
  if not next_cursor then
    return nil, keys
  end
  local texts, err = G.tasks:finals(keys)
  if not texts then
    return nil, err
  end
  local keep = {}
  for i, key in ipairs(keys) do
    local rec = texts[i] and json.decode(texts[i])
    if type(rec) == "table" and rec.final then
      local e, merr = owed(G, key, rec)
      if e then
        ngx.log(ngx.NOTICE, "kling gateway: ", key, " ended without its money moved: moved now (",
          tostring(e.op), " ", tostring(e.amount), ")")
      elseif merr then
        ngx.log(ngx.INFO, "kling gateway: owed movement of ", key, ": ", tostring(merr))
      elseif rec.charge == nil then
        keep[#keep + 1] = key -- listed again: a listing lost with its node between the end and it
      end
    end
  end
  kept(G, keep)
  return next_cursor
end

-- agree(G, rec, e): the store's settle decides the charge (capped at the hold in the step that
-- ends it); an ended record that says another (it had no `quote`: written before records kept
-- their hold) is amended to the store's, and says why.
function agree(G, rec, e)
  if not (e and e.op == "settle") or core.money_parse(tostring(rec.charge)) == e.micros then
    return
  end
  local charged, why = effects.meter_charge(e.priced, e.micros)
  rec.charge, rec.billing_error, rec.updated_at = core.money_format(charged), why or rec.billing_error, now_ms()
  local ok, err = G.tasks:amend(rec)
  if not ok then
    ngx.log(ngx.ERR, "kling gateway: record of ", rec.id, " not amended to its charge ", rec.charge, ": ",
      tostring(err))
  end
end

-- The money movement of an ended record (act: the machine's settle, at its price (nil: the
-- hold), or release). A store that cannot be reached now (Redis restarting) is retried from
-- a timer until it answers; the end itself is already recorded, so the movement is owed,
-- never lost.
M.MOVE_RETRY_S = { 0.5, 1, 2, 4, 8, 15, 30, 60, 60, 60, 60, 60 }
local function move(G, rec, act, price, attempt)
  local e, merr = effects.meter_account(G.meter, act, price, { task_id = rec.upstream_id })
  agree(G, rec, e)
  local wait = merr and merr.field == "store" and M.MOVE_RETRY_S[attempt or 1]
  if wait then
    ngx.timer.at(wait, function(premature)
      if not premature then
        move(G, rec, act, price, (attempt or 1) + 1)
      end
    end)
  end
  return e, merr
end

-- Ends a record once: act is the machine's settle or release (priced by effects.meter_price;
-- the store caps the charge at the hold as it settles, and the record shows that charge,
-- made by the same rule from the hold recorded with it: effects.meter_charge), or nil when
-- the hold stays (the task's fate upstream is unknown). Returns true when this call ended
-- it, false when it had ended already, nil, err when the store refused (the record stays
-- live: polled again).
local function close(G, rec, act)
  local price
  if act then
    local why
    price, why = effects.meter_price(act, rec.request, rec.usage)
    local charged, berr = effects.meter_charge(price, core.money_parse(tostring(rec.quote)), why)
    rec.billing_error = berr
    rec.charge = core.money_format(charged)
  end
  rec.request = follows.source_form(rec.request) -- priced: what a follower needs of it stays
  rec.state = "done"
  rec.updated_at = now_ms()
  -- The ids it shows are this account's alone, recorded before the end shows them: a client
  -- that named one as soon as it saw it was refused it as an id no account was shown.
  local owned, oerr = owners.record(G, rec)
  if not owned then
    ngx.log(ngx.ERR, "kling gateway: cannot record whose ids ", rec.id, " has: ", tostring(oerr))
  end
  local won, err = G.tasks:finish(rec)
  if not won then
    if err then
      ngx.log(ngx.ERR, "kling gateway: cannot end ", rec.id, ": ", err)
      return nil, err
    end
    return false
  end
  if act then
    local _, merr = move(G, rec, act, price)
    if merr then
      ngx.log(ngx.ERR, "kling gateway: meter for ", rec.id, ": ", tostring(merr))
    end
    capacity.failed(G, rec) -- the provider's failure at no charge counts toward its account's day
  else
    kept(G, { rec.id })
  end
  if rec.callback_url then
    deliveries.push(G, rec.account, rec.id)
  end
  return true
end

-- The task a machine follows, from its record: the upstream's id, and the gateway's own id,
-- which is the task's external id upstream.
local function task_of(rec)
  return { id = rec.upstream_id, external_task_id = rec.id, endpoint = rec.endpoint, status = rec.status,
    request = rec.request }
end

--- window(G, rec, wall_ms) -> deadline, in_flight_until (wall-clock ms; the second nil unless rec
-- is still creating): when the task's tracking ends, and before when its create must not be
-- looked up, its handler maybe still waiting for the answer.
function M.window(G, rec, wall)
  local created = tonumber(rec.created_at) or wall
  local deadline = created + math.floor(G.cfg.poll.deadline * 1000)
  -- The creating node's wait, not this one's: a node with shorter timeouts (another config, a
  -- reload) looked up a create still in flight, found nothing and released it, and the upstream
  -- made and billed it. A record written before it was kept: this node's.
  local in_flight = math.max(tonumber(rec.in_flight_ms) or 0, G.creating_grace_ms)
  if rec.state == "creating" or rec.state == "lookup" then
    -- A create whose answer never came is looked up only once it cannot be in flight: a
    -- deadline shorter than that ended it unlooked-up (failed, its hold kept, though nothing
    -- may exist upstream). Its deadline leaves its lookups their time.
    deadline = math.max(deadline, created + in_flight + G.lookups_ms)
  end
  return deadline, rec.state == "creating" and created + in_flight or nil
end

-- A machine for rec as it stands; sched and h: the poller's scheduler and the task's handle
-- in it (nil outside the poller: a callback, a synchronous answer). again: a kept hold's task
-- looked at once more (relook): no deadline, its earlier looks' counts left behind.
local function machine_for(G, rec, sched, h, again)
  local p, client = G.cfg.poll, G.client()
  local now, wall = core.now_ms(), core.wall_ms()
  local ctx = client.ctx
  local deadline, in_flight_until = M.window(G, rec, wall)
  if again then
    deadline, in_flight_until = nil, nil
  end
  return machine.track { provider = client.provider, task = task_of(rec), key = rec.id, lookups = p.lookups,
    lookups_done = not again and rec.lookups or nil, misses = not again and rec.misses or nil,
    looked_last = not again and rec.last_look or nil, sched = sched, h = h,
    deadline_ms = deadline and now + deadline - wall,
    in_flight_until = in_flight_until and now + in_flight_until - wall,
    callback = G.cfg.callback_url and G.cfg.callbacks and true or nil,
    callback_silence_ms = math.floor(p.silence * 1000), max_attempts = ctx.max_attempts, base_ms = ctx.base_ms,
    cap_ms = ctx.cap_ms }
end

-- Copies what the machine learnt of the task into the record.
local function update(rec, t)
  rec.status = t.status
  rec.message = t.message
  rec.gone = t.gone -- ended by the machine, the provider having no such task (kling.gateway.capacity)
  rec.progress = t.progress
  rec.upstream_id = rec.upstream_id or t.id
  rec.result = official.result(t) or rec.result
  rec.updated_at = now_ms()
end

-- Runs one event of m over the record. Returns how the runner left the machine ("done",
-- "waiting", "idle"), the wake-up it asked, and whether the record is ended now (true),
-- stays live (false) or could not be ended (nil: the store refused; polled again).
local function run(G, rec, m, acts)
  local save, journal, tried, closed = false, false, false, nil
  local hooks = { ctx = G.client().ctx }
  function hooks.news(act)
    update(rec, act.task)
    save = true -- not journaled: a write per poll; a restart shows it again at the next (README)
  end
  function hooks.created(act)
    if rec.state == "lookup" then -- found by its external id: its create's handler, gone, never listed it
      local ok, err = G.tasks:enlist(rec)
      if not ok then
        ngx.log(ngx.WARN, "kling gateway: task ", rec.id, " not listed now: ", tostring(err))
      end
    end
    rec.state = "active"
    update(rec, act.task)
    save, journal = true, true -- a restart must not look it up again
  end
  local function finish(act)
    update(rec, act.task)
    rec.usage = rec.usage or usage.of_task(act.task)
    tried, closed = true, close(G, rec, act)
  end
  hooks.settle, hooks.release = finish, finish
  function hooks.answered(act, ms)
    metrics.observe(act.purpose, ms / 1000)
    if act.purpose == "lookup" and rec.state == "creating" then
      rec.state = "lookup" -- its handler is gone (a crash, a restart): found upstream or not at all
      save, journal = true, true
    end
  end
  local how, t, err = runner.run(m, acts, hooks)
  if how == "done" and not tried and err and err.kind == "timeout" and m.deadline_ms
    and core.now_ms() >= m.deadline_ms then
    -- The machine's deadline passed and the task runs on upstream: its record ends here, the
    -- reservation still held (the machine moved no money).
    rec.status, rec.message = "failed", "no end seen within the gateway's deadline; the reservation stays held"
      .. ((m.misses or 0) > 0 and (" (the provider answered not found to its last " .. m.misses .. " polls, though it"
        .. " made the task)") or "")
    tried, closed = true, close(G, rec, nil)
  elseif how == "done" and not tried then
    ngx.log(ngx.WARN, "kling gateway: task ", rec.id, " (", tostring(t and t.id), "): ", tostring(err),
      "; watched again")
  end
  if not tried then
    if m.lookups ~= (rec.lookups or 0) or m.misses ~= (rec.misses or 0) then
      rec.lookups, rec.misses = m.lookups > 0 and m.lookups or nil, m.misses > 0 and m.misses or nil
      save = true
    end
    if m.final_poll and not rec.last_look then -- its last look is taken once (the next wake ends it)
      rec.last_look, save = true, true
    end
    if save then
      G.tasks:save(rec, journal)
    end
    return how, m.wake_at, false
  end
  return how, m.wake_at, closed ~= nil or nil
end

-- poll(G, id, sched, h) -> outcome for kling.resty.poller: the task's handle is due.
function M.poll(G, id, sched, h)
  local rec, final = G.tasks:get(id)
  if rec == false then
    -- The store cannot be read now (Redis away): the task is still open there, polled again
    -- once it may answer; dropped here, it was polled by nobody until the next restart.
    ngx.log(ngx.WARN, "kling gateway: task ", id, " not polled: its record cannot be read (", tostring(final),
      "); again in 5 s")
    return { delay_ms = 5000 }
  elseif not rec or final then
    return { terminal = true }
  end
  local m = machine_for(G, rec, sched, h)
  local how, wake_at, ended = run(G, rec, m, m:timer(core.now_ms()))
  if ended == nil then
    return { freed = how == "done", delay_ms = 5000 } -- the store refused the end: again later
  elseif how == "done" then
    -- The machine ended and freed its handle; a record still live (the machine stopped on
    -- an error, the task runs on upstream) is watched again after the longest interval.
    return { terminal = ended, freed = true }
  end
  return { wake_at = wake_at }
end

-- on_callback(G, task) -> true | nil, message, status: a verified upstream callback.
function M.on_callback(G, t)
  local id, ierr = G.tasks:by_upstream(t.id)
  if id == false then
    return nil, "the gateway cannot read its records now: " .. tostring(ierr), 503
  end
  local rec, final
  if id then
    rec, final = G.tasks:get(id)
  elseif t.external_task_id then
    rec, final = G.tasks:get(t.external_task_id) -- our own external id upstream is the gateway's task id
    if rec and rec.upstream_id ~= nil and tostring(rec.upstream_id) ~= tostring(t.id) then
      -- Our id echoed for an upstream task that is not the record's (an upstream that mixed
      -- two tasks' ids): taken, the task ended with that one's result and was charged for it.
      ngx.log(ngx.WARN, "kling gateway: a callback about upstream task ", tostring(t.id), " names task ", rec.id,
        ", which is upstream task ", tostring(rec.upstream_id), ": not taken")
      return nil, "no task " .. tostring(t.id) .. " here", 404
    end
  end
  if rec == false then
    -- Not "no such task": the upstream would stop sending what the gateway cannot read now
    -- (a 503 is retried on its schedule; the poller sees the end meanwhile).
    return nil, "the gateway cannot read its records now: " .. tostring(final), 503
  elseif not rec then
    return M.expired_end(G, t)
  end
  if final then
    if rec.charge == nil then -- ended by the gateway with its hold kept: the upstream's end decides it
      return M.late_end(G, rec, t)
    elseif rec.gone then
      M.gone_found(G, rec, t)
    end
    return true
  end
  local m = machine_for(G, rec)
  local how = run(G, rec, m, m:callback(core.now_ms(), t))
  if how ~= "done" then
    -- Polled again only after a silence, and never past the task's deadline (the machine's
    -- clamp): on the wall clock, for a poller on another node.
    local now = core.now_ms()
    G.tasks:news(rec.id, core.wall_ms() + m:clamp(now + m.silence_ms) - now)
  end
  return true
end

-- gone_found(G, rec, t): a verified callback for a task the gateway ended as never made (its
-- create's answer lost, its lookups by external id not found: released, nothing charged):
-- the upstream made it after all, and may bill the gateway for it. Its client is not charged
-- after the fact (its balance may be spent since; the money stays as it ended): it is the
-- operator's to know. Counted once a task (kling_gateway_gone_found_total), logged as an
-- error naming both ids, and what the upstream says of it kept on the record as `found`
-- ({upstream_id, status, result}), which the client's view does not show. Once: the first of
-- its callbacks claims the task in the task table (an add in the node's shared memory; with a
-- Redis store a SET NX there, so across nodes), since two landing at once (two workers, two
-- nodes, or a Redis store's reads) both read the record before either wrote `found`. A claim
-- that cannot be recorded (a full dict, Redis away or its answer lost) counts anyway (twice at
-- worst, never not at all: a lost answer may have claimed it).
M.GONE_FOUND = "gone_found:"
function M.gone_found(G, rec, t)
  local seen = type(rec.found) == "table"
  if not seen then
    if G.tasks:claim(M.GONE_FOUND .. rec.id) == false then
      return -- the callback that claimed it counts it and writes what it found
    end
    metrics.inc("kling_gateway_gone_found_total")
    ngx.log(ngx.ERR, "kling gateway: task ", rec.id, " ended as never made (released, charged to no one), but the"
      .. " upstream has it as ", tostring(t.id), " (", tostring(t.status), "): it may bill it")
  elseif rec.found.status == t.status or TERMINAL[rec.found.status] then -- told already (or older news)
    return
  end
  rec.found = { upstream_id = t.id, status = t.status, result = official.result(t) }
  local ok, err = G.tasks:amend(rec)
  if not ok then
    ngx.log(ngx.WARN, "kling gateway: record of ", rec.id, " not amended with what the upstream has: ", tostring(err))
  end
end

-- end_kept(G, id, rec, how, micros, by) -> entry | nil, err: the one end of a hold an end kept:
-- an operator's settle (at micros) or release (by "operator": kling.gateway.holds says which
-- may be ended), or the upstream's own end heard after it (by "upstream": late_end, micros its
-- price). The store ends a hold once: of two racing (an operator and a callback, two
-- callbacks, on any node), one moves the money and records it; the other is refused. rec (nil:
-- its record expired) is amended to show the client the charge, and its callback_url told.
function M.end_kept(G, id, rec, how, micros, by)
  local e, err = effects.meter_account(G.meter, { type = how, key = id }, micros,
    { task_id = rec and rec.upstream_id or nil, by = by })
  if not e then
    return nil, err
  end
  local unlisted, uerr = G.tasks:unkeep(id)
  if not unlisted then -- a later page drops it: its hold is gone
    ngx.log(ngx.WARN, "kling gateway: hold of ", id, " ended but still listed: ", tostring(uerr))
  end
  if rec then
    local charged = core.money_format(how == "settle" and e.micros or 0)
    rec.charge, rec.updated_at = charged, now_ms()
    if by == "operator" then
      rec.message = (tostring(rec.message or "failed"):gsub("; the reservation stays held$", "")) .. "; "
        .. (how == "settle" and ("charged " .. charged) or "nothing charged") .. " by the gateway's operator"
    end
    local owned, oerr = owners.record(G, rec) -- what the upstream's late end shows is this account's
    if not owned then
      ngx.log(ngx.ERR, "kling gateway: cannot record whose ids ", id, " has: ", tostring(oerr))
    end
    local ok, aerr = G.tasks:amend(rec)
    if not ok then
      ngx.log(ngx.WARN, "kling gateway: record of ", id, " not amended: ", tostring(aerr))
    elseif rec.callback_url then
      deliveries.push(G, rec.account, id)
    end
  end
  return e
end

-- kept_end(G, rec, m, acts) -> the end's entry | nil, err | nil (no end): one event of m (a
-- machine for a kept hold's record, its gateway-written status cleared) run, an end of the
-- upstream's ending the hold from the actual result (end_kept, as the operator's would), the
-- record showing the upstream's result. A task the provider says it does not have (the
-- machine's gone) is no end of the upstream's: the hold stays the operator's.
-- expired: rec is a stand-in for a record past retention_days (expired_end).
local function kept_end(G, rec, m, acts, expired)
  local ended, err
  local function finish(act)
    if act.task.gone then
      return
    elseif expired then -- its request went with its record: unpriced, the hold is the charge
      ended, err = M.end_kept(G, rec.id, nil, act.type, nil, "upstream")
      return
    end
    update(rec, act.task)
    rec.usage = rec.usage or usage.of_task(act.task)
    local price, why = effects.meter_price(act, rec.request, rec.usage)
    local _, berr = effects.meter_charge(price, core.money_parse(tostring(rec.quote)), why)
    rec.billing_error = berr
    ended, err = M.end_kept(G, rec.id, rec, act.type, price, "upstream")
  end
  runner.run(m, acts, { ctx = G.client().ctx, settle = finish, release = finish })
  if ended then
    ngx.log(ngx.NOTICE, "kling gateway: ", rec.id, " (", tostring(rec.upstream_id), ") ended upstream after the"
      .. " gateway's deadline kept its hold: ", tostring(ended.op), " ", tostring(ended.micros))
  elseif err and not (err.field == "store" or err.kind == "server") then
    -- ended meanwhile (the operator, another callback): nothing more to move
    ngx.log(ngx.INFO, "kling gateway: hold of ", rec.id, " not ended by the upstream's end: ", tostring(err))
  end
  return ended, err
end

-- heard(id, err) -> a callback's answer once kept_end heard it: a store that cannot be written
-- now is a 503, and the upstream sends it again.
local function heard(id, err)
  if err and (err.field == "store" or err.kind == "server") then
    ngx.log(ngx.ERR, "kling gateway: hold of ", id, ": ", tostring(err))
    return nil, "the ledger cannot be written now: " .. tostring(err.message), 503
  end
  return true
end

-- late_end(G, rec, t) -> true | nil, message, status: a verified callback for a task the
-- gateway ended with its hold kept (its deadline passed unanswered): the gateway's "failed"
-- was its own, not the upstream's, so the callback is heard by a machine as for a live task
-- (kept_end).
function M.late_end(G, rec, t)
  rec.status = nil -- the gateway's deadline wrote "failed"; the upstream's word is what counts
  rec.upstream_id = rec.upstream_id or t.id
  local m = machine_for(G, rec)
  return heard(rec.id, select(2, kept_end(G, rec, m, m:callback(core.now_ms(), t))))
end

-- expired_end(G, t) -> true | nil, message, status: a verified callback for a task whose
-- record has passed retention_days while its hold was kept (the hold outlives it:
-- kling.gateway.holds). The hold, under the gateway's task id (the task's external id
-- upstream), is all that is left, and enough: the machine hears the end as for any kept hold;
-- a failure is released, a success settled at the hold (what the gateway charges a delivery
-- its catalog cannot price: the request that priced it went with the record). No hold: 404.
-- The client's task is not shown it (no record), nor told (its callback_url went too).
function M.expired_end(G, t)
  local id = t.external_task_id
  local account, _, herr
  if id then
    account, _, herr = G.meter:hold(id)
  end
  if herr then
    return nil, "the gateway cannot read its holds now: " .. tostring(herr), 503
  elseif not account then
    return nil, "no task " .. tostring(t.id) .. " here", 404
  end
  local stand_in = { id = id, upstream_id = t.id }
  local m = machine_for(G, stand_in)
  return heard(id, select(2, kept_end(G, stand_in, m, m:callback(core.now_ms(), t), true)))
end

-- relook(G, rec) -> the end's entry | nil, err | nil: a kept hold's task looked at once more
-- upstream (kling.gateway.relook says when): polled by its upstream id, else looked up by its
-- external id; an end found ends the hold as a late callback's does (kept_end). A task still
-- running, not found or not answered stays kept (a task that can be asked neither way is not
-- asked). Its scheduler is its own: the poller's holds live tasks only.
function M.relook(G, rec)
  rec.status = nil
  local sched, now = core.sched {}, core.now_ms()
  local m = machine_for(G, rec, sched, sched:add(now), true)
  return kept_end(G, rec, m, m:timer(now))
end

-- finish(G, rec, act): a task that ended in its create's answer (a synchronous endpoint; rec
-- carries its status, usage and result): the record ends with what the create's machine
-- decided (act: its settle or release, kling.gateway.api outcome).
function M.finish(G, rec, act)
  return close(G, rec, act)
end

return M
