#!/usr/bin/env bash
# The curl-loop peer: N tasks driven the way a shell script would, one curl process per
# request, P at a time (xargs -P): every create first, then rounds that poll each unfinished
# task once, a round starting at most every INTERVAL seconds. Uses the simulator's API key
# as the bearer token. Writes {variant, tasks, succeeded, polls, rounds, wall_s} to OUT.
#   bench/curl_loop.sh N SECONDS INTERVAL OUT        (P from BENCH_CURL_P, default 32)
set -euo pipefail
n=$1 seconds=$2 interval=$3 out=$4
par=${BENCH_CURL_P:-32}
sim=${BENCH_SIM:-/tmp/kling-bench/sim.json}
base=$(jq -r .http "$sim")
key=$(jq -r .api_key "$sim")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
t0=$(date +%s.%N)

seq 1 "$n" | xargs -P "$par" -I{} curl -s -w '\n' -X POST -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' \
  -d "{\"model_name\":\"kling-v1\",\"duration\":\"5\",\"prompt\":\"bench curl {} [sim:seconds=$seconds]\"}" \
  "$base/v1/videos/text2video" > "$work/created"
# jq reads the answers as a stream of JSON values: parallel curls may share a line.
jq -r '.data.task_id // empty' "$work/created" | sort > "$work/pending"
created=$(wc -l < "$work/pending")

polls=0 rounds=0 succeeded=0
while [ -s "$work/pending" ]; do
  start=$(date +%s.%N)
  xargs -P "$par" -I{} curl -s -w '\n' -H "Authorization: Bearer $key" "$base/v1/videos/text2video/{}" \
    < "$work/pending" > "$work/answers" || true
  polls=$((polls + $(wc -l < "$work/pending")))
  rounds=$((rounds + 1))
  jq -r 'select(.data.task_status == "succeed" or .data.task_status == "failed") | .data.task_id' \
    "$work/answers" | sort > "$work/done"
  succeeded=$((succeeded + $(jq -r 'select(.data.task_status == "succeed") | 1' "$work/answers" | wc -l)))
  comm -23 "$work/pending" "$work/done" > "$work/pending.next"
  mv "$work/pending.next" "$work/pending"
  left=$(echo "$interval - ($(date +%s.%N) - $start)" | bc -l)
  if [ -s "$work/pending" ] && [ "$(echo "$left > 0" | bc -l)" = 1 ]; then
    sleep "$left"
  fi
done

wall=$(echo "$(date +%s.%N) - $t0" | bc -l)
printf '{"variant":"curl-loop","tasks":%d,"created":%d,"succeeded":%d,"polls":%d,"rounds":%d,"wall_s":%.3f}\n' \
  "$n" "$created" "$succeeded" "$polls" "$rounds" "$wall" > "$out"
