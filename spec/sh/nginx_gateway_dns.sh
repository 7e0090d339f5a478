#!/usr/bin/env bash
# issue 12.1: callback hosts named by clients are resolved by the gateway itself and their
# addresses checked before the connection (spec/nginx/gateway_dns.lua, a name server of its own).
set -euo pipefail
exec lua5.4 spec/nginx/gateway_dns.lua
