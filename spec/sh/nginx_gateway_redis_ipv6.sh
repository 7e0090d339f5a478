#!/usr/bin/env bash
# A Redis store at an IPv6 address (spec/nginx/gateway_redis_ipv6.lua): redis://[::1]:PORT/0.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_redis_ipv6.lua
