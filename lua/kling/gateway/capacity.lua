-- One node's room for its tasks in shared memory (with a Redis store, Redis holds them). A
-- create is admitted only while every task already open could still end: a task's record
-- grows when it ends (its result, charge and times: about 1.5 KB kept for retention_days,
-- against 0.8 KB while it runs; README, Sizing one node), and an end that finds no room
-- cannot be written, so its task would stay open for its client while the provider bills it.
-- Each open task keeps ROOM_PER_OPEN bytes of whole free pages in the tasks dict, and the
-- ledger dict keeps LEDGER_ROOM for the marks its tasks' ends add.
local M = {}

M.ROOM_PER_OPEN = 2048
M.LEDGER_ROOM = 64 * 1024

--- admits(G) -> true | nil, the full dict's name in the config ("tasks" | "ledger")
function M.admits(G)
  if G.redis then
    return true
  end
  local store = G.meter.store
  if not G.tasks.shm:room(M.ROOM_PER_OPEN * (store:open_holds() + 1)) then
    return nil, "tasks"
  elseif not store.shm:room(M.LEDGER_ROOM) then
    return nil, "ledger"
  end
  return true
end

--- What the operator reads when a dict has no room: which one, and what to raise.
function M.full(G, name)
  return "the shared dict " .. G.dicts[name] .. " has no room left for more tasks (what the open ones need to end"
    .. " is kept, and its expired entries were freed): raise memory." .. name .. " in the config (README: Sizing"
    .. " one node) and restart"
end

return M
