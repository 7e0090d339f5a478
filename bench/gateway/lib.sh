# shellcheck shell=bash
# What bench/gateway's scripts share (sourced): a free loopback port, and the bench gateway's
# config (one account with credit for any run, a poller that waits 10 minutes so that it does
# no upstream work during a run, and memory for the tens of thousands of tasks a run leaves open:
# the simulator's never end, and a node keeps 2 KB free for each open task's end).

free_port() { lua5.4 -e 'local s=require"socket".bind("127.0.0.1",0); local _,p=s:getsockname(); print(p); s:close()'; }

# gateway_config OUT SIM_JSON JOURNAL ADMIN_KEY [EXTRA top-level JSON, starting with a comma]
gateway_config() {
  cat > "$1" <<JSON
{ "upstream": {"provider": "kling", "base_url": "$(jq -r .http "$2")", "api_key": "$(jq -r .api_key "$2")"},
  "journal": "$3", "admin_key": "$4",
  "poll": {"min_interval": 600, "max_interval": 600}, "memory": {"tasks": "1g", "ledger": "64m"},
  "accounts": [{"name": "bench", "api_key": "bench-key", "credit": "1000000000"}] ${5:-} }
JSON
}

# gateway_conf TAG: for scripts that run the bench gateway's nginx themselves (under a tool): a
# work dir ($work), a simulator of its own ($work/sim.json, $sim_http) and the conf `kling gateway
# start` writes for the gateway ($work/gw/nginx.conf, on $port; the config checked), not running,
# its journal empty. With STORE=redis the gateway's store is a redis-server of its own
# ($redis_port, AOF everysec). bench_cleanup undoes it (the caller stops its nginx first).
gateway_conf() {
  work=$(mktemp -d "/tmp/kling-bench-$1.XXXXXX")
  chmod 755 "$work"
  mkdir -p "$work/sim" "$work/journal"
  if [ "$(id -u)" -eq 0 ]; then chown nobody "$work/journal"; fi
  lua5.4 bin/kling sim start --dir "$work/sim" --out "$work/sim.json" --task-seconds 3600 >/dev/null
  sim_http=$(jq -r .http "$work/sim.json")
  local store=""
  case "${STORE:-shared}" in
    shared) ;;
    redis)
      redis_port=$(free_port)
      mkdir -p "$work/redis"
      redis-server --port "$redis_port" --bind 127.0.0.1 --appendonly yes --appendfsync everysec --save '' \
        --dir "$work/redis" --daemonize yes --logfile "$work/redis/redis.log"
      for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
      store=", \"store\": {\"redis\": \"redis://127.0.0.1:$redis_port/0\"}" ;;
    *) echo "STORE must be shared or redis"; exit 1 ;;
  esac
  gateway_config "$work/gateway.json" "$work/sim.json" "$work/journal/ledger.jsonl" "bench-admin-key-0123456789" \
    "$store"
  port=$(free_port)
  lua5.4 bin/kling gateway start --config "$work/gateway.json" --dir "$work/gw" --port "$port" >/dev/null
  lua5.4 bin/kling gateway stop --dir "$work/gw" >/dev/null
  rm -f "$work"/journal/*
}

# jit_build: points nginx's Lua at this tree's LuaJIT build (BUILD, default build), or exits.
jit_build() {
  export KLING_JIT_BUILD_DIR=$PWD/${BUILD:-build}/jit
  [ -f "$KLING_JIT_BUILD_DIR/kling/core.so" ] || { echo "no LuaJIT build at $KLING_JIT_BUILD_DIR"; exit 1; }
}

# gateway_nginx CONF: runs the bench gateway's nginx (gateway_conf's) with CONF, in the
# foreground of a process of its own ($npid, stopped by bench_cleanup), until it answers.
gateway_nginx() {
  setsid nginx -p "$work/gw" -c "$1" -g 'daemon off;' >"$work/nginx.log" 2>&1 </dev/null &
  npid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/gateway/health" && break; sleep 0.05; done
}

# The simulator's stats since its last reset.
sim_stats() { curl -fs "$sim_http/_sim/stats"; }
reset_sim() { curl -fs -X POST "$sim_http/_sim/reset" >/dev/null; }

# sim_answered_all: fails, naming them, when the simulator answered anything but 200 since its
# last reset. A full simulator (its 64 MB of tasks hold about 43,000) answers 5000, which the
# gateway answers 200 and looks up later: a run past that measures the lookup path, not a create.
sim_answered_all() {
  local other
  other=$(sim_stats | jq -c '.by_status | with_entries(select(.key != "200"))')
  if [ "$other" != "{}" ]; then
    echo "the simulator answered $other (by HTTP status) since its last reset: the figures would not be a" \
      "create's (a full simulator answers 5000 past about 43,000 tasks: fewer seconds between resets)" >&2
    return 1
  fi
}

bench_cleanup() {
  if [ -n "${npid:-}" ]; then
    kill -QUIT "$npid" 2>/dev/null || true
    sleep 0.5
  fi
  if [ -n "${redis_port:-}" ]; then
    redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  fi
  if [ -n "${work:-}" ]; then
    lua5.4 bin/kling gateway stop --dir "$work/gw" >/dev/null 2>&1 || true
    lua5.4 bin/kling sim stop --dir "$work/sim" >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
}
