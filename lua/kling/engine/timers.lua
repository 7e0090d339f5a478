-- The engine's own timers, for what the C scheduler does not track because no task exists
-- at the provider yet: a machine's wake-ups (a create waiting out a 1303's delay, a lookup by
-- external id), a deadline of a task still waiting locally. A binary min-heap over parallel arrays (no table
-- per entry); an entry carries a token so that a timer superseded by a newer one is skipped
-- when it fires instead of being searched for and removed.
local Timers = {}
Timers.__index = Timers

local M = {}

function M.new()
  return setmetatable({ n = 0, at = {}, item = {}, tok = {} }, Timers)
end

local function swap(h, i, j)
  local at, item, tok = h.at, h.item, h.tok
  at[i], at[j] = at[j], at[i]
  item[i], item[j] = item[j], item[i]
  tok[i], tok[j] = tok[j], tok[i]
end

-- Moves the entry at i down below its smaller children, within the first n.
local function sift_down(h, i, n)
  local a = h.at
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= n and a[l] < a[m] then
      m = l
    end
    if r <= n and a[r] < a[m] then
      m = r
    end
    if m == i then
      return
    end
    swap(h, i, m)
    i = m
  end
end

-- push(at, item, tok): fires at `at` (ms); ties in no particular order.
function Timers:push(at, item, tok)
  local n = self.n + 1
  self.n = n
  self.at[n], self.item[n], self.tok[n] = at, item, tok
  local a = self.at
  while n > 1 do
    local p = math.floor(n / 2)
    if a[p] <= a[n] then
      break
    end
    swap(self, p, n)
    n = p
  end
end

-- Time of the earliest entry, or nil when empty.
function Timers:peek()
  return self.at[1]
end

-- Removes the earliest entry: at, item, tok.
function Timers:pop()
  local n = self.n
  if n == 0 then
    return nil
  end
  local at, item, tok = self.at[1], self.item[1], self.tok[1]
  swap(self, 1, n)
  self.at[n], self.item[n], self.tok[n] = nil, nil, nil
  n = n - 1
  self.n = n
  sift_down(self, 1, n)
  return at, item, tok
end

-- keep(fn): drops every entry for which fn(item, tok, at) is false, in O(n) (a heap rebuilt from
-- the rest), so that entries that can only be skipped stop costing memory.
function Timers:keep(fn)
  local at, item, tok = {}, {}, {}
  local n = 0
  for i = 1, self.n do
    if fn(self.item[i], self.tok[i], self.at[i]) then
      n = n + 1
      at[n], item[n], tok[n] = self.at[i], self.item[i], self.tok[i]
    end
  end
  self.n, self.at, self.item, self.tok = n, at, item, tok
  for i = math.floor(n / 2), 1, -1 do -- each parent, last first (no // : LuaJIT runs this in nginx)
    sift_down(self, i, n)
  end
end

function Timers:size()
  return self.n
end

return M
