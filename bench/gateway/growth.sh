#!/usr/bin/env bash
# What a metered create costs the gateway's worker as open tasks pile up: one gateway (the conf
# `kling gateway start` writes, one worker, its poller on), RUNS consecutive runs of wrk's creates
# (SECONDS_EACH each; the simulator's tasks never end), each printing the worker's CPU per create
# and its Lua heap after; before them, the bytes a create allocates (the collector stopped over
# one second of creates). INIT: Lua run first in init_worker (an experiment: a collector setting,
# say). A location `/_gc` is added to a copy of the conf for the heap's figures.
#   bench/gateway/growth.sh    (env: BUILD=build, RUNS=4, SECONDS_EACH=4, INIT=)
# Needs wrk, nginx with its Lua module, lua5.4, curl, jq.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=bench/gateway/lib.sh
. bench/gateway/lib.sh
jit_build
trap bench_cleanup EXIT
gateway_conf growth
INIT="${INIT:-}" lua5.4 - "$work/gw/nginx.conf" "$work/gw/growth.conf" <<'LUA'
local conf = assert(io.open(arg[1])):read("a")
local gc = '    location = /_gc { content_by_lua_block { if ngx.var.arg_op then collectgarbage(ngx.var.arg_op) end'
  .. ' ngx.say(collectgarbage("count")) } }\n'
local at = assert(conf:find("    location = /metrics ", 1, true), "no /metrics location in the conf")
conf = conf:sub(1, at - 1) .. gc .. conf:sub(at)
local init = os.getenv("INIT")
if init ~= "" then
  local n
  conf, n = conf:gsub("init_worker_by_lua_block {", function(s) return s .. " " .. init .. " " end, 1)
  assert(n == 1, "no init_worker_by_lua_block in the conf")
end
assert(io.open(arg[2], "w")):write(conf)
LUA
gateway_nginx "$work/gw/growth.conf"
wpid=$(pgrep -P "$npid" | head -1)
url="http://127.0.0.1:$port/v1/videos/text2video"
gc() { curl -fs "http://127.0.0.1:$port/_gc${1:+?op=$1}"; }
ticks() { awk '{print $14 + $15}' "/proc/$wpid/stat"; }
GW_KEY=bench-key wrk -t2 -c32 -d2s -s bench/gateway/create.lua "$url" >/dev/null # the JIT's traces
reset_sim
gc collect >/dev/null
a0=$(gc stop)
n=$(GW_KEY=bench-key wrk -t1 -c4 -d1s -s bench/gateway/create.lua "$url" | awk '/requests in/ {print $1}')
a1=$(gc restart)
awk -v a="$a0" -v b="$a1" -v n="$n" 'BEGIN {printf "allocated a create: %.0f bytes (over %d creates)\n", (b - a) * 1024 / n, n}'
hz=$(getconf CLK_TCK)
for r in $(seq 1 "${RUNS:-4}"); do
  # In pieces of at most 2 s, the simulator reset before each: it fills at about 43,000 tasks
  # (lib.sh sim_answered_all), about 3 s of creates here; the gateway keeps every one.
  t0=$(ticks)
  n=0 left=${SECONDS_EACH:-4}
  while [ "$left" -gt 0 ]; do
    piece=$((left < 2 ? left : 2))
    reset_sim
    n=$((n + $(GW_KEY=bench-key wrk -t2 -c32 -d"${piece}s" -s bench/gateway/create.lua "$url" | awk '/requests in/ {print $1}')))
    sim_answered_all
    left=$((left - piece))
  done
  t1=$(ticks)
  awk -v r="$r" -v n="$n" -v t="$((t1 - t0))" -v hz="$hz" -v heap="$(gc)" \
    'BEGIN {printf "run %d: %d creates, worker CPU %.1f us a create, Lua heap after %.0f KB\n", r, n, t * 1e6 / hz / n, heap}'
done
