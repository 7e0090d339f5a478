-- Seeded, bounded property tests of the other readers of outside input (issue 13): the batch
-- manifest reader (JSONL and CSV) on mutated manifests, and kling.estimate / kling.settle on
-- random canonical requests and usages. Nothing raises; a failure is nil plus a message (the
-- manifest) or an error with a kind (prices); every amount is an integer number of micro-units,
-- never negative, NaN, infinite or a float.
local kling = require "kling"
local manifest = require "kling.batch.manifest"
local providers = require "kling.providers"

local files = require "support.files"
local prop = require "support.prop"

local SEED, ROUNDS = prop.SEED, 300
local rng, pick = prop.rng, prop.pick

local dir = files.tempdir()
teardown(function()
  os.execute("rm -rf " .. dir)
end)

-- write(name, text) -> the path of a file of that name in this spec's directory
local function write(name, text)
  local path = dir .. "/" .. name
  files.write(path, text)
  return path
end

local JSONL = [[
# defaults, then rows
{"defaults": {"model": "kling-v2-6", "mode": "pro", "duration": 5}}
{"id": "a", "prompt": "A dog runs on the beach"}
{"id": 7, "prompt": "second", "mode": "std", "duration": 10, "negative_prompt": "blur"}
{"prompt": "third", "image": "https://cdn/i.png", "cfg_scale": 0.5}
]]

local CSV = [[
id,prompt,model,mode,duration,cfg_scale
a,"A dog, running",kling-v2-6,pro,5,0.5
b,"[Wide shot] a cat",kling-v1,std,10,
c,"quoted ""word""",kling-v2-6,std,5,1
]]

local PIECES = { "", ",", '"', '""', "{", "}", "[", "]", ":", "\n", "\r\n", "\0", "1e999", "-1e999", "9.22e18",
  "-0", "nan", "null", "true", "{}", "[]", '{"defaults":', '"x":[1]', "\239\187\191", "\255", "#", "//" }

-- Splices a random piece over a random span of the text, a few times.
local function mutate(text, r)
  for _ = 1, r(4) do
    local i = r(#text + 1)
    local j = math.min(#text, i + r(8) - 1)
    text = text:sub(1, i - 1) .. pick(r, PIECES) .. text:sub(j + 1)
  end
  return text
end

describe("property: the manifest reader never raises (issue 13)", function()
  for _, case in ipairs { { "jsonl", JSONL }, { "csv", CSV } } do
    local format, base = case[1], case[2]
    it(format .. ": mutated manifests load or are refused with a message", function()
      local r = rng(SEED)
      for round = 1, ROUNDS do
        local text = mutate(base, r)
        local path = write("m." .. format, text)
        local ok, rows, err = pcall(manifest.load, path, { format = format })
        local where = string.format("%s round %d (seed %d)", format, round, SEED)
        assert(ok, where .. ": raised " .. tostring(rows) .. " on " .. string.format("%q", text))
        if rows == nil then
          assert(type(err) == "string" and err ~= "", where .. ": refused without a message")
        else
          assert(type(rows) == "table" and #rows > 0, where .. ": no rows and no message")
        end
      end
    end)
  end
end)

local MODELS = { "kling-v1", "kling-v1-6", "kling-v2-1", "kling-v2-1-master", "kling-v2-5-turbo", "kling-v2-6",
  "kling-v3", "kling-video-o1", "kling-v3-omni", "nope" }
local MODES = { "std", "pro", "4k", "x" }
local ODD = { 5, 10, 3, 15, 0, -5, 5.5, 1e300, -1e300, 9.22e18, 2 ^ 63, math.huge, -math.huge, "5", "5.041", "-1",
  "1e3", "", true, {}, math.mininteger, math.maxinteger }

local function check_quote(where, q, err)
  if q == nil then
    assert(type(err) == "table" and err.kind, where .. ": failure without a kind")
    return
  end
  assert(math.type(q.micros) == "integer", where .. ": micros is a " .. tostring(math.type(q.micros)))
  assert(q.micros >= 0, where .. ": negative amount " .. q.micros)
  assert(type(q.amount) == "string" and q.amount:match("^%d+%.?%d*$"), where .. ": amount " .. tostring(q.amount))
  if q.usd then
    assert(math.type(q.usd.micros) == "integer" and q.usd.micros >= 0, where .. ": usd " .. tostring(q.usd.micros))
  end
end

describe("property: estimate and settle never raise and never give a bad amount (issue 13)", function()
  it("random canonical requests on every provider", function()
    local r = rng(SEED + 2)
    for round = 1, ROUNDS * 3 do
      local req = { provider = pick(r, providers.names), model = pick(r, MODELS), mode = pick(r, MODES),
        prompt = "a dog", duration = pick(r, ODD) }
      if r(3) == 1 then
        req.sound = r(2) == 1 and "on" or "off"
      end
      if r(4) == 1 then
        req.image = "https://cdn/i.png"
      end
      if r(5) == 1 then
        req.resolution = r(2) == 1 and "720p" or "1080p"
      end
      local where = string.format("round %d (seed %d): %s %s %s %s", round, SEED + 2, req.provider, req.model,
        req.mode, tostring(req.duration))
      local ok, q, err = pcall(kling.estimate, req)
      assert(ok, where .. ": estimate raised " .. tostring(q))
      check_quote(where .. " estimate", q, err)
      local usage = { duration = r(2) == 1 and pick(r, ODD) or nil, count = r(3) == 1 and pick(r, ODD) or nil }
      ok, q, err = pcall(kling.settle, req, usage)
      assert(ok, where .. ": settle raised " .. tostring(q))
      check_quote(where .. " settle", q, err)
    end
  end)
end)
