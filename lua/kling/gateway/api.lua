-- The gateway's official-API face: creates (metered: priced with the gateway's catalog,
-- reserved against the client's balance BEFORE anything is forwarded, settled at once when
-- the endpoint answers synchronously), task queries and lists (answered from the gateway's
-- own table: free, no upstream call), and the client's balance.
local query_args = require "kling.gateway.args"
local budget = require "kling.money.hold"
local core = require "kling.core"
local errors = require "kling.errors"
local json = require "kling.json"
local callback = require "kling.resty.callback"
local capacity = require "kling.gateway.capacity"
local ids = require "kling.gateway.ids"
local effects = require "kling.lifecycle.effects"
local machine = require "kling.lifecycle.machine"
local runner = require "kling.runner.resty"
local metrics = require "kling.gateway.metrics"
local official = require "kling.gateway.official"
local providers = require "kling.providers"
local follows = require "kling.gateway.follows"
local owners = require "kling.gateway.owners"
local text = require "kling.gateway.text"
local pace = require "kling.gateway.upstream_pace"
local track = require "kling.gateway.track"
local validate = require "kling.validate"
local endpoints = require("kling.providers.kling").endpoints

local M = {}

local NO_ARGS = {} -- the query parameters of a route that takes none

-- The most bytes a create's body may hold (nginx's client_max_body_size refuses a larger one
-- first): kling.gateway.body_limits, the one home of the sizes nginx's confs write.
M.BODY_MAX = require("kling.gateway.body_limits").CREATE_MAX

-- The most JSON values a create's body may hold (every member's value and array item counts).
-- The largest create the official API documents (six dynamic masks of their trajectories, seven
-- elements, shots) holds a few hundred; a body over this is refused before it is decoded, in a
-- scan of its first values: a 20 MB body of a million one-item members held the one worker for
-- seconds (cjson, the duplicate-key sort, the unknown-field check) before it was refused.
M.BODY_VALUES_MAX = 10000

local tables = require "kling.tables"
local new_tab, copy = tables.new, tables.clone

local byte = string.byte
local SLASH = byte("/")

-- "/v1/videos/text2video" -> "videos/text2video"; "/v1/videos/text2video/ID" -> endpoint, ID
-- (trailing slashes ignored). Every request's: by bytes, where the pattern "^/v1/(.-)/*$" tried
-- its tail at each byte of the path.
function M.route(uri)
  if uri:sub(1, 4) ~= "/v1/" then
    return nil
  end
  local last = #uri
  while last > 4 and byte(uri, last) == SLASH do
    last = last - 1
  end
  if last == 4 then
    return nil
  end
  local rest = uri:sub(5, last)
  if endpoints[rest] then
    return rest
  end
  local ep, id = rest:match("^(.+)/([^/]+)$")
  if ep and endpoints[ep] then
    return ep, id
  end
  return nil
end

-- "field: message" of an error, the field as a message may echo it (validate.brief).
local function field_message(err)
  return (err.field and (validate.brief(err.field) .. ": ") or "") .. tostring(err.message or err)
end

-- An upstream error as the client's answer: the provider's own code where it is the client's
-- business (its request, its content), the gateway's 5xx where it is the gateway's.
function M.upstream_error(err)
  local kind, code = err.kind, tonumber(err.code)
  local msg = err.message or tostring(err)
  if kind == "validation" then
    return { status = 400, code = code or 1201, message = field_message(err) }
  elseif kind == "content_policy" then
    return { status = 400, code = code or 1301, message = msg }
  elseif kind == "rate_limited" then
    return { status = 429, code = code or 1302, message = msg }
  elseif kind == "not_found" then
    return { status = 404, code = code or 1203, message = msg }
  elseif kind == "auth" or kind == "quota" then
    return { status = 503, code = 5001, message = "the gateway's upstream account cannot serve this now" }
  elseif kind == "timeout" then
    return { status = 504, code = 5002, message = msg }
  end
  return { status = 502, code = 5000, message = msg }
end

-- The request as the catalog prices it: req (the gateway's own copy of the client's body,
-- not used after this) with the catalog's provider, the endpoint and the method.
local function pricing(G, req, endpoint)
  req.provider, req.endpoint, req.method = G.cfg.price_provider, endpoint, "POST"
  return req
end


-- The answer of a synchronous endpoint: the upstream's own data, with the gateway's id and
-- the gateway's charge.
local function sync_data(rec, t)
  local data = type(t.raw) == "table" and copy(t.raw) or official.view(rec)
  if data.task_id ~= nil then
    data.task_id = rec.id
  end
  data.final_unit_deduction = rec.charge
  return data
end

-- A create refused, counted by reason (kling.gateway.metrics lists them); also for one refused
-- before it is read (its caller's account unreadable: reason store).
local function refuse(reason, e)
  metrics.inc("kling_gateway_refusals_total", 'reason="' .. reason .. '"')
  return official.fail(e)
end
M.refuse = refuse

-- A refusal for the gateway's own trouble (its store or journal): the client is told what it
-- means for its request; the cause (a Redis address, a path, an errno) goes to the operator's
-- error log, not to every client.
local function unavailable(reason, message, cause)
  ngx.log(ngx.ERR, "kling gateway: ", message, ": ", tostring(cause))
  return refuse(reason, { status = 503, code = 5001, message = message })
end

-- admit(G, account, endpoint) -> create | nil (refused: answered). Everything a create does
-- before anything is forwarded: the body read as a canonical request and validated, priced,
-- the task recorded and its estimate held, journaled on one line (a gateway that cannot
-- write its journal forwards nothing: fail closed). create = {rec, fwd (the request to send
-- upstream), client, def, findable}.
function M.admit(G, account, endpoint)
  if account.suspended then -- its operator's stop (kling.gateway.config): nothing read, held or sent
    return refuse("suspended", { status = 429, code = 1100, message = "account exception: the gateway's operator"
      .. " suspended account " .. account.name .. "'s creates (its tasks can still be queried)" })
  end
  local up = G.ledger_dict:get(pace.KEY) -- the upstream's pace and slots (kling.gateway.upstream_pace)
  if up then
    local reason, e = pace.refusal(G, up)
    if reason then
      return refuse(reason, e)
    end
  elseif G.slots_seen then
    G.slots_seen = nil
  end
  -- A create's fields are its body's: a query (?callback_url=...) would be dropped unseen.
  local name = query_args.unknown(NO_ARGS)
  if name then
    return refuse("validation", { status = 400, code = 1201, message = name
      .. ": a create takes no query parameters (its fields go in its JSON body)" })
  end
  local raw, rerr = callback.raw_body(M.BODY_MAX)
  if not raw then
    return refuse("validation", { status = 413, code = 1200, message = rerr })
  end
  -- Strict: a field given twice is refused by name, before anything is priced or held (cjson
  -- would keep the last one: {"mode":"std","mode":"pro"} checked on one, sent with the other).
  local body, jerr, dup, rule = json.decode_strict(raw, nil, M.BODY_VALUES_MAX)
  if rule then
    return refuse("validation", { status = 400, code = 1200, message = "the body must hold at most "
      .. M.BODY_VALUES_MAX .. " JSON values: it holds " .. jerr })
  elseif dup then
    return refuse("validation", { status = 400, code = 1201, message = jerr })
  elseif body == nil then -- not JSON, or nested deeper than the decoder goes: say which
    return refuse("validation", { status = 400, code = 1200, message = "the body must be a JSON object: "
      .. tostring(jerr) })
  elseif not raw:find("^%s*{") then -- [] decodes to the table {} decodes to
    return refuse("validation", { status = 400, code = 1200, message = "the body must be a JSON object" })
  end
  local req, cb, ext = official.to_canonical(body, G.cfg.allow_private_callbacks, endpoint,
    G.cfg.allow_private_media)
  if not req then -- cb: why; ext: the code, where the refusal is not a field's (1201)
    return refuse("validation", { status = 400, code = ext or 1201, message = cb })
  end
  local client = G.client()
  local def = client.provider.endpoints[endpoint]
  local own = client.provider.own -- none for the official upstream
  local alien = own and official.upstream_only(req, own[endpoint], endpoint)
  if alien then
    return refuse("validation", { status = 400, code = 1201, message = alien .. ": is not a field of the official"
      .. " API (it is the upstream's own: this gateway takes the official API's fields, which it prices)" })
  end
  -- Priced by its source (a video-extend: the model and mode its video was made with), never
  -- by what the client declares of it.
  local fok, ffield, fwhy = follows.apply(G, account.name, def, req)
  if not fok and ffield then
    return refuse("validation", { status = 400, code = 1201, message = official.as_sent(body, ffield, endpoint) .. ": "
      .. fwhy })
  elseif not fok then
    return unavailable("store", "the gateway cannot read its records now (nothing was forwarded)", fwhy)
  end
  local fwd = copy(req)
  fwd.endpoint = endpoint
  local ok, verr = client:check(fwd)
  if not ok then
    verr.field = verr.field and official.as_sent(body, verr.field, endpoint)
    return refuse("validation", { status = 400, code = 1201, message = field_message(verr) })
  end
  -- Every client shares one upstream account: an id another client was shown is not this one's.
  -- Asked after the request is valid: its known fields bound how many ids it names (an unknown
  -- "v_id" array of millions was walked, a dict lookup each, before being refused).
  local field, foreign, ferr, form = owners.foreign(G, account.name, req)
  if form then
    return refuse("validation", { status = 400, code = 1201, message = validate.brief(field) .. ": " .. form
      .. " (got \"" .. validate.brief(foreign) .. "\")" })
  elseif field then
    return refuse("validation", { status = 400, code = 1201, message = validate.brief(field) .. ": "
      .. validate.brief(foreign) .. " is not one of this account's" })
  elseif ferr then
    return unavailable("store", "the gateway cannot read its records now (nothing was forwarded)", ferr)
  end
  local preq = pricing(G, req, endpoint)
  -- The hold: the estimate (this worker's cache of billing.estimate), or where the provider
  -- bills media by its real length, not the declared duration, the endpoint's longest
  -- (issue 12: a 2 s avatar of a 240 s audio held 1.6, cost 192).
  local quote, perr, at_ceiling = budget.worst_case(G.prices.price, def, preq)
  if not quote then
    local why = at_ceiling and "this gateway has no price for the longest media this request may bring: "
      or perr.kind == "unpriced" and "this gateway has no price for the request: " or ""
    return refuse("validation", { status = 400, code = 1201, message = why .. field_message(perr) })
  end
  local now = core.wall_ms()
  local rec = {
    id = ids.task(), account = account.name, endpoint = endpoint, status = "queued", state = "creating",
    external_task_id = ext, callback_url = cb, created_at = now, updated_at = now,
    request = official.facts(preq), quote = core.money_format(quote.micros),
    -- how long this node may wait for the create's answer (its timeouts): whichever node polls
    -- the task, it is not looked up before then (kling.gateway.track)
    in_flight_ms = G.creating_grace_ms,
  }
  -- Encoded once (its id last: kling.gateway.text): the same text goes into the task table
  -- and, with the reservation, into the journal (one line per create); the part its publish
  -- does not change is kept for that publish.
  local stable, eerr = text.stable(rec)
  local s = stable and text.record(rec, stable)
  if not s then
    return refuse("validation", { status = 400, code = 1200, message = "the request cannot be recorded: "
      .. tostring(eerr) })
  end
  local free_ok, failed, most = capacity.admits_failed(G, account)
  if not free_ok then
    return refuse("failed_daily", { status = 429, code = 1102, retry_after = capacity.seconds_left(),
      message = "this account's tasks failed upstream at no charge " .. failed .. " times today, its most"
        .. " (max_failed_daily " .. most .. "): its creates are refused until 00:00 UTC" })
  end
  local room, dict = capacity.admits(G)
  if not room then
    return unavailable("capacity", "the gateway cannot take more tasks now (nothing was forwarded)",
      capacity.full(G, dict))
  end
  -- Recorded and held (journaled on one line, or one Redis round trip) before anything leaves
  -- the gateway: after a crash from here on, the task is looked up by its id.
  local held, herr, stage = track.create_held(G, rec, quote.micros, s, account.max_open)
  if not held and stage == "task" then
    if herr == "external_task_id exists" then
      return refuse("validation", { status = 400, code = 1201, message = "external_task_id " .. ext
        .. " already exists" })
    end
    local no_room = not G.redis and tostring(herr):find("no memory", 1, true)
    return unavailable(G.redis and "store" or "capacity", "the gateway cannot take more tasks now (nothing was"
      .. " forwarded)", no_room and capacity.full(G, "tasks") or herr)
  elseif not held then
    if herr.kind == "budget" then
      return refuse("balance", { status = 429, code = 1101, message = "balance insufficient: "
        .. tostring(herr.message) })
    elseif herr.kind == "rate_limited" then -- its max_open: refused as the upstream refuses its own
      return refuse("open", { status = 429, code = 1303, message = "parallel task over the account's limit: "
        .. tostring(herr.message) .. " (max_open " .. tostring(account.max_open) .. ")" })
    end
    local ledger_full = not G.redis and herr.field == "store" and tostring(herr.message):find("no memory", 1, true)
    -- with Redis there is no journal: its refusal (down, full, another unit) is the store's
    return unavailable(G.redis and "store" or ledger_full and "capacity" or "journal", "the gateway cannot"
      .. " record this create now (nothing was forwarded)", ledger_full and capacity.full(G, "ledger") or herr.message)
  end
  local provider = client.provider
  local caps = provider.capabilities
  -- Our id upstream lets a lost answer (or a crash before the created record is written) be
  -- found again, and callbacks name our task; without it the created record is journaled.
  local findable = providers.takes_external_id(provider, endpoint)
  if findable then
    fwd.external_task_id = rec.id
  end
  if G.cfg.callback_url and G.cfg.callbacks and def and not def.sync and caps.callbacks
    and (not provider.takes or provider.takes(endpoint, "callback_url")) then
    fwd.callback_url = G.cfg.callback_url
  end
  metrics.inc("kling_gateway_creates_forwarded_total")
  return { rec = rec, fwd = fwd, client = client, def = def, findable = findable, stable = stable }
end

-- machine(G, create, now [, call]) -> the create's lifecycle machine (kling.lifecycle.machine
-- forwarded): what the upstream's answer makes of the create is decided there. call: the
-- request api.create sends (and may send again: a retry, a renewed token); none where the
-- location's proxy_pass sends it, once.
function M.machine(G, c, now, call)
  local profiles = G.create_profiles
  if not profiles then
    local ctx = c.client.ctx
    local o = { provider = c.client.provider, requeue_refused = false, max_attempts = ctx.max_attempts,
      base_ms = ctx.base_ms, cap_ms = ctx.cap_ms, create_budget_ms = ctx.call_budget_ms }
    profiles = { sent = machine.profile(o) }
    o.max_attempts = 1
    profiles.proxied = machine.profile(o)
    G.create_profiles = profiles -- the same for every create of this worker
  end
  local rec = c.rec
  -- Made at their full size (a create's answer fills both): a table grown key by key is
  -- rehashed on the way, which a worker would pay on every create.
  local task, state = new_tab(0, 8), new_tab(0, 8) -- what a created task's fields and state take
  task.external_task_id, task.endpoint, task.status = rec.id, rec.endpoint, "queued"
  return machine.forwarded({ task = task, record = state, key = rec.id, now = now, call = call },
    call and profiles.sent or profiles.proxied)
end

-- unsendable(m, why) -> acts: the create's body cannot be encoded: nothing is sent, and the
-- machine ends the create (its hold given back).
function M.unsendable(m, why)
  return m:refuse(core.now_ms(), errors.validation("request", "cannot be encoded as JSON: " .. tostring(why)))
end

-- outcome(G, create, acts) -> how, answer: what the create's machine made of the upstream's
-- answer (acts: the actions it returned), as the record's next step and the client's answer
-- {status, code, message, data_json}. how: "sync" (created and ended at once: its settle or
-- release is create.ended), "created", "lookup" (its fate is unknown: the tracker looks it up
-- by its external id, never resends), "refused" (nothing was made: released). Changes only
-- the record (and renews the upstream token when the machine says so); record() stores it.
function M.outcome(G, c, acts)
  local rec = c.rec
  local t, ended, uncertain, err
  for _, a in ipairs(acts) do
    local ty = a.type
    if ty == "created" then
      t = a.task
    elseif ty == "settle" or ty == "release" then
      ended = a
    elseif ty == "journal" and a.what == "uncertain" then
      uncertain = true
    elseif ty == "done" then
      err = a.err
    elseif ty == "renew_token" then -- expired in flight: the next create signs a new one
      effects.renew_token(c.client.ctx, core.now_ms())
    end
  end
  if t and ended then
    -- Synchronous (or ended at once): the answer is the result, charged at once.
    rec.status, rec.message, rec.upstream_id = t.status, t.message, t.id
    rec.result = official.result(t)
    rec.usage = budget.usage(t)
    c.task, c.ended = t, ended
    return "sync"
  end
  if t then
    rec.upstream_id, rec.status, rec.state = t.id, t.status, "active"
    rec.updated_at = core.wall_ms()
    return "created", { status = 200, code = 0, message = "SUCCEED", data_json = official.created_json(rec) }
  end
  if uncertain then
    rec.state = "lookup"
    return "lookup", { status = 200, code = 0, message = "SUCCEED", data_json = official.created_json(rec) }
  end
  metrics.inc("kling_gateway_refusals_total", 'reason="upstream"')
  local e = M.upstream_error(err)
  if e.code == 1302 and err.kind == "rate_limited" then
    e.retry_after = pace.pause(G, c.retry_after) -- c.retry_after: the upstream's header (kling.gateway.forward)
  end
  c.refused = err -- record's drop counts the client's own (kling.gateway.capacity counts_refusal)
  return "refused", { status = e.status, code = e.code, message = e.message, retry_after = e.retry_after }
end

-- record(G, create, how): stores what outcome() made of the create (needs the store:
-- cosockets with Redis). A sync task ends here (the machine's settle or release), and its
-- answer (charged) is returned.
function M.record(G, c, how)
  local rec = c.rec
  if how ~= "sync" then
    pace.slots(G, c, how)
  end
  if how == "sync" then
    G.tasks:publish(rec, false, false)
    track.finish(G, rec, c.ended)
    if rec.status ~= "succeeded" then
      return { status = 400, code = 1201, message = rec.message or "failed" }
    end
    return { status = 200, code = 0, message = "SUCCEED", data_json = json.encode(sync_data(rec, c.task)) }
  elseif how == "created" then
    G.tasks:publish(rec, true, not c.findable, c.stable)
  elseif how == "lookup" then
    G.tasks:save(rec, true)
    G.tasks:publish(rec, true, false)
  else
    track.drop(G, rec, c.refused)
  end
end

-- POST /v1/<endpoint>, sent over the client's context (nginx's proxy by subrequest when the
-- conf has the proxy location, else cosockets) by the OpenResty runner: the create's machine
-- decides what its answers make of it (a retry of a create that never left, a renewed
-- token), the runner only sends and sleeps.
function M.create(G, account, endpoint)
  local c = M.admit(G, account, endpoint)
  if not c then
    return
  end
  local client, driver = c.client, c.client.driver
  local call = client.provider.build(c.fwd, endpoint)
  local body, eerr = text.body(call.body, c.rec.id)
  local m = M.machine(G, c, driver:now_ms(), { method = call.method, path = call.path, body = body })
  local acts
  if not body then
    acts = M.unsendable(m, eerr)
  else
    local seen = {}
    local function keep(a)
      seen[#seen + 1] = a
    end
    local hooks = { ctx = client.ctx, created = keep, settle = keep, release = keep, journal = keep }
    local sent_at = ngx.now()
    local how, at = runner.run(m, { m:last_request() }, hooks)
    while how == "waiting" do -- a create that never left, sent again after the machine's delay
      driver:sleep_ms(math.max(0, at - driver:now_ms()))
      how, at = runner.run(m, m:timer(driver:now_ms()), hooks)
    end
    if how == "done" then
      seen[#seen + 1] = { type = "done", err = m.err }
    end
    acts = seen
    ngx.update_time()
    metrics.observe("create", ngx.now() - sent_at)
  end
  local how, answer = M.outcome(G, c, acts)
  answer = M.record(G, c, how) or answer
  if answer.retry_after then
    ngx.header["Retry-After"] = string.format("%d", answer.retry_after) -- luacheck: ignore 122
  end
  return official.reply_json(answer.status, answer.code, answer.message, answer.data_json)
end

local function mine(rec, account, endpoint)
  return rec and rec.account == account.name and rec.endpoint == endpoint
end

M.VIEWS_MAX = 4096 -- task views kept per worker for queries

-- A store (Redis) that cannot be read now: 503, as for a create, never "not found" (a client
-- told that its task does not exist may give up on a task it is paying for).
local function unreadable(message)
  ngx.log(ngx.ERR, "kling gateway: cannot read its records: ", tostring(message or "the store did not answer"))
  return official.fail { status = 503, code = 5001, message = "the gateway cannot read its records now" }
end

-- GET /v1/<endpoint>/<id>: the stored record's view, encoded once per version of the record
-- (a worker keeps the last view of each record it was asked for, keyed by the record's text:
-- a changed record is a different text, so a view is never stale).
function M.query(G, account, endpoint, id)
  local _, aerr = query_args.unknown(NO_ARGS)
  if aerr then
    return official.fail { status = 400, code = 1201, message = aerr }
  end
  local s, serr = G.tasks:text(id)
  if s == false then
    return unreadable(serr)
  end
  local views = G.views
  local v = s and views and views[id]
  if not (v and v.s == s) then
    local rec = s and json.decode(s)
    if not mine(rec, account, endpoint) then
      return official.fail { status = 404, code = 1203, message = "task " .. validate.brief(id) .. " not found" }
    end
    v = { s = s, account = rec.account, endpoint = rec.endpoint, json = json.encode(official.view(rec)) }
    if views then
      if G.views_n >= M.VIEWS_MAX then
        views, G.views_n = {}, 0
        G.views = views
      end
      views[id], G.views_n = v, G.views_n + 1
    end
  elseif v.account ~= account.name or v.endpoint ~= endpoint then
    return official.fail { status = 404, code = 1203, message = "task " .. validate.brief(id) .. " not found" }
  end
  return official.reply_json(200, 0, "SUCCEED", v.json)
end

-- GET /v1/<endpoint>?external_task_id= | ?pageNum=&pageSize=
local LIST_ARGS = { "external_task_id", "pageNum", "pageSize" }

function M.list(G, account, endpoint)
  -- a misspelt parameter (pagenum) would silently give page 1: named, as every field is
  local _, aerr = query_args.unknown(LIST_ARGS)
  if aerr then
    return official.fail { status = 400, code = 1201, message = aerr }
  end
  local args = ngx.req.get_uri_args()
  if args.external_task_id ~= nil then
    if type(args.external_task_id) ~= "string" or args.external_task_id == "" then
      return official.fail { status = 400, code = 1201, message = "external_task_id: must be given once, not empty" }
    end
    -- one task's lookup: a page asked beside it would be ignored
    local paged = args.pageNum ~= nil and "pageNum" or args.pageSize ~= nil and "pageSize"
    if paged then
      return official.fail { status = 400, code = 1201, message = paged .. ": is not read with external_task_id"
        .. " (its lookup answers one task, not a page)" }
    end
    local rec
    local id, serr = G.tasks:by_external(account.name, args.external_task_id)
    if id then
      rec, serr = G.tasks:get(id)
    end
    if id == false or rec == false then
      return unreadable(serr)
    end
    if not mine(rec, account, endpoint) then
      return official.fail { status = 404, code = 1203, message = "no task with external_task_id "
        .. validate.brief(args.external_task_id) }
    end
    return official.ok(official.view(rec))
  end
  local page, perr = query_args.whole(args, "pageNum", 1, 1000)
  if not page then
    return official.fail { status = 400, code = 1201, message = perr }
  end
  local size, zerr = query_args.whole(args, "pageSize", 30, 500)
  if not size then
    return official.fail { status = 400, code = 1201, message = zerr }
  end
  local out = json.array {}
  local recs, serr = G.tasks:list(account.name, endpoint, page, size)
  if not recs then
    return unreadable(serr)
  end
  for i, rec in ipairs(recs) do
    out[i] = official.view(rec)
  end
  return official.ok(out)
end

-- GET /gateway/balance: the caller's own account, and the secret its forwarded callbacks are
-- signed with (when the gateway signs them).
function M.balance(G, account)
  local _, aerr = query_args.unknown(NO_ARGS)
  if aerr then
    return official.fail { status = 400, code = 1201, message = aerr }
  end
  local a, why = G.meter:account(account.name)
  if not a then -- Redis away, or a store refused (reset, another unit): no balance, rather than a wrong one
    return unreadable("the balance of " .. account.name .. " cannot be read" .. (why and (": " .. why) or ""))
  end
  local failed, most = capacity.failed_today(G, account)
  return official.ok { account = a.name, currency = a.currency, credit = a.limit, spent = a.spent,
    reserved = a.reserved, balance = a.balance, open = a.open, max_open = account.max_open,
    failed_today = failed, max_failed_daily = most, webhook_secret = track.client_secret(G, account),
    suspended = account.suspended or nil } -- its creates refused by the operator (429, 1100)
end

return M
