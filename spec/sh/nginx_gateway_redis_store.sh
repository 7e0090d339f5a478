#!/usr/bin/env bash
# The Redis store's money faults (spec/nginx/gateway_redis_store.lua): credits that configs
# disagree on, a node metering in another unit, and a Redis that lost its data.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_redis_store.lua
