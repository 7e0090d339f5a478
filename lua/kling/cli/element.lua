-- kling element create|list: custom elements made once (cached by their inputs) and used by
-- name in element_list (kling.element).
local element = require "kling.element"
local json = require "kling.json"
local flags = require "kling.cli.flags"

local M = {}

M.summary = "create or list custom elements"

-- How the command resumes after Ctrl-C (kling.cli says it with "interrupted", exit 130).
M.interrupted = "run the same command again to pick up the same task"

function M.define(cmd)
  cmd:description [[
Custom elements are made once (cached by their inputs) and used by name in element_list.
Credentials and provider as for every command: --provider, --base-url, --ca-file,
--access-key + --secret-key or --api-key, or KLING_PROVIDER, KLING_BASE_URL,
KLING_ACCESS_KEY + KLING_SECRET_KEY or KLING_API_KEY, KLING_CA_FILE.]]
  cmd:epilog [[
Exit status: 0 made (or cached), 1 the provider refused or failed it, 2 bad usage or a rule
broken (nothing sent), 3 still being made when --timeout passed (run again to keep waiting),
4 uncertain: the create's answer was lost, it may have been made (the same command again
looks it up where the provider lists its elements, the official API; it is not sent again),
5 another process is creating the same element now
(nothing sent)]]
  cmd:command_target "action"
  local create = flags.command(cmd, "create", "make a custom element (or print the cached one)")
  create:description [[
Makes a custom element: from images (the first --image is the frontal view, up to 3
more other angles; URLs, or base64 on the official API) or from a video (EvoLink,
optionally with a voice id). Every documented rule is checked before anything is
sent: name at most 20 characters, description at most 100, one frontal + 1..3 more
images on the official API, a voice only with a video, tags o_101..o_108 (official).
The official API answers at once; EvoLink takes about ten minutes: progress is shown
on stderr while it waits (--timeout, default 1200 s; run the same command again to
keep waiting for the same task).
The element id is cached under a hash of its inputs (a local image by the SHA-256
of its bytes, not its path; a URL by the URL), provider, base URL and account
(--cache, default $XDG_CACHE_HOME/kling/elements.json or ~/.cache/kling/elements.json):
running the same command again prints the cached id and pays nothing (--force
makes and pays for a new one, which replaces it in the cache once it is made: a
create refused or failed leaves the cached one). Rows and
storyboards then name the element in element_list ("element_list": ["Mia"]) and
kling run --elements FILE / kling storyboard --elements FILE resolve it to its id.]]
  create:option("--name", "the element's name (at most 20 characters)"):argname "NAME"
  create:option("--description", "at most 100 characters"):argname "TEXT"
  create:option("--image", "an image (repeatable: the frontal view first)"):argname("IMG"):count("*"):target "images"
  create:option("--video", "a video (EvoLink)"):argname "URL"
  create:option("--voice", "a voice id, with --video"):argname("ID"):target "voice_id"
  create:option("--tag", "a tag o_101..o_108 (repeatable; official API)"):argname("TAG"):count("*"):target "tags"
  flags.client_options(create)
  create:option("--cache", "the element cache file"):argname("FILE"):convert(flags.nonempty("--cache"))
  create:flag("--force", "create a new element (and pay) even when one is cached or an earlier create was "
    .. "interrupted; the cache names the new one once it is made")
  create:option("--timeout", "the longest to wait (default 1200)"):argname("SECONDS")
    :convert(flags.number("--timeout", flags.SECONDS))
  flags.poll_options(create)
  create:flag("--json", "print JSON")
  local list = flags.command(cmd, "list", "the cached elements, newest first")
  list:option("--cache", "the element cache file"):argname("FILE"):convert(flags.nonempty("--cache"))
  list:flag("--json", "print JSON")
end

local fail = flags.failure("kling element")

local function list(opts)
  local entries, err = element.list(opts.cache)
  if not entries then
    return fail(2, err)
  end
  if opts.json then
    io.stdout:write(assert(json.encode(json.array(entries))), "\n")
    return 0
  end
  -- each line one line, whatever the --cache path or a cache file's fields hold (a LF in the
  -- path printed "no elements in a", then "b (kling element create makes one)")
  local pr = flags.printable
  if #entries == 0 then -- said on stderr: the listing itself (stdout) is empty, as scripts read it
    io.stderr:write("kling element: no elements in ", pr(opts.cache or element.default_cache()),
      " (kling element create makes one)\n")
  end
  for _, e in ipairs(entries) do
    io.stdout:write(string.format("%-20s %-22s %-9s %s\n", pr(e.name or "?"), pr(e.id or (e.task_id and "(waiting: "
      .. e.task_id .. ")") or "(interrupted)"), pr(e.provider or "?"), pr(e.base_url or "")))
  end
  return 0
end

-- The flag each field of an element's spec comes from: a refusal names what the user typed
-- (--image, the 2nd: --image[2]), not the spec's field nor the API's.
local FLAG_OF = { name = "--name", description = "--description", images = "--image", video = "--video",
  voice_id = "--voice", tags = "--tag" }

local function as_flags(err)
  local field = type(err) == "table" and type(err.field) == "string" and err.field or ""
  local base, rest = field:match("^([%w_]+)(.*)$")
  if base and FLAG_OF[base] then
    err.field = FLAG_OF[base] .. rest
  end
  return err
end

local function create(opts)
  local spec = { name = opts.name, description = opts.description, images = flags.list(opts.images),
    video = opts.video, voice_id = opts.voice_id, tags = flags.list(opts.tags) }
  local err = element.check(spec, opts.provider)
  if not err then
    local provider = require("kling.providers").get(opts.provider or os.getenv("KLING_PROVIDER"))
    -- the provider's own rules too, before a client or a key is needed
    err = provider and select(2, element.request(spec, provider))
  end
  if err then
    return fail(2, as_flags(err))
  end
  local client
  client, err = flags.client(opts)
  if not client then
    return fail(2, err)
  end
  -- The element's cache is keyed by the account of the key the client chose (client:account()).
  local started = os.time()
  local e, cached = element.create(client, spec, { cache = opts.cache, account = client:account(), force = opts.force,
    timeout = opts.timeout, on_progress = function(t)
      io.stderr:write(string.format("  %s %s%s (%d s)\n", t.status, t.progress and (t.progress .. "%") or "",
        t.eta and string.format(", about %d s left", t.eta) or "", os.time() - started))
    end })
  if not e then
    -- a create whose answer was lost (a connection reset after sending): it may exist, and it
    -- is kept in the cache as being created, never sent again by the next run
    if type(cached) == "table" and cached.locked then -- another process is creating it now
      return fail(5, cached)
    end
    if type(cached) == "table" and cached.uncertain then
      -- the next run looks it up only where the provider lists its elements (its capabilities)
      local P = client.provider
      if opts.force then -- "the same command" is sent again: --force risks a second element
        return fail(4, tostring(cached) .. " (uncertain: the element may have been created, and paid; the same "
          .. "command without --force does not send it again; with --force it is sent again, and may be made and "
          .. "paid twice)")
      end
      local next_run = P.capabilities.element_list and "run the same command again to look it up"
        or ("run the same command again to keep it from being sent twice (" .. P.title .. " keeps no element "
          .. "list to look it up in: check the account's usage on " .. P.title .. "'s site)")
      return fail(4, tostring(cached) .. " (uncertain: the element may have been created, and paid; " .. next_run
        .. ": it is not sent again unless --force)")
    end
    return flags.failed(fail, as_flags(cached), "still being made: run the same command again to keep waiting")
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

function M.run(opts)
  if opts.action == "create" then
    return create(opts)
  end
  return list(opts)
end

return M
