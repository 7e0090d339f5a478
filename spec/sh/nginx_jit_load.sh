#!/usr/bin/env bash
# The LuaJIT build of kling.core loads inside Debian's nginx with its Lua module, and works
# there: a request runs the C core (version, JWT, HMAC, retry policy) inside a worker.
set -euo pipefail
src=$(pwd)
jit_dir=${KLING_JIT_BUILD_DIR:-$src/build/jit}
[ -f "$jit_dir/kling/core.so" ] || { echo "no LuaJIT build at $jit_dir/kling/core.so"; exit 1; }
prefix=$(mktemp -d /tmp/kling-nginx-jit.XXXXXX)
chmod 755 "$prefix"
port=$(lua5.4 -e 'local s=require"socket".bind("127.0.0.1",0); local _,p=s:getsockname(); print(p); s:close()')
# Workers run as nobody when nginx starts as root; keep them as the owner of the checkout
# so that a checkout under a private home directory stays readable.
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root root;"
cat > "$prefix/nginx.conf" <<CONF
$user_line
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/error.log notice;
events { worker_connections 64; }
http {
  access_log off;
  lua_package_path "$src/lua/?.lua;$src/lua/?/init.lua;/usr/share/lua/5.1/?.lua;;";
  lua_package_cpath "$jit_dir/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";
  server {
    listen 127.0.0.1:$port;
    location /core {
      content_by_lua_block {
        local core = require "kling.core"
        local tok = core.jwt_hs256("ak", "sk", 1700000000, 1800)
        -- The business codes are the dialect's (a kling.codes built by the provider file).
        local kind = core.classify(429, 1102, require("kling.providers.kling").codes)
        local d = core.decide{ method = "POST", attempt = 0, max_attempts = 3, transport = "connect",
          sent = false, now_s = 0, budget_ms = 1000, base_ms = 10, cap_ms = 100 }
        ngx.say(core.lua, " ", core.version, " ", #tok, " ", kind, " ", tostring(d.retry))
      }
    }
    location /money {
      content_by_lua_block {
        -- durations and sums beyond 2^53 micro-units are nil, err on LuaJIT as on Lua 5.4,
        -- never a raise: kling.estimate of a shot of 2^53 s raised there
        local core = require "kling.core"
        local ok1, ms, merr = pcall(core.seconds_ms, 2^53)
        local ok2, sum, serr = pcall(core.money_add, 2^53, 2^52)
        local ok3, q, qerr = pcall(require("kling").estimate, { provider = "apiinone", model = "kling-v3",
          mode = "pro", duration = 10, multi_shot = true, shot_type = "customize",
          multi_prompt = { { prompt = "a", duration = 2^53 }, { prompt = "b", duration = 1 } } })
        ngx.say(tostring(ok1 and ms == nil and merr), "|", tostring(ok2 and sum == nil and serr), "|",
          tostring(ok3 and q == nil and qerr.kind))
      }
    }
  }
}
CONF
nginx -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' >"$prefix/stdout.log" 2>&1 &
pid=$!
trap 'kill -QUIT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$prefix"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/core" -o "$prefix/out" 2>/dev/null && break
  sleep 0.05
done
out=$(cat "$prefix/out" 2>/dev/null || true)
echo "nginx answered: $out"
money=$(curl -fsS "http://127.0.0.1:$port/money" 2>/dev/null || true)
echo "nginx answered: $money"
if [[ "$out" =~ ^jit\ [0-9.]+\ [0-9]+\ quota\ true$ ]] \
  && [ "$money" = "amount out of range|amount out of range|validation" ]; then
  echo "1 passed, 0 failed"
else
  echo "--- error.log"; cat "$prefix/error.log" "$prefix/stdout.log" || true
  echo "0 passed, 1 failed"
  exit 1
fi
