-- The metering gateway against a network peer that says something of another task: an upstream
-- whose create's answer is about another create (it echoes another external_task_id), and a
-- callback about an upstream task the record does not have. A gateway started by `kling
-- gateway start` in front of a fake upstream (an nginx of the test's own) that keeps each
-- create's task by its external id and answers a create whose prompt says "mixed" with the
-- previous create's task.
package.path = "spec/nginx/?.lua;" .. package.path
local h = require "harness"
local core = require "kling.core"
local json = require "kling.json"

local g = h.launched("gateway-peers")
local fake
local SECRET = "whsec_MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI="

local function cleanup()
  g.stop()
  if fake then
    fake.stop()
  end
  h.tidy(g.base, g.sim_dir)
end

-- A task of the fake upstream, succeeded with one video named by its id.
local FAKE = [[
  lua_shared_dict fake 1m;
  server {
    listen 127.0.0.1:PORT;
    location /v1/videos/text2video {
      content_by_lua_block {
        local json = require "kling.json"
        local d = ngx.shared.fake
        ngx.header["Content-Type"] = "application/json"
        if ngx.req.get_method() == "POST" then
          ngx.req.read_body()
          local b = json.decode(ngx.req.get_body_data())
          local up = "up-" .. d:incr("n", 1, 0)
          d:set("x:" .. b.external_task_id, up)
          d:set("u:" .. up, b.external_task_id)
          local said, ext = up, b.external_task_id
          if b.prompt:find("mixed", 1, true) then -- the previous create's answer, again
            said, ext = d:get("last_up"), d:get("last_ext")
          end
          if b.prompt:find("slow", 1, true) then -- runs until the test is over
            d:set("slow:" .. up, true)
          end
          d:set("last_up", up)
          d:set("last_ext", b.external_task_id)
          ngx.print(json.encode { code = 0, message = "SUCCEED", data = { task_id = said, task_status = "submitted",
            task_info = { external_task_id = ext } } })
          return
        end
        local ext = ngx.req.get_uri_args().external_task_id
        local up = ext and d:get("x:" .. ext) or ngx.var.uri:match("/(up%-%d+)$")
        ext = ext or (up and d:get("u:" .. up))
        if not (up and ext) then
          ngx.status = 404
          ngx.print(json.encode { code = 1203, message = "task does not exist" })
          return
        end
        if d:get("slow:" .. up) then
          ngx.print(json.encode { code = 0, message = "SUCCEED", data = { task_id = up, task_status = "processing",
            task_info = { external_task_id = ext }, created_at = 1, updated_at = 2 } })
          return
        end
        ngx.print(json.encode { code = 0, message = "SUCCEED", data = { task_id = up, task_status = "succeed",
          task_info = { external_task_id = ext }, created_at = 1, updated_at = 2, final_unit_deduction = "1",
          task_result = { videos = { { id = "vid-" .. up, url = "https://example.com/" .. up .. ".mp4",
            duration = "5" } } } } })
      }
    }
  }
]]

local gw
local function call(method, path, key, body)
  return h.request(method, gw.http .. path, { headers = { authorization = "Bearer " .. key }, body = body })
end

-- The view of a task once it ended (succeed or failed), or its last view.
local function ended(id, key)
  local v
  local limit = h.now() + 30
  repeat
    local res = call("GET", "/v1/videos/text2video/" .. id, key)
    v = res.json and res.json.data or {}
    if v.task_status == "succeed" or v.task_status == "failed" then
      return v
    end
    h.sleep(0.1)
  until h.now() > limit
  return v
end

local function video_url(v)
  local list = type(v.task_result) == "table" and v.task_result.videos
  return type(list) == "table" and type(list[1]) == "table" and list[1].url or nil
end

-- The upstream answers bob's create with alice's task (her task id, her external id): taken,
-- bob's task followed alice's upstream task and showed bob her video. It is bob's create whose
-- fate is unknown: looked up by the external id it was sent with, it finds bob's own task.
local function create_answer_about_another_task()
  local a = call("POST", "/v1/videos/text2video", "gw-alice-key", { prompt = "alice's kite", model_name = "kling-v1" })
  local aid = assert(a.json and a.json.data and a.json.data.task_id, a.body)
  local b = call("POST", "/v1/videos/text2video", "gw-bob-key", { prompt = "mixed: bob's boat",
    model_name = "kling-v1" })
  local bid = b.json and b.json.data and b.json.data.task_id
  h.check("a create whose answer is about another task is still the client's task (200, the gateway's id)",
    b.status == 200 and type(bid) == "string" and bid ~= aid, b.body)
  local av, bv = ended(aid, "gw-alice-key"), ended(bid or "none", "gw-bob-key")
  h.check("... alice's task shows her own video", video_url(av) == "https://example.com/up-1.mp4", json.encode(av))
  h.check("... bob's task shows his own video (looked up by its external id), not alice's",
    video_url(bv) == "https://example.com/up-2.mp4", json.encode(bv))
end

-- A verified callback about an upstream task the gateway does not know, naming one of its tasks
-- as its external id while that task is another upstream task: taken, bob's running task ended
-- with that task's result and was charged for it.
local function callback_about_another_task()
  local b = call("POST", "/v1/videos/text2video", "gw-bob-key", { prompt = "bob's slow boat", model_name = "kling-v1" })
  local bid = assert(b.json and b.json.data and b.json.data.task_id, b.body)
  local limit = h.now() + 30
  local v
  repeat -- created upstream (its answer taken): the fake's task runs on
    h.sleep(0.1)
    v = call("GET", "/v1/videos/text2video/" .. bid, "gw-bob-key").json.data
  until v.task_status == "processing" or h.now() > limit
  local before = call("GET", "/gateway/balance", "gw-bob-key").json.data
  local body = json.encode { task_id = "up-999", task_status = "succeed", created_at = 1, updated_at = 3,
    final_unit_deduction = "1", task_info = { external_task_id = bid }, task_result = { videos = { { id = "vid-999",
      url = "https://example.com/up-999.mp4", duration = "5" } } } }
  local ts = tostring(math.floor(core.wall_s()))
  local res = h.request("POST", gw.http .. "/kling/callback", { headers = { ["content-type"] = "application/json",
    ["webhook-id"] = "msg_mixed", ["webhook-timestamp"] = ts, ["webhook-signature"] = core.webhook_sign {
      secret = SECRET, id = "msg_mixed", timestamp = ts, body = body } }, body = body })
  h.check("a callback about an unknown upstream task that names a task of another upstream id is not that task's"
    .. " (404, 1203)", res.status == 404 and res.json and res.json.code == 1203, res.status .. " " .. res.body)
  v = call("GET", "/v1/videos/text2video/" .. bid, "gw-bob-key").json.data
  local after = call("GET", "/gateway/balance", "gw-bob-key").json.data
  h.check("... bob's task runs on, without that task's result, and nothing was charged",
    v.task_status == "processing" and video_url(v) == nil and after.spent == before.spent, json.encode { v, after })
end

h.main(function()
  local fport, fdir = h.free_port(), g.base .. "/fake"
  h.sh("mkdir -p " .. h.q(fdir) .. " && chmod 777 " .. h.q(fdir))
  fake = h.nginx_start(fdir, h.conf_head(fdir) .. "http {\n  access_log off;\n" .. h.lua_paths()
    .. h.temp_paths(fdir) .. FAKE:gsub("PORT", tostring(fport)) .. "}\n", fport)
  gw = g.start {
    upstream = { provider = "kling", base_url = "http://127.0.0.1:" .. fport, api_key = "upstream-key", timeout = 30 },
    journal = g.journal, webhook_secret = SECRET, poll = { min_interval = 0.1, max_interval = 0.3, lookups = 3 },
    accounts = { { name = "alice", api_key = "gw-alice-key", credit = "10" },
      { name = "bob", api_key = "gw-bob-key", credit = "10" } },
  }
  create_answer_about_another_task()
  callback_about_another_task()
  h.check_no_lua_error(g.srv())
end, g.srv, cleanup)
