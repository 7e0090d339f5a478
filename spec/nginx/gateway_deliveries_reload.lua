-- Client callbacks a worker holds across a reload (kling.gateway.deliveries): task ends whose
-- receiver is down wait in the worker's memory for their retries; nginx reloads, the old
-- worker exits, and its callbacks were lost with it. They are handed to the node's shared
-- memory and sent by the new worker once the receiver answers.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local base, sim_dir, prefix = h.dirs("gateway-deliveries-reload")
local srv, sim, port

local function cleanup()
  if srv then
    srv.stop()
  end
  h.tidy(base, sim_dir)
end

local function url(path)
  return "http://127.0.0.1:" .. port .. path
end

local function start_nginx()
  h.write(prefix .. "/gateway.json", json.encode {
    upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key, timeout = 30 },
    journal = prefix .. "/ledger.jsonl",
    allow_private_callbacks = true, -- the test's receiver is on loopback
    poll = { min_interval = 0.3, max_interval = 0.5 },
    accounts = { { name = "ivy", api_key = "gw-ivy-key", credit = "1000" } },
  })
  local conf = h.conf_head(prefix) .. "http {\n  access_log off;\n" .. h.lua_paths() .. h.temp_paths(prefix) .. ([[
  lua_shared_dict flaky 1m;
  include %s/examples/nginx/http.conf;
  server {
    listen 127.0.0.1:%d;
    include %s/examples/nginx/server.conf;
    # A receiver that fails until /flaky/up: each attempt kept, with its answer.
    location = /flaky {
      content_by_lua_block {
        ngx.req.read_body()
        local d = ngx.shared.flaky
        local up = d:get("up") == true
        d:set(d:incr("n", 1, 0), require("kling.json").encode { up = up, body = ngx.req.get_body_data() })
        ngx.exit(up and 200 or 500)
      }
    }
    location = /flaky/up {
      content_by_lua_block { ngx.shared.flaky:set("up", true) ngx.say("up") }
    }
    location = /flaky/log {
      content_by_lua_block {
        local out = {}
        for i = 1, ngx.shared.flaky:get("n") or 0 do out[i] = ngx.shared.flaky:get(i) end
        ngx.header["Content-Type"] = "application/json"
        ngx.say("[" .. table.concat(out, ",") .. "]")
      }
    }
  }
}
]]):format(h.src, port, h.src)
  srv = h.nginx_start(prefix, conf, port)
end

local function create(prompt)
  local res = h.request("POST", url("/v1/images/generations"), { headers = { authorization = "Bearer gw-ivy-key" },
    body = { model_name = "kling-v1", prompt = prompt, callback_url = url("/flaky") } })
  return res.json and res.json.data and res.json.data.task_id
end

-- The attempts /flaky saw, by task id: {failed = n, delivered = n}.
local function attempts()
  local by = {}
  for _, r in ipairs(json.decode(h.request("GET", url("/flaky/log")).body) or {}) do
    local task = json.decode(r.body or "") or {}
    local id = task.task_id or (task.data and task.data.task_id)
    if id then
      by[id] = by[id] or { failed = 0, delivered = 0 }
      local k = r.up and "delivered" or "failed"
      by[id][k] = by[id][k] + 1
    end
  end
  return by
end

-- every(ids, key, seconds) -> whether each id's attempts have `key` (waited for), and them.
local function every(ids, key, seconds)
  local limit, by = h.now() + seconds
  repeat
    by = attempts()
    local all = true
    for _, id in ipairs(ids) do
      all = all and by[id] ~= nil and by[id][key] > 0
    end
    if all then
      return true, by
    end
    h.sleep(0.1)
  until h.now() > limit
  return false, by
end

local function run()
  sim = h.sim_start(sim_dir, { task_seconds = 1 })
  port = h.free_port()
  start_nginx()
  local ids = {}
  for i = 1, 5 do
    ids[#ids + 1] = create("told later " .. i)
  end
  local failed, by = every(ids, "failed", 30)
  h.check("5 task ends sent to a receiver that is down: each failed once, its retries waiting in the worker",
    #ids == 5 and failed, json.encode(by))
  h.check("nginx reloads: the worker holding them exits, a new one runs", srv.hup())
  h.request("GET", url("/flaky/up"))
  local delivered
  delivered, by = every(ids, "delivered", 30)
  h.check("... the receiver back up, each end is delivered by the new worker", delivered, json.encode(by))
  h.check_no_lua_error(srv)
end

h.main(run, function()
  return srv
end, cleanup)
