-- Official Kling API prices in CNY, transcribed from seed 000 ("Kling API 接口计费方式汇总",
-- updated 2026-01-20). Prices are data: decimal strings, evaluated by kling.core.price_eval.
-- Rules are tried in order; the first whose `match` fits the request prices it. A rule with
-- `unpriced` says the seed leaves that price open; `invalid` names a field the request must fix.
-- Charges follow seed 000: synchronous endpoints at once, asynchronous ones on success from the
-- actual duration or count, failures free, queries free.

local rules = require "kling.prices.rules"

-- Text-to-video, omni-video, image-to-video and multi-image-to-video share one table (1.1-1.4).
local VIDEO = { "videos/text2video", "videos/omni-video", "videos/image2video", "videos/multi-image2video" }
-- Seed 000 writes image models as kling-v1-0 / kling-v2-0; the API's model_name values are
-- kling-v1 / kling-v2: both spellings are accepted.
local IMAGE = { "images/generations", "images/omni-image" }
local TWO_PERSON = { "hug", "kiss", "heart_gesture", "fight" } -- 拥抱/亲吻/比心/打架

-- The 5 s / 10 s tiers (delivered clips rounded half up) and a rule from its id, match and price.
local tiers, rule = rules.tiers, rules.rule

local function per_second(p)
  return { kind = "per_second", price = p }
end

local function per_image(p)
  return { kind = "per_image", price = p }
end

local function per_call(p)
  return { kind = "per_call", price = p }
end

return {
  provider = "kling",
  date = "2026-01-20",
  currency = "CNY",
  source = "seeds/000_e86468d36533e934.txt",
  -- The seeds give no CNY rate; quote() shows a USD equivalent only if the user supplies one.
  usd_rate = nil,
  -- The provider module sends a request without an endpoint to text2video or image2video,
  -- which share one price table.
  endpoint_default = "videos/text2video",
  -- Official defaults (kling-api-notes [R]): model_name kling-v1, mode std, duration "5",
  -- sound off; omni-video and omni-image exist for the o1 models only.
  defaults = {
    ["*"] = { model = "kling-v1", mode = "std", sound = false },
    ["videos/text2video"] = { duration = 5 },
    ["videos/image2video"] = { duration = 5 },
    ["videos/omni-video"] = { model = "kling-video-o1", duration = 5, mode = "pro" }, -- omni's own default
    ["videos/multi-image2video"] = { model = "kling-v1-6", duration = 5 },
    ["videos/multi-elements"] = { model = "kling-v1-6", duration = 5 },
    ["images/omni-image"] = { model = "kling-image-o1" },
    ["images/multi-image2image"] = { model = "kling-v2" },
    -- effects and video-extend take the model of the effect / the extended video: no default
    ["videos/effects"] = { model = false },
    ["videos/video-extend"] = { model = false },
    ["videos/motion-control"] = { model = false },
  },
  -- The provider maps resolution to mode on models that take no resolution (720p std, 1080p pro).
  mode_by_resolution = { ["720p"] = "std", ["1080p"] = "pro" },

  rules = {
    -- 5. queries and management: not billed
    rule("query (free)", { method = { "GET", "DELETE" } }, { kind = "fixed", price = "0" }),
    rule("delete (free)", { endpoint = { "general/delete-elements", "general/delete-voices" } },
      { kind = "fixed", price = "0" }),

    -- 1.1-1.4 kling-video-o1: per second, dearer with a reference (image, video or element).
    -- "按实际生成视频时长（秒）计费": per-second rules bill the actual duration to the
    -- millisecond; only the avatar's rule says to round (half up, to whole seconds).
    rule("video/kling-video-o1/std/no-reference",
      { endpoint = VIDEO, model = "kling-video-o1", mode = "std", reference = false }, per_second("0.6")),
    rule("video/kling-video-o1/std/reference",
      { endpoint = VIDEO, model = "kling-video-o1", mode = "std", reference = true }, per_second("0.9")),
    rule("video/kling-video-o1/pro/no-reference",
      { endpoint = VIDEO, model = "kling-video-o1", mode = "pro", reference = false }, per_second("0.8")),
    rule("video/kling-video-o1/pro/reference",
      { endpoint = VIDEO, model = "kling-video-o1", mode = "pro", reference = true }, per_second("1.2")),

    -- 1.1-1.4 tiered models
    rule("video/kling-v1/std", { endpoint = VIDEO, model = "kling-v1", mode = "std" }, tiers("1", "2")),
    rule("video/kling-v1/pro", { endpoint = VIDEO, model = "kling-v1", mode = "pro" }, tiers("3.5", "7")),
    rule("video/kling-v1-5/std", { endpoint = VIDEO, model = "kling-v1-5", mode = "std" }, tiers("2", "4")),
    rule("video/kling-v1-5/pro", { endpoint = VIDEO, model = "kling-v1-5", mode = "pro" }, tiers("3.5", "7")),
    rule("video/kling-v1-6/std", { endpoint = VIDEO, model = "kling-v1-6", mode = "std" }, tiers("2", "4")),
    rule("video/kling-v1-6/pro", { endpoint = VIDEO, model = "kling-v1-6", mode = "pro" }, tiers("3.5", "7")),
    -- v2.0 and v2.1 master: mode "master" in the seed, model kling-v2(-1)-master in the API
    rule("video/kling-v2-0/master",
      { endpoint = VIDEO, model = { "kling-v2-0", "kling-v2" }, mode = "master" }, tiers("10", "20")),
    rule("video/kling-v2-master", { endpoint = VIDEO, model = "kling-v2-master" }, tiers("10", "20")),
    rule("video/kling-v2-1/std", { endpoint = VIDEO, model = "kling-v2-1", mode = "std" }, tiers("2", "4")),
    rule("video/kling-v2-1/pro", { endpoint = VIDEO, model = "kling-v2-1", mode = "pro" }, tiers("3.5", "7")),
    rule("video/kling-v2-1/master", { endpoint = VIDEO, model = "kling-v2-1", mode = "master" }, tiers("10", "20")),
    rule("video/kling-v2-1-master", { endpoint = VIDEO, model = "kling-v2-1-master" }, tiers("10", "20")),
    rule("video/kling-v2-5-turbo/std",
      { endpoint = VIDEO, model = "kling-v2-5-turbo", mode = "std" }, tiers("1.5", "3")),
    rule("video/kling-v2-5-turbo/pro",
      { endpoint = VIDEO, model = "kling-v2-5-turbo", mode = "pro" }, tiers("2.5", "5")),
    -- kling-v2-6: priced in pro only, by sound and by whether a voice is given
    {
      id = "video/kling-v2-6/voice-without-sound",
      match = { endpoint = VIDEO, model = "kling-v2-6", sound = false, voice = true },
      invalid = { field = "voice_list", message = "a voice needs sound on (kling-v2-6)" },
    },
    rule("video/kling-v2-6/pro/silent",
      { endpoint = VIDEO, model = "kling-v2-6", mode = "pro", sound = false }, tiers("2.5", "5")),
    rule("video/kling-v2-6/pro/sound",
      { endpoint = VIDEO, model = "kling-v2-6", mode = "pro", sound = true, voice = false }, tiers("5", "10")),
    rule("video/kling-v2-6/pro/sound+voice",
      { endpoint = VIDEO, model = "kling-v2-6", mode = "pro", sound = true, voice = true }, tiers("6", "12")),

    -- 1.5 motion control: per second of the generated video
    rule("motion-control/kling-v2-6/std",
      { endpoint = "videos/motion-control", model = "kling-v2-6", mode = "std" }, per_second("0.5")),
    rule("motion-control/kling-v2-6/pro",
      { endpoint = "videos/motion-control", model = "kling-v2-6", mode = "pro" }, per_second("0.8")),

    -- 1.6 multi-elements (multi-modal video editing)
    rule("multi-elements/kling-v1-6/std",
      { endpoint = "videos/multi-elements", model = "kling-v1-6", mode = "std" }, tiers("3", "6")),
    rule("multi-elements/kling-v1-6/pro",
      { endpoint = "videos/multi-elements", model = "kling-v1-6", mode = "pro" }, tiers("5", "10")),

    -- 1.7 video-extend: one price for a 4~5 s extension, by the extended video's model and mode
    rule("video-extend/kling-v1/std", { endpoint = "videos/video-extend", model = "kling-v1", mode = "std" },
      { kind = "fixed", price = "1", range = { 4, 5 } }),
    rule("video-extend/kling-v1/pro", { endpoint = "videos/video-extend", model = "kling-v1", mode = "pro" },
      { kind = "fixed", price = "3.5", range = { 4, 5 } }),
    rule("video-extend/kling-v1-5/std", { endpoint = "videos/video-extend", model = "kling-v1-5", mode = "std" },
      { kind = "fixed", price = "2", range = { 4, 5 } }),
    rule("video-extend/kling-v1-5/pro", { endpoint = "videos/video-extend", model = "kling-v1-5", mode = "pro" },
      { kind = "fixed", price = "3.5", range = { 4, 5 } }),
    rule("video-extend/kling-v1-6/std", { endpoint = "videos/video-extend", model = "kling-v1-6", mode = "std" },
      { kind = "fixed", price = "2", range = { 4, 5 } }),
    rule("video-extend/kling-v1-6/pro", { endpoint = "videos/video-extend", model = "kling-v1-6", mode = "pro" },
      { kind = "fixed", price = "3.5", range = { 4, 5 } }),

    -- 1.8 avatar: per second, the duration rounded half up to whole seconds (四舍五入取整)
    rule("avatar/std", { endpoint = "videos/avatar/image2video", mode = "std" },
      { kind = "per_second", price = "0.4", round = "half_up" }),
    rule("avatar/pro", { endpoint = "videos/avatar/image2video", mode = "pro" },
      { kind = "per_second", price = "0.8", round = "half_up" }),

    -- 1.9 effects: two-person effects per call; single-image effects priced per template
    rule("effects/two-person/kling-v1-6/std",
      { endpoint = "videos/effects", effect = TWO_PERSON, model = "kling-v1-6", mode = "std" }, per_call("2")),
    rule("effects/two-person/kling-v1-6/pro",
      { endpoint = "videos/effects", effect = TWO_PERSON, model = "kling-v1-6", mode = "pro" }, per_call("3.5")),
    {
      id = "effects/single-image",
      match = { endpoint = "videos/effects" },
      unpriced = "single-image effects are priced per template (seed 000: 详见特效模版中心)",
    },

    -- 1.10 advanced lip-sync: 0.5 per started 5 s (不足5秒按5秒计算)
    rule("advanced-lip-sync", { endpoint = "videos/advanced-lip-sync" },
      { kind = "ceil_to_unit", price = "0.5", unit = 5 }),

    -- 2. audio: fixed prices; tts per call (synchronous)
    rule("video-to-audio", { endpoint = "audio/video-to-audio" },
      { kind = "fixed", price = "0.25", range = { 3, 20 } }),
    rule("text-to-audio", { endpoint = "audio/text-to-audio" },
      { kind = "fixed", price = "0.25", range = { 3, 10 } }),
    rule("tts", { endpoint = "audio/tts" }, per_call("0.05")),

    -- 3. images: per image, times n
    rule("image/kling-image-o1", { endpoint = IMAGE, model = "kling-image-o1" }, per_image("0.2")),
    rule("image/kling-v1-0/text", { endpoint = IMAGE, model = { "kling-v1-0", "kling-v1" }, image = false },
      per_image("0.025")),
    rule("image/kling-v1-0/image", { endpoint = IMAGE, model = { "kling-v1-0", "kling-v1" }, image = true },
      per_image("0.025")),
    rule("image/kling-v1-5/text", { endpoint = IMAGE, model = "kling-v1-5", image = false }, per_image("0.1")),
    rule("image/kling-v1-5/image", { endpoint = IMAGE, model = "kling-v1-5", image = true }, per_image("0.2")),
    rule("image/kling-v2-0/text", { endpoint = IMAGE, model = { "kling-v2-0", "kling-v2" }, image = false },
      per_image("0.1")),
    rule("image/kling-v2-0/image", { endpoint = IMAGE, model = { "kling-v2-0", "kling-v2" }, image = true },
      per_image("0.2")),
    rule("image/kling-v2-0-new/image",
      { endpoint = IMAGE, model = { "kling-v2-0-new", "kling-v2-new" }, image = true }, per_image("0.2")),
    rule("image/kling-v2-1/text", { endpoint = IMAGE, model = "kling-v2-1", image = false }, per_image("0.1")),
    rule("multi-image2image/kling-v2-0",
      { endpoint = "images/multi-image2image", model = { "kling-v2-0", "kling-v2", "kling-v2-1" } }, per_image("0.4")),
    rule("images/editing/expand", { endpoint = "images/editing/expand" }, per_image("0.2")),

    -- 4. general endpoints, per call
    rule("identify-face", { endpoint = "videos/identify-face" }, per_call("0.05")),
    rule("image-recognize", { endpoint = "videos/image-recognize" }, per_call("0.1")),
    rule("custom-voices", { endpoint = "general/custom-voices" }, per_call("0.05")),
    {
      id = "custom-elements",
      match = { endpoint = "general/custom-elements" },
      unpriced = "custom element training: price to be confirmed (seed 000: 待确认)",
    },
  },
}
