#!/usr/bin/env bash
# Installs what the network-namespace tests need on a fresh Debian machine (run as root):
# `ip` and `tc` from iproute2 (tests/media_port.rs, the network lab), `nft` from nftables and
# the font the network lab's plots are labelled in (tests/netlab.rs, crates/netlab). Each is
# skipped when it is already there.
set -euo pipefail

missing=()
command -v ip >/dev/null && command -v tc >/dev/null || missing+=(iproute2)
command -v nft >/dev/null || missing+=(nftables)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update
  apt-get -o DPkg::Lock::Timeout=600 install -y "${missing[@]}"
fi
ip -V
