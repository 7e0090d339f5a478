-- The end of a batch: a summary table (text), DIR/summary.json (counts of succeeded, failed,
-- refused, uncertain and unfinished rows, charges by currency (each provider's unit its own currency:
-- API in One's and EvoLink's credits are never summed), each failure with its reason) and
-- DIR/report.html (every output playable in the page, the cost breakdown; one file, no
-- external assets: the outputs are linked by their paths relative to DIR). A row refused before
-- anything was sent (invalid, unpriced) is counted refused, never failed: failed says the
-- provider failed a task. No key ever appears here: rows carry their request without the
-- manifest's key fields.
local core = require "kling.core"
local json = require "kling.json"
local durable_file = require "kling.durable_file"
local names = require "kling.batch.names"
local validate = require "kling.validate"

local M = {}

M.STATES = { "succeeded", "failed", "refused", "uncertain", "unfinished" }

-- Charges of the rows by currency: {CNY = micros, ...}, and the count of rows charged for what
-- the catalog has no price for (their charge is not in the totals; a row refused as unpriced
-- was never sent, nothing charged: not one of them).
function M.charges(rows)
  local by, unpriced = {}, 0
  for _, r in ipairs(rows) do
    local c = r.charge
    if c and c.amount and c.currency then
      local m = core.money_parse(c.amount)
      if m then
        by[c.currency] = core.money_add(by[c.currency] or 0, m)
      end
    elseif c and c.unpriced then
      unpriced = unpriced + 1
    end
  end
  return by, unpriced
end

-- Why a row failed, as the live lines say it: the field first when the error names one
-- ("duration: must be 5 or 10"), then the message.
-- Text a reader and summary.json take whole: a field name from a manifest may hold bytes that
-- are not UTF-8 (summary.json was then no JSON Python would read) or control characters,
-- written as validate.shown escapes them.
function M.reason(e)
  if type(e) ~= "table" or e.message == nil then
    return nil
  end
  local msg = tostring(e.message)
  if type(e.field) == "string" and e.field ~= "" and msg:sub(1, #e.field + 1) ~= e.field .. ":" then
    msg = e.field .. ": " .. msg
  end
  return validate.shown(msg)
end

local function shown_field(e)
  return type(e.field) == "string" and validate.shown(e.field) or nil
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

local function counts(rows)
  local c = {}
  for _, s in ipairs(M.STATES) do
    c[s] = 0
  end
  for _, r in ipairs(rows) do
    c[r.state] = (c[r.state] or 0) + 1
  end
  return c
end

-- summary(result) -> the table written as summary.json.
function M.summary(result)
  local by, unpriced = M.charges(result.rows)
  local charges = {}
  for cur, m in pairs(by) do
    charges[cur] = core.money_format(m)
  end
  local failures, refused, uncertain, unfinished = json.array {}, json.array {}, json.array {}, json.array {}
  local outputs = json.array {}
  for _, r in ipairs(result.rows) do
    local e = r.error or {}
    if r.state == "failed" then
      failures[#failures + 1] = { id = r.id, kind = e.kind, code = e.code, field = shown_field(e), reason = M.reason(e),
        attempts = r.attempts, task_id = r.task_id }
    elseif r.state == "refused" then
      refused[#refused + 1] = { id = r.id, kind = e.kind, code = e.code, field = shown_field(e), reason = M.reason(e) }
    elseif r.state == "uncertain" then
      uncertain[#uncertain + 1] = { id = r.id, reason = M.reason(e), external_task_id = r.external_task_id }
    elseif r.state == "unfinished" then
      unfinished[#unfinished + 1] = { id = r.id, reason = r.reason, task_id = r.task_id }
    end
    for _, f in ipairs(r.files or {}) do
      outputs[#outputs + 1] = { id = r.id, path = f.path, kind = f.kind, bytes = f.bytes }
    end
  end
  local c = counts(result.rows)
  return {
    manifest = result.manifest, out = result.out, journal = result.journal,
    started_at = result.started_s, finished_at = result.finished_s, elapsed_s = result.elapsed_s,
    runs = result.runs, rows = #result.rows,
    succeeded = c.succeeded, failed = c.failed, refused = c.refused, uncertain = c.uncertain,
    unfinished = c.unfinished, charges = charges, unpriced_rows = unpriced,
    budget = result.budget, budgets = result.budgets, rates = result.rates,
    failures = failures, refused_rows = refused, uncertain_rows = uncertain, unfinished_rows = unfinished,
    outputs = outputs, exit_status = result.exit_status,
  }
end

-- The summary table, as lines of text.
-- The line of a row that did not succeed: its id, its state and why (the table's, and what
-- `kling run --quiet` still prints of the rows that failed: quiet hides progress, not failures).
-- Shown on one line as validate.shown writes it: a field name or a message may carry what a
-- manifest gave ("\27[31mfoo: unknown field"), which a terminal would act on.
function M.row_line(r)
  local e = r.error or {}
  return string.format("  %-12s %-10s %s", r.id, r.state, validate.shown(r.state == "unfinished"
    and tostring(r.reason) or ((e.kind and (e.kind .. ": ") or "") .. tostring(M.reason(e) or r.reason or ""))))
end

function M.table(result, paths)
  local c = counts(result.rows)
  local lines = {}
  local function add(...)
    lines[#lines + 1] = string.format(...)
  end
  add("batch %s: %d rows, %.1f s", result.out, #result.rows, result.elapsed_s or 0)
  add("  %-11s %6s", "state", "rows")
  for _, s in ipairs(M.STATES) do
    add("  %-11s %6d", s, c[s] or 0)
  end
  local by, unpriced = M.charges(result.rows)
  local parts = {}
  for _, cur in ipairs(sorted_keys(by)) do
    parts[#parts + 1] = core.money_format(by[cur]) .. " " .. cur
  end
  add("charges: %s%s", #parts > 0 and table.concat(parts, ", ") or "none",
    unpriced > 0 and string.format(" (+%d unpriced rows)", unpriced) or "")
  for _, b in ipairs(result.budgets or { result.budget }) do
    add("budget: spent %s of %s %s (reserved %s)", b.spent, b.limit, b.currency, b.reserved)
  end
  if result.rates then
    add("rates: other currencies counted in %s", result.rates.currency)
  end
  for _, r in ipairs(result.rows) do
    if r.state ~= "succeeded" then
      lines[#lines + 1] = M.row_line(r)
    end
  end
  if paths then
    add("summary: %s", paths.summary)
    add("report:  %s", paths.report)
  end
  return lines
end

-- ---- report.html ----

-- HTML text: its markup characters as entities, and the control characters HTML does not allow
-- (all but tab, line feed and carriage return; C1 too) written \xHH or \uXXXX, as a message
-- shows them: a prompt or a field name from the manifest may hold ESC or BEL.
-- The note of a delivery the catalog has no price for, with the charge its provider reported
-- (journaled, then left off the page: a row EvoLink charged 27 credits for read as costing nothing).
local function unpriced_note(r, ch)
  if ch.reported == nil then
    return ch.unpriced
  end
  local billing = require "kling.billing"
  local cat = type(r.provider) == "string" and billing.catalog(r.provider)
  local unit = cat and billing.unit(cat.currency, r.provider)
  return ch.unpriced .. "; the provider reported a charge of " .. ch.reported .. (unit and (" " .. unit) or "")
    .. " (not in the totals)"
end

local function esc(s)
  return (tostring(s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
    ["'"] = "&#39;" }):gsub("[%z\1-\8\11\12\14-\31\127]", function(c)
      return string.format("\\x%02X", c:byte())
    end):gsub("\194([\128-\159])", function(c)
      return string.format("\\u%04X", c:byte())
    end))
end

-- A relative path as a URL path (each segment percent-encoded).
local function href(path)
  return (path:gsub("[^%w%-%._~/]", function(ch)
    return string.format("%%%02X", ch:byte())
  end))
end

local function media(f)
  local src = esc(href(f.path))
  if f.kind == "image" then
    return string.format('<img src="%s" alt="%s" loading="lazy">', src, esc(f.path))
  elseif f.kind == "audio" then
    return string.format('<audio controls preload="metadata" src="%s"></audio>', src)
  end
  local poster = f.poster and (' poster="' .. esc(href(f.poster)) .. '"') or ""
  return string.format('<video controls preload="metadata"%s src="%s"></video>', poster, src)
end

local STYLE = [[
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}
h1{font-size:1.4em}table{border-collapse:collapse;margin:1em 0;background:#fff}
td,th{border:1px solid #ddd;padding:.4em .6em;vertical-align:top;text-align:left}
th{background:#f0f0f0}.num{text-align:right;font-variant-numeric:tabular-nums}
.succeeded{color:#176d2c}.failed{color:#a61b1b}.refused{color:#7a1b6d}.uncertain{color:#9a5b00}
.unfinished{color:#555}
.grid{display:flex;flex-wrap:wrap;gap:1em}.card{background:#fff;border:1px solid #ddd;padding:.6em;width:340px}
.card video,.card img{width:100%;max-height:240px;background:#000}.card audio{width:100%}
.prompt{color:#555;font-size:.9em;word-break:break-word}code{font-size:.9em}
]]

-- html(result) -> the report page as one string.
function M.html(result)
  local out = {}
  local function w(...)
    for i = 1, select("#", ...) do
      out[#out + 1] = select(i, ...)
    end
  end
  local c = counts(result.rows)
  w("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
    "<title>kling batch report</title><style>", STYLE, "</style></head><body>\n")
  w("<h1>Batch report</h1>\n<p>Manifest <code>", esc(result.manifest or "?"), "</code>, ", tostring(#result.rows),
    " rows, ", string.format("%.1f", result.elapsed_s or 0), " s in the last run (", tostring(result.runs or 1),
    " run(s) in all).</p>\n")
  w("<table><tr>")
  for _, s in ipairs(M.STATES) do
    w("<th class=\"", s, "\">", s, "</th>")
  end
  w("</tr><tr>")
  for _, s in ipairs(M.STATES) do
    w("<td class=\"num\">", tostring(c[s] or 0), "</td>")
  end
  w("</tr></table>\n<h2>Outputs</h2>\n<div class=\"grid\">\n")
  for _, r in ipairs(result.rows) do
    for _, f in ipairs(r.files or {}) do
      w("<div class=\"card\">", media(f), "<div><b>", esc(r.id), "</b> <a href=\"", esc(href(f.path)), "\">",
        esc(f.path), "</a> (", tostring(f.bytes or "?"), " bytes)</div>")
      if r.prompt then
        w("<div class=\"prompt\">", esc(r.prompt), "</div>")
      end
      w("</div>\n")
    end
  end
  w("</div>\n<h2>Costs</h2>\n<table><tr><th>row</th><th>state</th><th>provider</th><th>model</th><th>task</th>",
    "<th>attempts</th><th class=\"num\">charge</th><th>currency</th><th>price rule</th><th>note</th></tr>\n")
  for _, r in ipairs(result.rows) do
    local ch = r.charge or {}
    local e = r.error or {}
    local note = r.state == "unfinished" and r.reason or M.reason(e) or (ch.unpriced and unpriced_note(r, ch)) or ""
    w("<tr><td>", esc(r.id), "</td><td class=\"", esc(r.state), "\">", esc(r.state), "</td><td>",
      esc(r.provider or ""), "</td><td>", esc(r.model or ""), "</td><td><code>", esc(r.task_id or ""),
      "</code></td><td class=\"num\">", tostring(r.attempts or 0), "</td><td class=\"num\">", esc(ch.amount or ""),
      "</td><td>", esc(ch.currency or ""), "</td><td>", esc(ch.rule or ""), "</td><td>", esc(note), "</td></tr>\n")
  end
  local by, unpriced = M.charges(result.rows)
  for _, cur in ipairs(sorted_keys(by)) do
    w("<tr><th colspan=\"6\">total</th><th class=\"num\">", core.money_format(by[cur]), "</th><th>", esc(cur),
      "</th><th colspan=\"2\"></th></tr>\n")
  end
  w("</table>\n")
  if unpriced > 0 then
    w("<p>", tostring(unpriced), " succeeded row(s) have no price in the catalog: their charge is not counted.</p>\n")
  end
  for _, b in ipairs(result.budgets or { result.budget }) do
    w("<p>Budget: spent ", esc(b.spent), " of ", esc(b.limit), " ", esc(b.currency), ", reserved ", esc(b.reserved),
      ".</p>\n")
  end
  w("</body></html>\n")
  return table.concat(out)
end

-- write(result, dir) -> {summary =, report =} paths | nil, message
function M.write(result, dir)
  local paths = { summary = dir .. "/" .. names.SUMMARY, report = dir .. "/" .. names.REPORT }
  local text, err = json.encode(M.summary(result))
  if not text then
    return nil, "cannot encode the summary: " .. tostring(err)
  end
  local ok, werr = durable_file.replace(paths.summary, text .. "\n")
  if ok then
    ok, werr = durable_file.replace(paths.report, M.html(result))
  end
  if not ok then
    return nil, werr
  end
  return paths
end

return M
