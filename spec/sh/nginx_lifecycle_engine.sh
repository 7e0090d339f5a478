#!/usr/bin/env bash
# issue 10: the lifecycle scenarios through the engine inside real nginx over the resty driver
# (the OpenResty runner), against a simulator of its own (spec/nginx/engine_scenarios.lua):
# the same end and ledger lines as the machine alone and as the engine over libcurl; then the
# blocking runner's rows (client:submit, task:wait) inside nginx the same way.
set -euo pipefail
exec lua5.4 spec/nginx/engine_scenarios.lua
