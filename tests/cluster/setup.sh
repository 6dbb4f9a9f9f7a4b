#!/usr/bin/env bash
# Installs what the cluster tests need on a fresh Debian machine (run as root): the real
# redis-server, which the tests start on loopback ports of their own. Safe to run again.
set -euo pipefail

if ! command -v redis-server >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  # Another installer may hold the dpkg lock; wait for it instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update
  apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends redis-server
  # The package starts a system-wide server on port 6379; the tests do not use it.
  if command -v systemctl >/dev/null && systemctl is-active --quiet redis-server 2>/dev/null; then
    systemctl stop redis-server || true
  fi
fi

redis-server --version
