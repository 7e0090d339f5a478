#!/usr/bin/env bash
# The upstream's end of a task the gateway ended with its hold kept settles it from the actual
# result, once (spec/nginx/gateway_late_end.lua): one node's store and the Redis store.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_late_end.lua
