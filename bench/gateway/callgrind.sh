#!/usr/bin/env bash
# Instructions a metered create costs in the gateway: its nginx as `kling gateway start` writes it,
# run as one process (master_process off) under callgrind, beside a simulator of its own; creates
# for WARM_SECONDS to compile the JIT's traces, counters zeroed, then exactly CREATES creates.
# Instruction counts move far less with the machine's load than times (bench/gateway/README.md).
#   bench/gateway/callgrind.sh   (env: BUILD=build, WARM_SECONDS=5, CREATES=3000, KEEP=<file for the dump>)
# Needs valgrind, wrk, nginx with its Lua module, lua5.4, curl, jq.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)
export KLING_JIT_BUILD_DIR=$src/${BUILD:-build}/jit
creates=${CREATES:-3000}
[ -f "$KLING_JIT_BUILD_DIR/kling/core.so" ] || { echo "no LuaJIT build at $KLING_JIT_BUILD_DIR"; exit 1; }
for c in valgrind callgrind_control wrk jq curl; do
  command -v "$c" >/dev/null || { echo "$c is missing (apt-get install valgrind wrk jq curl)"; exit 1; }
done
# shellcheck source=bench/gateway/lib.sh
. bench/gateway/lib.sh
vpid=""
cleanup() {
  [ -n "$vpid" ] && kill -QUIT "$vpid" 2>/dev/null && sleep 1
  [ -n "$vpid" ] && kill -KILL "$vpid" 2>/dev/null || true
  bench_cleanup
}
trap cleanup EXIT
gateway_conf callgrind # the conf kling gateway start writes (the config checked); the run itself is ours
sed 's|^worker_processes 1;|worker_processes 1; master_process off;|' "$work/gw/nginx.conf" > "$work/gw/callgrind.conf"
grep -q "master_process off" "$work/gw/callgrind.conf"
out="$work/callgrind.out"
setsid valgrind --tool=callgrind --smc-check=all-non-file --callgrind-out-file="$out" \
  nginx -p "$work/gw" -c "$work/gw/callgrind.conf" -g 'daemon off;' >"$work/valgrind.log" 2>&1 </dev/null &
vpid=$!
up=""
for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$port/gateway/health" && up=1 && break; sleep 0.2; done
[ -n "$up" ] || { echo "the gateway under callgrind did not answer in 60 s:"; tail -20 "$work/valgrind.log"; exit 1; }
url="http://127.0.0.1:$port/v1/videos/text2video"
# The warm-up by wrk; the counted creates by one curl, one after another on one kept-alive
# connection, so that the dump follows the last answer at once (wrk waits out its duration, and an
# idle gateway's timers would be counted too).
GW_KEY=bench-key wrk -t1 -c4 -d"${WARM_SECONDS:-5}s" -s bench/gateway/create.lua "$url" >/dev/null
body=$(lua5.4 -e 'wrk = { headers = {} }; dofile("bench/gateway/create.lua"); io.write(wrk.body)')
{
  echo 'header = "Content-Type: application/json"'
  echo 'header = "Authorization: Bearer bench-key"'
  printf 'data = "%s"\n' "$(sed 's/"/\\"/g' <<<"$body")"
  echo 'write-out = "%{http_code}\\n"'
  for _ in $(seq 1 "$creates"); do echo "url = \"$url\""; echo 'output = "/dev/null"'; done
} > "$work/curl.cfg"
callgrind_control -z "$vpid" >/dev/null 2>&1
codes=$(curl -s --config "$work/curl.cfg")
callgrind_control -d "$vpid" >/dev/null 2>&1
n=$(grep -c '^200$' <<<"$codes" || true)
total=$(grep -c . <<<"$codes" || true)
dump=$(ls -t "$out".* | head -1)
ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
echo "creates $n answered 200 of $total, instructions $ir, a create $((ir / (n > 0 ? n : 1)))"
[ -n "${KEEP:-}" ] && cp "$dump" "$KEEP" && echo "dump kept in $KEEP (callgrind_annotate $KEEP)"
exit 0
