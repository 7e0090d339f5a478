#!/usr/bin/env bash
# The metering gateway of examples/nginx in real nginx (one worker) against a simulator of
# its own (spec/nginx/gateway.lua): refusals before forwarding, no blocking during a 5 s
# upstream stall, a mixed run reconciled with the simulator's ledger, callbacks, a reload
# and a restart that keep the ledger.
set -euo pipefail
exec lua5.4 spec/nginx/gateway.lua
