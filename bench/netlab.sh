#!/usr/bin/env bash
# The network lab at full length: every scenario of docs/network.md against a release
# server, with real Chromium and bots in network namespaces (needs root). Writes
# target/netlab/<label>/table.md (the targets, measured), results.json, one PNG per scenario
# and the logs.
#
#   bash bench/netlab.sh                           # this tree's release build, label "run"
#   bash bench/netlab.sh --server /path/to/roomcast --label before
#   bash bench/netlab.sh --scenario 3-cap-600 --scenario 7-outage
#   bash bench/netlab.sh --short                   # the tests' short lengths
#   bash bench/netlab.sh -- --no-congestion-control   # flags for `roomcast serve`
#
# A scenario takes 1.5-3 minutes; all eight about 20. On a shared machine take it alone
# (e.g. `flock -x <lock> bash bench/netlab.sh`): the figures depend on load.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/netns-setup.sh >/dev/null
bash tests/browser/setup.sh >/dev/null
server=""
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --server) server="$2"; shift 2 ;;
    --) args+=("$@"); break ;;
    *) args+=("$1"); shift ;;
  esac
done
echo "== building (release)" >&2
cargo build --release --bin roomcast -p roomcast --bin netlab -p roomcast-netlab >&2
server="${server:-target/release/roomcast}"
exec target/release/netlab --server "$server" "${args[@]}"
