-- wrk script: one task query per request (GET <path>, path given by the command line URL).
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("GW_KEY") or "bench-key")
