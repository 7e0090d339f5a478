-- A fresh node's /metrics writes its counters' known series at 0, before their first event:
-- they were left out until then, and rate() and alerts on them (a refusal by each reason, the
-- creates forwarded, a store's errors by stage) saw no series. One node and a Redis store.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"

local fleet = h.fleet("gateway-metrics-zero")
local sim

local function config(http)
  return {
    upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key },
    admin_key = "admin-0123456789abcdef", callback_url = http .. "/kling/callback", insecure_callbacks = true,
    accounts = { { name = "ivy", api_key = "gw-ivy-key", credit = "10" } },
  }
end

local REASONS = { "auth", "balance", "open", "failed_daily", "suspended", "upstream_paused", "upstream_slots",
  "validation", "upstream", "capacity", "store" }

-- The value of one series in a scrape's text, nil when absent.
local function value(text, series)
  return tonumber(text:match("\n" .. series:gsub("[%p]", "%%%0") .. " ([%d.e+-]+)\n"))
end

local function zeros(text, series)
  local missing = {}
  for _, s in ipairs(series) do
    if value(text, s) ~= 0 then
      missing[#missing + 1] = s
    end
  end
  return missing
end

local function common()
  local out = { "kling_gateway_creates_forwarded_total", "kling_gateway_gone_found_total",
    "kling_gateway_callbacks_dropped_total" }
  for _, r in ipairs(REASONS) do
    out[#out + 1] = 'kling_gateway_refusals_total{reason="' .. r .. '"}'
  end
  for _, op in ipairs { "create", "poll", "lookup" } do
    out[#out + 1] = 'kling_gateway_upstream_seconds_count{op="' .. op .. '"}'
    out[#out + 1] = 'kling_gateway_upstream_seconds_sum{op="' .. op .. '"}'
    out[#out + 1] = 'kling_gateway_upstream_seconds_bucket{op="' .. op .. '",le="+Inf"}'
  end
  return out
end

local function run()
  sim = h.sim_start(fleet.sim_dir)
  local one = fleet.start("one", config)
  local text = h.request("GET", one .. "/metrics").body or ""
  local want = common()
  want[#want + 1] = 'kling_gateway_refusals_total{reason="journal"}'
  want[#want + 1] = "kling_gateway_journal_errors_total"
  local missing = zeros(text, want)
  h.check("one node, fresh: every known counter series is written at 0", #missing == 0, table.concat(missing, " "))

  local redis = fleet.start("redis", config, fleet.redis_store())
  text = h.request("GET", redis .. "/metrics").body or ""
  want = common()
  want[#want + 1] = "kling_gateway_store_round_trips_total"
  want[#want + 1] = 'kling_gateway_store_errors_total{stage="call"}'
  missing = zeros(text, want)
  h.check("redis store, fresh: every known counter series is written at 0", #missing == 0, table.concat(missing, " "))
  h.check("redis store: no journal reason (it has no journal)", not text:find('reason="journal"', 1, true))

  -- A counted one is the count, not 0 (the zeros are only for what was not counted).
  h.request("POST", one .. "/v1/videos/text2video", { headers = { authorization = "Bearer nobody-key" },
    body = { model_name = "kling-v1", prompt = "a kite" } })
  -- (another worker's count reaches the dict within its flush, a second: waited for)
  local by = h.now() + 30
  repeat
    text = h.request("GET", one .. "/metrics").body or ""
    if value(text, 'kling_gateway_refusals_total{reason="auth"}') == 0 then
      h.sleep(0.2)
    end
  until value(text, 'kling_gateway_refusals_total{reason="auth"}') ~= 0 or h.now() > by
  h.check("one node: a refusal counted is 1", value(text, 'kling_gateway_refusals_total{reason="auth"}') == 1,
    text:match('[^\n]*reason="auth"[^\n]*'))
end

h.main(run, function() return nil end, fleet.cleanup)
