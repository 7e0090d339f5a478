-- What the duplicate-key check costs a decode (kling.json.decode_strict against decode) in a warm
-- loop: a 1 KB create body as the gateway reads one, a 16 KB gateway config, and an object of
-- 100,000 keys (sorted once when it closes: no pairwise blow-up). CPU time (os.clock), ROUNDS rounds
-- of the two alternated, the median per call. Run by bench/json_strict.sh under Lua 5.4 and under
-- nginx's LuaJIT (the gateway's), or alone: lua5.4 bench/json_strict.lua (LUA_PATH/LUA_CPATH as the
-- tests set them).
local json = require "kling.json"
local core = require "kling.core"

local ROUNDS = 7

local function create_body()
  local body = {
    model_name = "kling-v2-6", mode = "pro", duration = "10", aspect_ratio = "16:9", cfg_scale = 0.5,
    prompt = string.rep("A red fox runs through fresh snow at dawn, slow motion, ", 12),
    negative_prompt = "blurry, low quality, watermark, text",
    camera_control = { type = "simple", config = { horizontal = 0, vertical = 0, pan = 2.5, tilt = 0, roll = 0,
      zoom = 0 } },
    callback_url = "https://client.example.com/kling/callback?order=123456",
    external_task_id = "order-123456-shot-07",
  }
  return assert(json.encode(body))
end

local function config_doc()
  local accounts = {}
  for i = 1, 100 do
    accounts[i] = { name = "client-" .. i, api_key = "gw-key-" .. string.rep("x", 24) .. i, credit = "1000.00" }
  end
  return assert(json.encode { upstream = { provider = "kling", base_url = "https://api-singapore.klingai.com" },
    journal = "/var/lib/kling/ledger.jsonl", accounts = accounts })
end

local function wide_object(n)
  local parts = {}
  for i = 1, n do
    parts[i] = string.format('"k%d":%d', (i * 7919) % n, i)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- Median CPU microseconds per call of f(text), over ROUNDS rounds of iters calls each.
local function per_call(f, text, iters)
  local t0 = os.clock()
  for _ = 1, iters do
    f(text)
  end
  return (os.clock() - t0) / iters * 1e6
end

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

local function row(name, text, iters)
  assert(json.decode_strict(text))
  local plain, strict, scan = {}, {}, {}
  for r = 1, ROUNDS do -- alternated, so that a burst of other work falls on all three
    plain[r] = per_call(json.decode, text, iters)
    strict[r] = per_call(json.decode_strict, text, iters)
    scan[r] = per_call(core.json_dup_key, text, iters)
  end
  local p, s, c = median(plain), median(strict), median(scan)
  return string.format("| %s | %s | %d | %.2f | %.2f | %.2f | %.2f |", core.lua, name, #text, p, s, c, s / p)
end

local out = {
  "| Lua | text | bytes | decode (us) | decode_strict (us) | json_dup_key alone (us) | strict / decode |",
  "|---|---|---|---|---|---|---|",
  row("create body", create_body(), 20000),
  row("gateway config, 100 accounts", config_doc(), 1000),
  row("one object of 100,000 keys", wide_object(100000), 3),
}
local report = table.concat(out, "\n")
if rawget(_G, "ngx") then -- dofile'd by a content handler in nginx: the handler says it
  return report
end
print(report)
