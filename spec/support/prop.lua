-- What the seeded property tests share: the seed, a small deterministic PRNG (an LCG, so that
-- a failure replays from the seed its message names) and a pick from a list.
local M = {}

M.SEED = 20261203

-- rng(seed) -> r, where r(n) is a whole number from 1 to n.
function M.rng(seed)
  local s = seed
  return function(n)
    s = (s * 1103515245 + 12345) % 2147483648
    return s % n + 1
  end
end

-- pick(r, list) -> one element of list, chosen by r.
function M.pick(r, list)
  return list[r(#list)]
end

return M
