-- bin/kling estimate and quote, run as a user would: output, JSON, exit statuses.
local json = require "kling.json"

local function run(args)
  local p = assert(io.popen("lua5.4 bin/kling " .. args .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  local body, status = out:match("^(.-)exit=(%d+)%s*$")
  return body, tonumber(status)
end

describe("kling estimate", function()
  it("prices a request from flags, in the seed's currency", function()
    local out, status = run("estimate --model kling-v2-6 --mode pro --duration 10 --sound")
    assert.are.equal(0, status)
    assert.matches("^10 CNY", out)
    assert.matches("catalog 2026%-01%-20", out)
  end)

  it("prices the delivered usage with --actual-duration (lip-sync: 0.5 per started 5 s)", function()
    local out, status = run("estimate --endpoint videos/advanced-lip-sync --actual-duration 10.001")
    assert.are.equal(0, status)
    assert.matches("^1.5 CNY", out)
  end)

  it("prints JSON with integer micro-units", function()
    local out, status = run("estimate --provider apiinone --format json")
    assert.are.equal(0, status)
    local q = assert(json.decode(out))
    assert.are.equal(300000000, q.micros)
    assert.are.equal("credits", q.currency)
    assert.are.equal("300", q.amount)
  end)

  it("exits 3 for an unpriced request and 2 for an invalid one, naming the field", function()
    local out, status = run("estimate --provider compat --model kling-v3-std-silent")
    assert.are.equal(3, status)
    assert.matches("unpriced", out)
    out, status = run("estimate --duration 7")
    assert.are.equal(2, status)
    assert.matches("duration", out)
    out, status = run("estimate --bogus")
    assert.are.equal(2, status)
    assert.matches("unknown option %-%-bogus", out)
  end)
end)

describe("kling quote", function()
  it("lists providers cheapest first with USD equivalents, then those that cannot price it", function()
    local out, status = run("quote --model kling-v3 --mode pro --duration 10 --sound")
    assert.are.equal(0, status)
    local lines = {}
    for line in out:gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    assert.matches("^1%. apimodels +1.28 USD", lines[1])
    assert.matches("^2%. evolink +108 credits %(~1.512 USD%)", lines[2])
    assert.matches("^3%. apiinone +800 credits %(~8 USD%)", lines[3])
    assert.matches("^%-  kling +unpriced", out:match("%-  kling[^\n]*"))
  end)

  it("gives JSON", function()
    local out, status = run("quote --json '{\"duration\":5}' --format json")
    assert.are.equal(0, status)
    local q = assert(json.decode(out))
    assert.is_true(#q.quotes >= 1)
    assert.is_table(q.unavailable)
  end)
end)
