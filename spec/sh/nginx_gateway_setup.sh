#!/usr/bin/env bash
# The embedded gateway (examples/nginx) with server.conf included but not http.conf: each of
# its locations answers 503 saying so, and the error log names what to include; and a workers'
# user given by nginx -g 'user ...;' is the one whose journal access the start checks; and
# lua_code_cache off around its handlers stops nginx's start, naming it
# (spec/nginx/gateway_setup.lua).
set -euo pipefail
exec lua5.4 spec/nginx/gateway_setup.lua
