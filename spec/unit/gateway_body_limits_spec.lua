-- kling.gateway.body_limits: the one home of the body sizes nginx lets through to the gateway.
-- The launcher's nginx.conf is rendered from it; examples/nginx's confs are text an operator
-- includes, so this spec reads them and checks that they write the same sizes.
local body_limits = require "kling.gateway.body_limits"

describe("kling.gateway.body_limits", function()
  local src = assert(os.getenv("PWD"))

  local function slurp(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return (s:gsub("#[^\n]*", "")) -- comments say the sizes too: only directives count
  end

  -- The value of each of the two directives in text, which must write each once.
  local function sizes(text, where)
    local out = {}
    for _, name in ipairs { "client_max_body_size", "client_body_buffer_size" } do
      local values = {}
      for v in text:gmatch(name .. "%s+([^;%s]+)%s*;") do
        values[#values + 1] = v
      end
      assert.equal(1, #values, where .. ": " .. name .. " written once")
      out[name] = values[1]
    end
    return out
  end

  it("writes sizes as nginx's conf does", function()
    assert.equal("20m", body_limits.size(20 * 1024 * 1024))
    assert.equal("64k", body_limits.size(64 * 1024))
    assert.equal("1000", body_limits.size(1000))
  end)

  it("kling.gateway.api reads at most the create's client_max_body_size", function()
    assert.equal(body_limits.CREATE_MAX, require("kling.gateway.api").BODY_MAX)
  end)

  it("examples/nginx/http.conf writes the create's sizes", function()
    local got = sizes(slurp(src .. "/examples/nginx/http.conf"), "http.conf")
    assert.equal(body_limits.size(body_limits.CREATE_MAX), got.client_max_body_size)
    assert.equal(body_limits.size(body_limits.CREATE_BUFFER), got.client_body_buffer_size)
  end)

  it("examples/nginx/server.conf writes the callback's sizes in its /kling/callback location", function()
    local text = slurp(src .. "/examples/nginx/server.conf")
    local block = text:match("location%s*=%s*/kling/callback%s*(%b{})")
    assert.is_string(block)
    local got = sizes(block, "server.conf /kling/callback")
    assert.equal(body_limits.size(body_limits.CALLBACK_MAX), got.client_max_body_size)
    assert.equal(body_limits.size(body_limits.CALLBACK_BUFFER), got.client_body_buffer_size)
  end)

  -- The launcher's nginx.conf of one node (rendered, not started).
  local function rendered()
    local config = require "kling.gateway.config"
    local launcher = require "kling.gateway.launcher"
    local cfg = config.check { upstream = { provider = "kling", base_url = "http://127.0.0.1:9", api_key = "k" },
      journal = "/tmp/j.jsonl", accounts = { { name = "a", api_key = "key-account-a", credit = "1" } } }
    return launcher.render { dir = "/tmp/d", lua_root = "/tmp/l", jit = "/tmp/j", workers = 1,
      config = "/tmp/c.json", listen = "127.0.0.1:1", ca_file = "/tmp/ca.pem", cfg = cfg, instance = "x",
      files = 1024, connections = 1024 }
  end

  it("the launcher's nginx.conf writes them from here (a size changed here is the size it writes)", function()
    local saved = { body_limits.CREATE_MAX, body_limits.CREATE_BUFFER, body_limits.CALLBACK_MAX,
      body_limits.CALLBACK_BUFFER }
    body_limits.CREATE_MAX, body_limits.CREATE_BUFFER = 30 * 1024 * 1024, 128 * 1024
    body_limits.CALLBACK_MAX, body_limits.CALLBACK_BUFFER = 2 * 1024 * 1024, 32 * 1024
    local ok, text = pcall(rendered)
    body_limits.CREATE_MAX, body_limits.CREATE_BUFFER, body_limits.CALLBACK_MAX, body_limits.CALLBACK_BUFFER =
      table.unpack(saved)
    assert(ok, text)
    local http = text:match("http%s*(%b{})")
    local got = sizes((http:gsub("location[^{]*%b{}", "")), "nginx.conf http {}")
    assert.same({ client_max_body_size = "30m", client_body_buffer_size = "128k" }, got)
    got = sizes(text:match("location%s*=%s*/kling/callback%s*(%b{})"), "nginx.conf /kling/callback")
    assert.same({ client_max_body_size = "2m", client_body_buffer_size = "32k" }, got)
  end)

  it("the launcher's nginx.conf writes the sizes the examples write", function()
    local text = rendered()
    local http = text:match("http%s*(%b{})")
    local outside = http:gsub("location[^{]*%b{}", "")
    local got = sizes(outside, "nginx.conf http {}")
    assert.equal(body_limits.size(body_limits.CREATE_MAX), got.client_max_body_size)
    assert.equal(body_limits.size(body_limits.CREATE_BUFFER), got.client_body_buffer_size)
    local block = text:match("location%s*=%s*/kling/callback%s*(%b{})")
    got = sizes(block, "nginx.conf /kling/callback")
    assert.equal(body_limits.size(body_limits.CALLBACK_MAX), got.client_max_body_size)
    assert.equal(body_limits.size(body_limits.CALLBACK_BUFFER), got.client_body_buffer_size)
  end)
end)
