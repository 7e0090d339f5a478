#!/usr/bin/env bash
# The upstream's parallel slots learned from a 1303: creates refused by the gateway itself
# while as many tasks are open, on one node and across two nodes of a Redis store
# (spec/nginx/gateway_slots.lua).
set -euo pipefail
exec lua5.4 spec/nginx/gateway_slots.lua
