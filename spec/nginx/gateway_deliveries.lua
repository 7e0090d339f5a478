-- Task ends told to clients' callback_urls (kling.gateway.deliveries) whose receivers fail at
-- once, in real nginx whose workers may hold few pending timers (lua_max_pending_timers 64, the
-- default 1024 scaled down): each failed send waited for its retry in a timer of its own, so
-- that about as many ends as the limit took every pending timer of the worker (other accounts'
-- retries, the poller's ticks). The retries keep their schedule (1, 2, 4 s) on a bounded number
-- of timers, and what a worker holds is bounded (callback_queue): past it a task end is counted
-- in /metrics and logged, never dropped silently.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local base, sim_dir, prefix = h.dirs("gateway-deliveries")
local srv, sim, port

local function cleanup()
  h.tidy(base, sim_dir, srv)
end

local function url(path)
  return "http://127.0.0.1:" .. port .. path
end

local function write_config(callback_queue)
  h.write(prefix .. "/gateway.json", json.encode {
    upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key, timeout = 30 },
    journal = prefix .. "/ledger.jsonl",
    allow_private_callbacks = true, -- the test's receivers are on loopback
    poll = { min_interval = 0.3, max_interval = 0.5 },
    callback_queue = callback_queue,
    accounts = { { name = "flood", api_key = "gw-flood-key", credit = "100000" },
      { name = "other", api_key = "gw-other-key", credit = "1000" } },
  })
end

local function start_nginx()
  local conf = h.conf_head(prefix) .. "http {\n  access_log off;\n" .. h.lua_paths() .. h.temp_paths(prefix) .. ([[
  lua_max_pending_timers 64;
  lua_shared_dict receiver 1m;
  lua_shared_dict failing 4m;
  include %s/examples/nginx/http.conf;
  server {
    listen 127.0.0.1:%d;
    include %s/examples/nginx/server.conf;
%s
    # A receiver that fails at once: each attempt kept with its time.
    location = /fail {
      content_by_lua_block {
        ngx.req.read_body()
        local n = ngx.shared.failing:incr("n", 1, 0)
        ngx.update_time()
        ngx.shared.failing:set(n, require("kling.json").encode { t = ngx.now(), body = ngx.req.get_body_data() })
        ngx.exit(500)
      }
    }
    location = /failed {
      content_by_lua_block {
        local out = {}
        for i = 1, ngx.shared.failing:get("n") or 0 do out[i] = ngx.shared.failing:get(i) end
        ngx.header["Content-Type"] = "application/json"
        ngx.say("[" .. table.concat(out, ",") .. "]")
      }
    }
  }
}
]]):format(h.src, port, h.src, h.receiver_locations())
  srv = h.nginx_start(prefix, conf, port)
end

local function create(key, prompt, callback_url)
  local res = h.request("POST", url("/v1/images/generations"), { headers = { authorization = "Bearer " .. key },
    body = { model_name = "kling-v1", prompt = prompt, callback_url = callback_url } })
  return res.json and res.json.data and res.json.data.task_id
end

-- The attempts /fail saw, by task id: {times, in order}.
local function attempts()
  local by = {}
  for _, r in ipairs(json.decode(h.request("GET", url("/failed")).body) or {}) do
    local task = json.decode(r.body or "") or {}
    local id = task.task_id or (task.data and task.data.task_id)
    if id then
      by[id] = by[id] or {}
      table.insert(by[id], r.t)
    end
  end
  return by
end

local function metric(name)
  local text = h.request("GET", url("/metrics")).body or ""
  return tonumber(text:match("\n" .. name .. " (%d+)\n")) or 0
end

-- Waits (generously) until every id has 4 attempts or counts as dropped; -> attempts by id.
local function settle(ids, dropped_base)
  local limit = h.now() + 90
  local by
  while true do
    by = attempts()
    local told = 0
    for _, id in ipairs(ids) do
      told = told + ((by[id] and #by[id] >= 4) and 1 or 0)
    end
    if told + (metric("kling_gateway_callbacks_dropped_total") - dropped_base) >= #ids or h.now() > limit then
      return by
    end
    h.sleep(0.5)
  end
end

local function run()
  sim = h.sim_start(sim_dir, { task_seconds = 1 })
  port = h.free_port()
  write_config(nil)
  start_nginx()

  -- ---- 100 task ends whose receiver fails at once: every one retried on its schedule ----
  local ids = {}
  for i = 1, 100 do
    ids[#ids + 1] = create("gw-flood-key", "failing " .. i, url("/fail"))
  end
  local other = create("gw-other-key", "another account's", url("/receiver"))
  local by = settle(ids, 0)
  local full, early, detail = 0, 0, nil
  for _, id in ipairs(ids) do
    local t = by[id] or {}
    if #t == 4 then
      full = full + 1
      for i, wait in ipairs { 1, 2, 4 } do
        if t[i + 1] - t[i] < wait - 0.05 then
          early, detail = early + 1, id .. ": " .. json.encode(t)
        end
      end
    else
      detail = detail or (id .. ": " .. #t .. " attempts")
    end
  end
  h.check(("100 task ends (%d created) to a receiver that fails at once: each sent 4 times (%d were), with more"
    .. " retries waiting than the worker's 64 pending timers"):format(#ids, full), #ids == 100 and full == 100,
    detail)
  h.check("... each retry after its wait (1, 2, 4 s), none early", early == 0, detail)
  h.check("... the worker never ran out of pending timers", not srv.error_log():find("too many pending timers", 1,
    true), srv.error_log():match("[^\n]*too many pending timers[^\n]*"))
  local got
  local limit = h.now() + 30
  while not got and h.now() < limit do
    for _, r in ipairs(json.decode(h.request("GET", url("/received")).body) or {}) do
      got = got or (other and r.body and r.body:find(other, 1, true) and true)
    end
    h.sleep(0.2)
  end
  h.check("... and another account's callback arrived", got == true, other)
  h.check("... and nothing was dropped (the default callback_queue, 10000 a worker)",
    metric("kling_gateway_callbacks_dropped_total") == 0)

  -- ---- a worker holding callback_queue callbacks: the next end is counted and logged ----
  write_config(10)
  srv.hup()
  local more = {}
  for i = 1, 40 do
    more[#more + 1] = create("gw-flood-key", "more " .. i, url("/fail"))
  end
  by = settle(more, 0)
  local told = 0
  for _, id in ipairs(more) do
    told = told + (by[id] and 1 or 0)
  end
  local dropped = metric("kling_gateway_callbacks_dropped_total")
  h.check(("callback_queue 10: 40 ends at once, %d told, %d counted dropped in /metrics: every end one or the"
    .. " other"):format(told, dropped), #more == 40 and dropped > 0 and told + dropped == 40)
  local logged = select(2, srv.error_log():gsub("dropped: this worker holds %d+ callbacks already", ""))
  h.check(("... and each dropped one logged (%d)"):format(logged), logged == dropped)
  h.check_no_lua_error(srv)
end

h.main(run, function()
  return srv
end, cleanup)
