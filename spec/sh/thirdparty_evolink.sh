#!/usr/bin/env bash
# EvoLink's own public client (@evolinkai/evolink-media on npm, an MCP server over stdio)
# against the simulator, unchanged but for its base URL: generate_video with a Kling V3 model,
# check_task until completed, the result downloaded; a failed task; a refused API key.
# The package is pinned and installed with npm into build/thirdparty (a cache outside git).
# Its base URL is a constant in dist/core/src/config.js: a copy beside it gets the simulator's
# URL there, and the script checks that this is the only line that differs.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

PKG="@evolinkai/evolink-media"
VERSION="1.2.1"
cache="${KLING_THIRDPARTY_DIR:-$root/build/thirdparty}"

# shellcheck source=spec/sh/lib/thirdparty.sh
. spec/sh/lib/thirdparty.sh
npm_pinned "$PKG" "$VERSION" "$cache"
orig="$cache/node_modules/$PKG"
kling_lua_env "$root"
simdir=$(mktemp -d /tmp/kling-tp-evolink.XXXXXX)
copy="$cache/node_modules/@evolinkai/evolink-media-sim-$$"
cleanup() {
  lua5.4 "$root/bin/kling" sim stop --dir "$simdir" >/dev/null 2>&1 || true
  rm -rf "$simdir" "$copy"
}
trap cleanup EXIT

lua5.4 "$root/bin/kling" sim start --dir "$simdir" --task-seconds 1 --api-key sk-evo-simulator >"$simdir/info.json"
base=$(INFO="$simdir/info.json" lua5.4 -e \
  'print(require("kling.json").decode(io.open(os.getenv("INFO")):read("a")).providers.evolink)')
case "$base" in http://127.0.0.1:*/evolink) ;; *) echo "FAIL: no evolink base URL: $base"; exit 1 ;; esac

# The copy: identical but for the base URL.
cp -r "$orig" "$copy"
sed -i "s#'https://api.evolink.ai'#'$base'#" "$copy/dist/core/src/config.js"
changed=$(diff -r "$orig" "$copy" | grep -c '^[<>]' || true)
if [ "$changed" != 2 ]; then
  echo "FAIL: the copy differs from $PKG by $changed lines, not just the base URL"
  diff -r "$orig" "$copy" || true
  exit 1
fi

cat >"$simdir/drive.mjs" <<'EOF'
// Speaks MCP (JSON-RPC lines over stdio) to the client, as an MCP host would.
import { spawn } from 'node:child_process';
const [server, mode] = process.argv.slice(2);
const child = spawn(process.execPath, [server], { stdio: ['pipe', 'pipe', 'inherit'], env: process.env });
let buf = '', next = 1;
const waiting = new Map();
child.stdout.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    if (!line.trim()) continue;
    const msg = JSON.parse(line);
    if (msg.id && waiting.has(msg.id)) { waiting.get(msg.id)(msg); waiting.delete(msg.id); }
  }
});
function call(method, params) {
  const id = next++;
  child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
  return new Promise((resolve) => waiting.set(id, resolve));
}
const text = (r) => (r.result?.content ?? []).map((c) => c.text).join('\n') + (r.error ? JSON.stringify(r.error) : '');
const fail = (why) => { console.log('FAIL: ' + why); child.kill(); process.exit(1); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const init = await call('initialize', { protocolVersion: '2024-11-05', capabilities: {},
  clientInfo: { name: 'kling-thirdparty-check', version: '1' } });
if (!init.result) fail('initialize: ' + JSON.stringify(init));
child.stdin.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) + '\n');

const prompt = mode === 'fail' ? 'a red kite over dunes [sim:fail]' : 'a red kite over dunes';
const gen = await call('tools/call', { name: 'generate_video', arguments: { prompt, model: 'kling-v3-text-to-video',
  duration: 5, quality: '1080p', aspect_ratio: '16:9' } });
const out = text(gen);
if (mode === 'badkey') {
  if (!gen.result?.isError || !/\[401\]/.test(out)) fail('a wrong key should give the 401 message: ' + out);
  console.log('refused key: ' + out.split('\n')[0]);
  child.kill(); process.exit(0);
}
const id = out.match(/Task ID: (\S+)/)?.[1];
if (!id) fail('no task id in: ' + out);
if (!/Estimated cost: 35.991 credits \(per_second\)/.test(out)) fail('credits_reserved not shown as expected: ' + out);
for (let i = 0; i < 60; i++) {
  const r = text(await call('tools/call', { name: 'check_task', arguments: { task_id: id } }));
  const status = r.match(/Status: (\w+)/)?.[1];
  if (status === 'completed') {
    const url = r.match(/Video: (\S+)/)?.[1];
    if (!url || !/Duration: 5s/.test(r)) fail('completed without a video and its duration: ' + r);
    const res = await fetch(url);
    const bytes = Buffer.from(await res.arrayBuffer());
    if (res.status !== 200 || bytes.subarray(4, 8).toString() !== 'ftyp') fail('result is not an mp4: ' + res.status);
    if (mode === 'fail') fail('a [sim:fail] task completed');
    console.log(`completed ${id}: ${url} (${bytes.length} bytes)`);
    child.kill(); process.exit(0);
  }
  if (status === 'failed') {
    if (mode !== 'fail') fail('task failed: ' + r);
    if (!/Error code: content_policy_violation/.test(r)) fail('failure without its error code: ' + r);
    console.log(`failed as asked ${id}: ` + r.match(/Error code: \S+/)[0]);
    child.kill(); process.exit(0);
  }
  if (status !== 'pending' && status !== 'processing') fail('unexpected status: ' + r);
  await sleep(250);
}
fail('task did not finish');
EOF

server="$copy/dist/evolink-media/src/index.js"
EVOLINK_API_KEY=sk-evo-simulator node "$simdir/drive.mjs" "$server" ok
EVOLINK_API_KEY=sk-evo-simulator node "$simdir/drive.mjs" "$server" fail
EVOLINK_API_KEY=sk-evo-wrong node "$simdir/drive.mjs" "$server" badkey
echo "PASS: $PKG@$VERSION works against the simulator"
