-- kling storyboard FILE --out DIR: a multi-shot storyboard made into one video (kling.multishot).
local json = require "kling.json"
local multishot = require "kling.multishot"
local flags = require "kling.cli.flags"

local M = {}

M.summary = "render a multi-shot storyboard into one video"

-- How the command resumes after Ctrl-C (kling.cli says it with "interrupted", exit 130).
function M.interrupted(args)
  return args.out .. "/storyboard.jsonl keeps what was sent: run the same command again to resume"
end

function M.define(cmd)
  cmd:description [[
FILE is JSON: a list of shots [{"prompt": "...", "duration": 5, "image": URL?, "elements": [...]?}]
or an object {"model": "kling-v3", "mode": "pro", "aspect_ratio": "16:9", ..., "shots": [...]}
whose other fields go into every request. Checked before anything is sent: each shot's
prompt at most 512 characters, durations whole seconds. Keys as for kling run: the options
(they show in ps), else KLING_ACCESS_KEY + KLING_SECRET_KEY or KLING_API_KEY.

With native multi-shot (kling-v3 on the official API and the gateways that have it) a
storyboard of at most 6 shots lasting 3..15 s in all is ONE request. A longer one is split
into segments within those limits; each segment starts from the last frame of the one
before (ffmpeg), unless its first shot has its own image, and the segments are joined with
ffmpeg into DIR/storyboard.mp4. --split makes every shot its own segment. Element names in
"elements" are resolved with the element cache (--elements, as kling element create wrote it;
by default its own default cache); a name in none is refused before anything is sent.
Providers that take image URLs only need the frames served: --frames-base-url is the URL
under which DIR's files can be fetched.

Segments are journaled in DIR/storyboard.jsonl: the same command again skips the segments
already made and waits for a task in flight instead of paying for it twice. A file at
DIR/storyboard.mp4 or DIR/segment-NN.mp4 that the journal does not show it wrote is never
replaced: refused before anything is sent, or kept when it appears during the run. DIR
holds one storyboard: another (other shots, model, --split or provider) into a DIR whose
journal holds a run is refused before anything is sent (give another --out).]]
  cmd:epilog [[
Exit status: 0 made, 1 the provider refused or failed a segment, 2 bad usage or storyboard
(nothing sent), 3 a segment did not finish within --timeout (run again to keep waiting),
4 uncertain: a segment's create got no answer (a connection reset after sending), so it may
have been made and paid (run the same command again to look it up by its external id; it is
not sent again), 5 another live process is running this DIR (nothing sent),
130 interrupted (Ctrl-C): run the same command again to resume]]
  cmd:argument("FILE", "the storyboard (JSON)"):argname("FILE"):target "file"
  cmd:option("--out", "output directory (required)"):argname("DIR"):count(1):convert(flags.nonempty "--out")
  flags.client_options(cmd)
  cmd:option("--elements", "element cache (kling element create) for element names (default:\n"
    .. "the one kling element create writes)"):argname "FILE"
  cmd:flag("--split", "every shot its own segment")
  cmd:flag("--no-continuity", "segments do not start from the last frame of the one before")
  cmd:option("--frames-base-url", "the URL under which DIR's files can be fetched"):argname "URL"
  cmd:option("--timeout", "the longest a segment may take (default 1800)"):argname("SECONDS")
    :convert(flags.number("--timeout", flags.SECONDS))
  flags.poll_options(cmd)
  cmd:flag("--json", "print JSON")
end

local fail = flags.failure("kling storyboard")

-- multishot.run's options named as the flags that gave them
local AS_GIVEN = { out = "--out", elements = "--elements", frames_base_url = "--frames-base-url" }

function M.run(opts)
  local sb, err = multishot.load(opts.file)
  if not sb then
    return fail(2, err)
  end
  local verr = multishot.check(sb)
  if verr then
    return fail(2, verr)
  end
  local client
  client, err = flags.client(opts, sb.provider)
  if not client then
    return fail(2, err)
  end
  local native -- the provider's multi-shot, unless --split
  if opts.split then
    native = false
  end
  local result, rerr = multishot.run(client, sb, {
    out = opts.out, native = native, continuity = not opts.no_continuity,
    frames_base_url = opts.frames_base_url, elements = opts.elements, timeout = opts.timeout,
    on_progress = function(ev)
      io.stderr:write(string.format("segment %d/%d: %s%s%s\n", ev.segment, ev.segments, ev.status,
        ev.progress and (" " .. ev.progress .. "%") or "", ev.task_id and (" (task " .. ev.task_id .. ")") or ""))
    end,
  })
  if not result then
    if type(rerr) == "table" and rerr.locked then
      return fail(5, flags.as_given(rerr, AS_GIVEN))
    end
    if type(rerr) == "table" and rerr.uncertain then
      -- a segment's create whose answer was lost (a connection reset after sending): it may
      -- exist, and the journal keeps its intent (and external id), so the next run looks it up
      -- instead of sending it again
      return fail(4, tostring(rerr) .. " (uncertain: the segment may have been created, and paid; "
        .. (rerr.external_task_id and "run the same command again to look it up by its external id "
          .. rerr.external_task_id .. ": it is sent again only if that lookup does not find it)"
          or "the provider cannot look it up by an external id: the same command again does not send it twice)"))
    end
    return flags.failed(fail, flags.as_given(rerr, AS_GIVEN), "run the same command again to keep waiting")
  end
  if opts.json then
    local segs = json.array {}
    for i, s in ipairs(result.segments) do
      segs[i] = { first = s.first, last = s.last, duration = s.duration, path = s.path, task_id = s.task_id,
        frame = s.frame, skipped = s.skipped or nil }
    end
    io.stdout:write(assert(json.encode { file = result.file, native = result.native, duration = result.duration,
      segments = segs }), "\n")
  else
    for i, s in ipairs(result.segments) do
      io.stdout:write(string.format("segment %d: shots %d..%d, %d s, task %s%s -> %s\n", i, s.first, s.last, s.duration,
        tostring(s.task_id), s.skipped and " (already made)" or "", s.path))
    end
    io.stdout:write(string.format("storyboard: %s (%d s asked, %d segment(s)%s)\n", result.file, result.duration,
      #result.segments, result.native and ", native multi-shot" or ""))
  end
  return 0
end

return M
