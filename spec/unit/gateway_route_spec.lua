-- kling.gateway.api route: the endpoint (and task id) a /v1/ path names, trailing slashes ignored.
local api = require "kling.gateway.api"

describe("kling.gateway.api route", function()
  it("names an endpoint, or an endpoint and a task id, and nothing else", function()
    for _, c in ipairs {
      { "/v1/videos/text2video", "videos/text2video" },
      { "/v1/videos/text2video///", "videos/text2video" },
      { "/v1/videos/text2video/ID", "videos/text2video", "ID" },
      { "/v1/videos/text2video/ID/", "videos/text2video", "ID" },
      { "/v1/images/generations/860000000000000001", "images/generations", "860000000000000001" },
      { "/v1/" }, { "/v1//" }, { "/v1" }, { "" }, { "/v2/videos/text2video" }, { "//v1/videos/text2video" },
      { "/v1/nope" }, { "/v1/videos/text2video/a/b" }, { "/v1/videos" },
    } do
      local endpoint, id = api.route(c[1])
      assert.equals(c[2], endpoint, c[1])
      assert.equals(c[3], id, c[1])
    end
  end)
end)
