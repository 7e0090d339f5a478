#!/usr/bin/env bash
# issue 10: the lifecycle scenarios through the OpenResty runner (the gateway's create handler,
# poller and callback location on the lifecycle machine) inside real nginx, against a
# simulator of its own (spec/nginx/lifecycle_resty.lua).
set -euo pipefail
exec lua5.4 spec/nginx/lifecycle_resty.lua
