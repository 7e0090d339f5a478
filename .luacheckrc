-- luacheck configuration: no globals anywhere; nginx code may use `ngx`.
std = "lua54"
max_line_length = 120
codes = true
files["spec"] = { std = "+busted" }
files["lua/kling_sim"] = { read_globals = { "ngx" }, std = "luajit" }
files["lua/kling/resty.lua"] = { read_globals = { "ngx" }, std = "luajit" }
files["lua/kling/resty"] = { read_globals = { "ngx" }, std = "luajit" }
files["examples/nginx"] = { read_globals = { "ngx" }, std = "luajit" }
files["lua/kling/gateway"] = { read_globals = { "ngx" }, std = "luajit" }
files["lua/kling/money/stores/shared.lua"] = { read_globals = { "ngx" }, std = "luajit" }
files["lua/kling/money/stores/redis.lua"] = { read_globals = { "ngx" }, std = "luajit" }
files["bench/gateway"] = { globals = { "wrk" } } -- wrk scripts set its callbacks on the global it gives them
files["bench/gateway/lua_store.lua"] = { read_globals = { "ngx" }, std = "luajit" } -- runs in the gateway's nginx
