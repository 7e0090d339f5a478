#!/usr/bin/env bash
# A fresh node's /metrics writes its known counter series at 0 (spec/nginx/gateway_metrics_zero.lua).
set -euo pipefail
exec lua5.4 spec/nginx/gateway_metrics_zero.lua
