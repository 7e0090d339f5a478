#!/usr/bin/env bash
# issue 12: the metering gateway attacked from the outside (spec/nginx/gateway_attack.lua):
# credit overruns, other accounts' tasks and keys, input that must stay data.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_attack.lua
