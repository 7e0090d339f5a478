-- The gateway's task tables (kling.resty.tasks, shared dict; kling.gateway.redis_tasks, Redis)
-- in real nginx: a task that a callback or the poller ends before its create's record is
-- published. finish gives the index keys that exist the record's retention; the list entry
-- (l:...:<n>), ln: and u: that the publish writes after it were written with no expiry, never
-- freed. They must live as long as the final record has left.
-- The same file checks both tables' list of kept holds (keep, unkeep, kept_page).
local nginx = require "support.nginx"
local json = require "kling.json"

local function sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1", "r"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

-- The table under test, for a request's ?store=shared|redis&port=: made in one place for every
-- location below (loaded in nginx's init as the module "tables").
local TABLES = [[
    init_by_lua_block {
      package.loaded.tables = {
        tasks = function(args, prefix, o)
          o = o or {}
          o.retention_s = o.retention_s or 1000
          if args.store == "shared" then
            o.dict = "tasks"
            return require("kling.resty.tasks").new(o)
          end
          o.redis = require("kling.gateway.redis").new("redis://127.0.0.1:" .. args.port, { prefix = prefix })
          o.dict = ngx.shared.tasks
          return require("kling.gateway.redis_tasks").new(o)
        end,
      }
    }
]]

-- The scenario, in a content handler: ?store=shared|redis&port=&many=0|1. The JSON answer
-- holds the remaining lifetimes (s; -1: no expiry, -2: no such key) the handler reads.
local SERVER = [[
    location = /scenario {
      content_by_lua_block {
        local json = require "kling.json"
        local args = ngx.req.get_uri_args()
        local store, many = args.store, args.many == "1"
        local T = require("tables").tasks(args, "kt:")
        local id = "gw" .. args.tag
        local rec = { id = id, account = "a", endpoint = "videos/text2video", status = "queued", state = "creating",
          external_task_id = "ext-" .. args.tag }
        assert(T:create(rec))
        -- a callback reads the record as stored (no list entry, no upstream id yet) ...
        local other = assert(T:get(id))
        other.upstream_id, other.status, other.state = "up-" .. args.tag, "succeeded", "ended"
        -- ... and ends it before the create's answer is published (order=first), or after
        -- (order=late: its end written once the publish is done, from what it read before)
        if args.order ~= "late" then
          assert(T:finish(other) == true)
        end
        rec.upstream_id, rec.status, rec.state = "up-" .. args.tag, "submitted", "active"
        if many then
          T:publish_many({ rec }, 1, 1)
        else
          T:publish(rec, true, false)
        end
        if args.order == "late" then
          assert(T:finish(other) == true)
        end
        local out = { final = T:text(id) ~= nil }
        if store == "shared" then
          local d = ngx.shared.tasks
          local function ttl(k)
            local v = d:ttl(k)
            return v == nil and -2 or v == 0 and -1 or v
          end
          out.f, out.list, out.u = ttl("f:" .. id), ttl("l:a:videos/text2video:" .. (rec.list_n or 0)),
            ttl("u:up-" .. args.tag)
          out.t = ttl("t:" .. id)
        end
        ngx.say(json.encode(out))
      }
    }
    location = /enlist {
      content_by_lua_block {
        local json = require "kling.json"
        local args = ngx.req.get_uri_args()
        local T = require("tables").tasks(args, "ke:")
        local id = "gwenlist" .. args.store
        assert(T:create { id = id, account = "e", endpoint = "videos/text2video", status = "queued", state = "lookup" })
        -- a callback and a poll adopt it at once, each from the record as stored (not listed)
        local a, b = assert(T:get(id)), assert(T:get(id))
        assert(T:enlist(a))
        assert(T:enlist(b))
        local n = 0
        for _, rec in ipairs(T:list("e", "videos/text2video", 1, 50)) do
          n = n + (rec.id == id and 1 or 0)
        end
        ngx.say(json.encode { listed = n, same = a.list_n == b.list_n })
      }
    }
    location = /kept {
      content_by_lua_block {
        local json = require "kling.json"
        local args = ngx.req.get_uri_args()
        local T = require("tables").tasks(args, "kk:")
        assert(T:keep { "gwa", "gwb", "gwc" })
        assert(T:keep { "gwb" }) -- kept again (a sweep, a restart): listed once
        assert(T:keep {})
        assert(T:unkeep("gwb"))
        assert(T:unkeep("gwnone"))
        local seen, cursor, pages = {}, "0", 0
        repeat
          local ids
          cursor, ids = T:kept_page(cursor, 1)
          assert(cursor, ids)
          for _, id in ipairs(ids) do
            seen[#seen + 1] = id
          end
          pages = pages + 1
        until cursor == "0" or pages > 20
        table.sort(seen)
        ngx.say(json.encode { ids = table.concat(seen, ","), done = cursor == "0" })
      }
    }
]]

describe("a task ended before its create's record is published", function()
  local srv, port, redis_dir

  local function redis_cli(...)
    return (sh("redis-cli -p " .. port .. " " .. table.concat({ ... }, " ")))
  end

  setup(function()
    local cpath = assert(nginx.jit_cpath())
    srv = nginx.start(SERVER, { cpath = cpath, http = "lua_shared_dict tasks 4m;\n" .. TABLES })
    port = nginx.free_port()
    redis_dir = nginx.tempdir()
    local out, ok = sh(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --dir %s --daemonize yes"
      .. " --logfile %s/redis.log"):format(port, redis_dir, redis_dir))
    assert(ok, out)
    for _ = 1, 200 do
      if redis_cli("ping"):find("PONG", 1, true) then
        break
      end
      sh("sleep 0.05")
    end
  end)

  teardown(function()
    if port then
      redis_cli("shutdown nosave")
    end
    if srv then
      srv.stop()
    end
    if redis_dir then
      sh("rm -rf " .. redis_dir)
    end
  end)

  -- A location's JSON answer for store.
  local function get(location, store)
    local out = sh("curl -s '" .. srv.url .. location .. "?store=" .. store .. "&port=" .. port .. "'")
    return json.decode(out) or error(out .. (sh("tail -5 " .. srv.dir .. "/error.log")))
  end

  local function run(q)
    local out = sh("curl -s '" .. srv.url .. "/scenario?" .. q .. "'")
    local r = json.decode(out)
    return r or error(out .. (sh("tail -5 " .. srv.dir .. "/error.log")))
  end

  for _, store in ipairs { "shared", "redis" } do
    it(store .. ": the kept holds' list takes each id once, drops the ones unkept, and pages to its end", function()
      assert.are.same({ ids = "gwa,gwc", done = true }, get("/kept", store))
    end)
  end

  -- A cut create adopted by a callback and a poll at once is listed once (both stores).
  for _, store in ipairs { "shared", "redis" } do
    it(store .. ": a record two adopters enlist at once is listed once", function()
      local r = get("/enlist", store)
      assert.are.equal(1, r.listed, json.encode(r))
      if store == "shared" then
        assert.is_true(r.same, json.encode(r)) -- the second adopter saves the first one's number
      end
    end)
  end

  for _, order in ipairs { "first", "late" } do
    it("shared dict (its end " .. order .. "): its list entry and u: expire with its final record, and no live"
      .. " record is left", function()
      local r = run("store=shared&order=" .. order .. "&tag=s" .. order)
      assert.is_true(r.final)
      assert.is_true(r.f > 900 and r.f <= 1000, json.encode(r))
      assert.is_true(r.list > 900 and r.list <= r.f + 1, json.encode(r))
      assert.is_true(r.u > 900 and r.u <= r.f + 1, json.encode(r))
      assert.are.equal(-2, r.t, json.encode(r))
    end)
  end

  for _, many in ipairs { "0", "1" } do
    for _, order in ipairs { "first", "late" } do
      it("Redis (" .. (many == "1" and "PUBLISH_MANY" or "PUBLISH") .. ", its end " .. order .. "): its list entry,"
        .. " ln: and u: expire with its final record", function()
        local tag = "r" .. many .. order
        local r = run("store=redis&many=" .. many .. "&order=" .. order .. "&port=" .. port .. "&tag=" .. tag)
        assert.is_true(r.final)
        local function ttl(k)
          return tonumber((redis_cli("pttl kt:" .. k):match("%-?%d+")))
        end
        local n = redis_cli("--raw get kt:ln:gw" .. tag):match("%d+")
        local f = ttl("f:gw" .. tag)
        assert.is_true(f > 900000 and f <= 1000000, tostring(f))
        for _, k in ipairs { "l:a:videos/text2video:" .. tostring(n), "ln:gw" .. tag, "u:up-" .. tag } do
          local t = ttl(k)
          assert.is_true(t ~= nil and t > 900000 and t <= f + 1000, k .. ": " .. tostring(t))
        end
        -- nothing of the ended task is left live, nor queued again
        assert.are.equal("0", redis_cli("exists kt:t:gw" .. tag):match("%d+"))
      end)
    end
  end
end)
