# shellcheck shell=bash
# What bench/gateway's scripts share (sourced): a free loopback port, and the bench gateway's
# config (one account with credit for any run, a poller that waits 10 minutes so that it does
# no upstream work during a run, and memory for the tens of thousands of tasks a run leaves open:
# the simulator's never end, and a node keeps 2 KB free for each open task's end).

free_port() { lua5.4 -e 'local s=require"socket".bind("127.0.0.1",0); local _,p=s:getsockname(); print(p); s:close()'; }

# gateway_config OUT SIM_JSON JOURNAL ADMIN_KEY [EXTRA top-level JSON, starting with a comma]
gateway_config() {
  cat > "$1" <<JSON
{ "upstream": {"provider": "kling", "base_url": "$(jq -r .http "$2")", "api_key": "$(jq -r .api_key "$2")"},
  "journal": "$3", "admin_key": "$4",
  "poll": {"min_interval": 600, "max_interval": 600}, "memory": {"tasks": "1g", "ledger": "64m"},
  "accounts": [{"name": "bench", "api_key": "bench-key", "credit": "1000000000"}] ${5:-} }
JSON
}
