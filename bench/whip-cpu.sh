#!/usr/bin/env bash
# Server CPU per forwarded packet in one room of 20 bot viewers, fed (A) by Meetecho's
# whip-client over WHIP (640x360 VP8 at 30 fps + Opus, plus one audio bot, as `roomcast
# bots` needs a publisher of its own) and (B) by a bot publisher (VP8 + Opus). Both go the
# same forwarding path, so the figures should match. Needs whip-client (tests/whip/setup.sh)
# and a C compiler; prints one line per case. Run on an otherwise idle machine:
#   bash bench/whip-cpu.sh [path/to/roomcast]   (default target/release/roomcast)
set -u
cd "$(dirname "$0")/.."
BIN=${1:-target/release/roomcast}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -shared -fPIC -O2 -o "$work/soupcheck.so" tests/whip/soupcheck.c -ldl
packets_out() {
  curl -s "127.0.0.1:$1/api/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["media"]["packets_out"])'
}
run() {
  local mode=$1 port=$2 wc=""
  ROOMCAST_HTTP_ADDR=127.0.0.1:$port ROOMCAST_UDP_PORT=0 RUST_LOG=warn "$BIN" serve > "$work/$mode.log" 2>&1 &
  local srv=$!
  sleep 1
  if [ "$mode" = whip ]; then
    LD_PRELOAD="$work/soupcheck.so" whip-client -u "http://127.0.0.1:$port/whip/m" -l 0 \
      -A "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! queue ! opusenc ! rtpopuspay pt=111 ssrc=1 ! queue ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111" \
      -V "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! queue ! vp8enc deadline=1 target-bitrate=600000 keyframe-max-dist=60 ! rtpvp8pay pt=96 ssrc=2 ! queue ! application/x-rtp,media=video,encoding-name=VP8,payload=96" \
      > "$work/whip-client.log" 2>&1 &
    wc=$!
    "$BIN" bots --url "ws://127.0.0.1:$port/ws" --room m --audio-publishers 1 --subscribers 20 --duration 30s --quiet > "$work/$mode.bots" 2>&1 &
  else
    "$BIN" bots --url "ws://127.0.0.1:$port/ws" --room m --publishers 1 --subscribers 20 --duration 30s --quiet > "$work/$mode.bots" 2>&1 &
  fi
  local bots=$!
  sleep 10
  local hz t0 p0 t1 p1
  hz=$(getconf CLK_TCK)
  t0=$(awk '{print $14+$15}' "/proc/$srv/stat"); p0=$(packets_out "$port")
  sleep 15
  t1=$(awk '{print $14+$15}' "/proc/$srv/stat"); p1=$(packets_out "$port")
  python3 -c "cpu=($t1-$t0)/$hz; pk=$p1-$p0; print(f'$mode-fed: server CPU {cpu:.2f} s in 15 s, {pk} packets forwarded, {cpu/max(pk,1)*1e6:.1f} us per packet')"
  if [ -n "$wc" ]; then kill -INT "$wc" 2>/dev/null || echo "whip-client had exited early (see $work/whip-client.log)"; fi
  wait "$bots" 2>/dev/null
  kill -TERM "$srv"; wait "$srv" 2>/dev/null
}
run whip 18183
run bot 18184
