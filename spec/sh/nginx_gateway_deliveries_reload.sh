#!/usr/bin/env bash
# Client callbacks waiting for their retries across a reload (spec/nginx/gateway_deliveries_reload.lua):
# the exiting worker hands them off and the new one delivers them.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_deliveries_reload.lua
