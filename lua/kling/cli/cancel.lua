-- kling cancel TASK_ID: cancels a task where the provider can (EvoLink, while the task says it
-- can be cancelled); elsewhere a clear error before anything is sent.
local flags = require "kling.cli.flags"

local M = {}

M.summary = "cancel a task (where the provider can)"

function M.define(cmd)
  cmd:description [[
Looks the task up, then asks the provider to cancel it. Only EvoLink cancels tasks, and
only while the task says it can be cancelled; every other provider is refused before
anything is sent.]]
  cmd:epilog [[
Exit status: 0 cancelled, 1 the task is unknown, has ended or cannot be cancelled now,
or the provider failed, 2 bad usage or a provider that cannot cancel (nothing sent).]]
  cmd:argument("TASK_ID", "the provider's task id"):argname("TASK_ID"):target("task_id"):convert(flags.task_id)
  cmd:option("--endpoint", "the task's endpoint (path after /v1/)"):argname "E"
  flags.client_options(cmd)
end

local fail = flags.failure("kling cancel")

function M.run(opts)
  -- a provider that cannot cancel is said so before its keys are asked for
  local P = flags.provider(opts)
  if P and not P.capabilities.cancel then
    return fail(2, "provider '" .. P.name .. "' cannot cancel tasks: nothing was sent")
  end
  local client, err = flags.client(opts)
  if not client then
    return fail(2, err)
  end
  local t
  t, err = client:get_task(opts.task_id, { endpoint = opts.endpoint })
  if not t then
    return fail(1, err)
  end
  local ok
  ok, err = t:cancel()
  if not ok then
    return fail(1, err)
  end
  io.stdout:write(string.format("task %s: %s\n", flags.printable(t.id), flags.printable(t.status)))
  return 0
end

return M
