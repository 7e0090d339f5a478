-- The nginx driver took a request's unknown fields and dropped them (driver:request{timeout = 5}
-- ran with the driver's 60 s), where the libcurl driver refuses them by name: both now refuse
-- them by the one list of request fields (src/http.c, core.http_check_request), before
-- anything is sent or a light thread started.
local fake_ngx = require "spec.support.fake_ngx"
local core = require "kling.core"

describe("the nginx driver's request fields", function()
  local saved, driver
  setup(function()
    saved = fake_ngx.install { get_phase = function() return "timer" end, config = { ngx_lua_version = 0 } }
    driver = require("kling.resty.driver").new { timeout_ms = 5000 }
  end)
  teardown(function()
    fake_ngx.restore(saved)
  end)

  local function refused(fn, want)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    assert.matches(want, tostring(err), 1, true)
  end

  it("refuses an unknown one by name, with the closest, in request", function()
    refused(function() driver:request { url = "http://127.0.0.1:1/", timout_ms = 5 } end,
      "request: unknown field 'timout_ms'; did you mean timeout_ms? (known: method, url, body, headers, output")
  end)

  it("refuses an unknown one in start, before a light thread runs", function()
    refused(function() driver:start({ url = "http://127.0.0.1:1/", Method = "GET" }, function() end) end,
      "request: unknown field 'Method'; did you mean method?")
  end)

  it("as the libcurl driver does, by the same list", function()
    local req = { url = "http://127.0.0.1:1/", timout_ms = 5 }
    local _, resty_err = pcall(driver.request, driver, req)
    local _, curl_err = pcall(function() core.http():start(req) end)
    assert.are.equal(tostring(curl_err):match("request: .*$"), tostring(resty_err):match("request: .*$"))
    -- every field the list names passes the check
    assert.has_no.errors(function()
      core.http_check_request { method = "GET", url = "u", body = "b", headers = {}, output = "o", max_output = 1,
        timeout_ms = 1, connect_timeout_ms = 1, follow = false }
    end)
  end)
end)
