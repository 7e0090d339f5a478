#!/usr/bin/env bash
# issue 12: a reload cannot change the upstream the nginx conf was written for; one that tries is
# refused, naming the field, and the gateway goes on as it was (spec/nginx/gateway_reload.lua).
set -euo pipefail
exec lua5.4 spec/nginx/gateway_reload.lua
