#!/usr/bin/env bash
# Task ends told to clients' callback_urls whose receivers fail at once (spec/nginx/gateway_deliveries.lua):
# their retries keep their schedule on a bounded number of timers, and a worker's queue is
# bounded, its overflow counted in /metrics and logged.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_deliveries.lua
