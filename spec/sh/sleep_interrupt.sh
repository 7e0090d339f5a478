#!/usr/bin/env bash
# Ctrl-C during core.sleep_ms (a task's poll sleeps up to poll_max, 15 s by default): the sleep
# ends and Lua raises "interrupted!". It resumed after EINTR instead, holding Ctrl-C off until
# the whole sleep was over. No clock is read here: lua.c's SIGINT handler puts SIGINT back to
# its default action (its SigCgt bit clears) as it sets the hook, so a process seen in
# clock_nanosleep again after that is a sleep that went on past the signal.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${KLING_BUILD_DIR:-$ROOT/build}
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$BUILD/?.so;;"

err=$(mktemp /tmp/kling-sleep-int.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$err"
}
trap cleanup EXIT

lua5.4 -e 'require("kling.core").sleep_ms(86400000)' 2>"$err" &
pid=$!

state() { awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo gone; }
in_sleep() { # in clock_nanosleep (230) or nanosleep (35), x86-64 numbers; another arch: never
  local nr
  read -r nr _ 2>/dev/null <"/proc/$pid/syscall" && { [ "$nr" = 230 ] || [ "$nr" = 35 ]; }
}
sigint_caught() {
  local m
  m=$(awk '/^SigCgt:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
  [ -n "$m" ] && (((16#$m >> 1) & 1))
}

until in_sleep && sigint_caught; do
  case $(state) in Z | gone) echo "FAIL: lua ended before it slept: $(cat "$err")" >&2 && exit 1 ;; esac
  sleep 0.01
done
kill -INT "$pid"
until case $(state) in Z | gone) true ;; *) false ;; esac; do
  if ! sigint_caught && in_sleep; then
    echo "FAIL: core.sleep_ms went back to sleep after SIGINT: Ctrl-C waits for the whole sleep" >&2
    exit 1
  fi
  sleep 0.01
done
status=0
wait "$pid" || status=$?
pid=
if [ "$status" -ne 1 ] || ! grep -q "interrupted!" "$err"; then
  echo "FAIL: after SIGINT: exit status $status, stderr: $(cat "$err")" >&2
  exit 1
fi
echo "1 passed, 0 failed"
