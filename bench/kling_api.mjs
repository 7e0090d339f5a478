// The public Node client `kling-api` (npm) against the simulator, with its defaults (poll
// every 3 s, 15 min timeout; spinner off, it only draws on a terminal). Not part of the
// repository's dependencies: bench/run.sh installs it into a temporary directory and points
// KLING_API_DIR there. The simulator's HTTPS URL is used (the client refuses plain HTTP),
// with its CA in NODE_EXTRA_CA_CERTS.
//
//   node bench/kling_api.mjs lag OUT.json          the lag set of bench/lag.lua
//   node bench/kling_api.mjs inflight N S OUT.json N tasks of S seconds at once (Promise.all)
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const dir = process.env.KLING_API_DIR || '/tmp/bench-node';
const { KlingAPI } = await import(pathToFileURL(`${dir}/node_modules/kling-api/dist/api.js`).href);
const sim = JSON.parse(readFileSync(process.env.BENCH_SIM || '/tmp/kling-bench/sim.json', 'utf8'));
const api = new KlingAPI({ accessKey: sim.access_key, secretKey: sim.secret_key, baseUrl: sim.https });

const mode = process.argv[2];
let polls = 0;
const query = async (id) => {
  polls += 1;
  return api.queryTextToVideoTask(id);
};

async function simNow() {
  const res = await fetch(`${sim.http}/_sim/stats`);
  return (await res.json()).now_ms;
}

function stats(xs) {
  xs = [...xs].sort((a, b) => a - b);
  const n = xs.length;
  const sum = xs.reduce((a, b) => a + b, 0);
  return { n, mean: n ? sum / n : null, median: xs[Math.floor((n + 1) / 2) - 1], p90: xs[Math.ceil(n * 0.9) - 1],
    min: xs[0], max: xs[n - 1] };
}

// One task: create, then the client's own wait loop. Returns its polls and when it was known.
async function one(prompt) {
  const created = await api.textToVideo({ prompt, model_name: 'kling-v1', duration: '5', mode: 'std' });
  let mine = 0;
  const counted = async (id) => {
    mine += 1;
    return query(id);
  };
  const result = await api.waitForVideoResult(created.data.task_id, counted, { showSpinner: false });
  return { polls: mine, known: Date.now(), done: result.data.updated_at, status: result.data.task_status };
}

if (mode === 'lag') {
  const out = process.argv[3];
  const count = Number(process.env.BENCH_LAG_TASKS || 20);
  const lo = Number(process.env.BENCH_LAG_MIN || 30);
  const hi = Number(process.env.BENCH_LAG_MAX || 300);
  const offset = (await simNow()) - Date.now();
  const durations = [];
  for (let i = 1; i <= count; i++) {
    const base = lo + (hi - lo - 1) * (i - 1) / Math.max(1, count - 1);
    durations.push(Math.round((base + ((i * 0.6180339887) % 1)) * 1000) / 1000);
  }
  const rows = await Promise.all(durations.map(async (s, k) => {
    const r = await one(`bench lag kling-api ${k + 1} [sim:seconds=${s.toFixed(3)}]`);
    return { seconds: s, polls: r.polls, status: r.status, lag_ms: r.known + offset - r.done };
  }));
  const mem = process.resourceUsage();
  writeFileSync(out, JSON.stringify({
    variant: 'kling-api', tasks: count, polls: stats(rows.map((r) => r.polls)),
    lag_ms: stats(rows.map((r) => r.lag_ms)), lag_share: stats(rows.map((r) => r.lag_ms / (r.seconds * 1000))),
    rows, peak_rss_kib: mem.maxRSS, cpu_s: (mem.userCPUTime + mem.systemCPUTime) / 1e6,
  }) + '\n');
} else if (mode === 'inflight') {
  const n = Number(process.argv[3]);
  const seconds = Number(process.argv[4]);
  const out = process.argv[5];
  const t0 = Date.now();
  const settled = await Promise.allSettled(
    Array.from({ length: n }, (_, i) => one(`bench inflight kling-api ${i + 1} [sim:seconds=${seconds}]`)));
  const ok = settled.filter((s) => s.status === 'fulfilled' && s.value.status === 'succeed').length;
  const errors = {};
  for (const s of settled) {
    if (s.status === 'rejected') {
      const key = String(s.reason && (s.reason.code || s.reason.message)).slice(0, 80);
      errors[key] = (errors[key] || 0) + 1;
    }
  }
  const mem = process.resourceUsage();
  writeFileSync(out, JSON.stringify({
    variant: 'kling-api', tasks: n, succeeded: ok, errors, polls, wall_s: (Date.now() - t0) / 1000,
    peak_rss_kib: mem.maxRSS, cpu_s: (mem.userCPUTime + mem.systemCPUTime) / 1e6,
  }) + '\n');
} else {
  console.error('usage: kling_api.mjs lag OUT | inflight N SECONDS OUT');
  process.exit(2);
}
