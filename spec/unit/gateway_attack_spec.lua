-- The pure parts of issue 12's review of the gateway as an attacker would use it.
local billing = require "kling.billing"
local hold = require "kling.money.hold"
local kling = require "kling.providers.kling"

local function estimate(req, endpoint)
  local r = { provider = "kling", endpoint = endpoint, method = "POST" }
  for k, v in pairs(req) do
    r[k] = v
  end
  return assert(billing.estimate(r)).micros
end

describe("gateway holds (issue 12 review)", function()
  -- The provider bills these by the real length of media the client only describes.
  local CASES = {
    { "videos/avatar/image2video", { image = "https://e.x/a.png", audio_id = "1", mode = "pro", duration = 2 }, 300 },
    { "videos/advanced-lip-sync", { session_id = "s", duration = 2 }, 60 },
    { "audio/video-to-audio", { video_url = "https://e.x/v.mp4", duration = 3 }, 20 },
    { "videos/motion-control", { model = "kling-v2-6", mode = "std", character_orientation = "image", duration = 3 },
      10 },
    { "videos/motion-control", { model = "kling-v2-6", mode = "std", character_orientation = "video", duration = 3 },
      30 },
    { "videos/video-extend", { model = "kling-v1", mode = "std", video_id = "1", duration = 4 }, 5 },
    { "videos/omni-video", { model = "kling-video-o1", mode = "std",
      video_list = { { video_url = "https://e.x/v.mp4", refer_type = "base" } } }, 10 },
  }

  it("issue 12.5: a duration the media decides is held at the endpoint's longest", function()
    for _, c in ipairs(CASES) do
      local endpoint, req, longest = c[1], c[2], c[3]
      local top = hold.ceiling(kling.endpoints[endpoint], req)
      assert.is_table(top, endpoint)
      assert.equal(longest, top.duration, endpoint)
      assert.is_nil(req.duration == longest or nil, endpoint) -- the client's request is not changed
      assert.is_true(estimate(top, endpoint) >= estimate(req, endpoint), endpoint)
    end
    -- avatar pro is 0.8 a second: 2 s declared held 1.6, the ceiling 240
    local avatar = CASES[1][2]
    assert.equal(240000000, estimate(hold.ceiling(kling.endpoints[CASES[1][1]], avatar), CASES[1][1]))
  end)

  it("issue 12.5: requests that say their own length have no other ceiling", function()
    assert.is_nil(hold.ceiling(kling.endpoints["videos/text2video"], { prompt = "p", duration = 5 }))
    assert.is_nil(hold.ceiling(kling.endpoints["videos/omni-video"], { prompt = "p", duration = 5,
      aspect_ratio = "16:9" }))
    assert.is_nil(hold.ceiling(kling.endpoints["videos/avatar/image2video"], { duration = 300 }))
    assert.is_nil(hold.ceiling(nil, { duration = 5 }))
  end)
end)
