-- kling element create|list: custom elements made once (cached by their inputs) and used by
-- name in element_list (kling.element).
local element = require "kling.element"
local json = require "kling.json"
local flags = require "kling.batch.flags"

local M = {}

local USAGE = [[
usage: kling element create --name NAME --description TEXT (--image IMG... | --video URL [--voice ID])
                            [--tag o_101...] [--provider kling|evolink] [--cache FILE] [--force]
                            [--timeout SECONDS] [--json]
       kling element list [--cache FILE] [--json]

create  makes a custom element: from images (the first --image is the frontal view, up to 3
        more other angles; URLs, or base64 on the official API) or from a video (EvoLink,
        optionally with a voice id). Every documented rule is checked before anything is
        sent: name at most 20 characters, description at most 100, one frontal + 1..3 more
        images on the official API, a voice only with a video, tags o_101..o_108 (official).
        The official API answers at once; EvoLink takes about ten minutes: progress is shown
        on stderr while it waits (--timeout, default 1200 s; run the same command again to
        keep waiting for the same task).
        The element id is cached under a hash of its inputs, provider, base URL and account
        (--cache, default $XDG_CACHE_HOME/kling/elements.json or ~/.cache/kling/elements.json):
        running the same command again prints the cached id and pays nothing. Rows and
        storyboards then name the element in element_list ("element_list": ["Mia"]) and
        kling run --elements FILE / kling storyboard --elements FILE resolve it to its id.
list    the cached elements, newest first.

Credentials and provider as for every command: --provider, --base-url, --ca-file, or
KLING_PROVIDER, KLING_BASE_URL, KLING_ACCESS_KEY + KLING_SECRET_KEY or KLING_API_KEY, KLING_CA_FILE.

exit status: 0 made (or cached), 1 the provider refused or failed it, 2 bad usage or a rule
broken (nothing sent), 3 still being made when --timeout passed (run again to keep waiting)
]]

local SPEC = {
  ["--name"] = { "name" }, ["--description"] = { "description" }, ["--image"] = { "images", "list" },
  ["--video"] = { "video" }, ["--voice"] = { "voice_id" }, ["--tag"] = { "tags", "list" },
  ["--provider"] = { "provider" }, ["--base-url"] = { "base_url" }, ["--ca-file"] = { "ca_file" },
  ["--cache"] = { "cache" }, ["--force"] = { "force", "bool" }, ["--timeout"] = { "timeout", "number" },
  ["--json"] = { "json", "bool" }, ["--poll-min"] = { "poll_min", "number" }, ["--poll-max"] = { "poll_max", "number" },
  ["--help"] = { "help", "bool" }, ["-h"] = { "help", "bool" },
}

local fail = flags.failure("kling element")

local function env(name)
  local v = os.getenv(name)
  return v ~= "" and v or nil
end

local function list(opts)
  local entries, err = element.list(opts.cache)
  if not entries then
    return fail(2, err)
  end
  if opts.json then
    io.stdout:write(assert(json.encode(json.array(entries))), "\n")
    return 0
  end
  for _, e in ipairs(entries) do
    io.stdout:write(string.format("%-20s %-22s %-9s %s\n", e.name or "?", e.id or (e.task_id and "(waiting: "
      .. e.task_id .. ")") or "(interrupted)", e.provider or "?", e.base_url or ""))
  end
  return 0
end

local function create(opts)
  local spec = { name = opts.name, description = opts.description, images = opts.images, video = opts.video,
    voice_id = opts.voice_id, tags = opts.tags }
  local err = element.check(spec, opts.provider)
  if err then
    return fail(2, err)
  end
  local client
  client, err = flags.client(opts)
  if not client then
    return fail(2, err)
  end
  -- The account the element belongs to, named by a digest of the key in use (never the key).
  local jwt = client.provider.auth.jwt and env("KLING_ACCESS_KEY") and env("KLING_SECRET_KEY")
  local account = element.account_of(jwt and env("KLING_ACCESS_KEY") or env("KLING_API_KEY"))
  local started = os.time()
  local e, cached = element.create(client, spec, { cache = opts.cache, account = account, force = opts.force,
    timeout = opts.timeout, on_progress = function(t)
      io.stderr:write(string.format("  %s %s%s (%d s)\n", t.status, t.progress and (t.progress .. "%") or "",
        t.eta and string.format(", about %d s left", t.eta) or "", os.time() - started))
    end })
  if not e then
    return flags.failed(fail, cached, "still being made: run the same command again to keep waiting")
  end
  if opts.json then
    e.cached = cached
    io.stdout:write(assert(json.encode(e)), "\n")
  else
    io.stdout:write(string.format("element %s: %s (%s, %s)\n", e.name, e.id, e.provider,
      cached and "from the cache: nothing paid" or "created"))
  end
  return 0
end

function M.main(args)
  local opts, pos = flags.command(args, SPEC, USAGE, fail)
  if not opts then
    return pos
  end
  local cmd = pos[1]
  if #pos > 1 then
    return fail(2, "unexpected argument " .. pos[2])
  end
  if cmd == "create" then
    return create(opts)
  elseif cmd == "list" then
    return list(opts)
  end
  io.stderr:write(USAGE)
  return fail(2, cmd and ("unknown subcommand " .. cmd) or "create or list?")
end

return M
