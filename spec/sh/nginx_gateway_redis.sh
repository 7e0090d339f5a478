#!/usr/bin/env bash
# issue 12.5: three gateway nodes on one Redis (spec/nginx/gateway_redis.lua): the exact cap of
# 2,000 concurrent creates over the nodes, then kill -9 of a node and a Redis restart mid-run.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_redis.lua
