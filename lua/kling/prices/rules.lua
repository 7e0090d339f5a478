-- The shapes of price rules the catalogs here share, spelt once (a catalog stays data: these
-- only build its rules). Not a catalog itself.
local M = {}

-- The 5 s / 10 s tiers: the asked duration must be one of them; a delivered clip is rounded
-- half up to whole seconds before its tier is found (a 5.041 s clip is the 5 s clip).
function M.tiers(five, ten)
  return {
    kind = "tiered", round = "half_up",
    tiers = { { seconds = 5, price = five }, { seconds = 10, price = ten } },
  }
end

-- rule(id, match, price) -> a rule: its id and match, and the fields of price.
function M.rule(id, match, price)
  local r = { id = id, match = match }
  for k, v in pairs(price) do
    r[k] = v
  end
  return r
end

return M
