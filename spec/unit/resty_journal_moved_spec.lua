-- A reload compared the journal's path with the running gateway's as text (kling.resty.journal
-- moved): the same journal named another way (a doubled '/', a "./") was refused as a move of the
-- journal. Paths are compared by the files they name now: the journal the workers write (its
-- device:inode) and its lock file. A hard link elsewhere names the journal but another lock file,
-- so a second gateway could lock it: still refused, as is another file.
local fake_dict = require "spec.support.fake_dict"
local files = require "support.files"
local journal = require "kling.resty.journal"

describe("kling.resty.journal.moved: the journal's path at a reload", function()
  local dir, path, dict

  before_each(function()
    dir = files.tempdir()
    path = dir .. "/ledger.jsonl"
    local f = assert(io.open(path, "w"))
    f:write('{"op":"journal","version":1}\n')
    f:close()
    f = assert(io.open(path .. ".lock", "w"))
    f:close()
    dict = fake_dict.new()
    assert(journal.adopt(dict, path)) -- the running gateway's journal
  end)

  it("takes the same journal named another way", function()
    assert.is_nil(journal.moved(dict, path))
    assert.is_nil(journal.moved(dict, dir .. "//ledger.jsonl"))
    assert.is_nil(journal.moved(dict, dir .. "/./ledger.jsonl"))
    assert.is_nil(journal.moved(dict, dir .. "/../" .. dir:match("[^/]+$") .. "/ledger.jsonl"))
  end)

  it("refuses another file, a path with nothing there, and a hard link beside another lock file", function()
    local other = dir .. "/other.jsonl"
    local f = assert(io.open(other, "w"))
    f:close()
    assert.matches("a reload cannot move the journal from " .. path .. " to " .. other, journal.moved(dict, other), 1,
      true)
    assert.is_string(journal.moved(dict, dir .. "/none.jsonl"))
    assert(os.execute("mkdir " .. dir .. "/b && ln " .. path .. " " .. dir .. "/b/ledger.jsonl"))
    assert.is_string(journal.moved(dict, dir .. "/b/ledger.jsonl"))
  end)
end)
