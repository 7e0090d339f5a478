-- An ngx.shared dict in plain Lua for unit specs of the stores that run in nginx: the calls
-- they make (get, set, safe_set, add, safe_add, incr, delete, get_keys, ttl, free_space), never full,
-- expiry ignored.
local M = {}

local Dict = {}
Dict.__index = Dict

function M.new()
  return setmetatable({ t = {} }, Dict)
end

function Dict:get(k)
  return self.t[k]
end

function Dict:set(k, v)
  self.t[k] = v
  return true
end
Dict.safe_set = Dict.set

function Dict:add(k, v)
  if self.t[k] ~= nil then
    return false, "exists"
  end
  self.t[k] = v
  return true
end
Dict.safe_add = Dict.add

function Dict:incr(k, n, init)
  local v = self.t[k]
  if v == nil then
    if init == nil then
      return nil, "not found"
    end
    v = init
  end
  self.t[k] = v + n
  return self.t[k]
end

function Dict:delete(k)
  self.t[k] = nil
end

function Dict:get_keys()
  local out = {}
  for k in pairs(self.t) do
    out[#out + 1] = k
  end
  table.sort(out)
  return out
end

function Dict.ttl()
  return 0
end

function Dict.free_space()
  return 1e9
end

function Dict.flush_expired()
  return 0
end

return M
