#!/usr/bin/env bash
# Installs what the network-namespace tests (tests/media_port.rs) need on a fresh Debian
# machine (run as root): `ip` from iproute2. Skipped when it is already there.
set -euo pipefail

if ! command -v ip >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update
  apt-get -o DPkg::Lock::Timeout=600 install -y iproute2
fi
ip -V
