-- The engine's view of callbacks: kling.webhook does the verifying and the parsing (one
-- implementation for deliver() and for callers parsing webhooks themselves).
local webhook = require "kling.webhook"

return {
  header = webhook.header,
  -- verify(provider_name, secret, body, headers, now_s, tolerance_s) -> true | nil, err
  verify = webhook.verify,
  -- parse(provider, body) -> canonical task fields | nil, err
  parse = webhook.decode,
  -- takes(secret, insecure) -> whether callbacks are taken; unverifiable(provider, where) -> err
  takes = webhook.takes,
  unverifiable = webhook.unverifiable,
}
