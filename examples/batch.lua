-- Run a small batch end to end: a manifest of requests, the crash-safe journal, downloads as
-- tasks finish, then the summary table, summary.json and report.html.
--   lua5.4 examples/batch.lua [OUT_DIR]
-- Against the simulator when KLING_SIM_INFO names its JSON line (scripts/demo does this);
-- otherwise against the real API with KLING_ACCESS_KEY + KLING_SECRET_KEY (or KLING_API_KEY).
-- Kill it at any moment and run it again: it resumes from OUT_DIR/journal.jsonl without
-- creating any task twice (the same as `kling run OUT_DIR/manifest.jsonl --out OUT_DIR`).
-- Runs as written from a checkout: unless kling is installed (luarocks make) or on LUA_PATH,
-- load it from lua/ and build/ beside this script.
if not (package.searchpath("kling", package.path) and package.searchpath("kling.core", package.cpath)) then
  local root = ((arg and arg[0] or ""):match("^(.*)/[^/]*$") or ".") .. "/.."
  package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
  package.cpath = root .. "/build/?.so;" .. package.cpath
end

local batch = require "kling.batch"
local json = require "kling.json"

local out = arg[1] or "out/batch"
local opts = { out = out, parallel = 3, budget = "40", retries = 1 }
local sim_info = os.getenv("KLING_SIM_INFO")
local sim
if sim_info then
  local f = assert(io.open(sim_info))
  sim = assert(json.decode(f:read("a")))
  f:close()
  opts.provider, opts.base_url, opts.ca_file = "kling", sim.https, sim.ca_file
  opts.access_key, opts.secret_key = sim.access_key, sim.secret_key
  opts.poll_min, opts.poll_max, opts.estimate = 0.3, 1, 1
  print("simulator: " .. sim.https)
end

-- The manifest: a defaults line, then one canonical request per line with its id.
local rows = {
  { defaults = { model = "kling-v2-6", mode = "pro", duration = 5, aspect_ratio = "16:9" } },
  { id = "retriever", prompt = "A golden retriever running through sunflowers at sunset", sound = true },
  { id = "lighthouse", prompt = "A lighthouse in a storm, waves crashing, cinematic" },
  { id = "city", prompt = "A neon city street in the rain at night, slow dolly forward", duration = 10 },
  { id = "koi", prompt = "Koi fish circling in a clear pond, top-down view", model = "kling-v1", mode = "std" },
  { id = "balloon", prompt = "Hot air balloons rising over a valley at dawn", model = "kling-v2-5-turbo",
    mode = "std" },
}
if sim then
  -- The simulator refuses this one as a provider would: the report shows a failed row.
  rows[#rows + 1] = { id = "blocked", prompt = "A scene the provider refuses [sim:fail=content policy violation]",
    model = "kling-v1", mode = "std" }
end
os.execute("mkdir -p '" .. out:gsub("'", "'\\''") .. "'")
opts.manifest = out .. "/manifest.jsonl"
local f = assert(io.open(opts.manifest, "w"))
for _, r in ipairs(rows) do
  f:write(assert(json.encode(r)), "\n")
end
f:close()

local result, err, status = batch.run(opts)
if not result then
  io.stderr:write("batch: ", tostring(err), "\n")
  os.exit(status)
end
os.exit(status)
