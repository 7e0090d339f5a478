#!/usr/bin/env bash
# `luarocks make` installs the module offline into a fresh tree, and the installed copy works:
# kling loads with its C core, prices a request, and bin/kling answers.
set -euo pipefail
tree=$(mktemp -d /tmp/kling-rocks.XXXXXX)
work=$(mktemp -d /tmp/kling-rocks-src.XXXXXX)
trap 'rm -rf "$tree" "$work"' EXIT
# Build from a copy so the checkout's build/ is not disturbed.
tar --exclude='./build*' -cf - . | tar -xf - -C "$work"
(cd "$work" && luarocks --lua-version=5.4 --tree="$tree" make --deps-mode=none rockspec/kling-scm-1.rockspec) \
  >"$tree.log" 2>&1 || { cat "$tree.log"; echo "0 passed, 1 failed"; exit 1; }
rm -f "$tree.log"
out=$(cd / && LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;" \
  LUA_CPATH="$tree/lib/lua/5.4/?.so;;" lua5.4 -e '
    local k = require "kling"
    assert(package.searchpath("kling.core", package.cpath):find("'"$tree"'", 1, true), "core.so not from the tree")
    io.write(k.version, " ", k.estimate { provider = "apiinone" }.amount)')
"$tree/bin/kling" --help | grep -q "usage: kling" || { echo "bin/kling did not answer"; exit 1; }
echo "installed: $out"
[[ "$out" =~ ^[0-9.]+\ 300$ ]] && echo "1 passed, 0 failed" || { echo "0 passed, 1 failed"; exit 1; }
