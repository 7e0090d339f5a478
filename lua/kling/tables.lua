--- Tables made at their size: LuaJIT's table.new and table.clone (OpenResty's LuaJIT), with
-- the plain-Lua equivalents elsewhere (Lua 5.4: the CLI and the unit specs). A table grown key
-- by key is rehashed at each power of two on the way; on a gateway's create path, where every
-- request builds a few of them, that was garbage and time per create.
-- @module kling.tables
local M = {}

local has_new, new = pcall(require, "table.new")
local has_clone, clone = pcall(require, "table.clone")

--- new(narr, nrec) -> an empty table with room for narr array items and nrec keys.
---@param narr integer
---@param nrec integer
---@return table
M.new = has_new and new or function()
  return {}
end

--- clone(t) -> a shallow copy of t (its keys and values, not its metatable), made at t's size.
---@param t table
---@return table
M.clone = has_clone and clone or function(t)
  local out = {}
  for k, v in pairs(t) do
    out[k] = v
  end
  return out
end

--- without(t, key) -> a shallow copy of t without key (the caller's table is left as it was).
---@param t table
---@param key any
---@return table
function M.without(t, key)
  local out = M.clone(t)
  out[key] = nil
  return out
end

return M
