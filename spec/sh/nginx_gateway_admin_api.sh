#!/usr/bin/env bash
# The admin API's faults (spec/nginx/gateway_admin_api.lua): on one node and with a Redis store.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_admin_api.lua
