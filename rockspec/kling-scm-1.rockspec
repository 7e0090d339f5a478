-- luarocks make rockspec/kling-scm-1.rockspec  (works offline: every dependency is a Debian package)
rockspec_format = "3.0"
package = "kling"
version = "scm-1"
source = { url = "git+file:///dev/null" }
description = {
  summary = "Kling AI video, image and audio generation from Lua: official API and gateways",
  detailed = [[
A C core (libcurl, OpenSSL libcrypto) does transport, task polling and exact-integer billing;
thin Lua modules compose workflows; bin/kling is the command line.]],
  license = "MIT",
}
dependencies = { "lua >= 5.1", "lua-cjson", "argparse >= 0.7" }
-- libcurl and libcrypto are found by CMake through pkg-config (Debian keeps curl.h under a
-- multiarch directory that luarocks' own header search does not look in).
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    KLING_TESTS = "OFF",
    KLING_CMOD_DIR = "$(LIBDIR)",
    KLING_LMOD_DIR = "$(LUADIR)",
  },
  -- CMake installs kling/core.so into LIBDIR and every lua/kling file into LUADIR; the simulator
  -- (lua/kling_sim) is not the library: rockspec/kling-sim-scm-1.rockspec installs it.
  install = {
    bin = { kling = "bin/kling" },
  },
}
