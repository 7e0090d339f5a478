-- For bench/gateway/lua_store.sh: every ngx.shared dict of the gateway replaced, for its one
-- worker, by Lua tables in the worker's heap (installed first thing in init_by_lua: the worker
-- inherits the master's copy), to bound what the shared dicts cost a create. Keys present at
-- install are pinned; keys made later live in two generations of GEN (promoted on read), so that
-- the heap stays small. Not a store: no other worker sees it, and nothing expires.
local M = {}
local GEN = 8192

local function table_dict(real)
  local pin, cur, old, n = {}, {}, {}, 0
  local exp, lists = {}, {}
  for _, k in ipairs(real:get_keys(0)) do
    pin[k] = real:get(k)
  end
  local function find(k)
    local v = pin[k]
    if v ~= nil then
      return v
    end
    v = cur[k]
    if v ~= nil then
      return v
    end
    v = old[k]
    if v ~= nil then
      cur[k], n = v, n + 1
    end
    return v
  end
  local function put(k, v, ttl)
    exp[k] = ttl
    if pin[k] ~= nil then
      pin[k] = v
      return
    end
    if cur[k] == nil then
      n = n + 1
      if n > GEN then
        old, cur, n = cur, {}, 1
      end
    end
    cur[k], old[k] = v, nil
  end
  local function list(k)
    local l = lists[k]
    if not l then
      l = { h = 1, t = 0 }
      lists[k] = l
    end
    return l
  end
  local D = {}
  function D.get(_, k)
    return find(k)
  end
  D.get_stale = D.get
  function D.set(_, k, v, ttl)
    if v == nil then
      pin[k], cur[k], old[k], exp[k] = nil, nil, nil, nil
    else
      put(k, v, ttl)
    end
    return true, nil, false
  end
  D.safe_set = D.set
  function D.add(_, k, v, ttl)
    if find(k) ~= nil then
      return false, "exists"
    end
    put(k, v, ttl)
    return true
  end
  D.safe_add = D.add
  function D.replace(_, k, v, ttl)
    if find(k) == nil then
      return false, "not found"
    end
    put(k, v, ttl)
    return true
  end
  function D.delete(self, k)
    return D.set(self, k, nil)
  end
  function D.incr(_, k, by, init, init_ttl)
    local v = find(k)
    if v == nil then
      if init == nil then
        return nil, "not found"
      end
      v = init
      exp[k] = init_ttl
    end
    put(k, v + by, exp[k])
    return v + by
  end
  function D.ttl(_, k)
    if find(k) == nil then
      return nil, "not found"
    end
    return exp[k] or 0
  end
  function D.expire(_, k, ttl)
    if find(k) == nil then
      return nil, "not found"
    end
    exp[k] = ttl
    return true
  end
  function D.rpush(_, k, v)
    local l = list(k)
    l.t = l.t + 1
    l[l.t] = v
    return l.t - l.h + 1
  end
  function D.lpush(_, k, v)
    local l = list(k)
    l.h = l.h - 1
    l[l.h] = v
    return l.t - l.h + 1
  end
  function D.lpop(_, k)
    local l = lists[k]
    if not l or l.t < l.h then
      return nil
    end
    local v = l[l.h]
    l[l.h], l.h = nil, l.h + 1
    return v
  end
  function D.rpop(_, k)
    local l = lists[k]
    if not l or l.t < l.h then
      return nil
    end
    local v = l[l.t]
    l[l.t], l.t = nil, l.t - 1
    return v
  end
  function D.llen(_, k)
    local l = lists[k]
    return l and (l.t - l.h + 1) or 0
  end
  function D.free_space()
    return real:free_space()
  end
  function D.capacity()
    return real:capacity()
  end
  function D.flush_expired()
    return 0
  end
  function D.get_keys(_, max)
    local out = {}
    for _, t in ipairs { pin, cur, old } do
      for k in pairs(t) do
        out[#out + 1] = k
        if max and max > 0 and #out >= max then
          return out
        end
      end
    end
    return out
  end
  return D
end

function M.install()
  local shared, names = ngx.shared, {}
  for name in pairs(shared) do
    names[#names + 1] = name
  end
  for _, name in ipairs(names) do
    shared[name] = table_dict(shared[name])
  end
end

return M
