#!/usr/bin/env bash
# issue 12.2: the metering gateway killed with SIGKILL mid-load and restarted from its journal,
# embedded (twice) and as `kling gateway start` runs it, creates by proxy_pass (three times, at
# random moments) (spec/nginx/gateway_crash.lua): no task, reservation or spend lost; the ledger
# equals the simulator's.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_crash.lua
