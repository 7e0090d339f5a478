-- Kling's business codes (the official API's error table, kling-api-notes.md "Errors"): what
-- each means to the retry decision, and the two codes a runner acts on itself. The C retry
-- decision holds no provider's codes: kling.lua hands this table to core.codes once, and every
-- core.decide of a Kling answer reads it.
return {
  -- {lo, hi, kind, retryable = true}; a code outside every range falls back to the HTTP status.
  ranges = {
    { 1000, 1004, "auth" },                  -- authentication failed, missing, invalid, not yet valid, expired
    { 1100, 1102, "quota" },                 -- account exception, arrears, resource pack used up: 429s that never pass
    { 1103, 1103, "auth" },                  -- no permission for the API or the model
    { 1200, 1202, "validation" },            -- bad parameters, bad method
    { 1203, 1203, "not_found" },             -- no such resource (task, model)
    { 1300, 1301, "content_policy" },        -- platform policy, content safety
    { 1302, 1303, "rate_limited", retryable = true }, -- too fast; parallel tasks over the pack's limit
    { 1304, 1304, "auth" },                  -- IP allow-list
    { 5000, 5002, "server", retryable = true }, -- server error, unavailable (maintenance), timeout (backlog)
  },
  -- The JWT expired in flight (clock skew): sign a new one and send the same request again, once.
  renew_token = { 1004 },
  -- A create refused because every parallel slot is taken: nothing was created; wait at
  -- least a second for a slot (the runners keep the task in their local queue).
  slot_full = { 1303 },
}
