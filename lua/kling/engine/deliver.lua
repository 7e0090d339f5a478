-- Callbacks as an alternative to polling: deliver() advances a task from a provider's POST
-- received by the caller's HTTP server; the task is then polled only as a fallback after a
-- silence (kling.engine.answers). Installed as a method of the engine.
local errors = require "kling.errors"
local callback = require "kling.engine.callback"

return function(Engine)

  -- deliver(provider_name, body, headers) -> task | nil, err: a callback POST received by the
  -- caller's HTTP server. The signature is checked first when a webhook secret is set.
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
    local rec = (fields.id and self.by_id[fields.id]) or (ext and self.by_ext[ext])
    if not rec then
      return nil, errors.new { kind = "not_found", provider = provider.name, retryable = false,
        message = "callback for a task this engine does not track: " .. tostring(fields.id) }
    end
    local now = self.now()
    rec.heard = true
    self.callbacks_n = self.callbacks_n + 1
    local s = rec.state
    if s == "create" or s == "lookup" or s == "lwait" or s == "lready" then
      -- The callback beat the create's answer (or the lookup): the task exists.
      if rec.xfer then
        self.http:cancel(rec.xfer)
        self.inflight[rec.xfer] = nil
        self.n_inflight = self.n_inflight - 1
        rec.xfer = nil
      end
      self:accept(rec, fields, now)
    elseif rec.h then
      self:news(rec, fields, now, true)
    else
      return nil, errors.new { kind = "protocol", provider = provider.name, retryable = false,
        message = "callback for task " .. tostring(fields.id) .. " before its create was sent" }
    end
    return rec.task
  end

end
