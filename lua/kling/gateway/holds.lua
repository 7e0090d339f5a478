-- An operator ends a hold the gateway kept on purpose. A task whose end was not seen by the
-- gateway's deadline may have been billed upstream: it ends with its hold kept (never a charge
-- nor a release it cannot know), until someone who reads the upstream's bill says what it
-- cost. The admin API's routes:
--   POST /gateway/admin/tasks/<id>/settle    {"amount": "1.50"}: charged that (at most its hold)
--   POST /gateway/admin/tasks/<id>/release   {}: charged nothing
-- Only an ended task's hold: an open one is its own end's to move.
local core = require "kling.core"

local M = {}

-- end_hold(G, id, how, micros) -> 200, {task_id, account, held, charged} | status, message, field.
-- how: "settle" (micros, the charge) or "release".
function M.end_hold(G, id, how, micros)
  local rec, final = G.tasks:get(id)
  if rec == false then
    ngx.log(ngx.ERR, "kling gateway: hold of ", id, ": ", tostring(final))
    return 503, "the task's record cannot be read now (is the store up?)"
  elseif not rec then
    return 404, "no task " .. id
  elseif not final then
    return 409, "task " .. id .. " has not ended: its end moves its money"
  end
  local account, held = G.meter:hold(id)
  if not account then
    return 409, "task " .. id .. " holds nothing: its money moved already"
  elseif how == "settle" and micros > held then
    return 400, "amount: at most the task's hold, " .. core.money_format(held) .. " (the most it was allowed to cost)",
      "amount"
  end
  local info = { task_id = rec.upstream_id }
  local e, err
  if how == "settle" then
    e, err = G.meter:settle(id, micros, info)
  else
    e, err = G.meter:release(id, info)
  end
  if not e then
    local store = err and (err.field == "store" or err.kind == "server") -- cannot be reached now
    ngx.log(store and ngx.ERR or ngx.WARN, "kling gateway: hold of ", id, ": ", tostring(err))
    return store and 503 or 409, store and "the ledger cannot be written now (nothing moved)"
      or ("task " .. id .. ": " .. tostring(err and err.message))
  end
  -- The record shows the client what was decided. The money is the ledger's, journaled; on one
  -- node the record's new text is the shared memory's only (after a restart: as it ended).
  local charged = core.money_format(how == "settle" and micros or 0)
  rec.charge = charged
  rec.message = (rec.message and (rec.message .. "; ") or "") .. (how == "settle" and ("charged " .. charged)
    or "released") .. " by the gateway's operator"
  local ok, aerr = G.tasks:amend(rec)
  if not ok then
    ngx.log(ngx.WARN, "kling gateway: record of ", id, " not amended: ", tostring(aerr))
  end
  return 200, { task_id = id, account = account, held = core.money_format(held), charged = charged }
end

return M
