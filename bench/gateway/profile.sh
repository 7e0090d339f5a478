#!/usr/bin/env bash
# Where a metered create's time goes, by Lua function: LuaJIT's sampling profiler (jit.p: stacks
# of module:function every ms) in the gateway's one worker while wrk sends creates for
# PROFILE_SECONDS. The conf is the one `kling gateway start` writes, with two locations added
# that start and stop the profiler.
# A sample taken outside the VM (nginx, the kernel) lands on the next phase handler's first line:
# those lines stand for nginx's own work. Prints the functions' inclusive and self shares.
#   bench/gateway/profile.sh   (env: BUILD=build, PROFILE_SECONDS=5, TOP=30, KEEP=<file to keep the raw stacks>,
#   STORE=shared | redis)
# Needs wrk, nginx with its Lua module, lua5.4, curl, jq.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=bench/gateway/lib.sh
. bench/gateway/lib.sh
jit_build
trap bench_cleanup EXIT
gateway_conf profile
out="$work/profile.txt"
: > "$out"
chmod 666 "$out"
sed "s|^    location = /metrics |    location = /_profile/start { content_by_lua_block { require(\"jit.p\").start(\"GFi1\", \"$out\") } }\n    location = /_profile/stop { content_by_lua_block { require(\"jit.p\").stop() } }\n&|" \
  "$work/gw/nginx.conf" > "$work/gw/profile.conf"
grep -q "_profile/start" "$work/gw/profile.conf"
gateway_nginx "$work/gw/profile.conf"
url="http://127.0.0.1:$port/v1/videos/text2video"
GW_KEY=bench-key wrk -t2 -c32 -d3s -s bench/gateway/create.lua "$url" >/dev/null # the JIT's traces
curl -fs "http://127.0.0.1:$port/_profile/start" >/dev/null
# In pieces of at most 2 s, the simulator reset before each: it fills at about 43,000 tasks
# (lib.sh sim_answered_all), about 3 s of creates here.
left=${PROFILE_SECONDS:-5}
while [ "$left" -gt 0 ]; do
  piece=$((left < 2 ? left : 2))
  reset_sim
  GW_KEY=bench-key wrk -t2 -c32 -d"${piece}s" -s bench/gateway/create.lua "$url" | grep -E "Requests/sec|Non-2xx" || true
  sim_answered_all
  left=$((left - piece))
done
curl -fs "http://127.0.0.1:$port/_profile/stop" >/dev/null
[ -n "${KEEP:-}" ] && cp "$out" "$KEEP"
lua5.4 - "$out" "${TOP:-30}" <<'LUA'
local incl, self, total = {}, {}, 0
for line in io.lines(arg[1]) do
  local stack, n = line:match("^(.*) (%d+)$")
  if stack then
    n = tonumber(n)
    total = total + n
    local seen, last = {}, nil
    for f in stack:gmatch("[^;]+") do
      if not seen[f] then
        incl[f], seen[f] = (incl[f] or 0) + n, true
      end
      last = f
    end
    self[last] = (self[last] or 0) + n
  end
end
assert(total > 0, "no samples: the profiler did not run")
for _, t in ipairs { { incl, "inclusive" }, { self, "self" } } do
  local ks = {}
  for k in pairs(t[1]) do ks[#ks + 1] = k end
  table.sort(ks, function(a, b) return t[1][a] > t[1][b] end)
  print(("%s (of %d samples):"):format(t[2], total))
  for i = 1, math.min(#ks, tonumber(arg[2])) do
    print(("%6.1f %%  %s"):format(100 * t[1][ks[i]] / total, ks[i]))
  end
end
LUA
