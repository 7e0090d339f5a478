-- Generate one video end to end: submit, wait with progress, download.
--   lua5.4 examples/generate.lua [OUT_DIR]
-- Against the simulator when KLING_SIM_INFO names its JSON line (scripts/demo does this);
-- otherwise against the real API with KLING_ACCESS_KEY + KLING_SECRET_KEY (or KLING_API_KEY).
-- Runs as written from a checkout: unless kling is installed (luarocks make) or on LUA_PATH,
-- load it from lua/ and build/ beside this script.
if not (package.searchpath("kling", package.path) and package.searchpath("kling.core", package.cpath)) then
  local root = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/.."
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = root .. "/build/?.so;" .. package.cpath
end

local kling = require "kling"
local json = require "kling.json"

local out_dir = arg[1] or "."
-- made before anything is paid for, so that the download has somewhere to go
os.execute("mkdir -p '" .. out_dir:gsub("'", "'\\''") .. "'")
local opts = { provider = "kling" }
local sim_info = os.getenv("KLING_SIM_INFO")
if sim_info then
  local f = assert(io.open(sim_info))
  local sim = assert(json.decode(f:read("a")))
  f:close()
  opts.base_url, opts.ca_file = sim.https, sim.ca_file
  opts.access_key, opts.secret_key = sim.access_key, sim.secret_key
  opts.poll_min, opts.poll_max = 0.5, 2
  print("simulator: " .. sim.https)
end

local client = assert(kling.new(opts))
local task, err = client:submit {
  model = "kling-v2-6", mode = "pro", duration = 5, aspect_ratio = "16:9", sound = true,
  prompt = "A golden retriever running through a field of sunflowers at sunset, cinematic",
}
if not task then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
print(string.format("submitted: task %s (external id %s), status %s", task.id, task.external_task_id, task.status))

local done
done, err = task:wait {
  timeout = 600,
  on_progress = function(t)
    print("  status: " .. t.status)
  end,
}
if not done then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end

local video = done.videos[1]
local path = out_dir .. "/" .. done.id .. ".mp4"
local _, bytes = assert(client:download(video.url, path))
print("video url:  " .. video.url)
print(string.format("video file: %s (%d bytes, %s s)", path, bytes, tostring(video.duration)))
