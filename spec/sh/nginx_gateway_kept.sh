#!/usr/bin/env bash
# Tasks the gateway ended on its own (spec/nginx/gateway_kept.lua): kept holds looked up again
# upstream and settled from the actual result, and ended by a callback after their records
# expired, on one node and over Redis; a found gone task counted once however its callbacks race.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_kept.lua
