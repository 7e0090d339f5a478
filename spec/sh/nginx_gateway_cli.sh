#!/usr/bin/env bash
# issue 12.3: `kling gateway start --config FILE [--dir D] [--port N | --listen ADDR:PORT]` runs the
# metering gateway in nginx and prints {"http","pid","dir"}; `kling gateway stop --dir D` stops
# it. A config with an unknown field, or a journal the workers cannot write, does not start.
set -euo pipefail
kling() { lua5.4 bin/kling "$@"; }
fails=0
check() { if eval "$2"; then echo "ok - $1"; else echo "not ok - $1"; fails=$((fails + 1)); fi; }
T=$(mktemp -d /tmp/kling-gateway-cli.XXXXXX)
chmod 755 "$T"
cleanup() { kling gateway stop --dir "$T/gw" >/dev/null 2>&1 || true; if [ "$fails" = 0 ]; then rm -rf "$T"; fi; }
trap cleanup EXIT
mkdir -p "$T/journal" "$T/private"
chmod 700 "$T/private"
if [ "$(id -u)" = 0 ]; then chown nobody "$T/journal"; fi
config() { # $1 journal dir, $2 extra top-level JSON
  cat > "$T/cfg.json" <<JSON
{"upstream": {"provider": "kling", "base_url": "http://127.0.0.1:9", "access_key": "a", "secret_key": "b"},
 "journal": "$1/ledger.jsonl", "admin_key": "admin-0123456789abcdef"${2:-},
 "accounts": [{"name": "alice", "api_key": "gw-alice", "credit": "10"}]}
JSON
}

config "$T/journal" ', "webhok_secret": "x"'
set +e; out=$(kling gateway start --config "$T/cfg.json" --dir "$T/gw" 2>&1); rc=$?; set -e
check "issue 12.3: an unknown config field is refused by name, with the closest known one (exit 2, bad usage)" \
  '[ $rc = 2 ] && [[ "$out" == *"webhok_secret: is not a known field (did you mean webhook_secret?)"* ]]'
check "... in one line that names the file once, with one prefix (got: $out)" \
  '[[ "$out" == "kling gateway: --config $T/cfg.json: webhok_secret: "* ]] && [ "$(wc -l <<<"$out")" = 1 ] && [ ! -e "$T/gw" ]'
set +e; out=$(kling gateway start --config "$T/none.json" --dir "$T/gw" 2>&1); rc=$?; set -e
check "a config that cannot be read: exit 2, its path named once (got: $out)" \
  '[ $rc = 2 ] && [ "$out" = "kling gateway: cannot read --config $T/none.json: No such file or directory" ]'

cat > "$T/redis.json" <<JSON
{"upstream": {"provider": "kling", "base_url": "http://127.0.0.1:9", "access_key": "a", "secret_key": "b"},
 "store": {"redis": "redis://127.0.0.1:9/0"}, "admin_key": "admin-0123456789abcdef",
 "accounts": [{"name": "alice", "api_key": "gw-alice", "credit": "10"}]}
JSON
set +e; out=$(kling gateway start --config "$T/redis.json" 2>&1); rc=$?; set -e
check "a Redis store without --dir (a fresh temporary D would forget the store it saw): exit 2, saying why (got: $rc $out)" \
  '[ $rc = 2 ] && [[ "$out" == "kling gateway: --config $T/redis.json: store: a Redis store needs --dir D"* ]]'

# The conf's connections fit the open files nginx may have: past them nginx's setrlimit failed
# with an alert alone, and 1,100 idle connections held the gateway down (an attacker review).
config "$T/journal"
set +e; out=$(prlimit --nofile=1024:4096 lua5.4 bin/kling gateway start --config "$T/cfg.json" --dir "$T/gw" 2>&1); rc=$?; set -e
check "under an open files limit of 4096, the conf asks for 4096 files and 2016 connections, and the start warns (got: $rc $out)" \
  '[ $rc = 0 ] && grep -q "worker_rlimit_nofile 4096;" "$T/gw/nginx.conf" && grep -q "worker_connections 2016;" "$T/gw/nginx.conf" \
   && [[ "$out" == *"warning: the open files limit (ulimit -Hn 4096) gives each worker 2016 connections"* ]] \
   && ! grep -q "setrlimit" "$T/gw/error.log"'
kling gateway stop --dir "$T/gw" >/dev/null 2>&1

config "$T/none/deeper"
set +e; out=$(kling gateway start --config "$T/cfg.json" --dir "$T/gw" 2>&1); rc=$?; set -e
check "a journal whose directory is missing: exit 2 before nginx runs, in one line naming it (got: $rc $out)" \
  '[ $rc = 2 ] && [ "$out" = "kling gateway: --config $T/cfg.json: journal: its directory $T/none/deeper does not exist" ]'

if [ "$(id -u)" = 0 ]; then
  config "$T/private"
  set +e; out=$(kling gateway start --config "$T/cfg.json" --dir "$T/gw" 2>&1); rc=$?; set -e
  check "issue 12.2: a journal the workers (nobody) cannot write: no start, the path and the user named" \
    '[ $rc = 1 ] && [[ "$out" == *"$T/private/ledger.jsonl"* ]] && [[ "$out" == *nobody* ]]'
  check "... in one line: no Lua traceback, no second copy from the error log" \
    '[ "$(wc -l <<<"$out")" = 1 ] && [[ "$out" != *"stack traceback"* ]] && [[ "$out" != *".lua:"* ]]'
fi

config "$T/journal"
port=$(lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0); print((select(2, s:getsockname()))); s:close()')
line=$(kling gateway start --config "$T/cfg.json" --dir "$T/gw" --port "$port")
check "issue 12.3: start prints one JSON line {http, pid, dir}" \
  '[[ "$line" == *"\"http\":\"http:\\/\\/127.0.0.1:$port\""* ]] && [[ "$line" == *"\"pid\":"* ]] && [[ "$line" == *"\"dir\":"* ]]'
body=$(curl -s -H 'Authorization: Bearer gw-alice' "http://127.0.0.1:$port/gateway/balance")
check "issue 12.3: the started gateway answers its clients" '[[ "$body" == *"\"balance\":\"10\""* ]]'
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer admin-0123456789abcdef' \
  "http://127.0.0.1:$port/gateway/admin")
check "issue 12.3: ... and its operators (admin API with admin_key)" '[ "$code" = 200 ]'
# A second start on a running gateway's --dir stopped it and moved it to another port.
set +e; out=$(kling gateway start --config "$T/cfg.json" --dir "$T/gw" 2>&1); rc=$?; set -e
body=$(curl -s -H 'Authorization: Bearer gw-alice' "http://127.0.0.1:$port/gateway/balance")
check "a start on a --dir where a gateway runs is refused, naming it, and that gateway keeps serving (got: $rc $out)" \
  '[ $rc = 1 ] && [[ "$out" == *"a gateway already runs in"* ]] && [[ "$body" == *"\"balance\":\"10\""* ]]'
admin() { curl -s -w ' %{http_code}' -H 'Authorization: Bearer admin-0123456789abcdef' -d "$2" \
  "http://127.0.0.1:$port/gateway/admin/$1"; }
out=$(admin accounts/alice/topup '{"amount":"9223372036854.775807"}')
check "issue 12.3: a top-up LuaJIT cannot hold exactly is a 400 naming amount, not a 500 (got: $out)" \
  '[[ "$out" == *"\"field\":\"amount\""* ]] && [[ "$out" == *" 400" ]]'
out=$(admin accounts/alice/topup '{"amount":"1.0000001"}')
check "a top-up with 7 decimals says why it is not an amount (got: $out)" \
  '[[ "$out" == *"more than 6 decimals"* ]] && [[ "$out" == *" 400" ]]'
out=$(lua5.4 -e 'io.write(("["):rep(100000))' | curl -s -w ' %{http_code}' -H 'Authorization: Bearer gw-alice' \
  -H 'Content-Type: application/json' --data-binary @- "http://127.0.0.1:$port/v1/videos/text2video")
check "a create whose body is nested 100,000 deep says so, 400 (got: $out)" \
  '[[ "$out" == *"must be a JSON object: "*"nested"* ]] && [[ "$out" == *" 400" ]]'
out=$(admin accounts/alice/topup '{"amount":"9007199254"}')
summary=$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer admin-0123456789abcdef' \
  "http://127.0.0.1:$port/gateway/admin")
check "issue 12.3: a top-up taking a credit past 2^53 micro-units is refused (400, amount); the summary still answers" \
  '[[ "$out" == *"\"field\":\"amount\""* ]] && [[ "$out" == *" 400" ]] && [ "$summary" = 200 ]'
out=$(admin accounts '{"name":"max","api_key":"gw-max-0123456789","credit":"9223372036854.775807"}')
check "issue 12.3: a new account's credit past 2^53 micro-units: 400 naming credit, no source path (got: $out)" \
  '[[ "$out" == *"\"field\":\"credit\""* ]] && [[ "$out" == *"out of range"* ]] && [[ "$out" != *".lua:"* ]] && [[ "$out" == *" 400" ]]'
# Creates go out by the /v1/ location's own proxy_pass here (kling.gateway.forward): still fail closed.
mv "$T/journal/ledger.jsonl" "$T/journal/ledger.keep" && ln -s /dev/full "$T/journal/ledger.jsonl"
curl -s -o /dev/null -X POST -H 'Authorization: Bearer admin-0123456789abcdef' \
  "http://127.0.0.1:$port/gateway/admin/journal/reopen"
out=$(curl -s -w ' %{http_code}' -H 'Authorization: Bearer gw-alice' -H 'Content-Type: application/json' \
  -d '{"model_name":"kling-v1","mode":"std","duration":"5","prompt":"x"}' "http://127.0.0.1:$port/v1/videos/text2video")
balance=$(curl -s -H 'Authorization: Bearer gw-alice' "http://127.0.0.1:$port/gateway/balance")
check "issue 12.2 (creates by proxy_pass): a journal that cannot be written: 503, code 5001, nothing held or sent" \
  '[[ "$out" == *"\"code\":5001"* ]] && [[ "$out" == *" 503" ]] && [[ "$balance" == *"\"balance\":\"10\""* ]]'
rm "$T/journal/ledger.jsonl" && mv "$T/journal/ledger.keep" "$T/journal/ledger.jsonl"
curl -s -o /dev/null -X POST -H 'Authorization: Bearer admin-0123456789abcdef' \
  "http://127.0.0.1:$port/gateway/admin/journal/reopen"
out=$(curl -s -w ' %{http_code}' -H 'Authorization: Bearer gw-alice' -H 'Content-Type: application/json' \
  -d '{"model_name":"kling-v1","mode":"std","duration":"5","prompt":"x"}' "http://127.0.0.1:$port/v1/videos/text2video")
balance=$(curl -s -H 'Authorization: Bearer gw-alice' "http://127.0.0.1:$port/gateway/balance")
# Nothing listens on the upstream's port: the connection is refused, not a byte of the create
# left, so no task can exist. It was answered 200 (submitted) and its credit held until the
# poller's deadline, a day later.
check "issue 12 speed: ... once it can be written, a create is held and sent; its upstream refusing the connection, it is released: 502, code 5000 (got: $out; $balance)" \
  '[[ "$out" == *"\"code\":5000"* ]] && [[ "$out" == *" 502" ]] && [[ "$balance" == *"\"balance\":\"10\""* ]] && [[ "$balance" == *"\"reserved\":\"0\""* ]] && grep -q "\"op\":\"reserve\"" "$T/journal/ledger.jsonl" && grep -q "\"op\":\"release\"" "$T/journal/ledger.jsonl"'
# A second gateway told the first's port (its journal locked too) must not report the first's
# answer as its own start: it said {"http": ..., "pid": N} and exit 0 while its nginx died.
set +e; out=$(kling gateway start --config "$T/cfg.json" --dir "$T/gw2" --port "$port" 2>&1); rc=$?; set -e
check "issue 12.3: start on a port another gateway answers fails (exit 1), not its answer taken as ready, in one line (got: $rc $out)" \
  '[ $rc = 1 ] && [[ "$out" != *"\"pid\":"* ]] && [ "$(wc -l <<<"$out")" = 1 ]'
kling gateway stop --dir "$T/gw2" >/dev/null 2>&1 || true
pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' <<<"$line")
kling gateway stop --dir "$T/gw" 2>/dev/null
check "issue 12.3: stop ends nginx (gone, or a zombie not yet reaped)" \
  '! [ -e "/proc/$pid" ] || grep -q ") Z" "/proc/$pid/stat"'
# A master killed with SIGKILL leaves its workers running: they keep the port and the journal's
# lock. stop finds them (its process group, holding the dir's files) and ends them, and the
# gateway starts again on the same journal.
line=$(kling gateway start --config "$T/cfg.json" --dir "$T/gw")
pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' <<<"$line")
workers=$(pgrep -P "$pid" | tr '\n' ' ')
kill -KILL "$pid"
sleep 0.3
out=$(kling gateway stop --dir "$T/gw" 2>&1)
gone=1
for w in $workers; do if [ -e "/proc/$w" ] && ! grep -q ") Z" "/proc/$w/stat"; then gone=0; fi; done
check "issue 12.3: stop after the master's kill -9 ends the workers it left ($workers: $out)" \
  '[ -n "$workers" ] && [ $gone = 1 ] && [[ "$out" == *"stopped the workers it left"* ]]'
set +e; line=$(kling gateway start --config "$T/cfg.json" --dir "$T/gw" 2>&1); rc=$?; set -e
check "issue 12.3: ... and the gateway starts again on the same journal (got: $rc $line)" '[ $rc = 0 ]'
kling gateway stop --dir "$T/gw" >/dev/null 2>&1 || true
# /metrics from another address than loopback: nginx's deny gave its HTML page, with its version.
ip=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9.]+$' | grep -v '^127\.' | head -1 || true)
if [ -n "$ip" ]; then
  port=$(lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0); print((select(2, s:getsockname()))); s:close()')
  kling gateway start --config "$T/cfg.json" --dir "$T/gw" --listen "0.0.0.0:$port" >/dev/null
  out=$(curl -s -D - "http://$ip:$port/metrics")
  check "/metrics off loopback: 403 in the official JSON envelope (code 1200), no nginx page or version (got: $out)" \
    '[[ "$out" == "HTTP/1.1 403"* ]] && [[ "$out" == *"\"code\":1200"* ]] && [[ "$out" != *"nginx/"* ]] && [[ "$out" != *"<html>"* ]]'
  kling gateway stop --dir "$T/gw" >/dev/null 2>&1 || true
else
  echo "# skipped: no address but loopback to call /metrics from"
fi
# /metrics and the admin API have one rule for loopback: nginx's allow 127.0.0.1 turned away
# IPv6's ::1, which the admin API takes.
if [ -e /proc/net/if_inet6 ]; then
  port=$(lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0); print((select(2, s:getsockname()))); s:close()')
  kling gateway start --config "$T/cfg.json" --dir "$T/gw" --listen "[::1]:$port" >/dev/null
  out=$(curl -s -g -D - "http://[::1]:$port/metrics")
  check "/metrics from ::1 is a loopback caller, as for the admin API (got: ${out:0:200})" \
    '[[ "$out" == "HTTP/1.1 200"* ]] && [[ "$out" == *"kling_gateway_requests_total"* ]]'
  kling gateway stop --dir "$T/gw" >/dev/null 2>&1 || true
else
  echo "# skipped: no IPv6 loopback"
fi
set +e; out=$(kling gateway start --config "$T/cfg.json" --port 1 --listen 127.0.0.1:2 2>&1); rc=$?; set -e
check "issue 12.3: --port and --listen together are refused (exit 2)" '[ $rc = 2 ]'
echo "$fails failed"
[ "$fails" = 0 ]
