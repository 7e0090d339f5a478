-- What a node remembers of its Redis store: the id of the store it saw (the store's meta hash,
-- kling.money.stores.redis bind), so that a Redis that lost its data (FLUSHALL, a failover to
-- an empty replica, a restart without AOF) is refused rather than taken for a new store, where
-- every account would have its spent credit back and every open task's hold would be gone.
--
-- With it, the highest movement number (<p>seq) the node saw there: a Redis found with fewer
-- went back in time (it lost its last writes: kling.money.stores.redis GUARD), which a node
-- restarted since can tell only from its file. The file is brought up to date at each check of
-- the store (every few seconds) and when the node stops, so a restart may miss the movements of
-- its last seconds, not more.
--
-- The id is kept in the node's ledger dict (a reload keeps it) and in a file under nginx's
-- prefix, <prefix>/kling-store/<16 hex digits of the store's address>.json (a restart keeps
-- it): the master reads the file into the dict in init, before any worker runs; the node's
-- first worker writes it when it first sees the store's id (replaced whole: kling.durable_file).
-- Started as root, nginx's workers run as another user (nobody): the master gives them the
-- directory. The file is named by the store's address (host, port, db and key prefix, not the
-- password): a config naming another store starts afresh there, as a new journal path does.
-- Removing the file, with the node stopped, starts afresh on purpose (README: Several nodes).
local core = require "kling.core"
local durable_file = require "kling.durable_file"
local json = require "kling.json"

local M = {}

M.DIR = "kling-store"

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The store's address as the file names it: host:port/db and the key prefix.
local function address(store)
  local r = store.redis
  return r.host .. ":" .. r.port .. "/" .. r.db, store.prefix
end

--- open(store, prefix, user, dict) -> state {file, key, floor_key, filed_key, filed_floor_key, redis, prefix} (raises,
-- naming the path, when the directory cannot be made for the workers or the file cannot be
-- read): in nginx's master, at start and at each reload. store: the config's (config.store);
-- prefix: nginx's, ending in "/"; user: the workers' user when the master is root, else nil.
-- The id the file holds goes into the dict, unless the dict has one already (a reload: it is
-- the newer, and the first worker writes it to the file).
function M.open(store, prefix, user, dict)
  local where, key_prefix = address(store)
  local name = core.sha256_hex(where .. " " .. key_prefix):sub(1, 16)
  local dir = prefix .. M.DIR
  local state = { file = dir .. "/" .. name .. ".json", key = "store:id:" .. name, filed_key = "store:filed:" .. name,
    floor_key = "store:seq:" .. name, filed_floor_key = "store:filed_seq:" .. name, redis = where, prefix = key_prefix }
  -- nginx's master may run without PATH (journal.writable's rule); runuser checks what the
  -- workers can do, not what root can.
  local cmd = "mkdir -p " .. q(dir) .. " && chmod 700 " .. q(dir)
    .. (user and (" && chown " .. q(user) .. " " .. q(dir) .. " && runuser -u " .. q(user) .. " -- test -w "
      .. q(dir)) or " && test -w " .. q(dir)) .. " && echo READY"
  local p = io.popen("PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c " .. q(cmd) .. " 2>&1", "r")
  local out = p and p:read("*a") or "cannot run sh"
  if p then
    p:close()
  end
  if not out:find("READY", 1, true) then
    error("kling gateway: cannot keep the Redis store's id in " .. dir .. " (writable by " .. (user or "this user")
      .. "): " .. out:gsub("%s+$", "") .. ". Without it a restarted node could not tell a Redis that lost its data"
      .. " from a new one (it fails closed: make the directory, or nginx's prefix, writable)", 0)
  end
  local f = io.open(state.file, "rb")
  local text = f and f:read("*a")
  if f then
    f:close()
  end
  local id, seq
  if text and text:find("%S") then
    local doc = json.decode(text)
    id = type(doc) == "table" and type(doc.id) == "string" and doc.id:match("^%x+$") and doc.id or nil
    seq = type(doc) == "table" and doc.seq or 0 -- files of earlier versions have none
    if not id or not (type(seq) == "number" and seq >= 0 and seq == math.floor(seq) and seq < 2 ^ 53) then
      error("kling gateway: " .. state.file .. " does not say which Redis store this node saw (not its JSON):"
        .. " remove it, with every node stopped, only to start the store afresh on purpose (README: Several"
        .. " nodes)", 0)
    end
  end
  if id and not dict:get(state.key) then
    dict:set(state.key, id)
  end
  -- A reload's dict knows as much or more of the same store; a restart's knows nothing.
  if id and dict:get(state.key) == id and seq > (dict:get(state.floor_key) or 0) then
    dict:set(state.floor_key, seq)
  end
  if id then
    dict:set(state.filed_key, id)
    dict:set(state.filed_floor_key, seq)
  else
    dict:delete(state.filed_key)
    dict:delete(state.filed_floor_key)
  end
  return state
end

--- remember(state, dict, meta) -> true | nil, message: in a worker, the id the dict holds and
-- the highest movement number seen there written to the file, unless the file has them
-- already. meta: what the store records (bind).
function M.remember(state, dict, meta)
  local id = dict:get(state.key)
  local seq = dict:get(state.floor_key) or 0
  if not id or (dict:get(state.filed_key) == id and dict:get(state.filed_floor_key) == seq) then
    return true
  end
  local text = json.encode { id = id, seq = seq, redis = state.redis, prefix = state.prefix,
    created_ms = meta.created_ms, currency = meta.currency, price_provider = meta.price_provider }
  local ok, err = durable_file.replace(state.file, text .. "\n")
  if not ok then
    return nil, tostring(err)
  end
  dict:set(state.filed_key, id)
  dict:set(state.filed_floor_key, seq)
  return true
end

return M
