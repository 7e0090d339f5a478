#!/usr/bin/env bash
# Tasks the gateway ended on its own (spec/nginx/gateway_kept.lua): a found gone task counted
# once however its callbacks race.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_kept.lua
