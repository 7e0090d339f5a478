-- Callbacks as an alternative to polling: deliver() advances a task from a provider's POST
-- received by the caller's HTTP server; the task is then polled only as a fallback after a
-- silence (its lifecycle machine's rule). Installed as a method of the engine.
local errors = require "kling.errors"
local callback = require "kling.engine.callback"

return function(Engine)

  -- deliver(provider_name, body, headers) -> task | nil, err: a callback POST received by the
  -- caller's HTTP server. The signature is checked first with the engine's webhook_secret;
  -- without one it is refused (kind auth, field webhook_secret) unless the engine was made with
  -- insecure_callbacks = true (kling.webhook.takes: the gateway's rule too).
  function Engine:deliver(provider_name, body, headers)
    if type(body) ~= "string" then
      errors.misuse("engine:deliver", "body must be the raw request body (a string)")
    end
    headers = headers or {}
    errors.check_arg("engine:deliver", 3, headers, "table")
    local provider = self.provider
    if provider_name ~= provider.name then
      return nil, errors.validation("provider", "a callback for '" .. tostring(provider_name)
        .. "' was delivered to the engine of '" .. provider.name .. "'", provider.name)
    end
    if not callback.takes(self.webhook_secret, self.insecure_callbacks) then
      return nil, callback.unverifiable(provider.name, "kling.engine.new{webhook_secret =}, or the client's "
        .. "engine = {webhook_secret =}")
    end
    if self.webhook_secret then
      local ok, verr = callback.verify(provider.name, self.webhook_secret, body, headers, self.wall_s(),
        self.webhook_tolerance)
      if not ok then
        return nil, verr
      end
    end
    local fields, perr = callback.parse(provider, body)
    if not fields then
      return nil, perr
    end
    local ext = fields.external_task_id
    local m = (fields.id and self.by_id[fields.id]) or (ext and self.by_ext[ext])
    if not m then
      return nil, errors.new { kind = "not_found", provider = provider.name, retryable = false,
        message = "callback for a task this engine does not track: " .. tostring(fields.id) }
    end
    self.callbacks_n = self.callbacks_n + 1
    -- Its machine decides: news, a duplicate, a stale one, or the news that beat the create's
    -- answer (the request in flight is then abandoned).
    self:feed(m, "callback", self.now(), fields)
    return m.task
  end

end
