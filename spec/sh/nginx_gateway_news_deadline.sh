#!/usr/bin/env bash
# A callback's news never carries a task past its deadline (spec/nginx/gateway_news_deadline.lua):
# one node's store and the Redis store.
set -euo pipefail
exec lua5.4 spec/nginx/gateway_news_deadline.lua
