-- kling download TASK_ID [--out DIR | --out FILE.EXT]: a finished task's outputs, written
-- under DIR, or its one output written to FILE.EXT.
local core = require "kling.core"
local flags = require "kling.cli.flags"
local names = require "kling.batch.names"
local output_path = require "kling.output_path"

local M = {}

M.summary = "download a finished task's outputs"

function M.define(cmd)
  cmd:description [[
Looks the task up and writes each of its output files (videos, images, audios: a
text-to-audio's or video-to-audio's audio is two, its mp3 and its wav) to DIR/TASK_ID.EXT
(TASK_ID-N.EXT, N from 1, when there are several), then prints their paths. DIR is
made when missing, once the task is known to have outputs (nothing is made on disk before);
one that cannot be made or written is an error before anything is sent.
An --out that ends in a media extension (.mp4, .mov, .webm, .mkv, .png, .jpg, .jpeg, .webp,
.gif, .mp3, .wav, .m4a, .aac, .ogg, .flac) and is not an existing directory names the file
itself: the task's one output is written there (its directory made when missing). A task
with several outputs, or one of another kind (an image for video.mp4), is refused and
nothing is written. A file already at an output's name is never replaced: nothing is
written (refused before anything is sent when --out names it).]]
  cmd:epilog [[
Exit status: 0 downloaded, 1 the task is unknown or a download failed (the transfer,
or writing its file: the cause is named), 2 bad usage, DIR
not writable (nothing sent), an output's name taken (nothing written) or a task --out FILE
does not fit (several outputs, another kind: nothing written), 3 the task is
still queued or running, 4 it failed or was cancelled (no outputs).]]
  cmd:argument("TASK_ID", "the provider's task id"):argname("TASK_ID"):target("task_id"):convert(flags.task_id)
  cmd:option("--out", "the directory to write to (default: the current one), or the file\n"
    .. "(ending in a media extension: out/cat.mp4) for a task's one output"):argname("DIR|FILE")
    :convert(flags.nonempty "--out")
  cmd:option("--endpoint", "the task's endpoint (path after /v1/; without it each video endpoint\n"
    .. "is asked: an image's or an audio's task needs it)"):argname "E"
  cmd:flag("--external", "TASK_ID is an external_task_id")
  flags.client_options(cmd)
end

local fail = flags.failure("kling download")

-- DIR could be made (or is there) and written, checked before anything is sent, making nothing:
-- `kling download --out new/x.mp4 NO-SUCH-TASK` made new/ and then learnt the task did not exist.
-- -> true | nil, message
local function could_write(dir)
  local refused = output_path.name_refusal(dir)
  if refused then
    return nil, refused
  end
  return names.mkdir_p(dir, true)
end

-- DIR exists (made when missing) and a file can be made in it: once the task is known to have
-- outputs to write there. -> true | nil, message
local function writable(dir)
  local ok, err = names.mkdir_p(dir)
  if not ok then
    return nil, err
  end
  local probe = dir .. "/.kling-download-probe"
  local f = output_path.create(probe) -- new, never through a link planted at the probe's name
  if not f then
    return nil, "cannot write in " .. dir
  end
  f:close()
  os.remove(probe)
  return true
end

-- The kind of file --out names when it names one: it ends in a media extension (names.ext_kind)
-- and is not a directory (nor a link to one, nor written with a trailing /). -> kind | nil
local function file_kind(out)
  local kind = not out:find("/$") and names.ext_kind(out:match("%.(%w+)$"))
  if not kind then
    return nil
  end
  local _, _, what = core.output_target(out .. "/.") -- follows a link: a directory is one
  return what ~= "a directory" and kind or nil
end

-- A file already at path: never replaced, as kling run never replaces one. -> message | nil
local function taken(path, when)
  local there = io.open(path, "rb")
  if not there then
    return nil
  end
  there:close()
  return path .. " exists: kling download never replaces a file (move it away, or give another --out): "
    .. when
end

function M.run(opts)
  local out = opts.out or "."
  local kind = file_kind(out)
  local dir = kind and (names.dirname(out) or ".") or out:gsub("(.)/+$", "%1")
  if dir == "" then
    dir = "/"
  end
  local ok, err = could_write(dir)
  if not ok then
    return fail(2, "--out: " .. err .. ": nothing was sent")
  end
  if kind then
    local refused = output_path.refusal(out) -- a link (dangling too), a FIFO, a device
    if refused then
      return fail(2, "--out: " .. refused .. ": nothing was sent")
    end
    local there = taken(out, "nothing was sent")
    if there then
      return fail(2, there)
    end
  end
  local client
  client, err = flags.client(opts)
  if not client then
    return fail(2, err)
  end
  local id = opts.task_id
  local t
  t, err = client:get_task(opts.external and { external_task_id = id } or id, { endpoint = opts.endpoint })
  if not t then
    if err.endpoints_tried then
      return fail(1, flags.lookup_failure(err, kind))
    end
    return flags.failed(fail, err, "run the same command again")
  end
  if t.status ~= "succeeded" then
    return fail((t.status == "failed" or t.status == "cancelled") and 4 or 3,
      "task " .. t.id .. " is " .. t.status .. (t.message and (": " .. t.message) or "") .. ": nothing to download")
  end
  local outputs = t:files() -- a text-to-audio's audio is two files, its mp3 and its wav
  if #outputs == 0 then
    return fail(1, "task " .. t.id .. " succeeded with no outputs")
  end
  if kind and #outputs > 1 then
    return fail(2, "task " .. t.id .. " has " .. #outputs .. " output files"
      .. (outputs[1].format and " (an audio is two: its mp3 and its wav)" or "") .. " and --out " .. out
      .. " names one file: give a directory (--out DIR) to write them all: nothing was written")
  end
  if kind and outputs[1].kind ~= kind then
    return fail(2, "--out " .. out .. " names " .. (kind == "image" and "an " or "a ") .. kind .. " file, and task "
      .. t.id .. "'s output is " .. (outputs[1].kind == "image" and "an " or "a ") .. outputs[1].kind
      .. ": give a name with its extension (." .. names.ext_of(outputs[1].url, outputs[1].kind, outputs[1].format)
      .. ") or a directory: nothing was written")
  end
  ok, err = writable(dir)
  if not ok then
    return fail(2, "--out: " .. err .. ": nothing was written")
  end
  local row = { id = t.id, index = 1, task_id = t.id, request = { model = t.model } }
  local paths = {}
  for n, o in ipairs(outputs) do
    paths[n] = kind and out or dir .. "/" .. names.name("{task_id}.{ext}", row, n, o, #outputs)
    -- lstat's answer first: opening a FIFO planted at the name (to see whether a file is there)
    -- blocked the command for good
    local refused = output_path.refusal(paths[n]) -- a link (dangling too), a FIFO, a device
    if refused then
      return fail(2, "--out: " .. refused .. ": nothing was written")
    end
    -- A file already there is the user's (an earlier download, or another file of that name).
    local there = taken(paths[n], "nothing was written")
    if there then
      return fail(2, there)
    end
  end
  for n, o in ipairs(outputs) do
    local path = paths[n]
    local got, bytes = client:download(o.url, path, { replace = false })
    if not got and type(bytes) == "table" and bytes.exists then
      -- a file that appeared at the name during the download: kept, the download dropped
      return fail(2, "output " .. n .. ": " .. tostring(bytes.message) .. " (it appeared during the download: kept as"
        .. " it is; move it away and run the same command again)")
    end
    if not got and type(bytes) == "table" and bytes.field == "path" then
      -- written but not kept: the directory went away, a disk filled, a rename refused...
      return fail(1, "output " .. n .. ": cannot be written at " .. path .. ": " .. tostring(bytes.message)
        .. " (nothing was kept there)")
    end
    if not got then
      return fail(1, "output " .. n .. " (" .. tostring(o.url) .. "): " .. tostring(bytes))
    end
    io.stdout:write(got, "\n")
  end
  return 0
end

return M
