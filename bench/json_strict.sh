#!/usr/bin/env bash
# bench/json_strict.lua under Lua 5.4 and under nginx's LuaJIT (one worker, the gateway's Lua):
# what the duplicate-key check adds to a decode. BUILD=build (both flavours built by cmake).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
build=${BUILD:-build}
case "$build" in /*) ;; *) build="$src/$build" ;; esac
[ -f "$build/jit/kling/core.so" ] || { echo "no LuaJIT build at $build/jit/kling/core.so" >&2; exit 2; }
LUA_PATH="$src/lua/?.lua;$src/lua/?/init.lua;;" LUA_CPATH="$build/?.so;;" lua5.4 bench/json_strict.lua
prefix=$(mktemp -d /tmp/kling-json-strict.XXXXXX)
port=$(lua5.4 -e 'local s=require"socket".bind("127.0.0.1",0); local _,p=s:getsockname(); print(p); s:close()')
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root root;"
cat > "$prefix/nginx.conf" <<CONF
$user_line
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
pid $prefix/nginx.pid;
error_log $prefix/error.log notice;
events { worker_connections 16; }
http {
  access_log off;
  lua_package_path "$src/lua/?.lua;$src/lua/?/init.lua;/usr/share/lua/5.1/?.lua;;";
  lua_package_cpath "$build/jit/?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;;";
  server {
    listen 127.0.0.1:$port;
    location /bench { content_by_lua_block { ngx.say((dofile("$src/bench/json_strict.lua"):gsub("^.-\n.-\n", ""))) } }
  }
}
CONF
nginx -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;' >"$prefix/stdout.log" 2>&1 &
pid=$!
trap 'kill -QUIT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$prefix"' EXIT
for _ in $(seq 1 100); do
  curl -fsS -m 300 "http://127.0.0.1:$port/bench" 2>/dev/null && exit 0
  sleep 0.05
done
cat "$prefix/error.log" >&2
exit 1
