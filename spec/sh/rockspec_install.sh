#!/usr/bin/env bash
# `luarocks make` installs the module offline into a fresh tree, and the installed copy works:
# kling loads with its C core, prices a request, and bin/kling answers. The library's rock
# holds no simulator (issue 10: the simulator is not part of the library); the second rock,
# rockspec/kling-sim-scm-1.rockspec, installs every file of lua/kling_sim/ and `kling sim`
# then starts the installed simulator.
set -euo pipefail
tree=$(mktemp -d /tmp/kling-rocks.XXXXXX)
work=$(mktemp -d /tmp/kling-rocks-src.XXXXXX)
simdir=$(mktemp -d /tmp/kling-rocks-sim.XXXXXX)
lmod="$tree/share/lua/5.4"
# What `eval "$(luarocks --tree=... path)"` sets: the installed bin/kling then finds its modules.
export LUA_PATH="$lmod/?.lua;$lmod/?/init.lua;;" LUA_CPATH="$tree/lib/lua/5.4/?.so;;"
cleanup() {
  if [[ -x "$tree/bin/kling" ]]; then "$tree/bin/kling" sim stop --dir "$simdir" >/dev/null 2>&1 || true; fi
  rm -rf "$tree" "$work" "$simdir"
}
trap cleanup EXIT
passed=0
fail() { echo "FAIL: $*"; echo "$passed passed, 1 failed"; exit 1; }
chmod 755 "$tree" "$simdir"
# Build from a copy so the checkout's build/ is not disturbed.
tar --exclude='./build*' -cf - . | tar -xf - -C "$work"
make_rock() {
  (cd "$work" && luarocks --lua-version=5.4 --tree="$tree" make --deps-mode=none "$1") >"$tree.log" 2>&1 \
    || { cat "$tree.log"; rm -f "$tree.log"; fail "luarocks make $1"; }
  rm -f "$tree.log"
}

make_rock rockspec/kling-scm-1.rockspec
out=$(cd / && lua5.4 -e '
    local k = require "kling"
    assert(package.searchpath("kling.core", package.cpath):find("'"$tree"'", 1, true), "core.so not from the tree")
    io.write(k.version, " ", k.estimate { provider = "apiinone" }.amount)')
"$tree/bin/kling" --help | grep -q "Usage: kling" || fail "bin/kling did not answer"
echo "installed: $out"
[[ "$out" =~ ^[0-9.]+\ 300$ ]] || fail "the installed library did not price a request"
passed=$((passed + 1))

# The library's rock installs no simulator, and `kling sim` says where to get it.
if [[ -e "$lmod/kling_sim" || -e "$lmod/kling/sim" ]]; then fail "the library's rock installed the simulator"; fi
if msg=$(cd / && "$tree/bin/kling" sim start --dir "$simdir" 2>&1); then fail "kling sim started without the simulator"; fi
grep -q "kling-sim-scm-1.rockspec" <<<"$msg" || fail "kling sim without the simulator said: $msg"
passed=$((passed + 1))

# The simulator's rock installs every file of lua/kling_sim/ and nothing else (luarocks' builtin
# backend copied the whole lua/ directory: a second copy of the library, renamed beside it), and
# the installed one runs.
lib_before=$(cd "$tree" && find . -path ./lib/luarocks -prune -o -type f -print | sort)
make_rock rockspec/kling-sim-scm-1.rockspec
want=$(cd "$work/lua" && find kling_sim -name '*.lua' | sort)
got=$(cd "$lmod" && find kling_sim -name '*.lua' | sort)
[[ "$want" == "$got" ]] || fail "the sim rock's modules differ from lua/kling_sim: $(diff <(echo "$want") <(echo "$got"))"
added=$(comm -13 <(echo "$lib_before") <(cd "$tree" && find . -path ./lib/luarocks -prune -o -type f -print | sort) \
  | grep -v '^\./share/lua/5\.4/kling_sim/' || true)
[[ -z "$added" ]] || fail "the sim rock installed more than lua/kling_sim: $(head -5 <<<"$added")"
info=$(cd / && "$tree/bin/kling" sim start --dir "$simdir" 2>&1) || fail "installed kling sim start: $info"
grep -q "$lmod" "$simdir/nginx.conf" || fail "the simulator did not run from the installed tree"
http=$(sed -n 's/.*"http":"\([^"]*\)".*/\1/p' <<<"$info" | sed 's#\\/#/#g')
curl -sf "$http/_sim/health" >/dev/null || fail "the installed simulator did not answer on $http"
"$tree/bin/kling" sim stop --dir "$simdir" >/dev/null 2>&1 || fail "kling sim stop"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
