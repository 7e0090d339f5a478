#!/usr/bin/env bash
# The cost of metering: requests per second and p99 latency through the example gateway
# (examples/nginx: auth, validation, pricing, a reservation in shared memory, a journal line,
# the forward over a cosocket, the task record) against plain proxy_pass to the same upstream
# (a simulator of its own), both in ONE nginx with one worker, in the same run, on loopback.
#   bench/gateway/run.sh            (env: BUILD=build, SECONDS_EACH=5, CONNS=32, THREADS=2)
# Needs wrk (apt-get install wrk), nginx with its Lua module, lua5.4, curl, jq.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)
build=${BUILD:-build}
jit_dir=$src/$build/jit
secs=${SECONDS_EACH:-5}
conns=${CONNS:-32}
threads=${THREADS:-2}
[ -f "$jit_dir/kling/core.so" ] || { echo "no LuaJIT build at $jit_dir (cmake --build $build)"; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
work=$(mktemp -d /tmp/kling-bench-gateway.XXXXXX)
chmod 755 "$work"
mkdir -p "$work/sim" "$work/nginx"
free_port() { lua5.4 -e 'local s=require"socket".bind("127.0.0.1",0); local _,p=s:getsockname(); print(p); s:close()'; }
lua5.4 bin/kling sim start --dir "$work/sim" --out "$work/sim.json" --task-seconds 3600 >/dev/null
pid=""
cleanup() {
  [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null || true
  lua5.4 bin/kling sim stop --dir "$work/sim" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
sim_http=$(jq -r .http "$work/sim.json")
sim_key=$(jq -r .api_key "$work/sim.json")
gw_port=$(free_port)
px_port=$(free_port)

gateway_json() { # $1: reuse_posts (true|false)
  cat > "$work/nginx/gateway.json" <<JSON
{ "upstream": {"provider": "kling", "base_url": "$sim_http", "api_key": "$sim_key", "reuse_posts": $1},
  "journal": "$work/nginx/ledger.jsonl",
  "poll": {"min_interval": 600, "max_interval": 600},
  "accounts": [{"name": "bench", "api_key": "bench-key", "credit": "1000000000"}] }
JSON
}
gateway_json false
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root root;"
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
  proxy_temp_path $work/nginx/proxy;
  lua_package_path "$src/lua/?.lua;$src/lua/?/init.lua;/usr/share/lua/5.1/?.lua;;";
  lua_package_cpath "$jit_dir/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";
  include $src/examples/nginx/http.conf;
  upstream sim {
    server ${sim_http#http://};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$gw_port;
    include $src/examples/nginx/server.conf;
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
}
CONF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' >"$work/nginx/stdout" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$gw_port/gateway/admin" >/dev/null && break; sleep 0.05; done

reset_sim() { curl -fs -X POST "$sim_http/_sim/reset" >/dev/null; }
# One wrk run; prints "<requests/s> <p99 ms> <non-2xx>".
measure() { # $1 script, $2 url
  local out rps p99 bad
  out=$(GW_KEY=bench-key wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "bench/gateway/$1" "$2")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000}; print v}' <<<"$out")
  bad=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  echo "$rps $p99 ${bad:-0}"
}
row() { # name, gateway result, proxy result
  read -r g_rps g_p99 g_bad <<<"$2"
  read -r p_rps p_p99 p_bad <<<"$3"
  printf '| %s | %s | %s | %s | %s | %.2f | %.2f | %s |\n' "$1" "$g_rps" "$p_rps" "$g_p99" "$p_p99" \
    "$(echo "$g_rps / $p_rps" | bc -l)" "$(echo "$g_p99 / $p_p99" | bc -l)" "$((g_bad + p_bad))"
}

echo "wrk -t$threads -c$conns -d${secs}s, one nginx worker for both paths, simulator: 1 worker; $(nproc) CPUs"
echo
echo "| request | gateway req/s | proxy_pass req/s | gateway p99 ms | proxy_pass p99 ms | req/s ratio | p99 ratio | non-2xx |"
echo "|---|---|---|---|---|---|---|---|"
reset_sim
g=$(measure create.lua "http://127.0.0.1:$gw_port/v1/videos/text2video")
reset_sim
p=$(measure create.lua "http://127.0.0.1:$px_port/v1/videos/text2video")
row "create (POST, metered)" "$g" "$p"

# A task both paths can query: made through the gateway (its id there) and directly.
reset_sim
gw_task=$(curl -fs -H 'Authorization: Bearer bench-key' -H 'Content-Type: application/json' \
  -d '{"model_name":"kling-v1","mode":"std","duration":"5","prompt":"x"}' \
  "http://127.0.0.1:$gw_port/v1/videos/text2video" | jq -r .data.task_id)
px_task=$(curl -fs -H 'Content-Type: application/json' -d '{"model_name":"kling-v1","mode":"std","duration":"5","prompt":"x"}' \
  "http://127.0.0.1:$px_port/v1/videos/text2video" | jq -r .data.task_id)
g=$(measure query.lua "http://127.0.0.1:$gw_port/v1/videos/text2video/$gw_task")
p=$(measure query.lua "http://127.0.0.1:$px_port/v1/videos/text2video/$px_task")
row "query (GET, from the gateway's table)" "$g" "$p"

# The same creates with POSTs allowed on kept-alive upstream connections (reuse_posts).
gateway_json true
kill -HUP "$pid"
sleep 1
reset_sim
g=$(measure create.lua "http://127.0.0.1:$gw_port/v1/videos/text2video")
reset_sim
p=$(measure create.lua "http://127.0.0.1:$px_port/v1/videos/text2video")
row "create, reuse_posts = true" "$g" "$p"
echo
spent=$(curl -fs "http://127.0.0.1:$gw_port/gateway/admin" | jq -r '.spent + " spent, " + .reserved + " reserved, " + (.entries|tostring) + " ledger entries"')
echo "gateway ledger after the run: $spent"
