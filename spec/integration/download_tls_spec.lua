-- Downloads and TLS against real servers over loopback (issue 11, points 11, 12 and 13): the
-- simulator for results, 404s and its HTTPS port; a plain nginx streaming 1 GiB with no
-- Content-Length for the size cap.
local sim = require "support.sim"
local nginx = require "support.nginx"

local files = require "support.files"
local size_of = files.size

-- A CA bundle that did not sign the simulator's certificate.
local OTHER_CA = "/etc/ssl/certs/ca-certificates.crt"

describe("downloads and TLS", function()
  local client, video_url

  setup(function()
    sim.reset()
    sim.config { task_seconds = 1 }
    client = sim.client()
    local done = assert(client:run({ prompt = "a quiet harbour", duration = 5 }, { timeout = 30 }))
    video_url = done.videos[1].url
  end)

  it("issue 11.12: a download into a missing directory returns nil, err naming path (no raise)", function()
    local ok, got, err = pcall(client.download, client, video_url, "/missing/dir/x.mp4")
    assert.is_true(ok, tostring(got))
    assert.is_nil(got)
    assert.are.equal("validation", err.kind)
    assert.are.equal("path", err.field)
    assert.is_false(err.retryable)
  end)

  describe("where a download may write (it may run as root into a directory others write)", function()
    local dir, victim
    before_each(function()
      dir = files.tempdir()
      assert(os.execute(("mkdir -p %s/sym %s/nul"):format(dir, dir)))
      victim = dir .. "/victim"
      files.write(victim, "keep")
    end)
    after_each(function()
      files.remove(dir)
    end)

    -- download(path) refused with a validation error on `path` and no request at the simulator.
    local function refused(path)
      local before = sim.stats().requests
      local got, err = client:download(video_url, path)
      assert.is_nil(got, path)
      assert.are.equal("validation", err.kind)
      assert.are.equal("path", err.field)
      assert.is_false(err.retryable)
      assert.are.equal(before, sim.stats().requests, "a request was sent for " .. path)
      return err
    end

    it("refuses a symbolic link planted at the temporary <path>.part, naming it; the victim is untouched", function()
      assert(os.execute(("ln -s %s %s/sym/out.mp4.part"):format(victim, dir)))
      local err = refused(dir .. "/sym/out.mp4")
      assert.are.equal(dir .. "/sym/out.mp4.part is a symbolic link: an output is written only to a new or a "
        .. "regular file", err.message)
      assert.are.equal("keep", assert(io.open(victim)):read("a"))
      assert.is_nil(size_of(dir .. "/sym/out.mp4"))
    end)

    it("refuses a target that is a FIFO or a symbolic link (rename would replace it), naming it", function()
      assert(os.execute(("mkfifo %s/fifo.mp4 && ln -s %s %s/link.mp4"):format(dir, victim, dir)))
      assert.matches("fifo.mp4 is a FIFO", refused(dir .. "/fifo.mp4").message, 1, true)
      assert.matches("link.mp4 is a symbolic link", refused(dir .. "/link.mp4").message, 1, true)
      assert.matches("is a directory", refused(dir .. "/sym").message, 1, true)
      assert.are.equal("keep", assert(io.open(victim)):read("a"))
    end)

    it("refuses NUL, CR/LF and other control bytes in the path before any request", function()
      for _, path in ipairs { dir .. "/nul/a\0b.mp4", dir .. "/a\r\nb.mp4", dir .. "/tab\t.mp4" } do
        assert.matches("holds a control character", refused(path).message, 1, true)
      end
      assert.is_nil(size_of(dir .. "/nul/a"))
    end)

    it("replaces a stale regular <path>.part of ours (a crash's leftover) and downloads", function()
      local f = assert(io.open(dir .. "/out.mp4.part", "wb"))
      f:write(string.rep("s", 100))
      f:close()
      local got, bytes = assert(client:download(video_url, dir .. "/out.mp4"))
      assert.are.equal(dir .. "/out.mp4", got)
      assert.are.equal(bytes, size_of(got))
      assert.is_nil(size_of(dir .. "/out.mp4.part"))
    end)
  end)

  it("issue 11.12: a download answered 404 is kind not_found, not network", function()
    local path = os.tmpname()
    os.remove(path)
    local got, err = client:download(sim.info().http .. "/media/videos/123.mp4", path)
    assert.is_nil(got)
    assert.are.equal("not_found", err.kind)
    assert.is_false(err.retryable)
    assert.is_nil(size_of(path))
    assert.is_nil(size_of(path .. ".part"))
  end)

  describe("size cap", function()
    local big
    setup(function()
      -- 1 GiB in 64 KiB chunks, chunked (no Content-Length).
      big = nginx.start([[
        location /big.mp4 {
          content_by_lua_block {
            ngx.header["Content-Type"] = "video/mp4"
            local chunk = string.rep("v", 65536)
            for _ = 1, 16384 do
              local ok = ngx.print(chunk)
              if not ok then return end
              ngx.flush(true)
            end
          }
        }
      ]])
    end)
    teardown(function()
      if big then
        big.stop()
      end
    end)

    it("issue 11.11: a URL serving 1 GiB without Content-Length stops at the client's cap", function()
      local capped = sim.client { max_download_bytes = 4 * 1024 * 1024 }
      local path = os.tmpname()
      local got, err = capped:download(big.url .. "/big.mp4", path)
      assert.is_nil(got)
      assert.are.equal("protocol", err.kind)
      assert.matches("larger than its limit %(4194304 bytes%), set by the client's max_download_bytes", err.message)
      assert.is_false(err.retryable)
      assert.is_nil(size_of(path .. ".part"))
    end)

    it("issue 11.11: max_bytes and a known expected size stop a download early", function()
      local path = os.tmpname()
      local got, err = client:download(big.url .. "/big.mp4", path, { max_bytes = 1024 * 1024 })
      assert.is_nil(got)
      assert.matches("1048576 bytes%), set by max_bytes", err.message)
      -- expected 100 000 bytes: stopped at twice that plus 1 MiB.
      got, err = client:download(big.url .. "/big.mp4", path, { expected_bytes = 100000 })
      assert.is_nil(got)
      assert.matches("larger than its limit %(1248576 bytes%), set by twice expected_bytes and 1 MiB", err.message)
      -- The default cap is generous: a real result downloads whole.
      assert.are.equal(1024 * 1024 * 1024, require("kling.client").DEFAULT_MAX_DOWNLOAD_BYTES)
      local _, bytes = assert(client:download(video_url, path))
      assert.is_true(bytes > 1000)
      os.remove(path)
    end)
  end)

  it("issue 11.13: an untrusted certificate is kind network, not retryable, tried exactly once", function()
    local attempts, retries = 0, 0
    local https = sim.client { base_url = sim.info().https, ca_file = OTHER_CA, max_attempts = 5,
      on_retry = function() retries = retries + 1 end }
    local request = https.driver.request
    https.driver.request = function(self, req)
      attempts = attempts + 1
      return request(self, req)
    end
    local creates = sim.stats().creates
    local t, err = https:submit { prompt = "never sent", duration = 5 }
    assert.is_nil(t)
    assert.are.equal("network", err.kind)
    assert.is_false(err.retryable)
    assert.are.equal(1, attempts)
    assert.are.equal(0, retries)
    assert.are.equal(creates, sim.stats().creates)
    -- A query (a GET, retried while retryable) is tried once too.
    attempts = 0
    local got, gerr = https:get_task("no-such-task", { endpoint = "videos/text2video" })
    assert.is_nil(got)
    assert.are.equal("network", gerr.kind)
    assert.are.equal(1, attempts)
  end)
end)
