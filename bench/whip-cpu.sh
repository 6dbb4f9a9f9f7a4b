#!/usr/bin/env bash
# One webinar room of N bot viewers (default 20), fed two ways, one after the other:
#   (whip) Meetecho's whip-client presents over WHIP (640x360 VP8 at 30 fps + Opus), and once
#          its media reaches the server `roomcast bots --publishers 0 --subscribers N` joins
#          to watch whatever the room lists;
#   (bot)  one bot publisher (`roomcast bots --publishers 1 --subscribers N`: VP8 + Opus).
# For each it prints the viewers' join -> first media p50/p95 (the bots' own report: from a
# viewer starting to join to its first packet) and the server's CPU per forwarded packet
# (utime+stime of the server process over 15 s of steady state, divided by the packets it
# forwarded meanwhile, from /api/stats). Both feeds go the same PublishedTrack -> DownTrack
# path. Needs whip-client (tests/whip/setup.sh), python3, curl and a C compiler. Run it on an
# otherwise quiet machine (the figures are CPU time, but a loaded machine delays joins):
#   bash bench/whip-cpu.sh [path/to/roomcast] [viewers]   (default target/release/roomcast, 20)
set -u
cd "$(dirname "$0")/.."
BIN=${1:-target/release/roomcast}
VIEWERS=${2:-20}
work=$(mktemp -d)
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$work"' EXIT; echo "work: $work"
cc -shared -fPIC -O2 -o "$work/soupcheck.so" tests/whip/soupcheck.c -ldl
stat_of() {
  curl -s -H "Authorization: Bearer bench-admin-key" "127.0.0.1:$1/api/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['media']['$2'])"
}
run() {
  local mode=$1 port=$2 wc="" bots_args
  ROOMCAST_ADMIN_KEY=bench-admin-key ROOMCAST_HTTP_ADDR=127.0.0.1:$port ROOMCAST_UDP_PORT=0 RUST_LOG=warn \
    "$BIN" serve > "$work/$mode.log" 2>&1 &
  local srv=$!
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.1; done
  if [ "$mode" = whip ]; then
    LD_PRELOAD="$work/soupcheck.so" whip-client -u "http://127.0.0.1:$port/whip/m?name=encoder" -l 0 \
      -A "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! queue ! opusenc ! rtpopuspay pt=111 ssrc=1 ! queue ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111" \
      -V "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert ! queue ! vp8enc deadline=1 target-bitrate=600000 keyframe-max-dist=60 ! rtpvp8pay pt=96 ssrc=2 ! queue ! application/x-rtp,media=video,encoding-name=VP8,payload=96" \
      > "$work/whip-client.log" 2>&1 &
    wc=$!
    # The viewers join once the room lists the encoder's two tracks (the admin API).
    for _ in $(seq 300); do
      curl -s -H "Authorization: Bearer bench-admin-key" "127.0.0.1:$port/api/rooms" | python3 -c '
import json, sys
def tracks(v):
    if isinstance(v, dict):
        return max([v["tracks"] if isinstance(v.get("tracks"), int) else 0] + [tracks(x) for x in v.values()])
    if isinstance(v, list):
        return max([0] + [tracks(x) for x in v])
    return 0
sys.exit(0 if tracks(json.load(sys.stdin)) >= 2 else 1)' && break
      sleep 0.1
    done
    bots_args=(--publishers 0 --subscribers "$VIEWERS")
  else
    bots_args=(--publishers 1 --subscribers "$VIEWERS")
  fi
  "$BIN" bots --url "ws://127.0.0.1:$port/ws" --room m "${bots_args[@]}" --duration 30s --quiet \
    --json "$work/$mode.json" > "$work/$mode.bots" 2>&1 &
  local bots=$!
  sleep 10
  local hz t0 p0 t1 p1
  hz=$(getconf CLK_TCK)
  t0=$(awk '{print $14+$15}' "/proc/$srv/stat"); p0=$(stat_of "$port" packets_out)
  sleep 15
  t1=$(awk '{print $14+$15}' "/proc/$srv/stat"); p1=$(stat_of "$port" packets_out)
  wait "$bots"
  python3 - "$work/$mode.json" <<EOF
import json, sys
cpu = ($t1 - $t0) / $hz
pk = $p1 - $p0
try:
    s = json.load(open(sys.argv[1]))["summary"]
    fm = s["first_media_ms"]
    media = f"viewers' join -> first media p50 {fm['p50']:.0f} ms, p95 {fm['p95']:.0f} ms (n={fm['count']})"
except Exception as e:
    media = f"no bots report ({e}); see $work/$mode.bots"
print(f"$mode-fed, $VIEWERS viewers: {media}; server CPU {cpu:.2f} s in 15 s, {pk} packets forwarded, {cpu / max(pk, 1) * 1e6:.2f} us per packet")
EOF
  if [ -n "$wc" ]; then kill -INT "$wc" 2>/dev/null || echo "whip-client had exited early: $(tail -3 "$work/whip-client.log")"; wait "$wc" 2>/dev/null; fi
  kill -TERM "$srv"; wait "$srv" 2>/dev/null
}
run whip 18183
run bot 18184
