#!/usr/bin/env bash
# One node's shared memory over a long run: ended holds' marks expire with their tasks, and
# `memory` sizes the dicts (spec/nginx/gateway_capacity.lua).
set -euo pipefail
exec lua5.4 spec/nginx/gateway_capacity.lua
