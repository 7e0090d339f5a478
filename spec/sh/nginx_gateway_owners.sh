#!/usr/bin/env bash
# A custom voice stays its client's past retention_days (spec/nginx/gateway_owners.lua): one node
# across restarts, and Redis.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_owners.lua
