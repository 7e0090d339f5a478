#!/usr/bin/env bash
# issue 10: the engine (submit_many, wait_all, cancel) inside real nginx over the resty driver's
# asynchronous seam, against a simulator of its own (spec/nginx/engine.lua): in a handler and
# in a timer, the ledger settled exactly, cancel leaving no socket, the worker responsive.
set -euo pipefail
exec lua5.4 spec/nginx/engine.lua
