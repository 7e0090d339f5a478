#!/usr/bin/env bash
# issue 12.2: the metering gateway killed with SIGKILL mid-load, twice, and restarted from its
# journal (spec/nginx/gateway_crash.lua): no task, reservation or spend lost; the ledger equals
# the simulator's.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_crash.lua
