#!/usr/bin/env bash
# Installs what the browser tests need on a fresh Debian machine (run as root).
# Safe to run again: every step is skipped when its result is already there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Chromium and Firefox ESR for the browser tests; coturn (`turnserver`) for the TURN relay test.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/firefox-esr ] || missing+=(firefox-esr)
command -v turnserver >/dev/null || missing+=(coturn)
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Another installer may hold the dpkg lock; wait for it instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update
  apt-get -o DPkg::Lock::Timeout=600 install -y "${missing[@]}"
fi

# Every dependency of package.json installed (a checkout set up before one was added has not).
for package in playwright-core puppeteer-core; do
  if [ ! -d "$here/node_modules/$package" ]; then
    (cd "$here" && npm ci --no-audit --no-fund)
    break
  fi
done

/usr/bin/chromium --version
/usr/bin/firefox-esr --version
