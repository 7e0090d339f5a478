#!/usr/bin/env bash
# kling.resty inside real nginx against a simulator of its own (spec/nginx/resty.lua): the
# client in content, access and timer contexts, TLS, keep-alive, the HTTP client's edge
# cases, retries, and clear errors in phases without cosockets.
set -euo pipefail
exec lua5.4 spec/nginx/resty.lua
