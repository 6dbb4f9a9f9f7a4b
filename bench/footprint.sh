#!/usr/bin/env bash
# Server memory and CPU with 0 and N participants, and after join/leave cycles.
# The server runs as its own release process; the bots run in another.
#   bash bench/footprint.sh [participants] [hold_secs] [cycles]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10}; hold=${2:-30}; cycles=${3:-200}
cargo build --release --bin roomcast --example meeting_load >/dev/null
port=18480
RUST_LOG=${RUST_LOG:-info} ./target/release/roomcast --http-addr 127.0.0.1:$port --udp-ip 127.0.0.1 --udp-port 0 >/tmp/roomcast-footprint.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
until curl -sf 127.0.0.1:$port/healthz >/dev/null; do sleep 0.1; done
rss() { awk '/VmRSS/ {print $2/1024 " MiB"}' /proc/$server/status; }
cpu_ticks() { awk '{print $14 + $15}' /proc/$server/stat; }
hz=$(getconf CLK_TCK)
echo "idle server RSS: $(rss)"
t0=$(cpu_ticks)
./target/release/examples/meeting_load --url ws://127.0.0.1:$port/ws --participants "$n" --hold-secs "$hold" --cycles "$cycles" |
while read -r line; do
  echo "$line"
  case "$line" in
    *all_flowing*) echo "RSS with $n participants: $(rss)"; c0=$(cpu_ticks); s0=$(date +%s.%N);
                   curl -s 127.0.0.1:$port/api/stats > /tmp/footprint-stats0.json ;;
    *held*)        c1=$(cpu_ticks); s1=$(date +%s.%N)
                   curl -s 127.0.0.1:$port/api/stats > /tmp/footprint-stats1.json
                   python3 - "$c0" "$c1" "$s0" "$s1" "$hz" <<'PY'
import json, sys
c0, c1, s0, s1, hz = map(float, sys.argv[1:])
a = json.load(open('/tmp/footprint-stats0.json'))['media']; b = json.load(open('/tmp/footprint-stats1.json'))['media']
cpu = (c1 - c0) / hz; wall = s1 - s0; fwd = b['packets_out'] - a['packets_out']
print(f"server CPU while held: {100*cpu/wall:.1f}% of one core over {wall:.1f}s; "
      f"{fwd/wall:.0f} packets/s forwarded; {1e6*cpu/max(fwd,1):.2f} us CPU per forwarded packet")
PY
                   ;;
    *left*)        echo "RSS after all left: $(rss)" ;;
    *cycled*)      echo "RSS after $cycles join/leave cycles: $(rss)"; curl -s 127.0.0.1:$port/api/stats | head -c 300; echo ;;
  esac
done
