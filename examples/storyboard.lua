-- A storyboard of five shots made into one video: the first three fit one native multi-shot
-- request of kling-v3 (at most 6 shots, 3..15 s), the rest becomes a second segment that
-- starts from the first one's last frame; ffmpeg joins them into OUT_DIR/storyboard.mp4.
--   lua5.4 examples/storyboard.lua [OUT_DIR]
-- Against the simulator when KLING_SIM_INFO names its JSON line; otherwise the real API
-- (KLING_ACCESS_KEY + KLING_SECRET_KEY). Run it again: the segments already made are kept.
-- Runs as written from a checkout: unless kling is installed (luarocks make) or on LUA_PATH,
-- load it from lua/ and build/ beside this script.
if not (package.searchpath("kling", package.path) and package.searchpath("kling.core", package.cpath)) then
  local root = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/.."
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = root .. "/build/?.so;" .. package.cpath
end

local kling = require "kling"
local json = require "kling.json"
local multishot = require "kling.multishot"

local out = arg[1] or "out/storyboard"
local opts = { provider = "kling" }
local sim_info = os.getenv("KLING_SIM_INFO")
if sim_info then
  local f = assert(io.open(sim_info))
  local sim = assert(json.decode(f:read("a")))
  f:close()
  opts.base_url, opts.ca_file = sim.https, sim.ca_file
  opts.access_key, opts.secret_key = sim.access_key, sim.secret_key
  opts.poll_min, opts.poll_max = 0.3, 1
  print("simulator: " .. sim.https)
end
local client = assert(kling.new(opts))

local storyboard = {
  model = "kling-v3", mode = "std", aspect_ratio = "16:9",
  shots = {
    { prompt = "Dawn over a snowy forest, a fox sleeps curled in its den", duration = 4 },
    { prompt = "The fox opens its eyes and stretches", duration = 4 },
    { prompt = "The fox steps out into the snow, breath steaming", duration = 5 },
    { prompt = "The fox trots between the pines, camera tracking alongside", duration = 6 },
    { prompt = "The fox stops on a ridge and looks over the valley", duration = 5 },
  },
}

local result, err = multishot.run(client, storyboard, {
  out = out,
  on_progress = function(ev)
    print(string.format("  segment %d/%d: %s%s", ev.segment, ev.segments, ev.status,
      ev.progress and (" " .. ev.progress .. "%") or ""))
  end,
})
if not result then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
for i, s in ipairs(result.segments) do
  print(string.format("segment %d: shots %d..%d (%d s), task %s -> %s%s", i, s.first, s.last, s.duration,
    tostring(s.task_id), s.path, s.frame and ("; its last frame " .. s.frame .. " starts the next") or ""))
end
print("storyboard: " .. result.file)
