#!/usr/bin/env bash
# Refreshes the README's pictures (docs/screenshot.png, docs/screenshot-phone.png) from a run
# of the browser meeting test, which saves them under target/screenshots/ (test runs never
# write docs/).
set -euo pipefail
cd "$(dirname "$0")/../.."

bash tests/browser/setup.sh
rm -f target/screenshots/screenshot.png target/screenshots/screenshot-phone.png
cargo test --test browser_meeting
for name in screenshot.png screenshot-phone.png; do
  cp "target/screenshots/$name" "docs/$name"
done
echo "docs/screenshot.png and docs/screenshot-phone.png refreshed"
