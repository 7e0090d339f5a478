-- A reload (HUP) reads the gateway's config again, but not the nginx conf `kling gateway start`
-- wrote from it: its proxy_pass keeps the upstream and the timeouts it was written for. A reload
-- whose config changed them is refused, saying why, and the gateway goes on as it was (before,
-- creates went on to the old upstream, or waited longer than the new timeouts, while polls
-- followed the config: a create looked up while still in flight was released, then billed). A
-- reload that changes what a reload can (a credit) is taken, also when it names the journal another
-- way. A simulator of its own.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"

local ADMIN = "admin-0123456789abcdef"
local g = h.launched("gateway-reload")
local sim, gw

local function config(upstream_extra, credit)
  local upstream = { provider = "kling", base_url = sim.http, api_key = sim.api_key, timeout = 30, connect_timeout = 5 }
  for k, v in pairs(upstream_extra) do
    upstream[k] = v
  end
  return { upstream = upstream, journal = g.journal, admin_key = ADMIN,
    accounts = { { name = "alice", api_key = "gw-alice-key", credit = credit or "100" } } }
end

local function credit()
  return h.gateway_admin(gw.http, ADMIN).by.alice.limit
end

-- HUP, then the time for a new cycle's workers (or for its refusal) to show.
local function reload()
  h.sh("kill -HUP " .. gw.pid)
  h.sleep(1)
end

-- cond() once it holds, or after 10 s (a loaded machine's reload may take longer than reload()'s
-- second to show).
local function soon(cond)
  for _ = 1, 40 do
    if cond() then
      return true
    end
    h.sleep(0.25)
  end
  return cond()
end

local function creates()
  return h.request("POST", gw.http .. "/v1/videos/text2video", { headers = { authorization = "Bearer gw-alice-key" },
    body = { model_name = "kling-v1", mode = "std", duration = "5", prompt = "a heron in reeds" } }).status == 200
end

local function run()
  sim = h.sim_start(g.sim_dir, { task_seconds = 1 })
  gw = g.start(config {})
  h.check("a gateway whose creates go by its conf's proxy_pass", creates())

  for _, change in ipairs { { timeout = 2 }, { connect_timeout = 1 }, { base_url = "http://127.0.0.1:9" } } do
    local field = next(change)
    g.write_config(config(change, "250"))
    reload()
    local log
    h.check("a reload whose upstream." .. field .. " changed is refused, naming it and saying what to do",
      soon(function()
        log = g.srv().error_log()
        return log:find("upstream." .. field .. " is ", 1, true) ~= nil
          and log:find("restart the gateway", 1, true) ~= nil
      end), log:sub(-1500))
    h.check("... and the gateway goes on as it was: its credit unchanged, its creates taken", credit() == "100"
      and creates())
  end
  -- A reload naming another journal: refused before anything is made at the new path (it made
  -- the file and its lock, then was refused for a file "moved away and replaced", and a start
  -- with that path was then refused: the lock said a gateway had run with the empty journal).
  local other = g.journal .. ".new"
  local moved = config({}, "250")
  moved.journal = other
  g.write_config(moved)
  reload()
  local log
  h.check("a reload naming another journal is refused, naming both paths", soon(function()
    log = g.srv().error_log()
    return log:find("a reload cannot move the journal from " .. g.journal .. " to " .. other, 1, true) ~= nil
  end), log:sub(-1500))
  local function exists(p)
    local f = io.open(p, "rb")
    if f then
      f:close()
    end
    return f ~= nil
  end
  h.check("... nothing is made at the new path", not exists(other) and not exists(other .. ".lock"),
    tostring(exists(other)) .. " " .. tostring(exists(other .. ".lock")))
  h.check("... and the gateway goes on as it was", credit() == "100" and creates())
  -- The same journal named another way (a doubled '/'): the paths were compared as text, and the
  -- reload was refused as a move. They are compared by the files they name.
  local respelt = config({}, "200")
  respelt.journal = g.journal:gsub("/([^/]+)$", "//%1")
  g.write_config(respelt)
  reload()
  h.check("a reload naming the same journal another way (" .. respelt.journal .. ") is taken", soon(function()
    return credit() == "200"
  end) and creates(), g.srv().error_log():sub(-1500))
  g.write_config(config({}, "250"))
  reload()
  h.check("a reload that changes a credit only is taken", soon(function()
    return credit() == "250"
  end))
  h.check_no_lua_error(g.srv(), "no Lua error in the error log")
end

h.main(run, g.srv, g.cleanup)
