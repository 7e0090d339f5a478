local accounts = require "kling.gateway.accounts"

describe("kling.gateway.accounts.latest", function()
  it("gives each created account as last changed, in the order they were created", function()
    local got = accounts.latest {
      { op = "account", created = { name = "carol", api_key = "k-carol-1" } },
      { op = "reserve", account = "carol" },
      { op = "account", created = { name = "dave", api_key = "k-dave-1" } },
      { op = "account", changed = { name = "carol", api_key = "k-carol-2", suspended = true } },
      { op = "account", changed = { name = "carol", api_key = "k-carol-3" } },
    }
    assert.same({ { name = "carol", api_key = "k-carol-3" }, { name = "dave", api_key = "k-dave-1" } }, got)
  end)

  it("ignores a change of an account never created, a second creation, and lines that are not accounts", function()
    local got = accounts.latest {
      { op = "account", changed = { name = "ghost", api_key = "k-ghost" } },
      { op = "account", created = { name = "erin", api_key = "k-erin-1" } },
      { op = "account", created = { name = "erin", api_key = "k-erin-other" } },
      { op = "account", created = "not a table" },
      { op = "account", changed = { api_key = "no name" } },
      { op = "topup", account = "erin" },
    }
    assert.same({ { name = "erin", api_key = "k-erin-1" } }, got)
  end)
end)
