--- A task table shared by every nginx worker.
-- A task table shared by every worker: JSON records in a lua_shared_dict keyed by task id,
-- with indexes by upstream id, by (account, external id) and per (account, endpoint) in
-- creation order for lists. A record ends once: its final form is added under its own key
-- (add is atomic), so a callback in one worker and a poll in another cannot both end it,
-- and a late non-final write can never hide the final one. New tasks are queued on a
-- shared list for the poller (kling.resty.poller), news from callbacks on another.
--
-- Writes use safe_set/safe_add: a full dict refuses new tasks instead of evicting live ones
-- (after its expired entries are freed: kling.resty.shm).
-- Ended records (and their index entries) expire after `retention_s` (30 days by default, as
-- long as Kling keeps results), so the dict holds what is live plus a month of history.
-- @module kling.resty.tasks
local json = require "kling.json"
local validate = require "kling.validate"
local rjournal = require "kling.resty.journal"
local shm = require "kling.resty.shm"

local Tasks = {}
Tasks.__index = Tasks
Tasks.__name = "kling.resty.tasks"

local M = {}

M.Q_NEW, M.Q_NEWS = "q:new", "q:news"

M.RETENTION_S = 30 * 86400

-- What new{} takes; another key is refused by name (a misspelt retention_s was ignored).
local NEW_OPTIONS = { dict = true, journal = true, retention_s = true, encode = true, by_upstream = true }

--- Makes the shared task table.
-- new{dict = shared dict or its name, journal = kling.resty.journal | nil, retention_s =,
-- encode = fn(rec [, hint]) -> JSON text | nil, err (default kling.json's), by_upstream =
-- false (no u: index: by_upstream finds nothing; for a table whose tasks end without a
-- callback, the index's only reader: a key and a write fewer a task)} -> table
---@param opts {dict: string, journal: string, retention_s: number, by_upstream: boolean}
---@return table|nil tasks
---@return string|nil err
function M.new(opts)
  if type(opts) ~= "table" then
    error("kling.resty.tasks: options table expected", 2)
  end
  validate.options("resty.tasks.new", opts, NEW_OPTIONS)
  local dict = opts.dict
  if type(dict) == "string" then
    dict = ngx.shared[dict]
    if not dict then
      error("kling.resty.tasks: no lua_shared_dict " .. opts.dict .. " in the nginx conf", 2)
    end
  end
  local retention = opts.retention_s or M.RETENTION_S
  local rbad = shm.ttl_problem(retention)
  if rbad then
    error("kling.resty.tasks: retention_s " .. rbad, 2)
  end
  rjournal.check("kling.resty.tasks", opts.journal)
  return setmetatable({ dict = dict, shm = shm.new(dict), journal = opts.journal, retention_s = retention,
    encode = opts.encode or json.encode, index_upstream = opts.by_upstream ~= false }, Tasks)
end

local function encode(self, rec, hint)
  local s, err = self.encode(rec, hint)
  if not s then
    return nil, "task record cannot be encoded: " .. tostring(err)
  end
  return s
end

-- s: the record as already encoded for the dict (one encode per write, not two), or nil.
local function snapshot(self, rec, s)
  if self.journal then
    local ok, err = rjournal.append(self.journal, s and ('{"op":"task","record":' .. s .. "}\n")
      or { op = "task", record = rec })
    if not ok then
      self.dict:incr("journal_errors", 1, 0)
      ngx.log(ngx.ERR, "kling tasks: ", err)
      return nil, err
    end
  end
  return true
end

-- Journal write failures of the task table so far (every worker's).
function Tasks:journal_errors()
  return self.dict:get("journal_errors") or 0
end

-- The index keys join an account's name to the part after it by ':' (x:<account>:<external id>,
-- l:<account>:<endpoint>:<n>): a name holding ':' is another account's prefix (account "a:b"'s
-- external id "c" was account "a"'s "b:c", its task found, listed and refused as theirs). The
-- gateway's names have none; an embedder's caller may pass any: refused here, where the keys are
-- made. -> nil | message naming the field and the rule.
local function key_part_problem(field, v, optional)
  if optional and v == nil then
    return nil
  elseif type(v) ~= "string" or v == "" or v:find(":", 1, true) then
    return field .. ": must be a non-empty string without ':' (the task table's index keys join it by ':', so"
      .. " that one would name another account's keys; got " .. (type(v) == "string" and string.format("%q", v)
      or type(v)) .. ")"
  end
  return nil
end

-- create(rec [, s]) -> true | nil, message ("exists", "no memory"). rec.id and rec.account are
-- required; rec.external_task_id (the account's own) must be unique per account. s: rec
-- already encoded (the caller journals that same text with the create's reservation).
function Tasks:create(rec, s)
  local d = self.dict
  local err = key_part_problem("account", rec.account) or key_part_problem("endpoint", rec.endpoint, true)
  if err then
    return nil, err
  end
  if not s then
    s, err = encode(self, rec)
    if not s then
      return nil, err
    end
  end
  if rec.external_task_id then
    local ok, xerr = self.shm:write("safe_add", "x:" .. rec.account .. ":" .. rec.external_task_id, rec.id)
    if not ok then
      return nil, xerr == "exists" and "external_task_id exists" or xerr
    end
  end
  local ok, aerr = self.shm:write("safe_add", "t:" .. rec.id, s)
  if not ok then
    if rec.external_task_id then
      d:delete("x:" .. rec.account .. ":" .. rec.external_task_id)
    end
    return nil, aerr
  end
  return true
end

-- An account's list of an endpoint's tasks: its counter's key (l:...:<n> its entries).
local function list_key(account, endpoint)
  return "l:" .. account .. ":" .. tostring(endpoint)
end

-- Writes rec's entry n of its list (rec.list_n) -> the entry's key, and the write's ok, err.
local function entry(self, rec, list, n)
  rec.list_n = n
  local key = list .. ":" .. n
  return key, self.shm:write("safe_set", key, rec.id)
end

-- Numbers rec at the end of its list -> as entry().
local function number(self, rec)
  local list = list_key(rec.account, rec.endpoint)
  return entry(self, rec, list, self.dict:incr(list, 1, 0))
end

-- Publishes a created record: listed for its account, handed to the poller when it has
-- something to poll, and written to the journal when `journal` (a record journaled only in
-- its creating state is looked up by its external id after a restart: the journal line is
-- needed only where that lookup cannot be made). hint: handed to the encoder with rec
-- (kling.gateway.text's record: the part of the record its create already encoded).
function Tasks:publish(rec, poll, journal, hint)
  local d = self.dict
  local listed = number(self, rec)
  local up = rec.upstream_id and self.index_upstream and "u:" .. rec.upstream_id
  if up then
    self.shm:write("safe_set", up, rec.id)
  end
  local s = encode(self, rec, hint)
  if s then
    self.shm:write("safe_set", "t:" .. rec.id, s)
  end
  -- A callback may have ended it (in another worker) before these writes or while they were
  -- made: then that end stands. Read after the writes, so that no order of the two is missed:
  -- a finish that came first is seen here; one that comes later reads the record just
  -- written, its list entry in it (finish). The index entries then get the time the final
  -- record has left, or they would never be freed.
  local left = d:ttl("f:" .. rec.id)
  if left ~= nil then
    d:delete("t:" .. rec.id)
    if left > 0 then
      d:expire(listed, left)
      if up then
        d:expire(up, left)
      end
    end
    return
  end
  if poll then
    local len, err = d:rpush(M.Q_NEW, rec.id)
    if not len then
      ngx.log(ngx.ERR, "kling tasks: cannot queue ", rec.id, " for polling: ", err)
    end
  end
  if journal then
    snapshot(self, rec, s)
  end
end

-- enlist(rec): lists a record its create's publish never listed (its handler died with its
-- nginx: the task was found by its external id). rec.list_n says it was listed; the caller
-- saves rec after (it carries its list_n). A callback and a poll may adopt it at once, each
-- from a record without list_n: the first to claim ln:<id> lists it, the other takes its
-- number (it listed the task twice before; its own number is left unused, a gap a list page
-- skips). The claim is kept LISTED_S, past any two adoptions of one record.
M.LISTED_S = 3600
function Tasks:enlist(rec)
  if rec.list_n then
    return true
  end
  local list = list_key(rec.account, rec.endpoint)
  local n = self.dict:incr(list, 1, 0)
  local ok, err = self.shm:write("safe_add", "ln:" .. rec.id, n, M.LISTED_S)
  if not ok and err == "exists" then
    rec.list_n = self.dict:get("ln:" .. rec.id)
    return true
  elseif not ok then
    return nil, err
  end
  local _, wok, werr = entry(self, rec, list, n)
  return wok, werr
end

-- Forgets a record that never reached the provider (refused before forwarding); the
-- journal learns it too (when it was journaled), so a restart does not bring it back.
function Tasks:drop(rec, journaled, refused_at)
  local d = self.dict
  d:delete("t:" .. rec.id)
  if rec.external_task_id then
    d:delete("x:" .. rec.account .. ":" .. rec.external_task_id)
  end
  if journaled ~= false then
    -- refused_at: when the upstream refused it (a restart counts the account's refusals of the
    -- day again from it: kling.gateway.capacity)
    snapshot(self, { id = rec.id, account = rec.account, dropped = true, refused_at = refused_at })
  end
end

-- text(id) -> the record as stored (JSON), final (boolean) | nil
function Tasks:text(id)
  local d = self.dict
  local s = d:get("f:" .. id)
  local final = s ~= nil
  if not s then
    s = d:get("t:" .. id)
  end
  if not s then
    return nil
  end
  return s, final
end

-- get(id) -> record, final (boolean) | nil
function Tasks:get(id)
  local s, final = self:text(id)
  if not s then
    return nil
  end
  return json.decode(s), final
end

-- save(rec [, journal]) -> true | nil, message: a non-final update; ignored once the record
-- has ended. journal = true writes it to the journal too (news a restart must not lose,
-- such as the upstream id of a create found by its external id).
function Tasks:save(rec, journal)
  local d = self.dict
  if d:get("f:" .. rec.id) then
    return true
  end
  local s, err = encode(self, rec)
  if not s then
    return nil, err
  end
  if rec.upstream_id and self.index_upstream and not d:get("u:" .. rec.upstream_id) then
    self.shm:write("safe_set", "u:" .. rec.upstream_id, rec.id)
  end
  local ok, serr = self.shm:write("safe_set", "t:" .. rec.id, s)
  if ok and journal then
    return snapshot(self, rec, s)
  end
  return ok, serr
end

-- finish(rec) -> true when this call ended the record, false when it had already ended
-- (elsewhere), or nil, message.
function Tasks:finish(rec)
  local d = self.dict
  rec.final = true
  local s, err = encode(self, rec)
  if not s then
    return nil, err
  end
  local ttl = self.retention_s
  local ok, aerr = self.shm:write("safe_add", "f:" .. rec.id, s, ttl)
  if not ok then
    if aerr == "exists" then
      return false
    end
    return nil, aerr
  end
  -- A record read before its create was published (a callback that came first) lacks what
  -- the publish wrote: its list entry and upstream id are in the record the publish stored.
  local list_n, upstream_id = rec.list_n, rec.upstream_id
  if not list_n then
    local cur = d:get("t:" .. rec.id)
    cur = cur and json.decode(cur)
    if type(cur) == "table" then
      list_n, upstream_id = cur.list_n, upstream_id or cur.upstream_id
    end
  end
  d:delete("t:" .. rec.id)
  -- The indexes expire with the record.
  if upstream_id and self.index_upstream then
    self.shm:write("safe_set", "u:" .. upstream_id, rec.id, ttl)
  end
  if rec.external_task_id then
    self.shm:write("safe_set", "x:" .. rec.account .. ":" .. rec.external_task_id, rec.id, ttl)
  end
  if list_n then
    self.shm:write("safe_set", list_key(rec.account, rec.endpoint) .. ":" .. list_n, rec.id, ttl)
  end
  -- The dict's text, journaled as is: one encode, and a line that ends with the record's id
  -- (kling.gateway.text's encoder), which a replay reads back fast.
  snapshot(self, rec, s)
  return true
end

-- Rewrites an ended record (what an operator decided of its kept hold, say) and journals it:
-- the last snapshot of a task is the one a restart brings back. The end itself stays decided
-- by finish().
function Tasks:amend(rec)
  local s, err = encode(self, rec)
  if not s then
    return nil, err
  end
  local ttl = self.dict:ttl("f:" .. rec.id)
  local ok, werr = self.shm:write("safe_set", "f:" .. rec.id, s, ttl and ttl > 0 and ttl or self.retention_s)
  if not ok then
    return nil, werr
  end
  return snapshot(self, rec, s)
end

-- claim(key) -> true (the first claim of key in retention_s) | false (claimed already) | nil,
-- message (not recorded: the dict is full): one claimant across workers (an add).
-- kling.gateway.redis_tasks's is one across nodes.
function Tasks:claim(key)
  local ok, err = self.dict:add(key, true, self.retention_s)
  if ok then
    return true
  elseif err == "exists" then
    return false
  end
  return nil, err
end

function Tasks:by_upstream(upstream_id)
  return self.dict:get("u:" .. tostring(upstream_id))
end

-- by_external(account, external_id) -> the task's id | nil [, message: an account refused].
function Tasks:by_external(account, external_id)
  local bad = key_part_problem("account", account)
  if bad then
    return nil, bad
  end
  return self.dict:get("x:" .. account .. ":" .. tostring(external_id))
end

-- list(account, endpoint, page, size) -> records, newest first | nil, message (an account or
-- endpoint refused).
function Tasks:list(account, endpoint, page, size)
  local bad = key_part_problem("account", account) or key_part_problem("endpoint", endpoint, true)
  if bad then
    return nil, bad
  end
  local d = self.dict
  local list = list_key(account, endpoint)
  local n = d:get(list) or 0
  local out = {}
  local first = n - (page - 1) * size
  for i = first, math.max(1, first - size + 1), -1 do
    local id = d:get(list .. ":" .. i)
    local rec = id and self:get(id)
    if rec then
      out[#out + 1] = rec
    end
  end
  return out
end

-- Kept holds: ids of tasks that ended with their hold kept (their fate upstream unknown),
-- until the operator ends the hold (kling.gateway.holds). Numbered like a list, k#<n> -> id
-- and k:<id> -> n, without expiry (the hold outlives the record); rebuilt at a restart from
-- the journal (kling.gateway.track restore). keep(ids) -> true | nil, message
function Tasks:keep(ids)
  local d = self.dict
  for _, id in ipairs(ids) do
    if not d:get("k:" .. id) then
      local n = d:incr("k#", 1, 0)
      local ok, err = self.shm:write("safe_add", "k:" .. id, n)
      if ok then
        ok, err = self.shm:write("safe_set", "k#" .. n, id)
      end
      if not ok and err ~= "exists" then
        return nil, err
      end
    end
  end
  return true
end

function Tasks:unkeep(id)
  local d = self.dict
  local n = d:get("k:" .. id)
  if n then
    d:delete("k#" .. n)
    d:delete("k:" .. id)
  end
  return true
end

-- kept_page(cursor, count) -> the next cursor ("0": the last page), ids: up to count kept
-- ids after cursor, in the order they were kept.
function Tasks:kept_page(cursor, count)
  local d, ids = self.dict, {}
  local top, i = d:get("k#") or 0, tonumber(cursor) or 0
  local last = math.min(top, i + count * 4) -- ended entries are gaps: a page walks a bounded span
  while i < last and #ids < count do
    i = i + 1
    ids[#ids + 1] = d:get("k#" .. i)
  end
  return i >= top and "0" or tostring(i), ids
end

-- Queues: ids of new tasks for the poller, and ids with news (a callback arrived).
function Tasks:pop(queue, max)
  local d, out = self.dict, {}
  for _ = 1, max or 1000 do
    local id = d:lpop(queue)
    if not id then
      break
    end
    out[#out + 1] = id
  end
  return out
end

--- news_item(id, at) -> the entry queued on Q_NEWS: the task's id and when (wall-clock ms)
-- its next poll is due at the latest, as "AT ID". One format for both stores (news_of reads it).
function M.news_item(id, at)
  if at == nil then
    return id -- polled again after the poller's silence
  end
  return string.format("%d %s", at, id)
end

--- news_of(item) -> id, at | id, nil: an entry of Q_NEWS read (one without a time is a bare id,
-- queued before the time rode along: polled again after the poller's silence).
function M.news_of(item)
  local at, id = item:match("^(%d+) (.+)$")
  if not at then
    return item, nil
  end
  return id, tonumber(at)
end

-- news(id [, at]): a callback brought news of id; its next poll is due after the poller's
-- silence, or at `at` (wall-clock ms) should that come first: the task's own deadline.
function Tasks:news(id, at)
  local len, err = self.dict:rpush(M.Q_NEWS, M.news_item(id, at))
  if not len then
    ngx.log(ngx.ERR, "kling tasks: cannot queue news of ", id, ": ", err)
  end
end

-- Ids of every record that has not ended (a poller taking over walks the dict once).
function Tasks:active_ids()
  local d, out = self.dict, {}
  for _, key in ipairs(d:get_keys(0)) do
    local id = key:match("^t:(.+)$")
    if id and not d:get("f:" .. id) then
      out[#out + 1] = id
    end
  end
  return out
end

--- left(rec, retention_s, now_s) -> the seconds an ended record has left of its retention
-- (0 or less: past it); the record's end is its updated_at.
function M.left(rec, retention_s, now_s)
  return retention_s - (now_s - math.floor((tonumber(rec.updated_at) or 0) / 1000))
end

-- restore(entries) rebuilds the table from the journal's task snapshots (the last one of
-- each id wins) when shared memory is empty -> the number of tasks restored | nil, message
-- (the dict cannot hold them all).
function Tasks:restore(entries)
  local d = self.dict
  if d:get("restored") then
    return 0
  end
  local last, order = {}, {}
  for _, e in ipairs(entries) do
    -- A create's first record rides on its reservation's line.
    local rec = (e.op == "task" or e.op == "reserve") and type(e.record) == "table" and e.record
    if rec and type(rec.id) == "string" and type(rec.account) == "string" then
      local prev = last[rec.id]
      if not prev then
        order[#order + 1] = rec.id
      end
      -- The last snapshot wins, except that an end is never undone by a late update.
      if not (prev and prev.final and not rec.final) then
        last[rec.id] = rec
      end
    end
  end
  local now_s, restored = ngx.time(), 0
  -- Every write must land: a dict too small for the journal's tasks would start without some
  -- (their holds could never end, and a compaction would drop them for good): refused instead.
  local failed
  local function put(key, value, ttl)
    local ok, err = d:safe_set(key, value, ttl)
    failed = failed or (not ok and (key .. ": " .. tostring(err)))
  end
  for i, id in ipairs(order) do
    local rec = last[id]
    if i % 2000 == 0 then
      -- Each record's text is made anew; the ones made before are garbage, but among them those
      -- of one length and alike but in their middle (ended records: their results) share
      -- LuaJIT's hash chain, which each new one walks (kling.gateway.text). With the whole
      -- journal alive the collector seldom runs: 17,700 ended tasks took 30-60 s, not 2.
      collectgarbage()
    end
    -- An ended record keeps what is left of its retention; one past it stays gone.
    local keep = 0
    if rec.final then
      keep = M.left(rec, self.retention_s, now_s)
    end
    if rec.state == "creating" then
      rec.state = "lookup" -- its request handler died with the old nginx: find it upstream
    end
    if not rec.dropped and keep >= 0 and not (rec.final and keep == 0) then
      local list = list_key(rec.account, rec.endpoint)
      rec.list_n = d:incr(list, 1, 0)
      local s = encode(self, rec)
      if s then
        restored = restored + 1
        put(list .. ":" .. rec.list_n, rec.id, keep)
        if rec.external_task_id then
          put("x:" .. rec.account .. ":" .. rec.external_task_id, rec.id, keep)
        end
        put((rec.final and "f:" or "t:") .. rec.id, s, keep)
        if rec.upstream_id and self.index_upstream then
          put("u:" .. rec.upstream_id, rec.id, keep)
        end
      end
    end
    if failed then
      return nil, "the shared dict cannot hold the journal's " .. #order .. " tasks (" .. failed .. ", at task " .. i
        .. ")"
    end
  end
  d:safe_set("restored", true)
  return restored
end

return M
