#!/usr/bin/env bash
# issue 14: scripts/docs builds the reference (a page per public module, linked from the
# index), and its index rendered by headless Chromium is not blank: the screenshot (1280x900
# PNG) is decoded by ffmpeg to gray pixels, at least 2 % of them dark (text), in 16 shades or
# more. The rendering is skipped (SKIP, exit 0) only when chromium is absent; scripts/bootstrap
# installs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/docs || { echo "0 passed, 1 failed"; exit 1; }
for m in kling kling.client kling.task kling.errors kling.billing kling.webhook; do
  [ -s "build/doc/modules/$m.html" ] && grep -q "href=\"modules/$m.html\"" build/doc/index.html \
    || { echo "the reference has no page for $m"; echo "0 passed, 1 failed"; exit 1; }
done
# The calls the README leads with have their entries (a doc comment LDoc did not take as one
# would leave them out).
for entry in kling:new kling:estimate kling:settle kling:quote kling:ledger kling.client:Client:submit \
    kling.client:Client:wait_all kling.client:Client:wait_any kling.client:Client:submit_many \
    kling.client:kling.WaitResults kling.task:Task:wait kling.task:kling.Task kling.errors:kling.Error \
    kling.webhook:parse kling.money.quote:kling.Quote; do
  page=${entry%%:*} name=${entry#*:}
  grep -q "<a name = \"$name\"></a>" "build/doc/modules/$page.html" \
    || { echo "build/doc/modules/$page.html has no entry $name"; echo "0 passed, 1 failed"; exit 1; }
done
if ! command -v chromium >/dev/null; then
  echo "SKIP: chromium is not installed (scripts/bootstrap installs it): the reference was built, not rendered"
  exit 0
fi
shot=build/doc/index.png
rm -f "$shot"
home=$(mktemp -d /tmp/kling-chromium.XXXXXX)
trap 'rm -rf "$home"' EXIT
HOME=$home timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$home" --window-size=1280,900 --screenshot="$PWD/$shot" \
  "file://$PWD/build/doc/index.html" >/dev/null 2>&1 || true
[ -s "$shot" ] || { echo "no screenshot"; echo "0 passed, 1 failed"; exit 1; }
stats=$(ffmpeg -v error -i "$shot" -f rawvideo -pix_fmt gray - | lua5.4 -e '
  local s = io.read("a")
  local dark, seen, shades = 0, {}, 0
  for i = 1, #s do
    local b = s:byte(i)
    if b < 128 then dark = dark + 1 end
    if not seen[b] then seen[b] = true; shades = shades + 1 end
  end
  io.write(string.format("%d %.4f %d", #s, dark / #s, shades))')
read -r pixels dark shades <<<"$stats"
echo "screenshot $shot: $pixels pixels, dark fraction $dark, $shades shades"
if [ "$pixels" -eq 1152000 ] && lua5.4 -e "os.exit(($dark >= 0.02 and $shades >= 16) and 0 or 1)"; then
  echo "1 passed, 0 failed"
else
  echo "0 passed, 1 failed"
  exit 1
fi
