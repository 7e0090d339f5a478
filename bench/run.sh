#!/usr/bin/env bash
# Runs the benchmarks against a fresh simulator on loopback and writes every result (JSON, and
# /usr/bin/time -v output) into $BENCH_DIR/results, then a markdown report (bench/report.lua).
#   bench/run.sh [all|lag|kinds|inflight|inflight-http|inflight-https|rate|slots]
# Env: BUILD (build dir with kling/core.so, default build), BENCH_DIR (default /tmp/kling-bench),
# KLING_API_DIR (where npm installs kling-api, default /tmp/bench-node; outside the repository),
# BENCH_N / BENCH_S (tasks in flight and their seconds, default 10000 / 120),
# BENCH_LAG_TASKS (tasks per variant in the lag run, default 20), XDG_CACHE_HOME (where the engine
# keeps learnt durations across runs, default $BENCH_DIR/cache: remove it for a first run).
# Needs lua5.4, nginx (the simulator), node + npm, curl, jq, bc and /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
only=${1:-all}
build=${BUILD:-build}
work=${BENCH_DIR:-/tmp/kling-bench}
out=$work/results
mkdir -p "$out"
export LUA_PATH="lua/?.lua;lua/?/init.lua;bench/?.lua;./?.lua;;" LUA_CPATH="$build/?.so;;"
export BENCH_SIM=$work/sim.json
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$work/cache}
export KLING_API_DIR=${KLING_API_DIR:-/tmp/bench-node}
if [ ! -d "$KLING_API_DIR/node_modules/kling-api" ]; then
  mkdir -p "$KLING_API_DIR"
  (cd "$KLING_API_DIR" && npm init -y >/dev/null && npm install --no-audit --no-fund kling-api@1.0.0 >/dev/null)
fi
ulimit -n 20000 2>/dev/null || true

# Four workers: kling-api opens one connection per task at once (10,000), and each nginx
# worker holds at most 4096.
lua5.4 bin/kling sim start --dir "$work/sim" --out "$BENCH_SIM" --workers 4 >/dev/null
trap 'lua5.4 bin/kling sim stop --dir "$work/sim" >/dev/null' EXIT
NODE_EXTRA_CA_CERTS=$(jq -r .ca_file "$BENCH_SIM")
export NODE_EXTRA_CA_CERTS
http=$(jq -r .http "$BENCH_SIM")
reset() { curl -s -X POST "$http/_sim/reset" >/dev/null; curl -s -X POST -d '{"max_parallel":0}' "$http/_sim/config" >/dev/null; }
timed() {
  local name=$1
  shift
  echo "$(date +%T) $name" >&2
  /usr/bin/time -v -o "$out/$name.time" "$@"
}

n=${BENCH_N:-10000}
s=${BENCH_S:-120}

if [ "$only" = all ] || [ "$only" = lag ]; then
  # Side by side, at the same time, against the same simulator: tasks of 30-300 s.
  reset
  timed lag-ours lua5.4 bench/lag.lua ours "$out/lag-ours.json" &
  timed lag-ours-learn lua5.4 bench/lag.lua ours-learn "$out/lag-ours-learn.json" &
  for i in 1 3 10; do
    timed "lag-fixed$i" lua5.4 bench/lag.lua fixed "$i" "$out/lag-fixed$i.json" &
  done
  timed lag-kling-api node bench/kling_api.mjs lag "$out/lag-kling-api.json" &
  wait
fi

if [ "$only" = all ] || [ "$only" = kinds ]; then
  # Several kinds, no estimates: learning off and learning on an empty cache side by side,
  # then two runs on the cache the runs before left (new durations of the same kinds).
  reset
  export BENCH_LEARN_FILE=$work/kinds-durations.json
  rm -f "$BENCH_LEARN_FILE"
  timed kinds-backoff lua5.4 bench/kinds.lua backoff "$out/kinds-backoff.json" &
  timed kinds-cold lua5.4 bench/kinds.lua learn "$out/kinds-cold.json" &
  wait
  for seed in 2 3; do
    BENCH_KINDS_SEED=$seed timed "kinds-learnt$seed" lua5.4 bench/kinds.lua learn "$out/kinds-learnt$seed.json"
  done
  unset BENCH_LEARN_FILE
fi

if [ "$only" = all ] || [ "$only" = inflight ] || [ "$only" = inflight-http ]; then
  # One after the other (CPU and RSS are per process; run together they would share the
  # simulator's time), each with every task in flight at once.
  reset
  timed inflight-ours lua5.4 bench/inflight.lua "$n" "$s" "$out/inflight-ours.json"
fi
if [ "$only" = all ] || [ "$only" = inflight ] || [ "$only" = inflight-https ]; then
  # Ours over HTTPS too: kling-api refuses plain HTTP, and TLS costs both sides CPU.
  reset
  BENCH_HTTPS=1 timed inflight-ours-https lua5.4 bench/inflight.lua "$n" "$s" "$out/inflight-ours-https.json"
fi
if [ "$only" = all ] || [ "$only" = inflight ]; then
  reset
  timed inflight-kling-api node bench/kling_api.mjs inflight "$n" "$s" "$out/inflight-kling-api.json"
  reset
  timed inflight-curl bench/curl_loop.sh "$n" "$s" 3 "$out/inflight-curl.json"
fi

if [ "$only" = all ] || [ "$only" = rate ]; then
  # Flat out: every task polled every 0.25 s for 30 s, far more than the simulator answers.
  reset
  timed rate-ours lua5.4 bench/inflight.lua "$n" 600 "$out/rate-ours.json" 0.25 30
fi

if [ "$only" = all ] || [ "$only" = slots ]; then
  reset
  timed slots-ours lua5.4 bench/slots.lua 1000 20 2 "$out/slots-ours.json"
  reset
  timed slots-ours-learn lua5.4 bench/slots.lua 1000 20 2 "$out/slots-ours-learn.json" learn
fi

lua5.4 bench/report.lua "$out" > "$out/report.md"
cat "$out/report.md"
