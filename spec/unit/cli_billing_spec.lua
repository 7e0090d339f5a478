-- bin/kling estimate and quote, run as a user would: output, JSON, exit statuses.
local json = require "kling.json"

local function run(args, env)
  local p = assert(io.popen((env and (env .. " ") or "") .. "lua5.4 bin/kling " .. args .. " 2>&1; echo \"exit=$?\""))
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

  -- the request was not checked with --actual-*: `sond` priced as silent, duration 7 priced
  it("checks the request of --actual-duration as an estimate's, naming the field", function()
    local out, status = run([[estimate --json '{"model":"kling-v2-6","mode":"pro","duration":5,"sond":true}' ]]
      .. "--actual-duration 5")
    assert.are.equal(2, status)
    assert.matches("sond: unknown field for videos/text2video .*did you mean sound%?", out)
    out, status = run("estimate --model kling-v2-6 --mode pro --duration 7 --actual-duration 5")
    assert.are.equal(2, status)
    assert.matches("duration: must be one of 5, 10 for kling-v2-6 (got 7)", out, 1, true)
    -- a delivered amount refused is named by its flag (it was usage.duration)
    for _, bad in ipairs { "-1", "nan", "1e400" } do
      out, status = run("estimate --model kling-v2-6 --mode pro --duration 10 --actual-duration " .. bad)
      assert.are.equal(2, status)
      assert.matches("): --actual-duration: ", out, 1, true)
    end
    -- a count the price does not use was dropped: the 5 s price printed, exit 0
    out, status = run("estimate --model kling-v2-6 --mode pro --duration 5 --actual-count 3")
    assert.are.equal(2, status)
    assert.matches("--actual-count: the price video/kling-v2-6/pro/silent counts no outputs", out, 1, true)
    out, status = run("estimate --endpoint images/generations --model kling-v2-1 --n 2 --actual-count 1")
    assert.are.equal(0, status)
    assert.matches("^0.1 CNY", out)
    local kling = require "kling"
    local q, err = kling.settle({ provider = "kling", model = "kling-v2-6", sond = true }, { duration = 5 })
    assert.is_nil(q)
    assert.are.equal("sond", err.field)
  end)

  -- a tier or a unit is billed whole: "7 s billed" was printed beside the 10 s tier's price
  it("says the seconds billed, the whole tier or units, and the seconds delivered", function()
    local out = run("estimate --model kling-v2-6 --mode pro --duration 10 --actual-duration 7.4")
    assert.matches("^5 CNY  %[kling: video/kling%-v2%-6/pro/silent, 10 s billed %(7%.4 s delivered%); ", out)
    out = run("estimate --endpoint videos/advanced-lip-sync --actual-duration 10.001")
    assert.matches("^1%.5 CNY  %[kling: advanced%-lip%-sync, 15 s billed %(10%.001 s delivered%); ", out)
    out = run("estimate --model kling-v2-6 --mode pro --duration 5")
    assert.matches("^2%.5 CNY  %[kling: video/kling%-v2%-6/pro/silent, 5 s billed; ", out)
  end)

  -- a provider from the environment was named "provider", a field the user never wrote
  it("names an unknown provider by where it came from: --provider or KLING_PROVIDER", function()
    local out, status = run("estimate --provider klingg")
    assert.are.equal(2, status)
    assert.matches("validation: --provider: unknown provider 'klingg'", out, 1, true)
    out, status = run("estimate --model kling-v2-6", "KLING_PROVIDER=klingg")
    assert.are.equal(2, status)
    assert.matches("validation: KLING_PROVIDER: unknown provider 'klingg'", out, 1, true)
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
    assert.matches("unknown option '%-%-bogus'", out)
  end)

  it("issue 12: a request field the provider would refuse is refused by name, not ignored and priced", function()
    local out, status = run([[estimate --json '{"model":"kling-v2-1","mode":"pro","duration":5,"frobnicate":1}']])
    assert.are.equal(2, status)
    assert.matches("frobnicate: unknown field", out)
    out, status = run([[estimate --json '{"model_name":"kling-v1","mode":"pro","duration":5}']])
    assert.are.equal(2, status)
    assert.matches("model_name", out)
    out, status = run("estimate --provider evolink --model kling-v2-1")
    assert.are.equal(2, status)
    assert.matches("model: unknown model 'kling%-v2%-1'", out)
  end)

  -- `--json '{"duration": 10}' --duration 5` was priced at 5 s: the flag silently overrode the
  -- field, and neither the help nor README said so
  it("refuses a field given both in --json (or --file) and by a flag, naming both; a flag may add one", function()
    local cases = {
      { [[estimate --json '{"model":"kling-v2-6","mode":"pro","duration":10}' --duration 5]],
        [[--duration and --json's "duration" both give duration]] },
      { [[estimate --json '{"model":"kling-v2-6","mode":"pro","duration":5}' --model kling-v2-1]],
        [[--model and --json's "model" both give model]] },
      { [[quote --json '{"model":"kling-v2-6","mode":"pro","duration":5,"sound":false}' --sound]],
        [[--sound and --json's "sound" both give sound]] },
      { [[estimate --json '{"model":"kling-v3","multi_shot":false}' --shots 3,4]],
        [[--shots and --json's "multi_shot" both give multi_shot]] },
    }
    for _, c in ipairs(cases) do
      local out, status = run(c[1])
      assert.are.equal(2, status, out)
      assert.matches(c[2], out, 1, true)
    end
    local file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write('{"model":"kling-v2-6","mode":"pro","duration":10}')
    f:close()
    local out, status = run("estimate --file " .. file .. " --mode std")
    os.remove(file)
    assert.are.equal(2, status, out)
    assert.matches([[--mode and --file's "mode" both give mode]], out, 1, true)
    out, status = run([[estimate --json '{"model":"kling-v2-6","mode":"pro"}' --duration 5]])
    assert.are.equal(0, status, out)
    assert.matches("^2.5 CNY", out)
  end)

  it("issue 14.1: --json that is an array, not an object, is refused as such (not as a field named 1)", function()
    for _, cmd in ipairs { "estimate", "quote" } do
      local out, status = run(cmd .. [[ --json '[{"model":"kling-v2-6"}]']])
      assert.are.equal(2, status)
      assert.matches("--json: the request must be a JSON object (got an array)", out, 1, true)
    end
  end)

  -- --json's "base_url" was dropped silently (the price the same with or without it): estimate
  -- sends nothing, so it is refused by name, as kling quote refuses it; so is a CA file and a key
  it("refuses a request's base_url, ca_file and keys by name, never showing a key's value", function()
    local base = '"model":"kling-v2-6","mode":"pro","duration":5'
    local out, status = run("estimate --json '{" .. base .. ',"base_url":"https://api-singapore.klingai.com"}\'')
    assert.are.equal(2, status)
    assert.matches("^kling estimate: %-%-json's \"base_url\": kling estimate sends nothing: it prices from the"
      .. " provider's catalog, so a base URL would change nothing and be ignored; remove it %(nothing was priced%)\n$",
      out)
    out, status = run("estimate --json '{" .. base .. ',"ca_file":"/etc/ssl/ca.pem"}\'')
    assert.are.equal(2, status)
    assert.matches("\"ca_file\": kling estimate sends nothing", out, 1, true)
    for _, key in ipairs { "api_key", "access_key", "secret_key" } do
      out, status = run("estimate --json '{" .. base .. ',"' .. key .. '":"sk-not-shown-1234"}\'')
      assert.are.equal(2, status, out)
      assert.matches("^kling estimate: %-%-json's \"" .. key .. "\" is a credential: it is a client's %(%-%-"
        .. key:gsub("_", "%%-") .. " or KLING_" .. key:upper() .. "%)", out)
      assert.is_nil(out:find("sk-not-shown", 1, true), out)
    end
    out, status = run("estimate --json '{" .. base .. "}'")
    assert.are.equal(0, status, out)
  end)

  -- the usage flags' values were named by the library's names (usage.duration), and a count of 1e20
  -- passed the flag to be refused as "not an integer"
  it("names --actual-duration and --actual-count in their refusals", function()
    local out, status = run("estimate --model kling-v2-6 --mode pro --duration 10 --actual-duration abc")
    assert.are.equal(2, status)
    assert.matches("%-%-actual%-duration: not a decimal number", out)
    out, status = run("estimate --model kling-v2-6 --mode pro --duration 10 --actual-count 99999999999999999999")
    assert.are.equal(2, status)
    assert.matches("^kling estimate: %-%-actual%-count must be a whole number in 0..2147483647", out)
  end)
end)

describe("kling quote", function()
  it("issue 11.8: groups providers by currency, cheapest first in each, then those that cannot price it",
    function()
    local out, status = run("quote --model kling-v3 --mode pro --duration 10 --sound")
    assert.are.equal(0, status)
    assert.matches("USD:\n1%. apimodels +1.28 USD", out)
    assert.matches("evolink%-credits:\n1%. evolink +108 credits", out)
    assert.matches("apiinone%-credits:\n1%. apiinone +800 credits", out)
    assert.matches("not ranked against each other", out)
    assert.matches("%-  kling +unpriced", out)
  end)

  it("issue 11.8: states the defaults it made explicit and ranks with --rates", function()
    local out, status = run("quote --model kling-v3 --duration 10 --resolution 1080p "
      .. "--rates CNY=0.14,apiinone-credits=0.01,evolink-credits=0.014,USD=1")
    assert.are.equal(0, status)
    assert.matches("defaults made explicit: mode=pro, sound=false", out, 1, true)
    local lines = {}
    for line in out:gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    assert.matches("^1%. apimodels +0.853 USD", lines[2])
    assert.matches("^2%. evolink +71.982 credits", lines[3])
    assert.matches("^3%. apiinone +540 credits", lines[4])
    local _, bad = run("quote --model kling-v3 --rates CNY")
    assert.are.equal(2, bad)
    -- [] decodes as {} does: it priced a request of defaults only
    out, bad = run("estimate --json '[]'")
    assert.are.equal(2, bad)
    assert.matches("--json: the request must be a JSON object (got an array)", out, 1, true)
    -- a misspelt currency would never apply and a repeated one would keep one rate: refused by name
    out, bad = run("quote --model kling-v3 --rates CYN=0.14")
    assert.are.equal(2, bad)
    assert.matches("no provider charges in CYN, so its rate could never apply; did you mean CNY?", out, 1, true)
    out, bad = run("quote --model kling-v3 --rates CNY=0.14,CNY=0.15")
    assert.are.equal(2, bad)
    assert.matches("--rates: CNY is given twice", out, 1, true)
    -- rates are USD per unit: USD=2 ranked evolink's 0.504 USD before apimodels' 0.4265 USD
    out, bad = run("quote --model kling-v3 --mode pro --duration 5 --rates USD=2,CNY=0.14,apiinone-credits=0.01,"
      .. "evolink-credits=0.014")
    assert.are.equal(2, bad)
    assert.matches("--rates: USD: USD is the unit rates are in: its rate is 1", out, 1, true)
    out, bad = run("quote --model kling-v3 --rates CNY=0")
    assert.are.equal(2, bad)
    assert.matches("--rates: CNY: a positive decimal string", out, 1, true)
    -- a rate out of the rule's range is refused by the rule, not as a malformed pair
    for rate, why in pairs { ["-1"] = "not positive", ["0.0000001"] = "more than 6 decimals",
      ["99999999999999999999999"] = "amount out of range: at most 9223372036854.775807, as every amount",
      abc = "not a decimal number" } do
      out, bad = run("quote --model kling-v3 --rates CNY=" .. rate)
      assert.are.equal(2, bad)
      assert.matches('--rates: CNY: a positive decimal string with at most 6 decimals is required, such as "0.14"'
        .. ' (got "' .. rate .. '": ' .. why .. ")", out, 1, true)
    end
    -- an empty --rates was no rates at all: the quote unranked, exit 0
    out, bad = run("quote --model kling-v3 --rates ''")
    assert.are.equal(2, bad)
    assert.matches("--rates takes CURRENCY=USD_PER_UNIT pairs separated by commas (got none)", out, 1, true)
    local ok, err = pcall(require("kling").quote, { model = "kling-v3" }, { rates = { USD = "2" } })
    assert.is_false(ok)
    assert.matches("rates.USD: USD is the unit rates are in: its rate is 1", err, 1, true)
  end)

  -- quote asks every provider: its --provider (estimate's) was taken and dropped, the output the same
  it("takes no --provider: it prices every provider", function()
    local out, status = run("quote --model kling-v3 --provider evolink")
    assert.are.equal(2, status)
    assert.matches("^kling quote: unknown option '%-%-provider'\n", out)
    out, status = run("estimate --model kling-v3 --provider evolink --resolution 720p --duration 5")
    assert.are.equal(0, status)
    assert.matches("^27 credits", out)
  end)

  -- --json/--file's "provider" and "base_url" were dropped silently (quote prices every provider
  -- from its catalog and uses neither): each is refused by name, saying why and what to use.
  it("refuses a request's provider and base_url by name, pointing to kling estimate --provider", function()
    local out, status = run([[quote --json '{"model":"kling-v3","provider":"evolink"}']])
    assert.are.equal(2, status)
    assert.matches("^kling quote: %-%-json's \"provider\": kling quote prices the request on every provider %(kling,"
      .. " apiinone, apimodels, evolink, compat%), so the one named here would be ignored; remove it, or price one"
      .. " provider with kling estimate %-%-provider P %(nothing was priced%)\n$", out)
    local file = os.tmpname()
    local f = assert(io.open(file, "w"))
    f:write('{"model":"kling-v3","base_url":"https://api-singapore.klingai.com"}')
    f:close()
    out, status = run("quote --file " .. file)
    os.remove(file)
    assert.are.equal(2, status)
    assert.matches("^kling quote: %-%-file's \"base_url\": kling quote sends nothing: it prices from each provider's"
      .. " catalog, so a base URL would change nothing and be ignored; remove it, or price one provider with kling"
      .. " estimate %-%-provider P", out)
    out, status = run([[quote --json '{"model":"kling-v3"}']])
    assert.are.equal(0, status, out)
  end)

  -- a request holding a key exited 0 when one provider priced it (an audio endpoint, whose image
  -- refusal hid the unknown field after it): a key is refused by name, as provider and base_url are
  it("refuses a key in the request by name, exit 2, its value never shown", function()
    local out, status = run([[quote --json '{"endpoint":"audio/text-to-audio","prompt":"x",]]
      .. [["image":"https://example.com/a.png","api_key":"sk-not-shown-1234"}']])
    assert.are.equal(2, status, out)
    assert.matches("^kling quote: %-%-json's \"api_key\" is a credential: it is a client's %(%-%-api%-key or"
      .. " KLING_API_KEY%), never a field of a request, and kling quote sends nothing and needs none; remove it"
      .. " %(nothing was priced; the value is not shown%)\n$", out)
    assert.is_nil(out:find("sk-not-shown", 1, true))
    out, status = run([[quote --json '{"model":"kling-v3","ca_file":"/etc/ssl/ca.pem"}']])
    assert.are.equal(2, status)
    assert.matches("\"ca_file\": kling quote sends nothing", out, 1, true)
    -- and an unknown field after that image is not priced either (kling.estimate's own check)
    out, status = run([[quote --json '{"endpoint":"audio/text-to-audio","prompt":"x",]]
      .. [["image":"https://example.com/a.png","bogus":1}']])
    assert.are.equal(3, status, out)
    assert.matches("kling      cannot honour bogus: unknown field", out, 1, true)
  end)

  -- a field's name from --json went to the terminal as it was (an escape sequence, a line break)
  it("prints each provider's line as one line, control characters shown escaped", function()
    local out, status = run([[quote --json '{"model":"kling-v3","\u001b[2Jx\nfake":1}']])
    assert.are.equal(3, status, out)
    assert.matches("cannot honour \\x1B[2Jx\\nfake: unknown field", out, 1, true)
    assert.is_nil(out:find("\27", 1, true))
    assert.is_nil(out:find("\nfake", 1, true))
  end)

  it("gives JSON", function()
    local out, status = run("quote --json '{\"duration\":5}' --format json")
    assert.are.equal(0, status)
    local q = assert(json.decode(out))
    assert.is_true(#q.quotes >= 1)
    assert.is_table(q.unavailable)
  end)
end)
