-- luarocks make rockspec/kling-scm-1.rockspec  (works offline: every dependency is a Debian package)
rockspec_format = "3.0"
package = "kling"
version = "scm-1"
source = { url = "git+file:///dev/null" }
description = {
  summary = "Kling AI video, image and audio generation from Lua: official API and gateways, offline simulator",
  detailed = [[
A C core (libcurl, OpenSSL libcrypto) does transport, task polling and exact-integer billing;
thin Lua modules compose workflows; bin/kling is the command line.]],
  license = "MIT",
}
dependencies = { "lua >= 5.1", "lua-cjson" }
external_dependencies = {
  CURL = { header = "curl/curl.h" },
  CRYPTO = { header = "openssl/hmac.h" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    KLING_TESTS = "OFF",
    KLING_CMOD_DIR = "$(LIBDIR)",
  },
  install = {
    lua = {
      ["kling"] = "lua/kling/init.lua",
      ["kling.client"] = "lua/kling/client.lua",
      ["kling.errors"] = "lua/kling/errors.lua",
      ["kling.json"] = "lua/kling/json.lua",
      ["kling.task"] = "lua/kling/task.lua",
      ["kling.transport"] = "lua/kling/transport.lua",
      ["kling.validate"] = "lua/kling/validate.lua",
      ["kling.driver.curl"] = "lua/kling/driver/curl.lua",
      ["kling.providers"] = "lua/kling/providers/init.lua",
      ["kling.providers.kling"] = "lua/kling/providers/kling.lua",
    },
    bin = { kling = "bin/kling" },
  },
}
