# shellcheck shell=bash
# Sourced by the third-party client tests (spec/sh/thirdparty_*.sh), from the checkout's root.

# npm_pinned PKG VERSION CACHE: that exact version of an npm package in CACHE/node_modules,
# installed unless it is there already (the cache lives outside git). Without node and npm it
# says why, prints the failed count and exits 1.
npm_pinned() {
  local pkg=$1 version=$2 cache=$3
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "node and npm are needed to run $pkg (scripts/bootstrap installs them)"
    echo "0 passed, 1 failed"
    exit 1
  fi
  if [ "$(node -p "try{require('$cache/node_modules/$pkg/package.json').version}catch(e){''}" 2>/dev/null)" \
    != "$version" ]; then
    mkdir -p "$cache"
    npm install --prefix "$cache" --no-audit --no-fund --loglevel=error "$pkg@$version" >/dev/null
  fi
}

# kling_lua_env ROOT: lua5.4 finds the checkout's modules and its build's kling.core.
kling_lua_env() {
  export LUA_PATH="$1/lua/?.lua;$1/lua/?/init.lua;;"
  export LUA_CPATH="${KLING_BUILD_DIR:-$1/build}/?.so;;"
}
