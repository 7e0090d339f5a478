-- wrk script (bench/gateway/journal.lua): one create per request; one in ten asks the
-- simulator to fail its task (ended, released), the rest succeed.
local sent = 0
local key = os.getenv("GW_KEY") or "bench-key"

request = function() -- luacheck: ignore 111 (wrk's global)
  sent = sent + 1
  local prompt = sent % 10 == 0 and "a kite [sim:fail=the kite flew away]" or "a paper boat on a rain-soaked street"
  return wrk.format("POST", "/v1/videos/text2video", { ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key },
    '{"model_name":"kling-v1","mode":"std","duration":"5","prompt":"' .. prompt .. '"}')
end
