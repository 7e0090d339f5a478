#!/usr/bin/env bash
# docs/architecture.md's "data path of one blocking request, today" is today's: scripts/data-path
# (a line hook on client:run against a simulator of its own) runs lines of as many Lua files, with
# and without a budget, and comes back into client.lua as often, as the page says, and every
# file it runs is named in the page's table of that path.
set -euo pipefail
cd "$(dirname "$0")/../.."
doc=docs/architecture.md
fail=0
with=$(scripts/data-path)
without=$(scripts/data-path --no-budget)
read -r n_with e_with < <(sed -n '1s/^succeeded, with a budget: \([0-9]*\) Lua files, \([0-9]*\) entries into client.lua$/\1 \2/p' <<<"$with")
read -r n_without e_without < <(sed -n '1s/^succeeded, without a budget: \([0-9]*\) Lua files, \([0-9]*\) entries.*$/\1 \2/p' <<<"$without")
[ -n "${n_with:-}" ] && [ -n "${n_without:-}" ] || { echo "scripts/data-path printed no counts:"; echo "$with"; echo "0 passed, 1 failed"; exit 1; }
grep -q "\*\*$n_with Lua files with a budget, $n_without$" "$doc" || grep -q "\*\*$n_with Lua files with a budget, $n_without without\*\*" "$doc" \
  || { echo "$doc does not say **$n_with Lua files with a budget, $n_without without**"; fail=1; }
[ "$e_with" = "$e_without" ] || { echo "entries into client.lua differ with a budget ($e_with) and without ($e_without)"; fail=1; }
grep -q "control enters \`client.lua\` \*\*$e_with times\*\*" "$doc" \
  || { echo "$doc does not say control enters client.lua **$e_with times**"; fail=1; }
# every file of the path is in the table (the rows after "| files | what they do on the path |")
table=$(sed -n '/^| files | what they do on the path |$/,/^$/p' "$doc")
for f in $(printf '%s\n%s\n' "$with" "$without" | sed -n 's/^ *[0-9]*  lua\/kling\///p' | sort -u); do
  grep -q "\`$f\`" <<<"$table" || { echo "$doc's data-path table does not name $f"; fail=1; }
done
if [ "$fail" = 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi
