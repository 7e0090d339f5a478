#!/usr/bin/env bash
# Ctrl-C (SIGINT to a real bin/kling process) during `kling run` and `kling storyboard`, with a
# task at the simulator: one line "kling CMD: interrupted; ... run the same command again to
# resume" on stderr, no Lua location or traceback, exit status 130 (as a shell reports SIGINT);
# the same command again finishes without a second create.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${KLING_BUILD_DIR:-$ROOT/build}
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$BUILD/?.so;;"

work=$(mktemp -d /tmp/kling-int.XXXXXX)
chmod 755 "$work"
sim="$work/sim"
cleanup() {
  lua5.4 bin/kling sim stop --dir "$sim" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

lua5.4 bin/kling sim start --dir "$sim" --out "$work/sim.json" --task-seconds 4 >/dev/null
base=$(SIM_JSON="$work/sim.json" lua5.4 -e \
  'local f = assert(io.open(os.getenv("SIM_JSON"))); print(require("kling.json").decode(f:read("a")).http)')
export KLING_PROVIDER=kling KLING_BASE_URL=$base KLING_ACCESS_KEY=kling-sim-access-key \
  KLING_SECRET_KEY=kling-sim-secret-key
unset KLING_API_KEY

creates() {
  curl -sf "$base/_sim/stats" | lua5.4 -e 'print(require("kling.json").decode(io.read("a")).creates)'
}

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# interrupt NAME FILE CMD...: runs CMD, sends SIGINT once FILE (its journal) records a create,
# and checks what the user sees.
interrupt() {
  local name=$1 file=$2
  shift 2
  "$@" 2>"$work/stderr" >/dev/null & pid=$!
  for _ in $(seq 1 500); do
    grep -q '"created"' "$file" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  sleep 0.3
  kill -INT "$pid" 2>/dev/null || fail "$name ended before it could be interrupted"
  status=0
  wait "$pid" || status=$?
  [ "$status" -eq 130 ] || fail "$name: exit status $status after SIGINT (expected 130)"
  local last
  last=$(grep -v '^segment ' "$work/stderr" || true)
  case "$last" in
    "kling $name: interrupted; "*"run the same command again to resume") ;;
    *) fail "$name: after SIGINT stderr says: $(cat "$work/stderr")" ;;
  esac
  if grep -qE '\.lua:[0-9]+:|traceback' "$work/stderr"; then
    fail "$name: a Lua location or traceback on stderr: $(cat "$work/stderr")"
  fi
}

printf '{"id":"a","model":"kling-v1","mode":"std","duration":5,"prompt":"one"}\n' > "$work/m.jsonl"
run=(lua5.4 bin/kling run "$work/m.jsonl" --out "$work/out" --quiet --poll-min 0.2 --poll-max 0.5)
interrupt run "$work/out/journal.jsonl" "${run[@]}"
"${run[@]}" || fail "kling run after the interrupt exited $?"

echo '[{"prompt": "a fox wakes", "duration": 5}]' > "$work/fox.json"
story=(lua5.4 bin/kling storyboard "$work/fox.json" --out "$work/sb" --poll-min 0.2 --poll-max 0.5)
interrupt storyboard "$work/sb/storyboard.jsonl" "${story[@]}"
"${story[@]}" >/dev/null 2>&1 || fail "kling storyboard after the interrupt exited $?"

n=$(creates)
[ "$n" -eq 2 ] || fail "the simulator made $n tasks for one row and one segment (expected 2: none twice)"

[ "$failures" -eq 0 ] || exit 1
echo "cli interrupt: kling run and kling storyboard exit 130 with one line, resume without a second create"
