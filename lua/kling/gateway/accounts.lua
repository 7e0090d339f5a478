-- The gateway's client accounts: those of the config file (read by every worker from the
-- master) and those the admin API creates while nginx runs. Created accounts live in shared
-- memory (every worker sees them at once) and in the journal (a restart brings them back);
-- the file's accounts win a name or key clash, and a reload never drops a created one.
local config = require "kling.gateway.config"
local json = require "kling.json"

local unpack = table.unpack or unpack -- luacheck: ignore 143 (LuaJIT's global unpack)

local Accounts = {}
Accounts.__index = Accounts

local M = {}

-- new{cfg =, dict = shared dict, journal = | redis = kling.gateway.redis (several nodes)}
function M.new(opts)
  return setmetatable({ cfg = opts.cfg, dict = opts.dict, journal = opts.journal, redis = opts.redis }, Accounts)
end

local function stored(self, key)
  local s = self.dict:get(key)
  if not s and self.redis then
    local r = self.redis
    s = r:with(function(red)
      return red:hget(r.prefix .. "accounts", key)
    end)
    s = type(s) == "string" and s or nil
    if s then
      self.dict:set(key, s) -- accounts never change once created
    end
  end
  return s and json.decode(s) or nil
end

function Accounts:by_key(api_key)
  return self.cfg.by_key[api_key] or stored(self, "ck:" .. api_key)
end

function Accounts:by_access(access_key)
  return self.cfg.by_access[access_key] or stored(self, "ca:" .. access_key)
end

function Accounts:get(name)
  for _, a in ipairs(self.cfg.accounts) do
    if a.name == name then
      return a
    end
  end
  return stored(self, "cn:" .. name)
end

-- Names of every account: the file's, then the created ones.
function Accounts:names()
  local out, seen = {}, {}
  for _, a in ipairs(self.cfg.accounts) do
    out[#out + 1], seen[a.name] = a.name, true
  end
  local keys = self.dict:get_keys(0)
  if self.redis then
    local r = self.redis
    local all = r:with(function(red)
      return red:hkeys(r.prefix .. "accounts")
    end)
    keys = type(all) == "table" and all or keys
  end
  for _, key in ipairs(keys) do
    local name = key:match("^cn:(.+)$")
    if name and not seen[name] then
      out[#out + 1], seen[name] = name, true
    end
  end
  return out
end

local function index(self, acct)
  local s = json.encode(acct)
  local ok, err = self.dict:safe_set("cn:" .. acct.name, s)
  if ok and acct.api_key then
    ok, err = self.dict:safe_set("ck:" .. acct.api_key, s)
  end
  if ok and acct.access_key then
    ok, err = self.dict:safe_set("ca:" .. acct.access_key, s)
  end
  return ok, err
end

-- add(acct) -> true | nil, {field, message}: a new account (checked by config.account);
-- journaled first, so an account that could not be written is never usable.
function Accounts:add(acct)
  if self:get(acct.name) then
    return nil, { field = "name", message = "account " .. acct.name .. " exists" }
  end
  -- A name another's in all but case is a typo, or a second account the operator will take for
  -- the first (the config refuses it too).
  local lower = acct.name:lower()
  for _, name in ipairs(self:names()) do
    if name:lower() == lower then
      return nil, { field = "name", message = "account " .. name .. " exists (names differ in case only)" }
    end
  end
  -- Each key and secret is one role's (config.key_clash says why): the config's, and every
  -- account's made since.
  local owners = setmetatable({}, { __index = self.cfg.key_owner })
  for _, name in ipairs(self:names()) do
    local other = self:get(name)
    for _, f in ipairs(config.KEY_FIELDS) do
      if other and other[f] ~= nil then
        owners[other[f]] = owners[other[f]] or ("account " .. name .. "'s " .. f)
      end
    end
  end
  local field, why = config.key_clash(owners, acct)
  if field then
    return nil, { field = field, message = field .. ": " .. why }
  end
  local ok, err
  if self.redis then
    local r, s = self.redis, json.encode(acct)
    ok, err = r:with(function(red)
      local fields = { "cn:" .. acct.name, s }
      if acct.api_key then
        fields[#fields + 1], fields[#fields + 2] = "ck:" .. acct.api_key, s
      end
      if acct.access_key then
        fields[#fields + 1], fields[#fields + 2] = "ca:" .. acct.access_key, s
      end
      return red:hset(r.prefix .. "accounts", unpack(fields))
    end)
  else
    ok, err = self.journal:append { op = "account", created = acct }
  end
  if not ok then
    return nil, { journal = true, message = err }
  end
  ok, err = index(self, acct)
  if not ok then
    return nil, { message = "shared memory: " .. tostring(err) }
  end
  return true
end

-- restore(entries): the created accounts of the journal, after a restart.
function Accounts:restore(entries)
  local n = 0
  for _, e in ipairs(entries) do
    local a = e.op == "account" and type(e.created) == "table" and e.created
    if a and type(a.name) == "string" and not self.cfg.by_key[a.api_key or ""]
      and not self.cfg.by_access[a.access_key or ""] and not self:get(a.name) then
      index(self, a)
      n = n + 1
    end
  end
  return n
end

-- overdrawn(G) -> the accounts whose spend and holds pass their credit (a credit lowered in
-- the config below what was already spent): [{name, credit, spent, reserved, balance}], the
-- balance negative. Their creates are refused (429, 1101: the balance cannot hold any
-- estimate) until a top-up or a higher credit brings the balance back above zero; what was
-- spent stays spent.
function M.overdrawn(G)
  local out = {}
  for _, name in ipairs(G.accounts:names()) do
    local a = G.meter:account(name)
    if a and a.balance_micros < 0 then
      out[#out + 1] = { name = name, credit = a.limit, spent = a.spent, reserved = a.reserved, balance = a.balance }
    end
  end
  return out
end

-- At start and at each reload: one warning per overdrawn account, naming it.
function M.warn_overdrawn(G)
  for _, a in ipairs(M.overdrawn(G)) do
    ngx.log(ngx.WARN, "kling gateway: account ", a.name, " has spent ", a.spent, " (", a.reserved,
      " held) of a credit of ", a.credit, ": its balance is ", a.balance, " and its creates are refused (429, 1101)",
      " until its credit is raised above what it spent (a top-up, or a higher credit in the config)")
  end
end

return M
