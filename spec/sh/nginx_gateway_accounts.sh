#!/usr/bin/env bash
# issue 12: an operator changes a created account without a reload (keys, limits, suspension),
# checked whole before it is written, kept across restarts (spec/nginx/gateway_accounts.lua).
set -euo pipefail
exec lua5.4 spec/nginx/gateway_accounts.lua
