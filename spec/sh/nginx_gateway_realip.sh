#!/usr/bin/env bash
# The operators' routes answer the TCP peer on loopback, never an address a header gives through
# nginx's realip module (spec/nginx/gateway_realip.lua).
set -euo pipefail
exec lua5.4 spec/nginx/gateway_realip.lua
