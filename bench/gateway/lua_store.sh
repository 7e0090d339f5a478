#!/usr/bin/env bash
# What the shared dicts cost a metered create, against a store in the worker's own Lua heap
# (lua_store.lua: every ngx.shared dict replaced by Lua tables, one worker): the bench gateway
# (lib.sh) run with its conf as `kling gateway start` writes it and with the tables installed,
# alternated, each on a fresh journal and a reset simulator; prints req/s and the worker's CPU
# per create of each run.
#   bench/gateway/lua_store.sh   (env: BUILD=build, RUNS=2, SECONDS_EACH=3)
# Needs wrk, nginx with its Lua module, lua5.4, curl, jq.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=bench/gateway/lib.sh
. bench/gateway/lib.sh
jit_build
trap bench_cleanup EXIT
gateway_conf lua-store
here=$PWD/bench/gateway
sed "s|init_by_lua_block { |init_by_lua_block { package.path = \"$here/?.lua;\" .. package.path; require(\"lua_store\").install(); |" \
  "$work/gw/nginx.conf" > "$work/gw/lua_store.conf"
grep -q 'require("lua_store")' "$work/gw/lua_store.conf"
url="http://127.0.0.1:$port/v1/videos/text2video"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
one() { # conf
  gateway_nginx "$work/gw/$1"
  GW_KEY=bench-key wrk -t2 -c32 -d2s -s bench/gateway/create.lua "$url" >/dev/null # the JIT's traces
  reset_sim
  local w t0 out n rps
  w=$(pgrep -P "$npid" | head -1)
  t0=$(ticks "$w")
  out=$(GW_KEY=bench-key wrk -t2 -c32 -d"${SECONDS_EACH:-3}s" -s bench/gateway/create.lua "$url")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  printf '%-16s %10s req/s %6.1f us a create\n' "$1" "$rps" \
    "$(echo "($(ticks "$w") - $t0) * 1000000 / $(getconf CLK_TCK) / $n" | bc -l)"
  sim_answered_all
  kill -QUIT "$npid"
  wait "$npid" 2>/dev/null || true
  npid=
  rm -f "$work"/journal/*
  reset_sim
}
for _ in $(seq 1 "${RUNS:-2}"); do
  one nginx.conf
  one lua_store.conf
done
