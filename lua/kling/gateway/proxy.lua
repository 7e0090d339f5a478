-- The nginx conf that forwards the gateway's upstream calls through nginx's own upstream
-- machinery (kling.resty.driver's capture): an upstream{} with kept-alive connections to the
-- config's base_url and an internal location reached by subrequest. A create is never sent
-- twice: proxy_next_upstream off; nginx's own failures become 598 (no answer) and 599
-- (timeout), which the driver reports as sent, so the create is looked up by its external id.
-- The gateway uses it when init() is given proxy_location (kling gateway start does this).
local M = {}

M.LOCATION = "/_kling_upstream"
M.UPSTREAM = "kling_gateway_upstream"

-- origin(base_url) -> "http(s)://host:port" (lowercase), scheme, host, port | nil
function M.origin(base_url)
  local scheme, host, port = base_url:lower():match("^(https?)://([^/:?#]+):?(%d*)")
  if not scheme then
    return nil
  end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  local origin = base_url:lower():match("^(https?://[^/?#]+)")
  return origin, scheme, host, port
end

-- rendered(cfg) -> {origin, timeout, connect_timeout}: the upstream settings the blocks below
-- write into the conf, as written (whole seconds). A reload (HUP) reads the config again but
-- not these, which stay as the conf was written.
function M.rendered(cfg)
  local u = cfg.upstream
  return { origin = (M.origin(u.base_url)), timeout = math.ceil(u.timeout),
    connect_timeout = math.ceil(u.connect_timeout) }
end

-- stale(cfg, rendered) -> nil | why: the config's upstream is not the one the conf was written
-- for (a reload after base_url or a timeout changed). Creates would go by the conf's proxy_pass
-- to the old upstream, or wait longer than the config says, while polls follow the config:
-- tasks made at one upstream looked up at another, creates looked up while still in flight.
function M.stale(cfg, rendered)
  local now = M.rendered(cfg)
  for _, k in ipairs { "origin", "timeout", "connect_timeout" } do
    if now[k] ~= rendered[k] then
      local field = k == "origin" and "base_url" or k
      return "upstream." .. field .. " is " .. tostring(now[k]) .. " in the config but the nginx conf was written for "
        .. tostring(rendered[k]) .. ": a reload cannot change it (restart the gateway: kling gateway stop, then"
        .. " start); the running gateway keeps the conf's"
    end
  end
end

-- http_block(cfg) and server_block(cfg): the two parts, for http{} and for the server{}.
-- cfg: the checked gateway config; ca_file: the CAs an https upstream is verified against.
function M.http_block(cfg)
  local _, _, host, port = M.origin(cfg.upstream.base_url)
  return ("  upstream %s {\n    server %s:%d max_fails=0;\n    keepalive 64;\n  }\n"):format(M.UPSTREAM, host, port)
end

-- The proxy settings both locations share: one attempt (never resent), kept-alive
-- connections, the upstream's host, TLS verified, the upstream's X-Accel-* headers ignored.
local function common(lines, cfg, ca_file)
  local origin, scheme, host = M.origin(cfg.upstream.base_url)
  local authority = origin:match("^https?://(.*)$")
  local r = M.rendered(cfg)
  local t = r.timeout
  for _, l in ipairs {
    "      proxy_http_version 1.1;",
    "      proxy_set_header Connection \"\";",
    "      proxy_pass_request_headers off;",
    "      proxy_set_header Host " .. authority .. ";",
    "      proxy_set_header Accept application/json;",
    "      proxy_next_upstream off;",
    "      proxy_connect_timeout " .. r.connect_timeout .. "s;",
    "      proxy_send_timeout " .. t .. "s;",
    "      proxy_read_timeout " .. t .. "s;",
    "      proxy_intercept_errors off;",
    -- An upstream's nginx-only headers are no orders to this nginx: X-Accel-Redirect sent the
    -- client's request to another of the gateway's locations.
    "      proxy_ignore_headers X-Accel-Redirect X-Accel-Expires X-Accel-Limit-Rate X-Accel-Buffering"
      .. " X-Accel-Charset;",
  } do
    lines[#lines + 1] = l
  end
  if scheme == "https" then
    lines[#lines + 1] = "      proxy_ssl_server_name on;"
    lines[#lines + 1] = "      proxy_ssl_name " .. host .. ";"
    lines[#lines + 1] = "      proxy_ssl_verify on;"
    lines[#lines + 1] = "      proxy_ssl_verify_depth 5;"
    lines[#lines + 1] = "      proxy_ssl_trusted_certificate " .. ca_file .. ";"
    lines[#lines + 1] = "      proxy_ssl_session_reuse on;"
  end
  return scheme
end

function M.server_block(cfg, ca_file)
  local lines = { "    location " .. M.LOCATION .. "/ {", "      internal;" }
  local scheme = common(lines, cfg, ca_file)
  for _, l in ipairs {
    "      proxy_pass " .. scheme .. "://" .. M.UPSTREAM .. "/;",
    "      proxy_set_header Authorization $http_x_kling_upstream_authorization;",
    "      proxy_set_header Content-Type $http_x_kling_upstream_content_type;",
    "      subrequest_output_buffer_size 4m;",
    "      error_page 502 503 = @kling_upstream_no_answer;",
    "      error_page 504 = @kling_upstream_timeout;",
    "    }",
    "    location @kling_upstream_no_answer { return 598; }",
    "    location @kling_upstream_timeout { return 599; }",
  } do
    lines[#lines + 1] = l
  end
  return table.concat(lines, "\n") .. "\n"
end

-- api_location(cfg, ca_file): the gateway's /v1/ location, whose creates go upstream by its
-- own proxy_pass (kling.gateway.forward); everything else is answered in its access phase.
function M.api_location(cfg, ca_file)
  local lines = {
    "    location /v1/ {",
    "      set $kling_upstream_path \"\";",
    "      set $kling_upstream_auth \"\";",
    "      access_by_lua_block { require(\"kling.gateway\").api(true) }",
    "      header_filter_by_lua_block { require(\"kling.gateway\").header_filter() }",
    "      body_filter_by_lua_block { require(\"kling.gateway\").body_filter() }",
  }
  local scheme = common(lines, cfg, ca_file)
  -- A client that hangs up does not cut the create short: its answer is still read and the
  -- task recorded (else it was never polled, its hold kept and its upstream cost unbilled).
  lines[#lines + 1] = "      proxy_ignore_client_abort on;"
  lines[#lines + 1] = "      proxy_set_header Authorization $kling_upstream_auth;"
  lines[#lines + 1] = "      proxy_set_header Content-Type application/json;"
  lines[#lines + 1] = "      proxy_pass " .. scheme .. "://" .. M.UPSTREAM .. "$kling_upstream_path;"
  lines[#lines + 1] = "    }"
  return table.concat(lines, "\n") .. "\n"
end

return M
