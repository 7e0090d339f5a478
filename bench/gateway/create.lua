-- wrk script: one official create (kling-v1 std 5 s, 1 CNY at seed 000's prices) per request.
-- The gateway authenticates the client's key; the plain proxy_pass location replaces it with
-- the simulator's.
wrk.method = "POST"
wrk.body = '{"model_name":"kling-v1","mode":"std","duration":"5","prompt":"a paper boat on a rain-soaked street"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("GW_KEY") or "bench-key")
