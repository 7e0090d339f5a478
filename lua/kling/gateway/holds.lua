-- An operator ends a hold the gateway kept on purpose. A task whose end was not seen by the
-- gateway's deadline may have been billed upstream: it ends with its hold kept (never a charge
-- nor a release it cannot know), until someone who reads the upstream's bill says what it
-- cost. The admin API's routes:
--   GET  /gateway/admin/holds?cursor=&count= the kept holds, a page at a time
--   POST /gateway/admin/tasks/<id>/settle    {"amount": "1.50"}: charged that (at most its hold)
--   POST /gateway/admin/tasks/<id>/release   {}: charged nothing
-- Only a hold no end decided: an open task's is its own end's to move, and one whose end
-- settled or released it (rec.charge) is being moved (retried, or the sweep's). A hold that
-- outlived its task's record (kept past retention_days: only a callback's end may still come,
-- kling.gateway.track expired_end) is the operator's too: the hold alone says whose it is and
-- how much.
local core = require "kling.core"
local json = require "kling.json"
local track = require "kling.gateway.track"

local M = {}

-- The 503 of a store that cannot say now.
local function unreadable(id, err)
  ngx.log(ngx.ERR, "kling gateway: hold of ", id, ": ", tostring(err))
  return 503, "the task's record or hold cannot be read now (is the store up?)"
end

-- end_hold(G, id, how, micros) -> 200, {task_id, account, held, charged} | status, message, field.
-- how: "settle" (micros, the charge) or "release".
function M.end_hold(G, id, how, micros)
  local rec, final = G.tasks:get(id)
  if rec == false then
    return unreadable(id, final)
  elseif rec and not final then
    return 409, "task " .. id .. " has not ended: its end moves its money"
  end
  local account, held, herr = G.meter:hold(id)
  if herr then
    return unreadable(id, herr)
  elseif not account then
    return rec and 409 or 404, rec and ("task " .. id .. " holds nothing: its money moved already")
      or ("no task " .. id .. ", and no hold of that name")
  elseif rec and rec.charge ~= nil then
    return 409, "task " .. id .. " ended with its money decided (" .. tostring(rec.charge) .. "): it is being moved"
  elseif how == "settle" and micros > held then
    return 400, "amount: at most the task's hold, " .. core.money_format(held) .. " (the most it was allowed to cost)",
      "amount"
  end
  -- moved by the runner that moves every end's money (kling.gateway.track)
  local e, err = track.end_kept(G, id, rec, how, micros, "operator")
  if not e then
    local store = err and (err.field == "store" or err.kind == "server") -- cannot be reached now
    ngx.log(store and ngx.ERR or ngx.WARN, "kling gateway: hold of ", id, ": ", tostring(err))
    return store and 503 or 409, store and ("the ledger cannot be written now (nothing moved): "
      .. tostring(err and err.message))
      or ("task " .. id .. ": " .. tostring(err and err.message))
  end
  local charged = core.money_format(how == "settle" and micros or 0)
  ngx.log(ngx.NOTICE, "kling gateway: the operator ", how == "settle" and "settled" or "released", " the hold of ",
    id, " (", account, ", ", core.money_format(held), " held): charged ", charged)
  return 200, { task_id = id, account = account, held = core.money_format(held), charged = charged,
    record = rec and "amended" or "expired" }
end

M.PAGE, M.PAGE_MAX = 100, 1000

-- page(G, cursor, count) -> 200, {holds = [{task_id, account, held, record = "ended" |
-- "expired", status, message, updated_at}], cursor = the next page's | nil (the last)} |
-- status, message. The holds an operator may end, in the order the gateway kept them; an
-- entry whose hold is gone (ended meanwhile, on another node) is dropped from the list.
function M.page(G, cursor, count)
  if G.redis then -- a store this node refuses (reset, gone back in time, another unit) lists nothing
    local ok, why = G.meter.store:check()
    if not ok then
      ngx.log(ngx.ERR, "kling gateway: the kept holds: ", tostring(why))
      return 503, "the kept holds cannot be read now: " .. tostring(why)
    end
  end
  local next_cursor, ids = G.tasks:kept_page(cursor, count)
  if not next_cursor then
    return unreadable("the kept list", ids)
  end
  local out = json.array {}
  for _, id in ipairs(ids) do
    local account, held, herr = G.meter:hold(id)
    local rec, final = G.tasks:get(id)
    if herr or rec == false then
      return unreadable(id, herr or final)
    elseif not account then
      G.tasks:unkeep(id)
    else
      out[#out + 1] = { task_id = id, account = account, held = core.money_format(held),
        record = rec and "ended" or "expired", status = rec and rec.status, message = rec and rec.message,
        updated_at = rec and rec.updated_at }
    end
  end
  return 200, { holds = out, cursor = next_cursor ~= "0" and next_cursor or nil }
end

return M
