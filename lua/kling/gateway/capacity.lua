-- One node's room for its tasks in shared memory (with a Redis store, Redis holds them). A
-- create is admitted only while every task already open could still end: a task's record
-- grows when it ends (its result, charge and times: about 1.5 KB kept for retention_days,
-- against 0.8 KB while it runs; README, Sizing one node), and an end that finds no room
-- cannot be written, so its task would stay open for its client while the provider bills it.
-- Each open task keeps ROOM_PER_OPEN bytes of whole free pages in the tasks dict (its final
-- record is of a larger size than its running one, so it needs a page of its own size's). The
-- ledger dict needs none: an end's mark takes the slot its hold leaves (money.stores.shared).
local M = {}

M.ROOM_PER_OPEN = 2048

--- admits(G) -> true | nil, the full dict's name in the config ("tasks")
function M.admits(G)
  if G.redis or G.tasks.shm:room(M.ROOM_PER_OPEN * (G.meter.store:open_holds() + 1)) then
    return true
  end
  return nil, "tasks"
end

--- What the operator reads when a dict has no room: which one, and what to raise.
function M.full(G, name)
  return "the shared dict " .. G.dicts[name] .. " has no room left for more tasks (what the open ones need to end"
    .. " is kept, and its expired entries were freed): raise memory." .. name .. " in the config (README: Sizing"
    .. " one node) and restart"
end

return M
