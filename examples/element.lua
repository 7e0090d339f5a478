-- A custom element made once and used by name: create "Mia" from a frontal image and two
-- more views, create it again (the cache answers: nothing is paid twice), then make a
-- kling-v3 video with element_list = {"Mia"} resolved to its id.
--   lua5.4 examples/element.lua [OUT_DIR]
-- Against the simulator when KLING_SIM_INFO names its JSON line; otherwise the real API
-- (KLING_ACCESS_KEY + KLING_SECRET_KEY). The cache is OUT_DIR/elements.json.
-- Runs as written from a checkout: unless kling is installed (luarocks make) or on LUA_PATH,
-- load it from lua/ and build/ beside this script.
if not (package.searchpath("kling", package.path) and package.searchpath("kling.core", package.cpath)) then
  local root = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/.."
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = root .. "/build/?.so;" .. package.cpath
end

local kling = require "kling"
local json = require "kling.json"
local element = require "kling.element"

local out = arg[1] or "out/element"
os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "'")
local opts = { provider = "kling" }
local sim_info = os.getenv("KLING_SIM_INFO")
local image_base = "https://example.com/mia"
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
local cache = out .. "/elements.json"

local spec = {
  name = "Mia", description = "A young woman with short red hair and a green raincoat",
  images = { image_base .. "/front.png", image_base .. "/left.png", image_base .. "/right.png" },
}
local e, cached = element.create(client, spec, { cache = cache, on_progress = function(t)
  print("  element: " .. t.status)
end })
if not e then
  io.stderr:write(tostring(cached), "\n")
  os.exit(1)
end
print(string.format("element %s: id %s (%s)", e.name, e.id, cached and "cached" or "created"))
local again, was_cached = assert(element.create(client, spec, { cache = cache }))
print(string.format("element %s again: id %s (%s)", again.name, again.id,
  was_cached and "from the cache, nothing paid" or "created AGAIN"))

local list = assert(element.resolve({ "Mia" }, { cache = cache, provider = "kling", base_url = client.base_url }))
local task, err = client:run({
  model = "kling-v3", mode = "std", duration = 5, image = image_base .. "/front.png", element_list = list,
  prompt = "Mia walks through a rainy market, smiling",
}, { timeout = 600 })
if not task then
  io.stderr:write(tostring(err), "\n")
  os.exit(1)
end
local path = out .. "/mia.mp4"
assert(client:download(task.videos[1].url, path))
print(string.format("video with element %s (task %s): %s", list[1].element_id, task.id, path))
