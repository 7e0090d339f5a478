#!/usr/bin/env bash
# A real batch process (bin/kling run) killed with SIGKILL at random moments, at least 20
# times, and started again with the same command each time, against a simulator of its own
# whose creates sometimes answer late (so kills land between a create and its journaled
# answer). At the end: the simulator made exactly one task per row (creates == rows), every
# row ended exactly once in the journal, the budget ledger replayed from the journal equals
# what the simulator billed, summary.json agrees, and every output is in place.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${KLING_BUILD_DIR:-$ROOT/build}
export LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;" LUA_CPATH="$BUILD/?.so;;"
ROWS=${ROWS:-60}
KILLS=${KILLS:-20}

work=$(mktemp -d /tmp/kling-kill.XXXXXX)
chmod 755 "$work"
sim="$work/sim"
cleanup() {
  lua5.4 bin/kling sim stop --dir "$sim" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

lua5.4 bin/kling sim start --dir "$sim" --out "$work/sim.json" --task-seconds 1 --seed 11 >/dev/null
base=$(SIM_JSON="$work/sim.json" lua5.4 -e \
  'local f = assert(io.open(os.getenv("SIM_JSON"))); print(require("kling.json").decode(f:read("a")).http)')
export KLING_PROVIDER=kling KLING_BASE_URL=$base KLING_ACCESS_KEY=kling-sim-access-key \
  KLING_SECRET_KEY=kling-sim-secret-key

# Half the creates answer 1 s after the task exists; some polls fail.
curl -sf -X POST "$base/_sim/faults" -H 'content-type: application/json' -d '{"seed": 5, "rules": [
  {"kind": "stall", "method": "POST", "path": "^/v1/videos/", "phase": "after", "seconds": 1.0, "rate": 0.5},
  {"kind": "5xx", "method": "GET", "path": "^/v1/videos/", "rate": 0.05}]}' >/dev/null

manifest="$work/rows.jsonl"
{
  echo '{"defaults": {"model": "kling-v1", "mode": "std", "duration": 5}}'
  for i in $(seq 1 "$ROWS"); do
    if [ "$i" -eq 7 ]; then
      echo "{\"id\": \"r$i\", \"prompt\": \"clip $i [sim:fail=content policy violation]\"}"
    elif [ $((i % 5)) -eq 0 ]; then
      echo "{\"id\": \"r$i\", \"prompt\": \"clip $i\", \"mode\": \"pro\", \"duration\": 10}"
    else
      echo "{\"id\": \"r$i\", \"prompt\": \"clip $i\"}"
    fi
  done
} > "$manifest"

out="$work/out"
# The same command every time (a bare command, not a function: kill -9 must hit lua itself).
cmd=(lua5.4 bin/kling run "$manifest" --out "$out" --parallel 6 --budget 500 --poll-min 0.2 --poll-max 0.5
  --estimate 1 --quiet)

start=$(date +%s%N)
kills=0
runs=0
finished=0
while [ "$kills" -lt "$KILLS" ]; do
  headers=$(grep -c '"t":"batch"' "$out/journal.jsonl" 2>/dev/null || true)
  "${cmd[@]}" & pid=$!
  runs=$((runs + 1))
  # Wait for this run's header (start-up takes longer on a loaded machine; a kill before it
  # tests nothing and would leave the header count short), then 0.00 .. 0.60 s: from the first
  # create to the middle of a wave.
  for _ in $(seq 1 500); do
    [ "$(grep -c '"t":"batch"' "$out/journal.jsonl" 2>/dev/null || true)" -gt "${headers:-0}" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  sleep "$(printf "0.%02d" $((RANDOM % 61)))"
  if kill -9 "$pid" 2>/dev/null; then
    kills=$((kills + 1))
  fi
  status=0
  wait "$pid" 2>/dev/null || status=$?
  if [ "$status" -ne 137 ] && [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then
    echo "FAIL: run $runs exited with status $status" >&2
    exit 1
  fi
  if [ "$status" -eq 0 ]; then
    finished=1
    break
  fi
done
if [ "$finished" -eq 1 ] || [ "$kills" -lt "$KILLS" ]; then
  echo "FAIL: the batch ended after $kills kills; it must run long enough for $KILLS (raise ROWS)" >&2
  exit 1
fi
status=0
"${cmd[@]}" || status=$?
runs=$((runs + 1))
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
if [ "$status" -ne 0 ]; then
  echo "FAIL: the last run exited with status $status (expected 0)" >&2
  exit 1
fi

lua5.4 - "$out" "$base" "$ROWS" "$kills" "$runs" "$elapsed_ms" <<'EOF'
local core = require "kling.core"
local json = require "kling.json"
local billing = require "kling.billing"
local out, base, rows, kills, runs, elapsed = arg[1], arg[2], tonumber(arg[3]), arg[4], arg[5], arg[6]

local failures = 0
local function check(ok, msg)
  if not ok then
    failures = failures + 1
    io.stderr:write("FAIL: ", msg, "\n")
  end
end

local http = core.http { timeout_ms = 10000 }
local function admin(path)
  local res = http:request { method = "GET", url = base .. path }
  assert(res.ok and res.status == 200, path .. ": " .. tostring(res.message or res.status))
  return assert(json.decode(res.body))
end

local stats = admin("/_sim/stats")
check(stats.creates == rows, string.format("the simulator made %d tasks for %d rows", stats.creates, rows))

local records = {}
for line in io.lines(out .. "/journal.jsonl") do
  records[#records + 1] = assert(json.decode(line), "a journal line is not JSON")
end
local finals, states, ledger_lines, headers, adopted = {}, {}, {}, 0, 0
local intent_run = {}
for _, r in ipairs(records) do
  if r.t == "batch" then
    headers = headers + 1
  elseif r.t == "ledger" then
    ledger_lines[#ledger_lines + 1] = r
  elseif r.t == "intent" then
    intent_run[r.row] = intent_run[r.row] or headers
  elseif r.t == "created" and intent_run[r.row] and intent_run[r.row] < headers then
    adopted = adopted + 1 -- created was journaled by a later run than its intent
    intent_run[r.row] = math.huge
  elseif r.t == "final" then
    finals[r.row] = (finals[r.row] or 0) + 1
    states[r.state] = (states[r.state] or 0) + 1
  end
end
for i = 1, rows do
  check(finals["r" .. i] == 1, "row r" .. i .. " ended " .. tostring(finals["r" .. i] or 0) .. " times")
end
check(states.succeeded == rows - 1 and states.failed == 1,
  "final states: " .. tostring(states.succeeded) .. " succeeded, " .. tostring(states.failed) .. " failed")
check(headers == tonumber(runs), "journal has " .. headers .. " run headers for " .. runs .. " runs")

local sim_total = 0
for _, row in ipairs(admin("/_sim/ledger").tasks) do
  if row.dialect == "kling" then
    sim_total = sim_total + assert(core.money_parse(row.units))
  end
end
local ledger = assert(billing.ledger { limit = "500", currency = "CNY", lines = ledger_lines })
check(ledger:spent() == sim_total, string.format("ledger spent %s, the simulator billed %s",
  core.money_format(ledger:spent()), core.money_format(sim_total)))
check(ledger:reserved() == 0, "ledger still reserves " .. core.money_format(ledger:reserved()))

local f = assert(io.open(out .. "/summary.json"))
local summary = assert(json.decode(f:read("a")))
f:close()
check(summary.succeeded == rows - 1 and summary.failed == 1 and summary.uncertain == 0 and summary.unfinished == 0,
  "summary.json counts")
check(core.money_parse(summary.charges.CNY or "0") == sim_total, "summary.json charges " .. tostring(summary.charges.CNY))
for _, o in ipairs(summary.outputs) do
  local fh = io.open(out .. "/" .. o.path, "rb")
  local size = fh and fh:seek("end")
  if fh then
    fh:close()
  end
  check(size and size > 0 and size == o.bytes, "output " .. o.path .. " missing or of the wrong size")
end
check(#summary.outputs == rows - 1, #summary.outputs .. " outputs")
local ls = io.popen("ls " .. out)
for name in ls:lines() do
  check(not name:match("%.part$"), "a partial download was left: " .. name)
end
ls:close()

print(string.format("batch kill/resume: %s kills, %s runs, %d rows, creates %d, adopted after a kill %d, "
  .. "lookups by external id %d, ledger %s CNY = simulator %s CNY, %.1f s", kills, runs, rows, stats.creates,
  adopted, stats.by_route["GET /v1/videos/text2video?external_task_id"] or 0, core.money_format(ledger:spent()),
  core.money_format(sim_total), tonumber(elapsed) / 1000))
os.exit(failures == 0 and 0 or 1)
EOF
