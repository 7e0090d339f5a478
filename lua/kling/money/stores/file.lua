--- The ledger's store over an append-only, fsync'd file: the balances in memory, every
-- movement written to the file (kling.journal: write + fsync) before the call returns.
-- The file rebuilds the balances when it is opened again (ledger{lines =} replays them). It
-- may be a file of its own or one the owner shares with records of its own (the batch's
-- journal: each ledger line is then marked with `tag`, e.g. {t = "ledger"}).
-- @module kling.money.stores.file
local memory = require "kling.money.stores.memory"

local M = {}

local Store = setmetatable({}, { __index = memory.Store })
Store.__index = Store
Store.__name = "kling.money.stores.file"

--- A store writing each movement to `journal`.
-- new{journal = kling.journal (open), tag = {field = value} added to each line, clock =}
-- -> store. A movement that cannot be written raises: nothing may move that the file does
-- not hold (its owner stops; the next run replays the file).
---@param opts {journal: table, tag: table|nil, clock: function|nil}
---@return table store
function M.new(opts)
  if type(opts) ~= "table" or type(opts.journal) ~= "table" then
    error("kling.money.stores.file: {journal = an open kling.journal} is required", 2)
  end
  local self = memory.new { clock = opts.clock }
  self.journal, self.tag = opts.journal, opts.tag
  self.replaying = true -- what is replayed at open is already on disk
  return setmetatable(self, Store)
end

-- Replayed history is not written again; new movements are, from the first one on.
function Store:opened()
  self.replaying = false
end

function Store:persist(e)
  if self.replaying then
    return
  end
  local rec = {}
  for k, v in pairs(self.tag or {}) do
    rec[k] = v
  end
  for _, k in ipairs(memory.LINE_FIELDS) do
    rec[k] = e[k]
  end
  local ok, err = self.journal:append(rec)
  if not ok then
    error("kling.money.stores.file: " .. tostring(err), 0)
  end
  memory.Store.persist(self, e)
end

return M
