-- kling.engine.collector: the Lua collector while the engine runs many tasks.
-- Lua 5.4's standalone interpreter runs the collector in generational mode, where the records,
-- answers and results of thousands of tasks turn old and their garbage waits for a major
-- collection, which comes only once the heap has doubled: 10,000 tasks peaked at 54 MiB (HTTP)
-- and 58 MiB (HTTPS) for about 21 MiB live. Ending tasks leave such old garbage (their records);
-- polls no longer do (a running task keeps no answer: kling.lifecycle.machine, raw_while_running).
-- submit_many (and `kling run`) runs in incremental mode with a short pause. wait_all keeps the
-- caller's mode (no switch: entering generational mode costs a full collection) and adds full
-- collections of its own, paced so that polling alone pays little for them (bench/README.md,
-- "Collector without the CPU"). The caller's mode and parameters are put back after, also when the
-- run raises. Left alone: small runs, inside nginx (its VM is nginx's), Lua versions without these
-- modes (LuaJIT, 5.1-5.3, 5.5's other API), a stopped collector.
local M = {}

-- A run of at least this many requests or active tasks is large.
local LARGE = 1000
-- Incremental parameters of a large run: a cycle starts when the heap has grown 20 % over
-- what the last one kept (200 by default), and each step does 4 times the default work so a
-- cycle ends before the heap grows much (bench/README.md, issue 15: the trade-off measured).
-- Lua 5.4 keeps both in units of 4: multiples of 4 read back as set.
local PAUSE, STEPMUL = 120, 400
-- A large wait_all collects fully once the heap has grown GROW over what its last collection
-- left, but not sooner than SPACING_MS (the engine's clock) after it unless 1/ENDS_SHARE of the
-- wait's tasks ended since: where tasks end, their garbage goes as they end. GROW is above what
-- generational mode lets young garbage reach between its minor collections (20 % of the heap):
-- polls that leave no old garbage then bring no full collection (bench/README.md, "No answer
-- kept while a task runs").
local GROW, SPACING_MS, ENDS_SHARE = 0.3, 1500, 20

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

-- The tasks engine e has seen end: every record it made, less those still active.
local function ended(e)
  return e.next_n - e.active_n
end

local function finish_wait(e, outer, pause, stepmul, ok, ...)
  e.gc = outer
  restore(nil, pause, stepmul)
  if not ok then
    error((...), 0)
  end
  return ...
end

--- wait(e, n, fn, ...) -> fn(e, ...): engine e's wait, paced by check(e, now) (below) when n
-- (active tasks) is large and the collector is ours to set. The mode stays the caller's; its
-- pause and step multiplier (incremental mode) are ours meanwhile.
function M.wait(e, n, fn, ...)
  if not applies(n) then
    return fn(e, ...)
  end
  local pause = collectgarbage("setpause", PAUSE)
  local stepmul = collectgarbage("setstepmul", STEPMUL)
  local outer = e.gc
  -- math.floor, not //: LuaJIT (nginx) loads this file too
  e.gc = { kib = collectgarbage("count"), at = e.now(), ended = ended(e), every = math.floor(n / ENDS_SHARE) }
  return finish_wait(e, outer, pause, stepmul, pcall(fn, e, ...))
end

--- check(e, now): once a turn of engine e's loop; inside a large wait (above), a full collection
-- when the heap has grown enough and enough time has passed or enough tasks have ended.
function M.check(e, now)
  local gc = e.gc
  if not gc or collectgarbage("count") <= gc.kib * (1 + GROW) then
    return
  end
  local n = ended(e)
  if now - gc.at < SPACING_MS and n - gc.ended < gc.every then
    return
  end
  collectgarbage("collect")
  gc.kib, gc.at, gc.ended = collectgarbage("count"), now, n
end

return M
