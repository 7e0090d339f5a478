-- Injected faults, reproducible from a seed. Rules are set over the admin API and kept in
-- shared memory; "count" rules fire on the next N matching requests, "rate" rules draw from
-- a counter-based generator (SHA-1 of seed, rule and draw number), so one seed and one
-- request order always give the same faults, in any worker.
local json = require "kling.json"

local M = {}

M.KINDS = { ["5xx"] = true, ["429"] = true, ["1303"] = true, reset = true, stall = true, malformed = true,
  content_type = true, not_found = true, expired = true, auth = true }
local KIND_NAMES = "5xx, 429, 1303, reset, stall, malformed, content_type, not_found, expired, auth"
local METHODS = { GET = true, POST = true, PUT = true, DELETE = true, PATCH = true, HEAD = true }

local function state()
  return ngx.shared.kling_sim_state
end

local function fail(i, field, rule)
  return nil, "rules[" .. i .. "]." .. field .. ": " .. rule
end

local function number_in(v, lo, hi)
  return type(v) == "number" and v >= lo and v <= hi
end

local BODY_FIELDS = { "seed", "rules" }
local RULE_FIELDS = { "kind", "method", "path", "count", "rate", "phase", "retry_after", "seconds", "status", "skip" }

-- The first key of t not in known (a misspelt "count" would make a fault fire forever).
local function unknown_key(t, known)
  for k in pairs(t) do
    local found = false
    for _, name in ipairs(known) do
      found = found or k == name
    end
    if not found then
      return tostring(k)
    end
  end
  return nil
end

-- Checks and normalises {seed, rules}; -> set | nil, message naming the field.
function M.validate(body, default_seed)
  if type(body) ~= "table" then
    return nil, "body must be a JSON object {seed, rules}"
  end
  local bad = unknown_key(body, BODY_FIELDS)
  if bad then
    return nil, bad .. ": unknown field (known: " .. table.concat(BODY_FIELDS, ", ") .. ")"
  end
  local seed = body.seed == nil and default_seed or body.seed
  if type(seed) ~= "number" or seed ~= math.floor(seed) then
    return nil, "seed: must be an integer"
  end
  local rules = body.rules
  if type(rules) ~= "table" or (#rules == 0 and next(rules) ~= nil) then
    return nil, "rules: must be an array of rules"
  end
  local out = {}
  for i, r in ipairs(rules) do
    if type(r) ~= "table" then
      return nil, "rules[" .. i .. "]: must be an object"
    end
    bad = unknown_key(r, RULE_FIELDS)
    if bad then
      return fail(i, bad, "unknown field (known: " .. table.concat(RULE_FIELDS, ", ") .. ")")
    end
    if not M.KINDS[r.kind] then
      return fail(i, "kind", "must be one of " .. KIND_NAMES)
    end
    if r.method ~= nil and not METHODS[r.method] then
      return fail(i, "method", "must be an HTTP method such as GET or POST")
    end
    if r.path ~= nil and (type(r.path) ~= "string" or not pcall(string.find, "", r.path)) then
      return fail(i, "path", "must be a valid Lua pattern")
    end
    if r.count ~= nil and (not number_in(r.count, 1, 1e9) or r.count ~= math.floor(r.count)) then
      return fail(i, "count", "must be a positive integer")
    end
    if r.skip ~= nil and (not number_in(r.skip, 0, 1e9) or r.skip ~= math.floor(r.skip)) then
      return fail(i, "skip", "must be a whole number")
    end
    if r.rate ~= nil and not number_in(r.rate, 0, 1) then
      return fail(i, "rate", "must be a number in 0..1")
    end
    if r.phase ~= nil and r.phase ~= "before" and r.phase ~= "after" then
      return fail(i, "phase", "must be before or after")
    end
    if r.retry_after ~= nil and not number_in(r.retry_after, 0, 86400) then
      return fail(i, "retry_after", "must be seconds in 0..86400")
    end
    if r.seconds ~= nil and not number_in(r.seconds, 0, 3600) then
      return fail(i, "seconds", "must be seconds in 0..3600")
    end
    if r.status ~= nil and r.status ~= 500 and r.status ~= 502 and r.status ~= 503 and r.status ~= 504 then
      return fail(i, "status", "must be 500, 502, 503 or 504")
    end
    out[i] = { kind = r.kind, method = r.method, path = r.path, count = r.count, rate = r.rate,
      phase = r.phase or "before", retry_after = r.retry_after, seconds = r.seconds, status = r.status,
      skip = r.skip }
  end
  return { seed = seed, rules = out }
end

-- Installs a validated set; counters start afresh under a new generation.
function M.set(set)
  local st = state()
  local gen = st:incr("faults:gen", 1, 0)
  for i, r in ipairs(set.rules) do
    if r.count then
      st:set("faults:" .. gen .. ":" .. i .. ":left", r.count)
    end
    if r.skip then
      st:set("faults:" .. gen .. ":" .. i .. ":skip", r.skip)
    end
  end
  st:set("faults", json.encode(set))
end

function M.clear()
  state():incr("faults:gen", 1, 0)
  state():delete("faults")
end

-- The installed set, decoded once per generation per worker.
local cache_gen, cache_set
local function current()
  local st = state()
  local gen = st:get("faults:gen") or 0
  if gen ~= cache_gen then
    local s = st:get("faults")
    cache_gen, cache_set = gen, s and json.decode(s) or nil
  end
  return cache_set, gen
end

function M.get()
  local set = current()
  return set or { seed = json.null, rules = json.array {} }
end

-- A uniform draw in [0, 1) from (seed, rule, n).
local function draw(seed, i, n)
  local h = ngx.sha1_bin(string.format("%d:%d:%d", seed, i, n))
  local a, b, c, d = h:byte(1, 4)
  return (((a * 256 + b) * 256 + c) * 256 + d) / 4294967296
end

-- pick(method, path, phase) -> rule | nil: the first rule of this phase that fires. A rule
-- with `skip` lets that many of the requests it matches go by first; it counts every request
-- of its phase that matches its method and path, whichever rule answers it, so that rules on
-- one path make a sequence (an error, then another, then the real answer).
function M.pick(method, path, phase)
  local set, gen = current()
  if not set then
    return nil
  end
  local st = state()
  local picked
  for i, r in ipairs(set.rules) do
    if r.phase == phase and (r.method == nil or r.method == method) and (r.path == nil or path:find(r.path))
      and (not r.skip or st:incr("faults:" .. gen .. ":" .. i .. ":skip", -1, 0) < 0) and not picked then
      local left_key = "faults:" .. gen .. ":" .. i .. ":left"
      local fire = not r.count or (st:get(left_key) or 0) > 0
      if fire and r.rate then
        local n = st:incr("faults:" .. gen .. ":" .. i .. ":draws", 1, 0)
        fire = draw(set.seed, i, n) < r.rate
      end
      if fire and r.count then
        fire = st:incr(left_key, -1, 0) >= 0
      end
      if fire then
        picked = r
      end
    end
  end
  return picked
end

local HTML = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
  .. "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

local SERVER_CODES = { [500] = 5000, [502] = 5000, [503] = 5001, [504] = 5002 }
local SERVER_MESSAGES = {
  [5000] = "Server internal error", [5001] = "Server temporarily unavailable, usually due to maintenance",
  [5002] = "Server internal timeout, usually due to a backlog",
}

-- respond(rule, dialect, res) -> the response to send instead, or nil to go on normally
-- (stall sleeps first). res is the real response for phase "after", else nil. A reset
-- never returns: the connection is dropped with no answer.
function M.respond(r, dialect, res)
  local k = r.kind
  if k == "stall" then
    ngx.sleep(r.seconds or 30)
    return nil
  elseif k == "reset" then
    return ngx.exit(444)
  elseif k == "5xx" then
    local status = r.status or 500
    local code = SERVER_CODES[status]
    return dialect.error_response(status, code, SERVER_MESSAGES[code])
  elseif k == "429" then
    local out = dialect.error_response(429, 1302, "The API request is too fast, exceeding the platform's rate limit")
    out.headers["Retry-After"] = tostring(math.ceil(r.retry_after or 1))
    return out
  elseif k == "1303" then
    local out = dialect.error_response(429, 1303, "parallel task over resource pack limit")
    if r.retry_after then
      out.headers["Retry-After"] = tostring(math.ceil(r.retry_after))
    end
    return out
  elseif k == "malformed" then
    local body = res and res.body or dialect.sample_body()
    return { status = 200, headers = { ["Content-Type"] = "application/json" },
      body = body:sub(1, math.max(1, math.floor(#body / 2))) }
  elseif k == "content_type" then
    return { status = 200, headers = { ["Content-Type"] = "text/html" }, body = HTML }
  elseif k == "not_found" then -- the task is not (or not yet) visible
    return dialect.error_response(404, 1203, "task does not exist")
  elseif k == "expired" then -- the token expired while the request was on its way
    return dialect.error_response(401, 1004, "Authorization has expired")
  elseif k == "auth" then
    return dialect.error_response(401, 1002, "Authorization is invalid")
  end
  return nil
end

return M
