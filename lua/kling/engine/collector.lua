-- kling.engine.collector: the Lua collector's mode while the engine runs many tasks.
-- Lua 5.4 starts in generational mode, where the records, answers and results of thousands of
-- tasks turn old and their garbage waits for a major collection, which comes only once the
-- heap has doubled: 10,000 tasks peaked at 54 MiB (HTTP) and 58 MiB (HTTPS) for about 21 MiB
-- live. For the duration of a large run (submit_many, wait_all) the collector runs in
-- incremental mode with a short pause; the caller's mode and parameters are put back after,
-- also when the run raises. Left alone: small runs, inside nginx (its VM is nginx's), Lua
-- versions without these modes (LuaJIT, 5.1-5.3, 5.5's other API), a stopped collector.
local M = {}

-- A run of at least this many requests or active tasks is large.
local LARGE = 1000
-- Incremental parameters of a large run: a cycle starts when the heap has grown 20 % over
-- what the last one kept (200 by default), and each step does 4 times the default work so a
-- cycle ends before the heap grows much (bench/README.md, issue 15: the trade-off measured).
-- Lua 5.4 keeps both in units of 4: multiples of 4 read back as set.
local PAUSE, STEPMUL = 120, 400

local function applies(n)
  return n >= LARGE and _VERSION == "Lua 5.4" and rawget(_G, "ngx") == nil and collectgarbage("isrunning")
end

-- Puts back what switch() changed: the caller's parameters, then its mode.
local function restore(mode, pause, stepmul)
  collectgarbage("setpause", pause)
  collectgarbage("setstepmul", stepmul)
  if mode == "generational" then
    collectgarbage("generational")
  end
end

local function finish(mode, pause, stepmul, ok, ...)
  restore(mode, pause, stepmul)
  if not ok then
    error((...), 0) -- the error as raised (a table stays a table)
  end
  return ...
end

--- run(n, fn, ...) -> fn(...): calls fn, under the incremental collector when n (requests, or
-- active tasks) is large and the collector is ours to set (above).
function M.run(n, fn, ...)
  if not applies(n) then
    return fn(...)
  end
  -- setpause/setstepmul answer the values they replace: the only way 5.4 reads them
  local pause = collectgarbage("setpause", PAUSE)
  local stepmul = collectgarbage("setstepmul", STEPMUL)
  local mode = collectgarbage("incremental")
  return finish(mode, pause, stepmul, pcall(fn, ...))
end

return M
