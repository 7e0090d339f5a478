-- Journal compaction (one node): at start, once the journal has been replayed into shared
-- memory, what a restart needs is written as a new journal and renamed over the old one.
--
-- Only nginx's master compacts, in init, on a start (never at a reload, whose old workers
-- still append): it holds the journal's lock (kling.resty.journal.lock), and no worker exists
-- yet, so no process has the old file open and no line can be appended while it is read.
-- The new file is written beside the journal (<journal>.compacting), fsync'd, read back whole,
-- renamed over the journal (atomic: a crash leaves the old journal or the new one, both whole)
-- and the directory fsync'd. Anything that fails leaves the old journal as it was (fail
-- closed: the gateway starts from it, and says why in the log and the admin summary).
--
-- What is kept is what the replay builds shared memory from: created accounts, each
-- account's spend and top-ups (one line each, also for one with neither while a task of its
-- is kept), the ids of top-ups, open reservations, every task record in
-- the table (live ones whole; ended ones within retention_days of their end, in the form
-- their queries are answered from, with their external and upstream ids and their owners), the end of each
-- kept task's reservation (settled or released: never moved twice), the movement counter, the
-- owners of ids owned for good (custom voices). Dropped: the lines of each movement, superseded
-- task records, refused creates, and ended
-- tasks past their retention (no longer queryable, compacted or not).
local accounts = require "kling.gateway.accounts"
local core = require "kling.core"
local follows = require "kling.gateway.follows"
local json = require "kling.json"
local journal = require "kling.resty.journal"
local output_path = require "kling.output_path"
local owners = require "kling.gateway.owners"
local shared_store = require "kling.money.stores.shared"
local texts = require "kling.gateway.text"

local M = {}

M.VERSION = journal.COMPACTED -- its first line's version
M.STATUS_KEY = "journal:compaction" -- the last compaction's outcome (JSON), for the admin summary

local function jline(t)
  return json.encode(t)
end

-- What an ended task keeps: what its query and list answer (kling.gateway.official.view: id,
-- status, message, external id, result, times, charge), whose it is and where it is listed,
-- its upstream id (a late callback finds it ended), how its billing went, and its request in
-- the form an ended record keeps (kling.gateway.follows source_form: what an extend of its
-- video is priced by; prompts and inline images are cut to a note of their length), and
-- whether the machine ended it for want of the task upstream (gone: kling.gateway.capacity
-- counts the provider's own failures only) and, for such a task a callback then showed the upstream
-- has, what it said (found: kling.gateway.track gone_found). The machine's working fields are dropped.
M.ENDED_KEEP = { "id", "account", "endpoint", "status", "state", "message", "result", "charge", "created_at",
  "updated_at", "upstream_id", "external_task_id", "list_n", "final", "billing_error", "callback_url", "request",
  "gone", "found" }

-- Its text ends with its id (kling.gateway.text: lines alike but in their middle made the
-- LuaJIT in nginx's master take 14 s to read 18,000 of them back).
local function ended_form(rec)
  local out = {}
  for _, k in ipairs(M.ENDED_KEEP) do
    out[k] = rec[k]
  end
  out.request = follows.source_form(out.request) -- ended before this form was kept: cut now
  return texts.object(out, "id")
end

-- The tasks of the table (text, list position), in their lists' order.
local function task_texts(tasks_dict)
  local recs = {}
  for _, key in ipairs(tasks_dict:get_keys(0)) do
    local kind, id = key:match("^([tf]):(.+)$")
    -- A record both live and ended keeps its end (kling.resty.tasks:finish).
    if kind and not (kind == "t" and tasks_dict:get("f:" .. id)) then
      local s = tasks_dict:get(key)
      if s then
        local rec = json.decode(s)
        if type(rec) == "table" then
          recs[#recs + 1] = { id = id, account = rec.account, s = kind == "f" and ended_form(rec) or s,
            n = tonumber(rec.list_n) or 0,
            at = tonumber(rec.created_at) or 0 }
        end
      end
    end
  end
  table.sort(recs, function(a, b)
    if a.n ~= b.n then
      return a.n < b.n
    elseif a.at ~= b.at then
      return a.at < b.at
    end
    return a.id < b.id
  end)
  return recs
end

-- lines(opts) -> the compacted journal's lines. opts: ledger (the ledger dict), tasks (the
-- task dict), currency and price_provider (its unit, named in its first line), entries (the
-- journal replayed: its created accounts are kept as they were last written), now_ms.
function M.lines(opts)
  local d, td, cur = opts.ledger, opts.tasks, opts.currency
  local seq = d:get("seq") or 0
  local out = { jline { op = "journal", version = M.VERSION, seq = seq, compacted_ms = opts.now_ms,
    currency = cur, price_provider = opts.price_provider } }
  for _, a in ipairs(accounts.latest(opts.entries)) do
    out[#out + 1] = jline { op = "account", created = a }
  end
  local f = core.money_format
  local holds, ended, names, topup_ids = {}, {}, {}, {}
  for _, key in ipairs(d:get_keys(0)) do
    local name = key:match("^a:(.+):spent$")
    if name then
      names[#names + 1] = name
    elseif shared_store.topup_of(key) then
      topup_ids[#topup_ids + 1] = key
    elseif key:sub(1, 2) == "h:" then
      holds[#holds + 1] = key:sub(3)
    elseif key:sub(1, 2) == "d:" then
      ended[#ended + 1] = key:sub(3)
    end
  end
  table.sort(names)
  table.sort(holds)
  table.sort(ended)
  table.sort(topup_ids)
  -- An account's balance line is kept while it has spend, top-ups or a task record: a name the
  -- store keeps nothing of is free to a new account (kling.money.stores.shared kept), which
  -- would list and read an account's tasks that failed at no charge, and count its failures.
  local recs, with_tasks = task_texts(td), {}
  for _, r in ipairs(recs) do
    if type(r.account) == "string" then
      with_tasks[r.account] = true
    end
  end
  for _, name in ipairs(names) do
    local spent, topup = d:get("a:" .. name .. ":spent") or 0, d:get("a:" .. name .. ":topup") or 0
    if spent ~= 0 or topup ~= 0 or with_tasks[name] then
      out[#out + 1] = jline { op = "balance", account = name, currency = cur, spent = f(spent), topup = f(topup) }
    end
  end
  -- a top-up's id with when it expires: a retry of it after a restart adds nothing either, for
  -- what is left of its window (none: kept for good, by a store given no window)
  for _, key in ipairs(topup_ids) do
    local account, id = shared_store.topup_of(key)
    local m, ttl = d:get(key), d:ttl(key)
    if account and type(m) == "number" then -- a pending one (a string) is no top-up of the journal's
      out[#out + 1] = jline { op = "topup_id", account = account, id = id, amount = f(m),
        expires_ms = ttl and ttl > 0 and opts.now_ms + math.ceil(ttl * 1000) or nil }
    end
  end
  for _, key in ipairs(holds) do
    local h = d:get("h:" .. key)
    local account, m = (h or ""):match("^(.*)|(%d+)$")
    if account then
      out[#out + 1] = assert(shared_store.journal_line { seq = seq, time_ms = opts.now_ms, op = "reserve",
        amount = f(tonumber(m)), currency = cur, account = account, task_id = key, task_key = key })
    end
  end
  -- An end is kept while its task is: a late settle of a task no longer known has nothing to end.
  for _, key in ipairs(ended) do
    local how = d:get("d:" .. key)
    if (how == "settled" or how == "released") and (td:get("f:" .. key) or td:get("t:" .. key)) then
      out[#out + 1] = jline { op = "ended", task_key = key, how = how }
    end
  end
  for _, r in ipairs(recs) do
    out[#out + 1] = '{"op":"task","record":' .. r.s .. "}"
  end
  -- The ids' owners (kling.gateway.owners) kept for good (custom voices), and those whose
  -- tasks' records are dropped (past retention) while the upstream keeps their ids (until
  -- expires_ms); a kept record gives its ids' owners again at the next start.
  local written = {}
  for _, r in ipairs(recs) do
    written[r.id] = true
  end
  for _, o in ipairs(owners.kept(td, opts.now_ms)) do
    if not o[3] or not written[o[4]] then
      out[#out + 1] = jline { op = "owner", id = o[1], owner = o[2], expires_ms = o[3] }
    end
  end
  -- Today's refusals the upstream made of a create for its own sake, as their drops were
  -- written (no task is left of them): a start counts them toward their account's day again
  -- (kling.gateway.capacity restore), where the compaction of the start before had forgotten
  -- them, and a second start gave the account its day's max_failed_daily afresh.
  local day = math.floor(opts.now_ms / 86400000)
  for _, e in ipairs(opts.entries or {}) do
    local rec = e.op == "task" and type(e.record) == "table" and e.record
    if rec and rec.dropped and type(rec.refused_at) == "number" and math.floor(rec.refused_at / 86400000) == day
      and type(rec.id) == "string" and type(rec.account) == "string" then
      out[#out + 1] = jline { op = "task", record = { id = rec.id, account = rec.account, dropped = true,
        refused_at = rec.refused_at } }
    end
  end
  return out
end

local function fail(tmp, f, why)
  if f then
    f:close()
  end
  os.remove(tmp)
  return nil, why
end

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- write(path, lines [, user [, sync]]) -> bytes | nil, message [, placed]: the compacted journal renamed
-- over path (placed: it is, but its directory could not be fsync'd, which a synced journal refuses).
-- user: the workers' user (a root master): the new file is given the old one's owner and
-- checked writable by that user before it replaces anything.
function M.write(path, lines, user, sync)
  local tmp = path .. ".compacting"
  os.remove(tmp) -- a crash's leftover (nobody else has it: the journal's lock is ours)
  local f, err = output_path.create(tmp)
  if not f then
    return nil, "cannot create " .. tmp .. ": " .. tostring(err)
  end
  f:setvbuf("full", 1048576)
  local bytes = 0
  for _, line in ipairs(lines) do
    local ok, werr = f:write(line, "\n")
    if not ok then
      return fail(tmp, f, "cannot write " .. tmp .. ": " .. tostring(werr))
    end
    bytes = bytes + #line + 1
  end
  local ok, cerr = f:close()
  if not ok then
    return fail(tmp, nil, "cannot write " .. tmp .. ": " .. tostring(cerr))
  end
  ok, cerr = core.fsync_path(tmp)
  if not ok then
    return fail(tmp, nil, cerr)
  end
  -- Read back whole before it replaces anything.
  local back, skipped = journal.read(tmp)
  if not back then
    return fail(tmp, nil, skipped)
  end
  if #back ~= #lines or skipped ~= 0 or back[1].version ~= M.VERSION then
    return fail(tmp, nil, ("%s reads back %d lines (%d unreadable), not the %d written"):format(tmp, #back, skipped,
      #lines))
  end
  if user then
    -- nginx's master (root) made it; its workers append as `user`, as they did to the old one.
    -- -h: the directory is the workers' too, and one of them could put a link where the file
    -- was; chown by name would then give root's target (any file) to them. A link is never
    -- followed here, and the check below (a regular file) stops the compaction.
    local p = io.popen("PATH=/usr/sbin:/usr/bin:/sbin:/bin chown -h --reference=" .. q(path) .. " " .. q(tmp)
      .. " 2>&1 && echo CHOWNED")
    local out = p and p:read("*a") or "cannot run chown"
    if p then
      p:close()
    end
    if not out:find("CHOWNED", 1, true) then
      return fail(tmp, nil, "cannot give " .. tmp .. " the journal's owner: " .. out:gsub("%s+$", ""))
    end
  end
  -- Readable by its owner only (it holds account keys), and appendable by the workers.
  local w, werr = journal.writable(tmp, user)
  if not w then
    return fail(tmp, nil, werr)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    return fail(tmp, nil, "cannot rename " .. tmp .. " over " .. path .. ": " .. tostring(rerr))
  end
  -- The rename is done: from here the new journal is the truth whatever happens. Unless its
  -- directory reaches the disk, a power loss could bring the old name back, without what the
  -- workers append from now on: with a synced journal the start is refused (fail closed).
  local dok, derr = core.fsync_path(path, true)
  if not dok then
    if sync then
      return nil, "the compacted journal " .. path .. " is in place, but its directory cannot be fsync'd ("
        .. tostring(derr) .. "): a power loss could bring the old journal back without what is written from "
        .. "now on, so the gateway does not start", true
    end
    ngx.log(ngx.WARN, "kling gateway: the compacted journal ", path, " is in place, its directory not fsync'd: ", derr)
  end
  return bytes
end

local function size(path)
  local fh = io.open(path, "rb")
  if not fh then
    return 0
  end
  local n = fh:seek("end")
  fh:close()
  return n or 0
end

-- run(G, entries, opts) -> status table (also kept in the ledger dict under STATUS_KEY): at
-- start, after the replay. opts: user (the workers' user), read_lines (lines the replay read),
-- replay_ms (the replay, reading included), read_ms (reading the file). Compacts when the new
-- journal would have fewer lines than the old one.
function M.run(G, entries, opts)
  local path, t0 = G.cfg.journal, core.wall_ms()
  os.remove(path .. ".compacting") -- a crash's leftover (nobody else has it: the journal's lock is ours)
  local before = size(path)
  local ok, lines = pcall(M.lines, { ledger = G.ledger_dict, tasks = ngx.shared.kling_gateway_tasks,
    currency = G.cfg.currency, price_provider = G.cfg.price_provider, entries = entries, now_ms = t0 })
  local status = { at_ms = t0, bytes_before = before, lines_before = opts.read_lines, replay_ms = opts.replay_ms,
    read_ms = opts.read_ms }
  local bytes, err
  if not ok then
    err = "cannot list what the journal holds: " .. tostring(lines)
  elseif #lines >= opts.read_lines then
    status.skipped = "nothing to drop"
    bytes = before
  else
    status.lines_after = #lines
    local placed
    bytes, err, placed = M.write(path, lines, opts.user, G.cfg.journal_sync == true)
    if placed then
      error("kling gateway: " .. err, 0)
    end
    status.compacted = bytes ~= nil
  end
  status.bytes_after, status.error, status.ms = err and before or bytes, err, core.wall_ms() - t0
  if err then
    ngx.log(ngx.ERR, "kling gateway: the journal ", path, " was not compacted (it stays whole as it was): ", err)
  elseif status.compacted then
    ngx.log(ngx.NOTICE, "kling gateway: compacted the journal ", path, ": ", before, " bytes, ", opts.read_lines,
      " lines -> ", bytes, " bytes, ", #lines, " lines, in ", status.ms, " ms")
  end
  G.ledger_dict:safe_set(M.STATUS_KEY, json.encode(status))
  return status
end

-- The last compaction's outcome (this start's), or nil.
function M.status(dict)
  local s = dict:get(M.STATUS_KEY)
  return s and json.decode(s) or nil
end

return M
