#!/usr/bin/env bash
# A Redis node's reload: a file account the store opened before signs in while the reload's
# check of the whole file waits for Redis; one the reload adds waits for its own open
# (spec/nginx/gateway_redis_reload.lua).
set -euo pipefail
exec lua5.4 spec/nginx/gateway_redis_reload.lua
