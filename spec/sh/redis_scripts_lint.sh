#!/usr/bin/env bash
# The Lua scripts the gateway runs in Redis are strings to the rest of the code, so the
# repository's luacheck never sees them: each is written out as Redis composes it
# (spec/support/redis_scripts.lua) and checked as Redis's Lua 5.1 with its own globals only (a
# script that sets a global is refused by Redis; an unused local is dead code in a money path).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v luacheck >/dev/null || { echo "luacheck is missing (apt-get install lua-check)"; echo "0 passed, 1 failed"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
lua5.4 spec/support/redis_scripts.lua "$dir" lua/kling/money/stores/memory.lua lua/kling/money/stores/redis.lua lua/kling/gateway/redis_tasks.lua \
  lua/kling/gateway/redis.lua >"$dir/list"
n=$(wc -l <"$dir/list")
if luacheck --no-config --no-color --std lua51 --read-globals redis cjson KEYS ARGV \
    -- $(cat "$dir/list"); then
  echo "$n passed, 0 failed"
else
  echo "0 passed, $n failed"
  exit 1
fi
