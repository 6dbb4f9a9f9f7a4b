#!/usr/bin/env bash
# Runs every test roomcast has, after installing what they need on a fresh Debian machine
# (Chromium and the browser-test npm packages, iproute2 for the network-namespace test,
# redis-server for the cluster tests, whip-client and GStreamer for the WHIP tests). Safe to
# run again: installs are skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# A one-shot build gains nothing from incremental compilation, and its caches would take
# ~2.6 GB of the target directory. The free disk is printed because a full disk is the one
# failure the tests cannot explain themselves.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | sed 's/^/disk: /'

bash tests/browser/setup.sh
bash tests/netns-setup.sh
bash tests/cluster/setup.sh
bash tests/whip/setup.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
node --check tests/browser/*.mjs
for f in web/js/*.js; do node --check "$f"; done

# The media tests start bots and Chromium beside the server on a 2-core machine; running the
# integration test binaries one test at a time keeps their timings realistic.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --no-fail-fast -- --test-threads=2 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The tests of roomcast's patches to vendored crates that are not workspace members
# (vendor/*/ROOMCAST-PATCH.md).
cargo test -p dtls --lib skip_hello_test 2>&1 | tee -a "$log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
set -e
# One closing line for the whole run (cargo prints one per test binary, the last often a
# doc-test binary with nothing in it).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
