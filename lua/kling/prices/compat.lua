-- The OpenAI-style gateway of seed 004 publishes no prices ("任务结算记录和当前产品价格是最终计费来源":
-- its settlement records and current product prices are the source of truth). Every request is
-- therefore unpriced until the user supplies a catalog (billing.set_catalog("compat", ...)).

return {
  provider = "compat",
  date = "2026-11-21",
  currency = nil,
  source = "seeds/004_c66da0e464f20ba9.txt",
  endpoint_default = "videos/generations",
  defaults = {},
  rules = {
    {
      id = "unpriced",
      match = {},
      unpriced = "seed 004 gives no price: the gateway's settlement records are the source of truth",
    },
  },
}
