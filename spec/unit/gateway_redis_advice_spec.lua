-- A Redis that answers but refuses: filled to its maxmemory (noeviction, as the README asks),
-- every create was refused 503 and every top-up answered {"field": "store", "error": "redis
-- H:P: OOM command not allowed when used memory > 'maxmemory'. script: ..."}, the error log
-- saying the same: nothing said what to do (raise maxmemory, or archive and trim the ledger
-- list, the one key that grows with the tasks served). Each refusal Redis words without a way
-- out is now said with it, and so is a db Redis does not have (a node retried it for ever,
-- "ERR DB index is out of range"). Runs a redis-server of its own for Redis's own words.
local gredis = require "kling.gateway.redis"
local redis_eval = require "spec.support.redis_eval"

describe("kling.gateway.redis: a refusal says what to do", function()
  local redis = redis_eval.suite(setup, teardown)

  local function node()
    return gredis.new("redis://127.0.0.1:" .. redis.server.port .. "/0")
  end

  it("a Redis at its maxmemory: raise it, or archive and trim the ledger", function()
    local r = redis.server.client()
    local red
    r:with(function(c)
      red = c
    end)
    assert(red:config("SET", "maxmemory", "1"))
    local res, oom = r:run("return redis.call('RPUSH', ARGV[1] .. 'ledger', 'x')")
    assert(red:config("SET", "maxmemory", "0"))
    assert.is_nil(res)
    assert.matches("^OOM ", oom)
    local ok, err = node():failed(oom)
    assert.is_nil(ok)
    assert.matches("redis 127.0.0.1:" .. redis.server.port .. ": OOM command not allowed", err, 1, true)
    assert.matches("Raise its maxmemory (CONFIG SET maxmemory, and in redis.conf), or archive and trim the"
      .. " ledger list (GET /gateway/admin/ledger, POST /gateway/admin/ledger/trim", err, 1, true)
  end)

  it("a replica: point store.redis at the primary", function()
    local r = redis.server.client()
    local red
    r:with(function(c)
      red = c
    end)
    -- a replica of a primary that is not there: read-only all the same
    assert(red:replicaof("127.0.0.1", "1"))
    local res, ro = r:run("return redis.call('SET', ARGV[1] .. 'x', '1')")
    assert(red:replicaof("NO", "ONE"))
    assert.is_nil(res)
    assert.matches("^READONLY ", ro)
    local _, err = node():failed(ro)
    assert.matches("store.redis names a read-only replica: point it at the primary", err, 1, true)
  end)

  it("a database Redis does not have: name one below its `databases`", function()
    local r = redis.server.client()
    local red
    r:with(function(c)
      red = c
    end)
    local ok, bad = red:select("99")
    assert.is_nil(ok)
    assert.matches("^ERR DB index is out of range", bad)
    local _, err = node():failed(bad)
    assert.matches("store.redis names a database Redis does not have", err, 1, true)
  end)

  it("says nothing more of a refusal it has no advice for", function()
    local _, err = node():failed("connection refused")
    assert.equal("redis 127.0.0.1:" .. redis.server.port .. ": connection refused", err)
  end)
end)
