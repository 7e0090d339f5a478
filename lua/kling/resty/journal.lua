-- An append-only journal of JSON lines, written by every worker, read back at start to
-- rebuild shared memory after a restart (a reload keeps shared memory; a restart does not).
-- Each worker keeps its own handle open in append mode, unbuffered: one line, its newline
-- included, is one write(2) whatever its length, so lines of different workers do not
-- interleave (an O_APPEND write to a local file is one piece; through a buffer of 64 KB, a
-- longer line went out in two or three writes, and another worker's line could land between
-- them: both were then skipped at the next start). Each line reaches the kernel at once, which
-- survives a crash of nginx; with sync = true each line is also
-- fsync'd (a line that cannot be is an error, so the caller fails closed), which survives a crash of the machine at the
-- cost of a disk wait inside the worker.
local core = require "kling.core"
local json = require "kling.json"

local NEWLINE = ("\n"):byte()

local Journal = {}
Journal.__index = Journal
Journal.__name = "kling.resty.journal"

local M = {}

-- check(who, v): raises unless v is nil or a journal (M.open's; a table, so that a test may give
-- its own). The one-node store and the task table write their lines through it: a path given
-- in its place was taken, and the store's first reserve then raised after its hold was made
-- (the hold left open, never journaled).
function M.check(who, v)
  if v ~= nil and type(v) ~= "table" then
    error(who .. ": journal must be a kling.resty.journal (require(\"kling.resty.journal\").open(path)), got a "
      .. type(v) .. (type(v) == "string" and " (a path is not a journal: open it)" or ""), 3)
  end
end

-- append(j, entry) -> true | nil, message: j:append(entry), a raise of it taken as a failed
-- write, so that the caller undoes its movement (fail closed). A journal may be an embedder's
-- own (check): one whose append raised went past the one-node store's undo, and a hold made
-- before the line stayed open, its credit taken for good. Every writer of a journal an embedder
-- may give calls it (kling.money.stores.shared, kling.resty.tasks).
function M.append(j, entry)
  local ok, res, err = pcall(j.append, j, entry)
  if not ok then
    return nil, "the journal's append raised: " .. tostring(res)
  end
  return res, err
end

-- open(path, {sync =, reopen = shared dict}) -> journal. Nothing is opened until the first
-- append (the master reads, the workers write). With reopen, every worker reopens its
-- handle after M.reopen_all(dict) (the file replaced by a whole copy: never rotated, see M.FIRST).
function M.open(path, opts)
  if type(path) ~= "string" or path == "" then
    error("kling.resty.journal: path must be a non-empty string", 2)
  end
  return setmetatable({ path = path, sync = opts and opts.sync or false, reopen = opts and opts.reopen,
    gen = 0 }, Journal)
end

M.GEN_KEY = "journal:gen"
-- The file the workers write (its identity, device:inode): the one at the path when nginx's
-- master had read (and compacted) it at a start or reload, or the whole copy an admin reopen
-- took (M.adopt). A handle is reopened by path only when the path still names that file.
M.FILE_KEY = "journal:file"
-- Its path, as the config named it when nginx's master adopted it (M.adopt).
M.PATH_KEY = "journal:path"

-- Asks every worker's journal to reopen its file before its next line; with id (a whole
-- copy's identity, M.replacement's), that file is the one they reopen.
function M.reopen_all(dict, id)
  if id then
    local ok, err = dict:safe_set(M.FILE_KEY, id) -- never evicting the ledger's keys to make room
    if not ok then
      return nil, "shared memory: " .. tostring(err)
    end
  end
  return dict:incr(M.GEN_KEY, 1, 0)
end

-- adopt(dict, path) -> true | nil, message: the file at path is the journal the workers write
-- (nginx's master, once it has read and compacted it: nothing appends meanwhile).
function M.adopt(dict, path)
  local ok, size, id = core.output_target(path)
  if not ok or size == nil then
    return nil, "the journal " .. path .. " cannot be adopted: " .. (ok and "there is no file there" or tostring(size))
  end
  local set, err = dict:safe_set(M.FILE_KEY, id) -- never evicting the ledger's keys to make room
  if set then
    set, err = dict:safe_set(M.PATH_KEY, path)
  end
  if not set then
    return nil, "the journal " .. path .. " cannot be adopted: shared memory: " .. tostring(err)
  end
  return true
end

-- moved(dict, path) -> message | nil: at a reload, whether the config names another journal
-- than the one the running gateway writes (M.adopt's path). Such a reload made the new file and
-- its lock file before it was refused for a file "moved away and replaced", and the next start
-- with that path was then refused, the lock saying a gateway had run with the empty journal.
-- Paths are compared by the files they name, not as text: another spelling of the journal's
-- path (a doubled '/', a "./", a directory's link) names the file the workers write (M.FILE_KEY,
-- its device:inode) and its lock file (M.lock's, the same one: one gateway per journal), and a
-- reload naming it so was refused as a move. A hard link elsewhere names the journal but another
-- lock file: still refused (a second gateway could lock it beside this one).
local function same_file(a, b)
  local aok, asize, aid = core.output_target(a)
  local bok, bsize, bid = core.output_target(b)
  return aok and bok and asize ~= nil and bsize ~= nil and aid == bid
end

function M.moved(dict, path)
  local was = dict:get(M.PATH_KEY)
  if was and was ~= path then
    local ok, size, id = core.output_target(path)
    local writes = dict:get(M.FILE_KEY)
    if ok and size ~= nil and writes ~= nil and id == writes and same_file(was .. ".lock", path .. ".lock") then
      return nil
    end
    return "journal: a reload cannot move the journal from " .. was .. " to " .. path .. " (the running gateway's"
      .. " balances and tasks are written to " .. was .. "; nothing was made at " .. path .. "): name " .. was
      .. " again, or stop nginx and start it with the new path"
  end
  return nil
end

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- writable(path, user) -> true | nil, message: whether `user` (the user nginx's workers run
-- as; nil: this process's own) can append to the journal, checked by appending nothing. Run
-- in nginx's master at start (it may block: nothing is served yet).
-- The journal holds account keys and clients' requests: it is made readable by its owner only
-- (a journal other users can read is refused: they could spend with those keys).
function M.writable(path, user)
  local how = "the nginx workers' user " .. (user or "(this process's)")
  -- nginx's master may run without PATH: runuser by its path (util-linux, Debian's place).
  local test = "umask 077; : >> " .. q(path) .. " && chmod go-rwx " .. q(path)
    .. " && ls -ln " .. q(path) .. " && echo WRITABLE"
  local p = io.popen("PATH=/usr/sbin:/usr/bin:/sbin:/bin " .. (user and ("runuser -u " .. q(user) .. " -- ") or "")
    .. "sh -c " .. q(test) .. " 2>&1", "r")
  local out = p and p:read("*a") or "cannot run sh"
  if p then
    p:close() -- LuaJIT's close does not give the exit status: the output says
  end
  if not out:find("WRITABLE", 1, true) then
    -- the shell's own words, without its "sh: 1: " (the path is named already)
    local why = out:gsub("%s+$", ""):gsub("^sh: %d+: ", ""):gsub("^cannot create " .. path:gsub("%p", "%%%0")
      .. ": ", "")
    -- A journal there already is the file to give the user (its directory may be theirs: the
    -- advice to make that writable changed nothing); a new one, its directory. Asked of the
    -- path's metadata (core.output_target), never by opening it: a FIFO there would block the open.
    local ok, size = core.output_target(path)
    local there = ok and size ~= nil
    return nil, "the journal " .. path .. " is not writable by " .. how .. ": " .. why
      .. (user and (" (make " .. (there and "it" or "its directory") .. " writable by " .. user
      .. ", or set the nginx 'user' directive)") or "")
  end
  local line = out:match("^[^\n]*")
  if not line:match("^%-..%-%-%-%-%-%-") then
    return nil, "the journal " .. path .. " stays readable by other users (it holds account keys): " .. line
  end
  return true
end

-- Why the journal at path is lost, or nil, and whether a gateway ran with it: its lock file
-- (left by every start) says one did, yet the journal is missing or empty (every journal holds
-- its first line). Started from nothing, every account would have its spent credit back: fail
-- closed, naming the way out. Anything but a regular file is refused before it is opened (a
-- FIFO would block nginx's master). -> problem | nil, ran
function M.lost(path)
  local ok, size, kind = core.output_target(path)
  if not ok then
    return "the journal " .. path .. " is " .. tostring(kind) .. ", not a regular file: " .. tostring(size)
  end
  local l = io.open(path .. ".lock", "rb")
  if not l then
    return nil, false
  end
  l:close()
  if (size or 0) > 0 then
    return nil, true
  end
  return "the journal " .. path .. " is " .. (size and "empty" or "missing") .. ", but " .. path .. ".lock shows a "
    .. "gateway ran with it: started from nothing, every account would have its spent credit back. Put the "
    .. "journal back (or a copy), or remove " .. path .. ".lock to start afresh on purpose"
end

-- lock(path) -> lock | nil, message: one gateway per journal. Each gateway meters in its own
-- shared memory and reads the journal back only at start, so two gateways appending to one
-- journal would each let a client spend its whole credit. The lock is an exclusive flock on
-- <path>.lock taken in nginx's master: its workers inherit the descriptor, so the lock lives as
-- long as any process that can write the journal (workers left running by a kill -9 of the
-- master included) and ends with the last of them. It is the process's (core.lock_file's
-- process flag): at a reload the master's new Lua VM finds it held instead of refused.
-- Keep the returned lock referenced for as long as the journal is in use.
function M.lock(path)
  local lock_path = path .. ".lock"
  local l, err, busy, pid = require("kling.core").lock_file(lock_path, true)
  if l then
    return l
  end
  if not busy then
    return nil, "cannot lock the journal " .. path .. ": " .. err
  end
  local holder, gone = "another process", ""
  if pid then
    holder = "pid " .. pid
    -- a master killed with kill -9 (gone, or a zombie not yet reaped): its workers still run
    if not require("kling.nginx_run").alive(pid) then
      gone = " (pid " .. pid .. " is gone; processes it started, such as its nginx workers, still hold it)"
    end
  end
  return nil, "the journal " .. path .. " is in use by another gateway: " .. holder .. " holds " .. lock_path
    .. gone .. " (one journal per node: two would each let a client spend its credit; several nodes share a store)"
end

-- open_handle() -> a handle appending to the journal's file, its identity | nil, message: only
-- the file this journal writes, never through a link (append's rules, and writable's).
function Journal:open_handle()
  -- Only the file this journal writes (M.FILE_KEY, else the one it had open): after a failed
  -- write every worker reopens by path, and one moved away had them make a new file there,
  -- which the next start refuses (it does not begin with the journal's first line) while
  -- creates were forwarded and journaled into it. Asked before the open, which would create
  -- the file, and again of the opened handle (a file swapped in between).
  local want = self.reopen and self.reopen:get(M.FILE_KEY) or self.file_id
  if want then
    local ok, size, id = core.output_target(self.path)
    if ok and (size == nil or id ~= want) then
      return nil, self:not_ours(size == nil)
    end
  end
  -- Never through a link planted at the journal's name (kling.output_path).
  local f, id = require("kling.output_path").append(self.path)
  if not f then
    return nil, "cannot open the journal " .. self.path .. ": " .. tostring(id)
  end
  if want and id ~= want then
    f:close()
    return nil, self:not_ours(false)
  end
  return f, id
end

-- writable() -> true | nil, message: whether a line could be appended now, by the rules an
-- append opens its file with (a readiness probe's look: nothing written, the handle closed).
function Journal:writable()
  if self.fh and not (self.reopen and (self.reopen:get(M.GEN_KEY) or 0) ~= self.gen) then
    return true -- its last line was written (a failed write closes it) and no reopen was asked since
  end
  local f, id = self:open_handle()
  if not f then
    return nil, id
  end
  f:close()
  return true
end

-- append(entry) -> true | nil, message. entry is a table (encoded here) or a JSON line (its
-- newline may end it already: the caller then saved a copy of the whole line).
function Journal:append(entry)
  local line = entry
  if type(entry) ~= "string" then
    local err
    line, err = json.encode(entry)
    if not line then
      return nil, "journal entry cannot be encoded: " .. tostring(err)
    end
  end
  if line:byte(-1) ~= NEWLINE then
    line = line .. "\n"
  end
  if self.reopen then
    local gen = self.reopen:get(M.GEN_KEY) or 0
    if gen ~= self.gen then
      self.gen = gen
      self:close()
      self.check_end = true
    end
  end
  if not self.fh then
    local f, id = self:open_handle()
    if not f then
      return nil, id
    end
    self.file_id = id
    f:setvbuf("no") -- one write(2) a line (the top of this file says why)
    self.fh = f
    -- A line cut short by a write that failed part-way (a full disk) leaves the file without
    -- its newline: this line starts a line of its own. Written after it, it was glued to it,
    -- and the next start skipped both: a create held and forwarded was forgotten (its hold
    -- given back, its task unknown, the upstream's bill never charged). Looked at only when
    -- a handle is opened after a failed write or a reopen, never per line (another worker's
    -- long line being written may show its first part here: the newline added then makes a
    -- blank line, which read skips). A start mends a cut left by a crash (mend).
    if self.check_end and not M.ends_whole(self.path) then
      line = "\n" .. line
    end
    self.check_end = nil
  end
  local ok, err = self.fh:write(line)
  if not ok then
    self.fh:close()
    self.fh = nil
    self.check_end = true
    if self.reopen then
      -- Its bytes written before the failure may end the file now: every worker's handle is
      -- opened again before its next line, and so looks at the file's end (above).
      M.reopen_all(self.reopen)
    end
    return nil, "cannot write the journal " .. self.path .. ": " .. tostring(err)
  end
  if self.sync then
    -- Asked to be durable and cannot be: fail closed, the caller refuses the movement.
    if not core.fsync_path then
      return nil, "cannot fsync the journal " .. self.path .. ": this kling.core has no fsync_path"
    end
    local sok, serr = core.fsync_path(self.path)
    if not sok then
      return nil, "cannot fsync the journal " .. self.path .. ": " .. tostring(serr)
    end
  end
  return true
end

-- position() -> the identity (device:inode) of the file at the journal's path and its size |
-- nil: a line appended now lands at or past that size, in that file. A stat, no open (a top-up's
-- pending mark keeps it: kling.money.stores.shared).
function Journal:position()
  local ok, size, id = core.output_target(self.path)
  if ok and size ~= nil then
    return id, size
  end
  return nil
end

-- scan(id, from, to, most, needle, match) -> where it stopped, the entry found | nil, why: the
-- first line between bytes `from` and `to` of the file `id` (Journal:position's) that holds the
-- text needle and whose entry match(entry) takes. At most `most` bytes are read a call (a worker
-- never reads the whole journal): it stops at a line's end past them, the caller goes on from
-- there. Refused when the file at the path is another one now (a journal reopened).
function Journal:scan(id, from, to, most, needle, match)
  local ok, _, now = core.output_target(self.path)
  if not ok or now ~= id then
    return nil, "the journal " .. self.path .. " is another file now than the one the line was written to"
  end
  local f, err = io.open(self.path, "rb")
  if not f then
    return nil, "cannot read the journal " .. self.path .. ": " .. tostring(err)
  end
  if core.file_identity and core.file_identity(f) ~= id then
    f:close()
    return nil, "the journal " .. self.path .. " is another file now than the one the line was written to"
  end
  local at = f:seek("set", from) and from
  if not at then
    f:close()
    return nil, "cannot read the journal " .. self.path .. " at byte " .. tostring(from)
  end
  local found
  while at < to and at - from < most do
    local line = f:read("*l")
    if not line then
      break
    end
    at = at + #line + 1 -- its newline (one past the end for a last line without: the scan ends there)
    if line:find(needle, 1, true) then
      local e = json.decode(line)
      if type(e) == "table" and match(e) then
        found = e
        break
      end
    end
  end
  f:close()
  return at, found
end

-- Why a journal does not reopen its path: the file there is not the one it writes.
function Journal:not_ours(missing)
  return "cannot reopen the journal " .. self.path .. ": " .. (missing and "there is no file there (moved away"
    .. " or removed?)" or "it is another file than the journal this gateway writes (moved away and replaced?)")
    .. "; nothing is written in its place (a restart would refuse a new file there): put the journal back at"
    .. " that path, or a whole copy and POST /gateway/admin/journal/reopen"
end

-- ends_whole(path) -> whether the file at path is empty, missing or ends with a newline (its last
-- line whole).
function M.ends_whole(path)
  local f = io.open(path, "rb")
  if not f then
    return true
  end
  local size = f:seek("end")
  local last = size and size > 0 and f:seek("set", size - 1) and f:read(1)
  f:close()
  return not last or last == "\n"
end

-- mend(path) -> true | nil, message: a journal whose last line was cut short (a crash of the
-- machine, a full disk before a stop) ends with a newline again, so that the next line is one
-- of its own. In nginx's master at a start, before any worker appends.
function M.mend(path)
  if M.ends_whole(path) then
    return true
  end
  local f, err = require("kling.output_path").append(path)
  if not f then
    return nil, "cannot open the journal " .. path .. ": " .. tostring(err)
  end
  local ok, werr = f:write("\n")
  f:close()
  if not ok then
    return nil, "cannot write the journal " .. path .. ": " .. tostring(werr)
  end
  return true
end

function Journal:close()
  if self.fh then
    self.fh:close()
    self.fh = nil
  end
end

-- The journal is the ledger: a gateway rebuilds every balance, hold and task from the whole
-- file. Its first line, written when the gateway first starts on an empty file, says so; a
-- journal whose first line is anything else was rotated or truncated, and starting from it
-- would give back every client the credit it spent before the cut (fail closed: refused).
M.FIRST = { op = "journal", version = 1 }
-- The first line of a compacted journal (kling.gateway.compact) has version 2 (a gateway that
-- knows only version 1 refuses it rather than read its totals as nothing).
M.COMPACTED = 2

-- whole(path, entries) -> true | nil, message: whether entries (M.read's) begin at the
-- journal's first line. An empty journal is whole (the caller then writes M.FIRST). A
-- journal made before the first line existed is whole when its first money movement is
-- the first ever (seq 1) and nothing but created accounts comes before it.
function M.whole(path, entries)
  local first = entries[1]
  if first == nil
    or (first.op == M.FIRST.op and (first.version == M.FIRST.version or first.version == M.COMPACTED)) then
    return true
  end
  for _, e in ipairs(entries) do
    if type(e.seq) == "number" then
      if e.seq == 1 then
        return true
      end
      break
    elseif e.op ~= "account" then
      break
    end
  end
  return nil, "the journal " .. path .. " does not begin at its start (its first line is "
    .. (type(first.op) == "string" and ("a '" .. first.op .. "'") or "not a journal line")
    .. (type(first.seq) == "number" and (" of movement " .. string.format("%d", first.seq)) or "")
    .. ", not its first line {\"op\":\"journal\"}): it was rotated or truncated, and the balances, holds and"
    .. " tasks before the cut are not in it. The journal is the ledger: put the earlier lines back in front"
    .. " (cat the older files and this one, oldest first) and start again"
end

-- replacement(path) -> its first line (decoded), its identity | nil, message: whether path
-- holds a whole journal that its workers may reopen (admin journal/reopen): a regular file
-- (never a link: appends refuse one) that begins with the journal's first line. A journal
-- moved away, or a fresh file in its place, is refused at once: every worker would append to
-- a file a restart refuses.
function M.replacement(path)
  local ok, size, id = core.output_target(path)
  if not ok then
    return nil, "the journal " .. path .. " cannot be reopened: " .. tostring(size)
  elseif size == nil then
    return nil, "the journal " .. path .. " cannot be reopened: there is no file there (was it moved away?"
      .. " Put the whole journal back at that path first)"
  end
  local f = io.open(path, "rb")
  local head = f and f:read(4096) or ""
  if f then
    f:close()
  end
  local first = json.decode(head:match("^([^\n]*)\n") or "")
  if type(first) ~= "table" or not M.whole(path, { first }) then
    return nil, "the journal " .. path .. " cannot be reopened: it does not begin with the journal's first line"
      .. " {\"op\":\"journal\"} (a rotated or new file: a restart would refuse it). Put the whole journal at"
      .. " that path (cat the older files and this one, oldest first) and reopen again"
  end
  return first, id
end

-- read(path) -> entries (decoded tables, in file order), skipped (lines that were not JSON:
-- a line cut short by a crash) | nil, message. A missing file is an empty journal; one that is
-- there but is no regular file or cannot be read is an error (fail closed: read as empty, every
-- account had its spent credit back), and a FIFO there is never opened (it blocks).
function M.read(path)
  local head, why, kind, missing = core.read_regular(path, 0) -- its type, without reading it
  if not head and missing then
    return {}, 0
  elseif not head then
    return nil, "the journal " .. path .. " cannot be read (" .. tostring(why) .. ")"
      .. (kind and ": a journal is a regular file" or "")
  end
  local f, err = io.open(path, "rb")
  if not f then
    return nil, "the journal " .. path .. " cannot be read (" .. tostring(err) .. ")"
  end
  local out, skipped = {}, 0
  for line in f:lines() do
    if line ~= "" then
      local e = json.decode(line)
      if type(e) == "table" then
        out[#out + 1] = e
      else
        skipped = skipped + 1
      end
    end
  end
  f:close()
  return out, skipped
end

return M
