#!/usr/bin/env bash
# The cost of metering: requests per second and p99 latency through the gateway as
# `kling gateway start` runs it (auth, validation, pricing, a reservation, journal lines, the
# forward by the /v1/ location's own proxy_pass, the task record), with its shared-dict
# store and with its Redis store, against plain proxy_pass to the same upstream (a simulator
# of its own); each nginx with one worker, in the same run, on loopback.
#   bench/gateway/run.sh   (env: BUILD=build, SECONDS_EACH=5, CONNS=32, THREADS=2, SLICES=5, APPENDFSYNC=everysec)
# Needs wrk, redis-server, nginx with its Lua module, lua5.4, curl, jq.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)
build=${BUILD:-build}
jit_dir=$src/$build/jit
export KLING_JIT_BUILD_DIR=$jit_dir
secs=${SECONDS_EACH:-5}
conns=${CONNS:-32}
threads=${THREADS:-2}
slices=${SLICES:-5}
[ -f "$jit_dir/kling/core.so" ] || { echo "no LuaJIT build at $jit_dir (cmake --build $build)"; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
work=$(mktemp -d /tmp/kling-bench-gateway.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/sim" "$work/nginx"
# shellcheck source=bench/gateway/lib.sh
. bench/gateway/lib.sh
lua5.4 bin/kling sim start --dir "$work/sim" --out "$work/sim.json" --task-seconds 3600 >/dev/null
pid=""
cleanup() {
  [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null || true
  lua5.4 bin/kling gateway stop --dir "$work/gw" >/dev/null 2>&1 || true
  lua5.4 bin/kling gateway stop --dir "$work/gw-redis" >/dev/null 2>&1 || true
  [ -n "${redis_port:-}" ] && redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  lua5.4 bin/kling sim stop --dir "$work/sim" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
sim_http=$(jq -r .http "$work/sim.json")
sim_key=$(jq -r .api_key "$work/sim.json")
gw_port=$(free_port)
px_port=$(free_port)

admin_key="bench-admin-key-0123456789"
mkdir -p "$work/journal"
[ "$(id -u)" -eq 0 ] && chown nobody "$work/journal"
gateway_json() { gateway_config "$work/gateway.json" "$work/sim.json" "$work/journal/ledger.jsonl" "$admin_key" "$1"; }
gateway_json ""
# The metered gateway as its operators run it: kling gateway start (one nginx worker).
lua5.4 bin/kling gateway start --config "$work/gateway.json" --dir "$work/gw" --port "$gw_port" >/dev/null
# The same with its balances and tasks in Redis.
redis_port=$(free_port)
rd_port=$(free_port)
mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --appendonly yes --appendfsync "${APPENDFSYNC:-everysec}" \
  --save '' --dir "$work/redis" --daemonize yes --logfile "$work/redis/redis.log"
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
gateway_json ", \"store\": {\"redis\": \"redis://127.0.0.1:$redis_port/0\"}"
cp "$work/gateway.json" "$work/gateway-redis.json"
lua5.4 bin/kling gateway start --config "$work/gateway-redis.json" --dir "$work/gw-redis" --port "$rd_port" >/dev/null
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root root;"
fl_port=$(free_port)
sk_port=$(free_port)
cat > "$work/nginx/nginx.conf" <<CONF
$user_line
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx/body;
  client_body_buffer_size 16m;
  proxy_temp_path $work/nginx/proxy;
  upstream sim {
    server ${sim_http#http://};
    keepalive 64;
  }
  # The baseline: the same requests passed through untouched (the key swapped for the sim's).
  server {
    listen 127.0.0.1:$px_port;
    location / {
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer $sim_key";
      proxy_pass http://sim;
    }
  }
  # The floor of any Lua on the way: the same proxy_pass behind an empty access_by_lua.
  server {
    listen 127.0.0.1:$fl_port;
    location / {
      access_by_lua_block { }
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer $sim_key";
      proxy_pass http://sim;
    }
  }
  # The floor of the gateway's shape with no metering: its Lua phases doing only what any
  # rewriting proxy does (the client's body decoded and encoded again as the upstream's, the
  # upstream path and key set, the upstream's headers dropped, its answer read and replaced).
  server {
    listen 127.0.0.1:$sk_port;
    log_by_lua_block { local _ = ngx.status }
    location /v1/ {
      set \$up_path "";
      set \$up_auth "";
      access_by_lua_block {
        local cjson = require "cjson.safe"
        ngx.req.read_body()
        local req = cjson.decode(ngx.req.get_body_data() or "{}")
        local _ = ngx.var.http_authorization
        ngx.var.up_path, ngx.var.up_auth = ngx.var.uri, "Bearer $sim_key"
        ngx.req.set_body_data(cjson.encode(req))
        ngx.ctx.c = { sent_at = ngx.now() }
      }
      header_filter_by_lua_block {
        local c = ngx.ctx.c
        c.status, c.type = ngx.status, ngx.header["Content-Type"]
        ngx.status = 200
        for k in pairs(ngx.resp.get_headers()) do ngx.header[k] = nil end
        ngx.header["Content-Type"] = "application/json; charset=utf-8"
      }
      body_filter_by_lua_block {
        local c = ngx.ctx.c
        local chunk, eof = ngx.arg[1], ngx.arg[2]
        if chunk ~= "" then c.body = (c.body or "") .. chunk end
        if not eof then ngx.arg[1] = nil return end
        local t = require("cjson.safe").decode(c.body or "{}")
        local id = type(t) == "table" and type(t.data) == "table" and t.data.task_id
        ngx.arg[1] = '{"code":0,"message":"SUCCEED","data":{"task_id":"' .. tostring(id) .. '"}}\n'
      }
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_headers off;
      proxy_set_header Accept application/json;
      proxy_next_upstream off;
      proxy_ignore_client_abort on;
      proxy_set_header Authorization \$up_auth;
      proxy_set_header Content-Type application/json;
      proxy_pass http://sim\$up_path;
    }
  }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' >"$work/nginx/stdout" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$px_port/" && break; sleep 0.05; done

# The one worker of an nginx (its master's pid in $1) and its CPU time so far (clock ticks).
worker_of() { pgrep -P "$1" | head -1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# One wrk run of $5 seconds; prints its raw figures: "<requests> <seconds> <p99 ms> <non-2xx>
# <CPU ticks of the worker $3> <of the simulator's worker> <wrk's CPU us> <ticks of the process $4, or 0>".
slice() { # $1 script, $2 url, $3 worker pid, $4 another pid (redis-server) or "", $5 seconds
  local out rps p99 bad t0 s0 n r0=0
  t0=$(ticks "$3")
  s0=$(ticks "$sim_w")
  [ -n "$4" ] && r0=$(ticks "$4")
  out=$(GW_KEY=bench-key /usr/bin/time -f "wrk-cpu %U %S" wrk -t"$threads" -c"$conns" -d"${5}s" --latency \
    -s "bench/gateway/$1" "$2" 2>&1)
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "$n $(echo "$n / $rps" | bc -l) $p99 ${bad:-0} $(($(ticks "$3") - t0)) $(($(ticks "$sim_w") - s0))" \
    "$(awk '$1 == "wrk-cpu" {printf "%d", ($2 + $3) * 1000000}' <<<"$out")" "$(if [ -n "$4" ]; then echo $(($(ticks "$4") - r0)); else echo 0; fi)"
}
# One side's slices (stdin) -> "<requests/s> <p99 ms: the median of the slices'> <non-2xx> <CPU us
# per request of the worker> <of the simulator's worker> <of wrk> <of the other process>".
combine() {
  local lines med
  lines=$(cat)
  med=$(awk '{print $3}' <<<"$lines" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  awk -v hz="$(getconf CLK_TCK)" -v med="$med" '{n += $1; s += $2; bad += $4; w += $5; sim += $6; wrk += $7; x += $8}
    END {printf "%.2f %s %d %d %d %d %d\n", n / s, med, bad, w * 1e6 / hz / n, sim * 1e6 / hz / n, wrk / n, x * 1e6 / hz / n}' \
    <<<"$lines"
}
# pair NAME SCRIPT GATEWAY_URL GATEWAY_PID PROXY_URL PROXY_PID [OTHER_PID] [reset]: the two sides of a row in
# SLICES alternated slices (the simulator reset before each with "reset"), so that a burst of other work
# on the machine falls on both; prints the row and leaves the gateway side's figures in $G.
pair() {
  local g="" p="" i each
  each=$((secs / slices))
  [ "$each" -ge 1 ] || each=1
  for i in $(seq 1 "$slices"); do
    if [ $((i % 2)) -eq 1 ]; then
      [ "${8:-}" = reset ] && reset_sim
      g+=$(slice "$2" "$3" "$4" "${7:-}" "$each")$'\n'
      [ "${8:-}" = reset ] && sim_answered_all
    fi
    [ "${8:-}" = reset ] && reset_sim
    p+=$(slice "$2" "$5" "$6" "" "$each")$'\n'
    [ "${8:-}" = reset ] && sim_answered_all
    if [ $((i % 2)) -eq 0 ]; then
      [ "${8:-}" = reset ] && reset_sim
      g+=$(slice "$2" "$3" "$4" "${7:-}" "$each")$'\n'
      [ "${8:-}" = reset ] && sim_answered_all
    fi
  done
  G=$(combine <<<"${g%$'\n'}")
  row "$1" "$G" "$(combine <<<"${p%$'\n'}")"
}
row() { # name, gateway result, proxy result
  read -r g_rps g_p99 g_bad g_cpu g_sim g_wrk _ <<<"$2"
  read -r p_rps p_p99 p_bad p_cpu p_sim p_wrk _ <<<"$3"
  printf '| %s | %s | %s | %s | %s | %.2f | %.2f | %s | %s | %s | %s / %s | %s / %s |\n' "$1" "$g_rps" "$p_rps" "$g_p99" \
    "$p_p99" "$(echo "$g_rps / $p_rps" | bc -l)" "$(echo "$g_p99 / $p_p99" | bc -l)" "$((g_bad + p_bad))" "$g_cpu" \
    "$p_cpu" "$g_sim" "$p_sim" "$g_wrk" "$p_wrk"
}

echo "wrk -t$threads -c$conns, each side of a row ${secs}s in $slices alternated slices, one nginx worker per gateway and for proxy_pass, simulator: 1 worker; $(nproc) CPUs;" \
  "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| request | gateway req/s | proxy_pass req/s | gateway p99 ms | proxy_pass p99 ms | req/s ratio | p99 ratio | non-2xx | gateway worker CPU us/req | proxy_pass worker CPU us/req | simulator CPU us/req (gateway / proxy_pass) | wrk CPU us/req (gateway / proxy_pass) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
gw_w=$(worker_of "$(cat "$work/gw/gateway.pid")")
rd_w=$(worker_of "$(cat "$work/gw-redis/gateway.pid")")
px_w=$(worker_of "$pid")
sim_w=$(worker_of "$(jq -r .pid "$work/sim.json")")
px_create="http://127.0.0.1:$px_port/v1/videos/text2video"
pair "create (POST, metered)" create.lua "http://127.0.0.1:$gw_port/v1/videos/text2video" "$gw_w" "$px_create" "$px_w" \
  "" reset
pair "floor: create through an empty access_by_lua" create.lua "http://127.0.0.1:$fl_port/v1/videos/text2video" \
  "$px_w" "$px_create" "$px_w" "" reset
pair "floor: create through the gateway's Lua phases, no metering" create.lua \
  "http://127.0.0.1:$sk_port/v1/videos/text2video" "$px_w" "$px_create" "$px_w" "" reset

# A task both paths can query: made through the gateway (its id there) and directly.
reset_sim
gw_task=$(curl -fs -H 'Authorization: Bearer bench-key' -H 'Content-Type: application/json' \
  -d '{"model_name":"kling-v1","mode":"std","duration":"5","prompt":"x"}' \
  "http://127.0.0.1:$gw_port/v1/videos/text2video" | jq -r .data.task_id)
px_task=$(curl -fs -H 'Content-Type: application/json' -d '{"model_name":"kling-v1","mode":"std","duration":"5","prompt":"x"}' \
  "http://127.0.0.1:$px_port/v1/videos/text2video" | jq -r .data.task_id)
pair "query (GET, from the gateway's table)" query.lua "http://127.0.0.1:$gw_port/v1/videos/text2video/$gw_task" \
  "$gw_w" "http://127.0.0.1:$px_port/v1/videos/text2video/$px_task" "$px_w"

# The same creates with the Redis store (several nodes' shape, one node here).
redis_pid=$(redis-cli -p "$redis_port" info server | awk -F: '/^process_id/ {print $2+0}')
pair "create, Redis store (appendfsync ${APPENDFSYNC:-everysec})" create.lua \
  "http://127.0.0.1:$rd_port/v1/videos/text2video" "$rd_w" "$px_create" "$px_w" "$redis_pid" reset
echo
echo "redis-server CPU per create (Redis row): $(awk '{print $7}' <<<"$G") us; its commands over the whole run" \
  "(divide by the Redis gateway's ledger entries below):" \
  "$(redis-cli -p "$redis_port" info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_/ {printf "%s %s; ", substr($1, 9), $3}')"
trips=$(curl -fs "http://127.0.0.1:$rd_port/metrics" | awk '/^kling_gateway_store_round_trips_total/ {print $2}')
echo "Redis round trips of the creates' record-and-hold scripts over the whole run (shared by a worker's creates" \
  "meanwhile): ${trips:-not counted}"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
for d in gw gw-redis; do
  port=$gw_port; [ "$d" = gw-redis ] && port=$rd_port
  spent=$(curl -fs -H "Authorization: Bearer $admin_key" "http://127.0.0.1:$port/gateway/admin" \
    | jq -r '.spent + " spent, " + .reserved + " reserved, " + (.entries|tostring) + " ledger entries"')
  echo "gateway ($d) ledger after the run: $spent"
done
