-- issue 11.6: validation, prices and the simulator agree. Walks every (endpoint, model, mode,
-- duration, sound) of the official text2video and image2video, over the validator's models
-- and seed 000's spellings: what the validator accepts is priced or unpriced with a reason;
-- what it refuses is not priced; the simulator's own rules (kling_sim.params, which follow
-- seed 000) accept exactly what the validator accepts.
local providers = require "kling.providers"
local billing = require "kling.billing"
local sim_params = require "kling_sim.params"

local IMG = "https://example.com/a.png"

describe("issue 11.6: the walk over (endpoint, model, mode, duration, sound)", function()
  local P = providers.get("kling")
  local models = { "kling-v2-0", "kling-v2" } -- seed 000's spellings of kling-v2-master too
  for m in pairs(P.models) do
    models[#models + 1] = m
  end
  table.sort(models)

  local counts = { accepted = 0, refused = 0, priced = 0, unpriced = 0 }
  local problems = {}
  local function problem(key, what)
    problems[#problems + 1] = key .. ": " .. what
  end

  setup(function()
    for _, ep in ipairs { "videos/text2video", "videos/image2video" } do
      for _, model in ipairs(models) do
        for _, mode in ipairs { "std", "pro", "master" } do
          for duration = 1, 16 do
            for _, sound in ipairs { false, true } do
              local key = table.concat({ ep, model, mode, duration, tostring(sound) }, " ")
              local req = { model = model, mode = mode, duration = duration, sound = sound, prompt = "x",
                image = ep == "videos/image2video" and IMG or nil }
              local verr = P.validate(req, ep)
              local q, qerr = billing.estimate { provider = "kling", endpoint = ep, model = model, mode = mode,
                duration = duration, sound = sound, image = req.image }
              local body = {
                model_name = model, mode = mode, duration = tostring(duration), sound = sound and "on" or "off",
                prompt = "x", image = req.image,
              }
              if not verr then
                body = P.build(req, ep).body
              end
              local accepted_by_sim = sim_params.validate(ep:match("^videos/(.*)$"), body, function() end) ~= nil
              if not verr then
                counts.accepted = counts.accepted + 1
                if q then
                  counts.priced = counts.priced + 1
                elseif qerr.kind == "unpriced" and type(qerr.message) == "string" and qerr.message ~= "" then
                  counts.unpriced = counts.unpriced + 1
                else
                  problem(key, "accepted but the estimate fails: " .. tostring(qerr))
                end
                if not accepted_by_sim then
                  problem(key, "accepted by the validator, refused by the simulator")
                end
              else
                counts.refused = counts.refused + 1
                if q then
                  problem(key, "refused (" .. verr.field .. ") but priced " .. q.amount)
                end
                if accepted_by_sim then
                  problem(key, "refused by the validator (" .. verr.field .. "), accepted by the simulator")
                end
              end
            end
          end
        end
      end
    end
  end)

  it("covers every combination and finds no disagreement", function()
    assert.are.equal(2 * #models * 3 * 16 * 2, counts.accepted + counts.refused)
    assert.is_true(counts.accepted > 100)
    assert.are.equal(counts.accepted, counts.priced + counts.unpriced)
    assert.are.same({}, problems)
  end)

  it("issue 11.6: the four cases of the issue, decided by seed 000", function()
    -- kling-v1-5 text-to-video: seed 000 1.1 prices it; the simulator takes it now.
    assert.is_not_nil(sim_params.validate("text2video", { model_name = "kling-v1-5", prompt = "x" }))
    assert.is_not_nil(billing.estimate { provider = "kling", model = "kling-v1-5", duration = 5 })
    -- kling-v2-0 master: the API's model is kling-v2-master; the seed's spelling is refused, not priced.
    local q, err = billing.estimate { provider = "kling", model = "kling-v2-0", mode = "master", duration = 5 }
    assert.is_nil(q)
    assert.are.equal("validation", err.kind)
    assert.are.equal("10", billing.estimate { provider = "kling", model = "kling-v2-master", duration = 5 }.amount)
    -- kling-video-o1 at 7 s on text2video: refused by submit, so not priced.
    q, err = billing.estimate { provider = "kling", model = "kling-video-o1", mode = "std", duration = 7 }
    assert.is_nil(q)
    assert.are.equal("duration", err.field)
    -- kling-v3: seed 000 has no price; unpriced here, and the simulator bills nothing for it.
    q, err = billing.estimate { provider = "kling", model = "kling-v3", mode = "std", duration = 5 }
    assert.is_nil(q)
    assert.are.equal("unpriced", err.kind)
    assert.is_nil(require("kling_sim.units").thousandths { model = "kling-v3", mode = "std", duration = 5,
      sound = "off" })
  end)
end)
