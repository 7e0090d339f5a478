-- kling.resty.journal: every worker appends to one file; a line is one write(2), so lines of
-- several processes never interleave, however long they are.
local journal = require "kling.resty.journal"
local json = require "kling.json"
local files = require "support.files"

describe("kling.resty.journal", function()
  it("keeps whole the lines of processes appending at once, past 64 KB a line", function()
    local dir = files.tempdir()
    local path = dir .. "/ledger.jsonl"
    local child = dir .. "/child.lua"
    local f = assert(io.open(child, "w"))
    f:write([[
local w, path = tonumber(arg[1]), arg[2]
local j = require("kling.resty.journal").open(path)
for i = 1, 30 do
  local pad = string.rep(string.char(96 + w), 40000 + (i * 7919) % 90000)
  assert(j:append('{"w":' .. w .. ',"i":' .. i .. ',"pad":"' .. pad .. '"}'))
end
]])
    f:close()
    local env = ("LUA_PATH=%q LUA_CPATH=%q "):format(package.path, package.cpath)
    local cmd = {}
    for w = 1, 4 do
      cmd[#cmd + 1] = env .. "lua5.4 " .. child .. " " .. w .. " " .. path .. " &"
    end
    assert(os.execute("(" .. table.concat(cmd, " ") .. " wait)"))
    local seen, n = {}, 0
    for line in io.lines(path) do
      local e = json.decode(line)
      assert.is_table(e, "a line is not JSON: " .. line:sub(1, 40) .. "...")
      assert.equals(string.rep(string.char(96 + e.w), #e.pad), e.pad)
      local k = e.w .. ":" .. e.i
      assert.is_nil(seen[k], k)
      seen[k], n = true, n + 1
    end
    assert.equals(120, n)
    -- A table entry and a line that ends with its newline are written as one line each.
    local j = journal.open(path)
    assert(j:append { op = "x" })
    assert(j:append('{"op":"y"}\n'))
    local entries, skipped = journal.read(path)
    assert.equals(0, skipped)
    assert.equals("y", entries[#entries].op)
    assert.equals("x", entries[#entries - 1].op)
    files.remove(dir)
  end)

  -- Read as an empty journal, a gateway's journal that is there but cannot be read (a link that
  -- loops, as root too; EACCES, EIO elsewhere) started every account with its spent credit back,
  -- and a FIFO at its name blocked nginx's master: both are errors now, only a missing one empty.
  it("reads a missing journal as empty, and one there that cannot be read as an error, never opening a FIFO",
    function()
      local dir = files.tempdir()
      local entries, skipped = journal.read(dir .. "/none.jsonl")
      assert.are.same({}, entries)
      assert.equals(0, skipped)
      assert(os.execute("ln -s " .. dir .. "/loop.jsonl " .. dir .. "/loop.jsonl"))
      local none, err = journal.read(dir .. "/loop.jsonl")
      assert.is_nil(none)
      assert.matches("loop.jsonl cannot be read", err, 1, true)
      assert(os.execute("mkfifo " .. dir .. "/fifo.jsonl"))
      none, err = journal.read(dir .. "/fifo.jsonl") -- returns: the FIFO was never opened
      assert.is_nil(none)
      assert.matches("a journal is a regular file", err, 1, true)
      files.remove(dir)
    end)

  it("starts a line of its own after one a failed write cut short, in every worker", function()
    -- A full disk: write(2) takes the bytes that fit and fails on the rest, so the file ends in
    -- the cut line, without its newline. The next line (a create held and forwarded) was glued to
    -- it, and the next start skipped both: that task and its hold were forgotten.
    local dir = files.tempdir()
    local path = dir .. "/ledger.jsonl"
    local output_path = require "kling.output_path"
    local real_append = output_path.append
    local cut = false
    output_path.append = function(p)
      local f, err = real_append(p)
      if not f or not cut then
        return f, err
      end
      cut = false
      return { -- err: the file's identity

        setvbuf = function() end,
        close = function() f:close() end,
        write = function(_, s)
          f:write(s:sub(1, 20)) -- what fitted
          return nil, "No space left on device"
        end,
      }, err
    end
    local values = {} -- a shared dict, as every worker's journal has it (reopen)
    local dict = {
      get = function(_, k) return values[k] end,
      incr = function(_, k, by, init)
        values[k] = (values[k] or init) + by
        return values[k]
      end,
    }
    local ok, err = pcall(function()
      local worker1 = journal.open(path, { reopen = dict })
      local worker2 = journal.open(path, { reopen = dict })
      assert(worker1:append { op = "journal", version = 1 })
      assert(worker2:append { op = "a" }) -- its handle is open before the failure
      cut = true
      worker1:close() -- opened again: through the failing handle
      local wok = worker1:append('{"op":"cut","pad":"' .. string.rep("x", 200) .. '"}\n')
      assert.is_nil(wok)
      assert(worker2:append('{"op":"held","task_key":"gw1"}\n'))
      assert(worker1:append { op = "settled" })
      local entries, skipped = journal.read(path)
      local ops = {}
      for i, e in ipairs(entries) do
        ops[i] = e.op
      end
      assert.same({ "journal", "a", "held", "settled" }, ops)
      assert.equals(1, skipped) -- the cut line alone
      worker1:close()
      worker2:close()
    end)
    output_path.append = real_append
    files.remove(dir)
    assert(ok, err)
  end)

  -- After a failed write every worker reopens the journal by its path (reopen_all). A journal
  -- moved away then had each of them make a new file there: creates were journaled into it and
  -- the next start refused it (it does not begin with the journal's first line).
  it("reopens its path only while the path names the file it writes, never making one in its place", function()
    local fake_dict = require "support.fake_dict"
    local dir = files.tempdir()
    local path = dir .. "/ledger.jsonl"
    local dict = fake_dict.new()
    local master = journal.open(path, { reopen = dict })
    assert(master:append(journal.FIRST))
    master:close()
    assert(journal.adopt(dict, path)) -- nginx's master, once it has read the journal
    local worker1 = journal.open(path, { reopen = dict })
    local worker2 = journal.open(path, { reopen = dict })
    assert(worker1:append { op = "a" })
    assert(worker2:append { op = "b" })
    local function ops(p)
      local out = {}
      for i, e in ipairs((journal.read(p))) do
        out[i] = e.op
      end
      return out
    end

    assert(os.rename(path, path .. ".moved"))
    journal.reopen_all(dict) -- what a failed write does
    for _, w in ipairs { worker1, worker2 } do
      local ok, err = w:append { op = "lost" }
      assert.is_nil(ok)
      assert.matches("cannot reopen the journal " .. path .. ": there is no file there", err, 1, true)
    end
    assert.is_nil(io.open(path, "rb")) -- nothing made in its place

    local f = assert(io.open(path, "wb")) -- another file at the name (a whole journal's first line, even)
    f:write('{"op":"journal","version":1}\n')
    f:close()
    local ok, err = worker1:append { op = "lost" }
    assert.is_nil(ok)
    assert.matches("cannot reopen the journal " .. path .. ": it is another file", err, 1, true)
    assert.same({ "journal" }, ops(path))

    assert(os.rename(path .. ".moved", path)) -- put back: appended to again
    assert(worker1:append { op = "c" })
    assert(worker2:append { op = "d" })
    assert.same({ "journal", "a", "b", "c", "d" }, ops(path))

    -- A whole copy the admin API's reopen takes (replacement checked it) is the file from then on.
    assert(os.execute("cp " .. path .. " " .. path .. ".copy && mv " .. path .. ".copy " .. path))
    local first, id = journal.replacement(path)
    assert.equal("journal", first.op) -- its first line, decoded (the unit reopen compares)
    journal.reopen_all(dict, id)
    assert(worker1:append { op = "e" })
    assert.same({ "journal", "a", "b", "c", "d", "e" }, ops(path))

    -- Without a shared dict: the file it had open.
    local alone = journal.open(dir .. "/alone.jsonl")
    assert(alone:append(journal.FIRST))
    alone:close()
    assert(os.rename(dir .. "/alone.jsonl", dir .. "/alone.moved"))
    ok, err = alone:append { op = "lost" }
    assert.is_nil(ok)
    assert.matches("there is no file there", err, 1, true)
    assert.is_nil(io.open(dir .. "/alone.jsonl", "rb"))
    worker1:close()
    worker2:close()
    files.remove(dir)
  end)

  it("mends a last line cut short before a start, so the next line is one of its own", function()
    local dir = files.tempdir()
    local path = dir .. "/ledger.jsonl"
    local f = assert(io.open(path, "wb"))
    f:write('{"op":"journal","version":1}\n{"seq":1,"op":"reser') -- a crash in the middle of a line
    f:close()
    assert(journal.mend(path))
    assert(journal.mend(path)) -- whole now: nothing more is added
    assert(journal.open(path):append { op = "held" })
    local entries, skipped = journal.read(path)
    assert.equals(2, #entries)
    assert.equals("held", entries[2].op)
    assert.equals(1, skipped)
    files.remove(dir)
  end)
end)
