-- kling tasks [--endpoint E] [--page N]: the provider's task list, one page or all of them.
local json = require "kling.json"
local flags = require "kling.cli.flags"

local M = {}

M.summary = "list the tasks the provider has (all pages, or one)"

-- list_tasks allows pages 1..1000.
local LAST_PAGE = 1000

function M.define(cmd)
  cmd:description [[
Lists the tasks of one endpoint (default videos/text2video), newest first as the provider
orders them: id, status, progress and the first output. Without --page every page is read
until one comes back short. Where the provider keeps no task list (the gateways but the
official API), the error says so and nothing is sent.]]
  cmd:epilog [[
Exit status: 0 listed, 1 the provider could not be read or an item of its list could not
(the readable ones before it are listed, the unreadable one is named on stderr), 2 bad usage or a provider
without a task list (nothing sent).]]
  cmd:option("--endpoint", "the endpoint whose tasks to list (path after /v1/)"):argname "E"
  cmd:option("--page", "only this page (1..1000)"):argname("N")
    :convert(flags.number("--page", flags.range(1, LAST_PAGE)))
  cmd:option("--page-size", "tasks per page (1..500, default 30)"):argname("N")
    :convert(flags.number("--page-size", flags.range(1, 500)))
  cmd:flag("--json", "print a JSON array of the tasks")
  flags.client_options(cmd)
end

local fail = flags.failure("kling tasks")

local function line(t)
  local out = (t.videos and t.videos[1]) or (t.images and t.images[1]) or (t.audios and t.audios[1])
  local p = flags.printable
  return string.format("%-24s %-10s%s%s\n", p(t.id), p(t.status), t.progress and string.format(" %3d%%", t.progress)
    or "", out and ("  " .. p(out.url)) or "")
end

function M.run(opts)
  -- a provider without a task list is said so before its keys are asked for
  local P = flags.provider(opts)
  if P and not require("kling.providers").lists_tasks(P) then
    return fail(2, "provider '" .. P.name .. "' has no task list (the official API keeps one): nothing was sent")
  end
  local client, err = flags.client(opts)
  if not client then
    return fail(2, err)
  end
  local list = { endpoint = opts.endpoint, page = opts.page, page_size = opts.page_size }
  local bad = client:list_problem(list) -- client:tasks raises on it, as on any misuse
  if bad then
    return fail(2, tostring(bad) .. ": nothing was sent")
  end
  -- Paging has one home, client:tasks: it ends at a short page, and an unreadable item ends the
  -- walk after the readable ones of its page.
  local all, failure = {}, nil
  for t, terr in client:tasks(list) do
    if not t then
      failure = terr
      break
    end
    all[#all + 1] = t
    if not opts.json then
      io.stdout:write(line(t))
    end
  end
  if opts.json then
    local out = json.array {}
    for i, t in ipairs(all) do
      out[i] = t:to_table()
    end
    io.stdout:write(assert(json.encode(out)), "\n")
  end
  if failure then
    -- Refused before the network exits 2; a page that could not be read, 1.
    return flags.failed(fail, failure, "run the same command again")
  end
  if #all == 0 and not opts.json then -- a listing of nothing printed no word at all
    io.stderr:write("kling tasks: no tasks", opts.endpoint and (" on " .. opts.endpoint) or "",
      opts.page and (" (page " .. opts.page .. ")") or "", "\n")
  end
  return 0
end

return M
