--- What a finished task delivered, in the terms a settle prices.
-- Seconds of video or audio (decimal text, to the millisecond, so no float reaches a price)
-- and the number of outputs; a provider that reports usage of its own (provider.usage) is
-- asked first.
-- @module kling.money.usage
local core = require "kling.core"

local M = {}

--- The longest output a duration is believed for, in seconds.
M.MAX_OUTPUT_S = 86400

--- A task's usage: {count, duration} (duration absent when no output says how long it is).
---@param t table a task (videos / audios / images, and its client's provider)
---@return table usage
function M.of_task(t)
  local provider = t.client and t.client.provider
  local own = provider and provider.usage and provider.usage(t)
  if own then
    return own
  end
  local outputs = t.videos or t.audios or t.images
  if type(outputs) ~= "table" or #outputs == 0 then
    return { count = 1 }
  end
  local ms = 0
  local timed = false
  for _, o in ipairs(outputs) do
    local d = tonumber(o.duration)
    -- What the provider says is read leniently: a length that is no length (NaN, infinite,
    -- negative, over a day: "1e16" made seconds_format raise at every poll) says nothing.
    if d and d >= 0 and d <= M.MAX_OUTPUT_S then
      ms = ms + core.seconds_ms(d) -- a duration's milliseconds: the C core's one rule
      timed = true
    end
  end
  return { count = #outputs, duration = timed and core.seconds_format(ms) or nil }
end

--- The usage of a list of outputs {kind = "video"|"image"|"audio", url, duration, alt} (a batch
-- row's files, as its journal keeps them: kling.task's files, an output's second file `alt`).
---@param outputs table[]
---@return table usage
function M.of_outputs(outputs)
  local t = {}
  for _, o in ipairs(outputs) do
    if not o.alt then -- another file of the output before it (an audio's wav beside its mp3: kling.task files)
      local k = o.kind .. "s"
      t[k] = t[k] or {}
      t[k][#t[k] + 1] = { url = o.url, duration = o.duration }
    end
  end
  return M.of_task(t)
end

return M
