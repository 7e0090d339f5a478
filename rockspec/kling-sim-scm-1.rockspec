-- luarocks make rockspec/kling-sim-scm-1.rockspec  (after rockspec/kling-scm-1.rockspec)
-- The offline simulator, a rock of its own: the library's rock does not install it. It runs in
-- nginx (lua-nginx-module) and borrows nothing of the library but kling.json; `kling sim` (the
-- library's bin/kling) finds it on the Lua path once installed. spec/sh/rockspec_install.sh
-- checks that this list names every file under lua/kling_sim/.
rockspec_format = "3.0"
package = "kling-sim"
version = "scm-1"
source = { url = "git+file:///dev/null" }
description = {
  summary = "Offline simulator of the Kling AI API and four gateways, served by nginx on loopback",
  license = "MIT",
}
dependencies = { "lua >= 5.1", "kling" }
build = {
  -- Not "builtin": that backend also copies the whole lua/ directory, the library's modules
  -- with it (a second copy of every kling/*.lua, which a removal of the kling rock then left
  -- without its C core). "none" installs what install.lua lists, nothing else.
  type = "none",
  install = { lua = {
    ["kling_sim.admin"] = "lua/kling_sim/admin.lua",
    ["kling_sim.auth"] = "lua/kling_sim/auth.lua",
    ["kling_sim.callbacks"] = "lua/kling_sim/callbacks.lua",
    ["kling_sim.clock"] = "lua/kling_sim/clock.lua",
    ["kling_sim.conf"] = "lua/kling_sim/conf.lua",
    ["kling_sim.dialects.apiinone"] = "lua/kling_sim/dialects/apiinone.lua",
    ["kling_sim.dialects.apimodels"] = "lua/kling_sim/dialects/apimodels.lua",
    ["kling_sim.dialects.compat"] = "lua/kling_sim/dialects/compat.lua",
    ["kling_sim.dialects.evolink"] = "lua/kling_sim/dialects/evolink.lua",
    ["kling_sim.dialects.kling"] = "lua/kling_sim/dialects/kling.lua",
    ["kling_sim.fate"] = "lua/kling_sim/fate.lua",
    ["kling_sim.faults"] = "lua/kling_sim/faults.lua",
    ["kling_sim.gateway"] = "lua/kling_sim/gateway.lua",
    ["kling_sim.hosts"] = "lua/kling_sim/hosts.lua",
    ["kling_sim.launcher"] = "lua/kling_sim/launcher.lua",
    ["kling_sim.media"] = "lua/kling_sim/media.lua",
    ["kling_sim.official.check"] = "lua/kling_sim/official/check.lua",
    ["kling_sim.official.general_rules"] = "lua/kling_sim/official/general_rules.lua",
    ["kling_sim.official.library"] = "lua/kling_sim/official/library.lua",
    ["kling_sim.official.media_rules"] = "lua/kling_sim/official/media_rules.lua",
    ["kling_sim.official.notify"] = "lua/kling_sim/official/notify.lua",
    ["kling_sim.official.plan"] = "lua/kling_sim/official/plan.lua",
    ["kling_sim.official.video_rules"] = "lua/kling_sim/official/video_rules.lua",
    ["kling_sim.official.views"] = "lua/kling_sim/official/views.lua",
    ["kling_sim.params"] = "lua/kling_sim/params.lua",
    ["kling_sim.registry"] = "lua/kling_sim/registry.lua",
    ["kling_sim.reply"] = "lua/kling_sim/reply.lua",
    ["kling_sim.router"] = "lua/kling_sim/router.lua",
    ["kling_sim.server"] = "lua/kling_sim/server.lua",
    ["kling_sim.settings"] = "lua/kling_sim/settings.lua",
    ["kling_sim.stats"] = "lua/kling_sim/stats.lua",
    ["kling_sim.store"] = "lua/kling_sim/store.lua",
    ["kling_sim.units"] = "lua/kling_sim/units.lua",
  } },
}
