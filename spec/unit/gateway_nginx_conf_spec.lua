-- kling.gateway.nginx_conf code_cache_off: whether the conf nginx read runs the gateway's
-- handlers with lua_code_cache off (init refuses nginx's start then). nginx tells Lua nothing of
-- it: the conf is read as nginx reads it, includes in place, block by block.
local files = require "support.files"
local nginx_conf = require "kling.gateway.nginx_conf"

describe("kling.gateway.nginx_conf code_cache_off", function()
  local root, src
  setup(function()
    root = files.tempdir()
    src = assert(os.getenv("PWD"))
  end)
  teardown(function()
    files.remove(root)
  end)

  local n = 0
  -- A conf of http {} around `body` (the gateway's http.conf included) -> its path.
  local function conf(body)
    n = n + 1
    local path = root .. "/nginx" .. n .. ".conf"
    files.write(path, table.concat {
      "events { worker_connections 64; }\n",
      "http {\n  include ", src, "/examples/nginx/http.conf;\n", body, "}\n",
    })
    return path
  end
  local gateway_server = "  server {\n    listen 1;\n    include " .. os.getenv("PWD")
    .. "/examples/nginx/server.conf;\n  }\n"

  it("finds it in the http {} around the gateway's server, by file and line", function()
    local path = conf("  # lua_code_cache off; (a comment)\n  lua_code_cache off;\n" .. gateway_server)
    assert.equal(path .. ":5", nginx_conf.code_cache_off(path))
  end)

  it("never opens what is no regular file: a FIFO at an include's name is not followed", function()
    assert(os.execute("mkfifo " .. root .. "/fifo.inc"))
    local path = conf("  include fifo.inc;\n  lua_code_cache off;\n" .. gateway_server)
    assert.equal(path .. ":5", nginx_conf.code_cache_off(path)) -- it returned: the FIFO was never opened
  end)

  it("finds it in the gateway's own server {}, through an include relative to the conf", function()
    files.write(root .. "/gw-server.inc", "server {\n  lua_code_cache off;\n  include " .. src
      .. "/examples/nginx/server.conf;\n}\n")
    local path = conf("  include gw-server.inc;\n")
    assert.equal(root .. "/gw-server.inc:2", nginx_conf.code_cache_off(path))
  end)

  it("finds it in a location whose handler's Lua holds braces and quotes of its own", function()
    local path = conf(table.concat {
      "  server {\n    listen 2;\n    location /x {\n      lua_code_cache off;\n",
      "      content_by_lua_block {\n        local s = \"}\" .. '}' -- }\n        local t = [[ } ]]\n",
      "        require(\"kling.gateway\").api()\n      }\n    }\n  }\n",
    })
    assert.equal(path .. ":7", nginx_conf.code_cache_off(path))
  end)

  it("leaves alone another's location with it off, and one the gateway's server sets back on", function()
    assert.is_nil(nginx_conf.code_cache_off(conf(gateway_server .. table.concat {
      "  server {\n    listen 3;\n    location /dev {\n      lua_code_cache off;\n",
      "      content_by_lua_block { ngx.say(\"{\") }\n    }\n  }\n",
    })))
    assert.is_nil(nginx_conf.code_cache_off(conf("  lua_code_cache off;\n  server {\n    listen 4;\n"
      .. "    lua_code_cache on;\n    include " .. src .. "/examples/nginx/server.conf;\n  }\n")))
    assert.is_nil(nginx_conf.code_cache_off(conf(gateway_server)))
  end)

  it("takes a conf it cannot read as saying nothing", function()
    assert.is_nil(nginx_conf.code_cache_off(root .. "/missing.conf"))
  end)
end)

-- nginx started without -c reads the conf it was built with (Debian's service: /etc/nginx/nginx.conf),
-- not <prefix>conf/nginx.conf: that one was read (for lua_code_cache, and the workers' user).
describe("kling.gateway.nginx_conf path", function()
  local saved
  before_each(function()
    saved = rawget(_G, "ngx")
    _G.ngx = { config = { prefix = function() return "/usr/share/nginx/" end, -- luacheck: ignore 122
      nginx_configure = function() return " --prefix=/usr/share/nginx --conf-path=/etc/nginx/nginx.conf --x" end } }
  end)
  after_each(function()
    _G.ngx = saved -- luacheck: ignore 122
  end)

  it("is -c's, relative to the prefix, else nginx's --conf-path", function()
    assert.equal("/etc/nginx/nginx.conf", nginx_conf.path { "nginx:", "master", "process", "/usr/sbin/nginx", "-g",
      "daemon on; master_process on;" })
    assert.equal("/srv/gw/nginx.conf", nginx_conf.path { "nginx", "-c", "/srv/gw/nginx.conf" })
    assert.equal("/usr/share/nginx/my.conf", nginx_conf.path { "nginx", "-c", "my.conf" })
    _G.ngx.config.nginx_configure = function() return " --prefix=/opt/n" end
    assert.equal("/usr/share/nginx/conf/nginx.conf", nginx_conf.path { "nginx" })
  end)
end)
