-- A Redis node's reload (HUP) checks its config file's accounts against the store's again, in
-- its first new worker (kling.gateway init open_redis_accounts). Until that check was done for
-- the whole file, every file account answered 503 on every route: at each reload, and for as
-- long as Redis was slow or away. A file account the store opened as the file's before (no
-- created account has its name, nor can take it since) now signs in meanwhile; one the reload
-- adds waits for its own open (fail closed). Redis's writes are paused (CLIENT PAUSE WRITE)
-- across the reload, so that the new workers' opens wait. A simulator of its own.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local json = require "kling.json"

local base = h.tempdir("gateway-redis-reload")
local sim_dir, dir, config = base .. "/sim", base .. "/node", base .. "/gateway.json"
h.sh("mkdir -p " .. h.q(sim_dir))
local sim, redis, info

local function cleanup()
  h.gateway_stop(dir)
  if redis then
    redis.stop()
  end
  h.tidy(base, sim_dir)
end

local function configure(accounts)
  h.write(config, json.encode {
    upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key },
    admin_key = "admin-0123456789abcdef", store = { redis = "redis://127.0.0.1:" .. redis.port .. "/0" },
    accounts = accounts,
  })
end

-- A create whose body is not JSON: 400 (code 1200) once its key signs in, before the store is
-- asked anything; 503 (code 5001) while the key cannot sign in yet.
local function signs_in(key)
  local res = h.request("POST", info.http .. "/v1/videos/text2video", { headers = { authorization = "Bearer " .. key },
    body = "not json" })
  return res.status == 400 and res.json and res.json.code == 1200, tostring(res.status) .. " " .. tostring(res.body)
end

local function run()
  sim = h.sim_start(sim_dir, { task_seconds = 1 })
  redis = h.redis(base .. "/redis")
  redis.start()
  local carol = { name = "carol", api_key = "gw-carol-key", credit = "100" }
  configure { carol }
  local out, ok = h.sh(("lua5.4 %s/bin/kling gateway start --config %s --dir %s"):format(h.q(h.src), h.q(config),
    h.q(dir)))
  assert(ok, "kling gateway start: " .. out)
  info = assert(json.decode(out:match("{.*}")), out)
  local by = h.now() + 10
  local yes, why
  repeat
    yes, why = signs_in("gw-carol-key")
    if not yes then
      h.sleep(0.1)
    end
  until yes or h.now() > by
  h.check("a file account signs in once the store opened it", yes, why)

  configure { carol, { name = "dave", api_key = "gw-dave-key", credit = "100" } }
  redis.cli("CLIENT PAUSE 20000 WRITE") -- the new workers' opens wait (unpaused below: a loaded machine's
  -- reload took more than the 5 s this was)
  local paused_at = h.now()
  assert(h.hup(info.pid, 15), "the node did not reload")
  local carol_in, carol_why = signs_in("gw-carol-key")
  local dave_in, dave_why = signs_in("gw-dave-key")
  local within = h.now() - paused_at < 19.5
  h.check("during a reload whose opens wait for Redis, the file account opened before signs in", within and carol_in,
    carol_why)
  h.check("... the account the reload adds does not yet (503, 5001)", within and not dave_in
    and dave_why:find("^503 ") ~= nil and dave_why:find('"code":5001', 1, true) ~= nil, dave_why)
  redis.cli("CLIENT UNPAUSE")
  by = h.now() + 10
  repeat
    dave_in, dave_why = signs_in("gw-dave-key")
    if not dave_in then
      h.sleep(0.1)
    end
  until dave_in or h.now() > by
  h.check("... and does once Redis took its open", dave_in, dave_why)
end

h.main(run, function() return nil end, cleanup)
