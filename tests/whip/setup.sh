#!/usr/bin/env bash
# Installs what the WHIP/WHEP tests need on a fresh Debian machine (run as root): Meetecho's
# `whip-client` (package simple-whip-client, a GStreamer WHIP publisher) and the GStreamer
# plugins its pipelines use (videotestsrc/audiotestsrc, VP8 and Opus encoders, webrtcbin,
# libnice). Safe to run again.
set -euo pipefail

if ! command -v whip-client >/dev/null || ! command -v gst-inspect-1.0 >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  # Another installer may hold the dpkg lock; wait for it instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update
  apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends \
    simple-whip-client gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
    gstreamer1.0-plugins-bad gstreamer1.0-nice
fi

gst-inspect-1.0 webrtcbin >/dev/null
gst-inspect-1.0 vp8enc >/dev/null
gst-inspect-1.0 opusenc >/dev/null
command -v whip-client
