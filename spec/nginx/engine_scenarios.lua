-- Issue 10: the lifecycle scenarios (spec/support/lifecycle_scenarios.lua) through the engine
-- INSIDE REAL NGINX over the resty driver (the OpenResty runner proper: submit, wait_all,
-- deliver and cancel on cosockets in light threads), then through the blocking runner there
-- (client:submit and task:wait's kling.runner.blocking over cosockets), against a simulator of
-- its own. Each scenario runs in a request handler (spec/nginx/engine_checks.lua,
-- /scenario/<runner>/<n>) exactly as the same runner over libcurl runs it
-- (spec/support/lifecycle_run.lua): staged by the same rules (spec/support/lifecycle_sim.lua),
-- it must reach the end the machine alone reaches and leave the same ledger lines. A scenario
-- a runner cannot stage is reported pending, with why.
package.path = "spec/nginx/?.lua;spec/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"
local scenarios = require "support.lifecycle_scenarios"
local staged = require "support.lifecycle_sim"
local run = require "support.lifecycle_run"

local base, sim_dir, prefix = h.dirs("engine-scenarios")
local srv
local pending = { engine = 0, blocking = 0 }
local function cleanup()
  h.tidy(base, sim_dir, srv)
end

h.main(function()
  local sim = h.sim_start(sim_dir, { task_seconds = 1 })
  local port = h.free_port()
  h.write(prefix .. "/env.json", json.encode { http = sim.http, access_key = sim.access_key,
    secret_key = sim.secret_key })
  -- support.sim (the staging's forged tokens) reads the simulator's keys from KLING_SIM_INFO.
  local conf = h.conf_head(prefix) .. "env KLING_SIM_INFO=" .. sim_dir .. "/sim.json;\n"
    .. "http {\n  access_log off;\n"
    .. h.lua_paths(h.src .. "/spec/nginx/?.lua;" .. h.src .. "/spec/?.lua;") .. h.temp_paths(prefix) .. ([[
  lua_socket_log_errors off;
  server {
    listen 127.0.0.1:%d;
    location ~ ^/scenario/(\w+)/(\d+)$ {
      content_by_lua_block { require("engine_checks").scenario(ngx.var[1], ngx.var[2]) }
    }
  }
}
]]):format(port)
  srv = h.nginx_start(prefix, conf, port)
  local RUNNERS = { { "engine", run.ENGINE_CAPS, "issue 10.2", "the engine" },
    { "blocking", run.BLOCKING_CAPS, "issue 10.4", "the blocking runner" } }
  for _, r in ipairs(RUNNERS) do
    local runner, caps, point, who = r[1], r[2], r[3], r[4]
    for i, sc in ipairs(scenarios.scenarios) do
      local name = sc.name .. " (" .. sc.profile .. ")"
      local st, why = staged.staging(sc, caps)
      if not st then
        pending[runner] = pending[runner] + 1
        print("pending - " .. who .. ": " .. name .. ": " .. why)
      else
        h.sim_admin(sim, "DELETE", "/_sim/faults")
        local res = h.request("GET", ("http://127.0.0.1:%d/scenario/%s/%d"):format(port, runner, i),
          { timeout_ms = 120000 })
        local out = res.ok and res.status == 200 and json.decode(res.body) or nil
        local mism = out and out.mismatches
        h.check(point .. ": " .. name .. ": " .. who .. " inside nginx reaches the machine's end, ledger lines "
          .. json.encode(sc.expect.money), type(mism) == "table" and #mism == 0,
          out and json.encode(out) or (res.message or res.body))
      end
    end
  end
  h.check_no_lua_error(srv)
  print(("# scenarios pending (the runner cannot stage them): %d of the engine's, %d of the blocking runner's")
    :format(pending.engine, pending.blocking))
end, function()
  return srv
end, cleanup)
