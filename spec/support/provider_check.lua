-- Assertions shared by the provider unit specs: a request is accepted, or refused naming the
-- field (and the provider) before anything is sent.
local assert = require "luassert"

local M = {}

function M.for_provider(P)
  local c = {}
  function c.rejects(req, field, pattern, endpoint)
    endpoint = endpoint or P.default_endpoint(req)
    local err = P.validate(req, endpoint)
    assert.is_not_nil(err, "expected a validation error on " .. field .. " at " .. tostring(endpoint))
    assert.are.equal("validation", err.kind)
    assert.are.equal(P.name, err.provider)
    assert.are.equal(field, err.field, tostring(err))
    if pattern then
      assert.matches(pattern, err.message)
    end
    assert.matches(field, tostring(err), 1, true)
    return err
  end
  function c.accepts(req, endpoint)
    local err = P.validate(req, endpoint or P.default_endpoint(req))
    assert.is_nil(err, err and tostring(err))
  end
  -- The body the provider would send for a request that must be valid.
  function c.body(req, endpoint)
    endpoint = endpoint or P.default_endpoint(req)
    c.accepts(req, endpoint)
    return P.build(req, endpoint).body, P.build(req, endpoint)
  end
  return c
end

return M
