#!/usr/bin/env bash
# The gateway against a peer that speaks of another task: an upstream's create answer about
# another create, a callback about an upstream task the record does not have
# (spec/nginx/gateway_peers.lua).
set -euo pipefail
exec lua5.4 spec/nginx/gateway_peers.lua
