#!/usr/bin/env bash
# issue 12: the one-node gateway's journal compacted at each start (kling.gateway.compact): the
# balances, holds, tasks and lookups stay what they were, also after SIGKILL of every nginx
# process during a compaction; a compaction that cannot be written leaves the old journal and
# says why; a credit lowered below an account's spend is warned of and refused
# (spec/nginx/gateway_journal.lua).
set -euo pipefail
exec lua5.4 spec/nginx/gateway_journal.lua
