#!/usr/bin/env bash
# A node's readiness (spec/nginx/gateway_ready.lua): kling gateway start waits for GET
# /gateway/ready, and says why when the node's Redis store cannot be read yet.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_ready.lua
