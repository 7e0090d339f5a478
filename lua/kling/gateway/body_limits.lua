-- The sizes of the bodies nginx lets through to the gateway's handlers: one home for what
-- `kling gateway start` writes into its nginx.conf (kling.gateway.launcher, outside nginx), what
-- kling.gateway.api reads of a create's body, and what examples/nginx/http.conf and server.conf
-- write for an nginx that embeds the gateway (a spec checks that they agree). Data only: it
-- requires nothing, so both a plain Lua process and an nginx worker load it.
local M = {}

-- A create's body (the /v1/ locations): nginx's client_max_body_size refuses a larger one
-- before any Lua runs, and kling.gateway.api reads at most this many bytes of it. A body past
-- CREATE_BUFFER (base64 images) waits in a temporary file while it comes and is read from it
-- once whole: with the buffer at the body's size, each slow body held up to 16 MB of the
-- worker's memory for its whole upload, so a few hundred of one client's slow creates filled it.
M.CREATE_MAX = 20 * 1024 * 1024
M.CREATE_BUFFER = 64 * 1024

-- The upstream's callbacks (/kling/callback): read whole before their signature is checked, so
-- small bodies only (a task object); one past a task object's size waits in a temporary file
-- (anyone may post here: many slow 1 MB posts held in 1 MB buffers fill a worker's memory).
M.CALLBACK_MAX = 1024 * 1024
M.CALLBACK_BUFFER = 16 * 1024

-- size(bytes) -> the size as nginx's conf writes it ("20m", "64k"): whole mebibytes or
-- kibibytes, else bytes.
function M.size(bytes)
  if bytes % (1024 * 1024) == 0 then
    return string.format("%dm", math.floor(bytes / (1024 * 1024)))
  elseif bytes % 1024 == 0 then
    return string.format("%dk", math.floor(bytes / 1024))
  end
  return string.format("%d", bytes)
end

-- directives(max, buffer) -> "client_max_body_size 20m; client_body_buffer_size 64k;"
function M.directives(max, buffer)
  return "client_max_body_size " .. M.size(max) .. "; client_body_buffer_size " .. M.size(buffer) .. ";"
end

return M
