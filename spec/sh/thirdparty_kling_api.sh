#!/usr/bin/env bash
# The public Node client of the official API, `kling-api` on npm, against the simulator with no
# change but its base URL (an option of its constructor): text-to-video, image-to-video, image
# generation, each created and polled by the client's own wait loop, the video fetched from its
# result URL; a refused secret key and an unknown task come back as errors. The package is pinned
# and installed with npm into build/thirdparty (a cache outside git).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
PKG="kling-api"
VERSION="1.0.0"
cache="${KLING_THIRDPARTY_DIR:-$root/build/thirdparty}"

# shellcheck source=spec/sh/lib/thirdparty.sh
. spec/sh/lib/thirdparty.sh
npm_pinned "$PKG" "$VERSION" "$cache"
kling_lua_env "$root"
simdir=$(mktemp -d /tmp/kling-tp-klingapi.XXXXXX)
trap 'lua5.4 "$root/bin/kling" sim stop --dir "$simdir" >/dev/null 2>&1 || true; rm -rf "$simdir"' EXIT
lua5.4 "$root/bin/kling" sim start --dir "$simdir" --task-seconds 1 --out "$simdir/sim.json" >/dev/null

cat >"$simdir/drive.mjs" <<'JS'
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const [dir, simFile] = process.argv.slice(2);
const { KlingAPI } = await import(pathToFileURL(`${dir}/node_modules/kling-api/dist/api.js`).href);
const sim = JSON.parse(readFileSync(simFile, 'utf8'));
const api = new KlingAPI({ accessKey: sim.access_key, secretKey: sim.secret_key, baseUrl: sim.https });
let passed = 0, failed = 0;
const check = (ok, what) => { if (ok) passed++; else failed++; console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`); };
const png = 'https://example.com/portrait.png';
const quiet = { showSpinner: false, pollInterval: 300 };

try {
  const t = await api.textToVideo({ prompt: 'a red kite over the dunes', model_name: 'kling-v1', duration: '5', mode: 'std' });
  check(t.code === 0 && typeof t.data.task_id === 'string', 'text2video created');
  const r = await api.waitForVideoResult(t.data.task_id, api.queryTextToVideoTask.bind(api), quiet);
  check(r.data.task_status === 'succeed' && r.data.task_result.videos[0].duration === '5', 'text2video succeeded');
  // The client's own saver refuses loopback URLs (its guard against private addresses), so the
  // result URL is fetched here: it must serve a real MP4.
  const res = await fetch(r.data.task_result.videos[0].url);
  const body = Buffer.from(await res.arrayBuffer());
  check(res.ok && body.length > 1000 && body.toString('latin1', 4, 8) === 'ftyp', 'result URL serves an MP4');
} catch (e) { check(false, 'text2video: ' + e.message); }

try {
  const t = await api.imageToVideo({ image: png, prompt: 'she smiles', model_name: 'kling-v1-6', duration: '5' });
  const r = await api.waitForVideoResult(t.data.task_id, api.queryImageToVideoTask.bind(api), quiet);
  check(r.data.task_status === 'succeed', 'image2video succeeded');
} catch (e) { check(false, 'image2video: ' + e.message); }

try {
  const t = await api.generateImage({ prompt: 'a lighthouse', model_name: 'kling-v1', n: 2 });
  const r = await api.waitForImageResult(t.data.task_id, api.queryImageGenTask.bind(api), quiet);
  check(r.data.task_status === 'succeed' && r.data.task_result.images.length === 2, 'two images generated');
} catch (e) { check(false, 'images: ' + e.message); }

try {
  await api.queryTextToVideoTask('no-such-task');
  check(false, 'an unknown task is an error');
} catch (e) { check(true, 'an unknown task is an error: ' + e.message); }

try {
  const bad = new KlingAPI({ accessKey: sim.access_key, secretKey: 'not-the-secret', baseUrl: sim.https });
  await bad.textToVideo({ prompt: 'x', model_name: 'kling-v1' });
  check(false, 'a wrong secret key is refused');
} catch (e) { check(true, 'a wrong secret key is refused: ' + e.message); }

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
JS
ca=$(INFO="$simdir/sim.json" lua5.4 -e 'print(require("kling.json").decode(io.open(os.getenv("INFO")):read("a")).ca_file)')
NODE_EXTRA_CA_CERTS="$ca" node "$simdir/drive.mjs" "$cache" "$simdir/sim.json"
