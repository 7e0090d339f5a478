#!/usr/bin/env bash
# issue 12.2: two single-node gateways (no `store`) on one journal each metered the same credit
# in their own shared memory (a client spent it twice). The journal is locked by the gateway
# that started first: a second one refuses to start, naming the journal and the holder's pid; a
# reload (HUP) of the first keeps the lock and serves; once the first is stopped (or all its
# processes are killed with kill -9), the second starts with the first's spend replayed.
set -euo pipefail
kling() { lua5.4 bin/kling "$@"; }
fails=0
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fails=$((fails + 1)); fi; }
T=$(mktemp -d /tmp/kling-gateway-journal-lock.XXXXXX)
chmod 755 "$T"
cleanup() {
  for d in a b; do kling gateway stop --dir "$T/$d" >/dev/null 2>&1 || true; done
  for p in ${orphans:-}; do kill -9 "$p" 2>/dev/null || true; done
  if [ -n "${daemon_pid:-}" ]; then kill -QUIT "$daemon_pid" 2>/dev/null || true; fi
  kling sim stop --dir "$T/sim" >/dev/null 2>&1 || true
  if [ "$fails" = 0 ]; then rm -rf "$T"; fi
}
trap cleanup EXIT
mkdir -p "$T/journal"
if [ "$(id -u)" = 0 ]; then chown nobody "$T/journal"; fi
sim=$(kling sim start --dir "$T/sim")
sim_http=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' <<<"$sim" | sed 's/\\//g')
access=$(sed -n 's/.*"access_key":"\([^"]*\)".*/\1/p' <<<"$sim")
secret=$(sed -n 's/.*"secret_key":"\([^"]*\)".*/\1/p' <<<"$sim")
JOURNAL="$T/journal/ledger.jsonl"
# One create (kling-v1, std, 5 s) is held at 1 (the catalog's price): credit for two.
cat > "$T/cfg.json" <<JSON
{"upstream": {"provider": "kling", "base_url": "$sim_http", "access_key": "$access", "secret_key": "$secret"},
 "journal": "$JOURNAL", "poll": {"min_interval": 0.3, "max_interval": 0.5},
 "accounts": [{"name": "alice", "api_key": "gw-alice", "credit": "2"}]}
JSON
url_of() { sed -n 's/.*"http":"\([^"]*\)".*/\1/p' <<<"$1" | sed 's/\\//g'; }
pid_of() { sed -n 's/.*"pid":\([0-9]*\).*/\1/p' <<<"$1"; }
create() { # $1 gateway URL -> "<http status> <body>"
  curl -s -o "$T/body" -w '%{http_code}' -H 'Authorization: Bearer gw-alice' -H 'Content-Type: application/json' \
    -d '{"model_name":"kling-v1","mode":"std","duration":"5","prompt":"a kite over a windy beach"}' \
    "$1/v1/videos/text2video"
  echo " $(cat "$T/body")"
}
balance() { curl -s -H 'Authorization: Bearer gw-alice' "$1/gateway/balance"; }

a=$(kling gateway start --config "$T/cfg.json" --dir "$T/a")
a_url=$(url_of "$a") a_pid=$(pid_of "$a")
out=$(create "$a_url")
check "issue 12.2: the first gateway serves a create" '[[ "$out" == "200 "* ]]'

set +e; b_out=$(kling gateway start --config "$T/cfg.json" --dir "$T/b" 2>&1); rc=$?; set -e
check "issue 12.2: a second gateway on the same journal refuses to start, naming the journal and the holder's pid" \
  '[ $rc = 1 ] && [[ "$b_out" == *"the journal $JOURNAL is in use by another gateway: pid $a_pid holds $JOURNAL.lock"* ]]'
check "... in one line: no Lua traceback, no second copy from the error log" \
  '[ "$(wc -l <<<"$b_out")" = 1 ] && [[ "$b_out" != *"stack traceback"* ]] && [[ "$b_out" != *".lua:"* ]]'
check "issue 12.2: ... and leaves no nginx of its own" '! [ -s "$T/b/gateway.pid" ] || ! kill -0 "$(cat "$T/b/gateway.pid")" 2>/dev/null'

old_workers=$(ps --ppid "$a_pid" -o pid= | tr -d ' ')
kill -HUP "$a_pid"
for _ in $(seq 50); do
  new_workers=$(ps --ppid "$a_pid" -o pid=,cmd= | grep -v 'shutting down' | awk '{print $1}')
  if [ -n "$new_workers" ] && ! grep -qx -F "$old_workers" <<<"$new_workers"; then break; fi
  sleep 0.1
done
check "issue 12.2: a reload (HUP) of the first re-ran its init without refusing itself" \
  '! grep -q "init_by_lua error" "$T/a/error.log" && [ "$(grep -c reconfiguring "$T/a/error.log")" -ge 1 ]'
out=$(create "$a_url")
check "issue 12.2: ... and its new workers serve creates" '[[ "$out" == "200 "* ]]'
out=$(create "$a_url")
check "issue 12.2: ... from the one meter: the credit (two creates) is spent, the third is refused (429, 1101)" \
  '[[ "$out" == "429 "* ]] && [[ "$out" == *"\"code\":1101"* ]]'
set +e; b_out=$(kling gateway start --config "$T/cfg.json" --dir "$T/b" 2>&1); rc=$?; set -e
check "issue 12.2: after the reload a second gateway is still refused" '[ $rc = 1 ] && [[ "$b_out" == *"pid $a_pid holds"* ]]'

kling gateway stop --dir "$T/a" >/dev/null 2>&1
b=$(kling gateway start --config "$T/cfg.json" --dir "$T/b")
b_url=$(url_of "$b") b_pid=$(pid_of "$b")
check "issue 12.2: once the first is stopped, a second gateway starts on the journal, the spend replayed" \
  '[[ "$(balance "$b_url")" == *"\"balance\":\"0\""* ]] && [[ "$(create "$b_url")" == "429 "* ]]'

# kill -9 of the master alone: its workers still run and can write the journal, so they keep the lock.
orphans=$(ps --ppid "$b_pid" -o pid= | tr -d ' ')
kill -9 "$b_pid"
for _ in $(seq 50); do kill -0 "$b_pid" 2>/dev/null || break; sleep 0.1; done
set +e; a_out=$(kling gateway start --config "$T/cfg.json" --dir "$T/a" 2>&1); rc=$?; set -e
check "issue 12.2: after kill -9 of the master, its workers still hold the journal: refused, the pid named as gone" \
  '[ $rc = 1 ] && [[ "$a_out" == *"pid $b_pid holds $JOURNAL.lock (pid $b_pid is gone"* ]]'
for p in $orphans; do kill -9 "$p" 2>/dev/null || true; done
for p in $orphans; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
a=$(kling gateway start --config "$T/cfg.json" --dir "$T/a")
a_url=$(url_of "$a")
check "issue 12.2: after kill -9 of every process of the second, the first starts again, nothing spent twice" \
  '[[ "$(balance "$a_url")" == *"\"balance\":\"0\""* ]]'
kling gateway stop --dir "$T/a" >/dev/null 2>&1

# Embedded in a daemonized nginx (examples/nginx): the lock is taken before nginx forks into the
# background, and the lock file names the master that runs, not the pid that took it.
/usr/sbin/nginx -p "$T/a/" -c "$T/a/nginx.conf" -e "$T/a/error.log"
for _ in $(seq 50); do [ -s "$T/a/nginx.pid" ] && [ "$(cat "$JOURNAL.lock")" = "$(cat "$T/a/nginx.pid")" ] && break; sleep 0.1; done
daemon_pid=$(cat "$T/a/nginx.pid")
set +e; b_out=$(kling gateway start --config "$T/cfg.json" --dir "$T/b" 2>&1); rc=$?; set -e
kill -QUIT "$daemon_pid"
for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
check "issue 12.2: a daemonized nginx with the gateway holds the journal under its master's pid" \
  '[ $rc = 1 ] && [[ "$b_out" == *"pid $daemon_pid holds $JOURNAL.lock (one journal per node"* ]]'
echo "$fails failed"
[ "$fails" = 0 ]
