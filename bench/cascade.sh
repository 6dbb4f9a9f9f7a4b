#!/usr/bin/env bash
# Cascading benchmark: a webinar of 1 presenter -> N viewers over three nodes sharing a
# real redis-server on loopback (`--cascade-after 0`: every viewer joining through a node
# that does not hold the room is served there, from its mirror). `roomcast bots` spreads
# the bots over the three URLs round robin; the presenter (bot 0) places the room on the
# first node. Prints, per node: CPU µs per forwarded packet, forwarded packets/s, the
# viewers' join -> first video packet p50/p95, and the relay's share. Needs redis-server.
#   bash bench/cascade.sh [N viewers, default 60] [path/to/roomcast, default target/release/roomcast]
# LAYERS=1 or LAYERS=2: the presenter sends simulcast (320x180, 640x360, 1280x720) and the
# viewers come in two swarms of N/2, spread over the nodes alike: with LAYERS=1 both ask for
# `low` (each edge pulls one layer, on its first relay); with LAYERS=2 the first (the
# presenter's) asks for `high` (each edge pulls two layers: the lowest on its first relay,
# the top on a relay of its own). The difference is what a layer relay costs. It also
# prints the owner's relays and what the first swarm's viewers got, per node: frame size
# and packets/s (a swarm without a publisher of its own does not report its tracks).
# Take the CPU lock on a shared machine: flock -x /work/coord/cpu.lock bash bench/cascade.sh
set -u
cd "$(dirname "$0")/.."
N=${1:-60}
BIN=${2:-target/release/roomcast}
KEY=cascade-bench-key
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  if [ -n "${KEEP:-}" ]; then echo "logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --dir "$work" --save '' --appendonly no > "$work/redis.log" 2>&1 &
pids+=($!)
ports=()
srv=()
for id in n1 n2 n3; do
  port=$(free_port)
  ROOMCAST_HTTP_ADDR=127.0.0.1:$port ROOMCAST_UDP_PORT=0 RUST_LOG=warn "$BIN" serve \
    --redis-url "redis://127.0.0.1:$rport" --node-id "$id" --admin-key "$KEY" --cascade-after 0 \
    > "$work/$id.log" 2>&1 &
  pids+=($!); srv+=($!); ports+=("$port")
done
for _ in $(seq 50); do
  n=$(curl -s -H "Authorization: Bearer $KEY" "127.0.0.1:${ports[0]}/api/nodes" | python3 -c 'import json,sys
try: print(len(json.load(sys.stdin)["nodes"]))
except Exception: print(0)')
  [ "$n" = 3 ] && break
  sleep 0.2
done
urls="ws://127.0.0.1:${ports[0]}/ws,ws://127.0.0.1:${ports[1]}/ws,ws://127.0.0.1:${ports[2]}/ws"
ramp=$(( N / 10 + 8 ))
LAYERS=${LAYERS:-}
if [ -z "$LAYERS" ]; then
  "$BIN" bots --url "$urls" --room cascade --publishers 1 --subscribers "$N" --join-rate 10 \
    --duration "$(( ramp + 30 ))s" --quiet --json "$work/bots.json" > "$work/bots.out" 2>&1 &
  bots=$!
  pids+=($bots)
else
  first=low
  [ "$LAYERS" = 2 ] && first=high
  half=$(( N / 2 ))
  # The presenter and the first half (bot k of this swarm on node k % 3, the presenter on
  # the first), then the second half (bot k on node k % 3) once the room exists.
  "$BIN" bots --url "$urls" --room cascade --publishers 1 --subscribers "$half" --join-rate 10 \
    --simulcast --quality "$first" --duration "$(( ramp + 30 ))s" --quiet --json "$work/bots.json" \
    > "$work/bots.out" 2>&1 &
  bots=$!
  pids+=($bots)
  sleep 2
  "$BIN" bots --url "$urls" --room cascade --publishers 0 --subscribers "$(( N - half ))" \
    --join-rate 10 --quality low --duration "$(( ramp + 28 ))s" --quiet \
    --json "$work/bots2.json" > "$work/bots2.out" 2>&1 &
  bots2=$!
  pids+=($bots2)
fi
sleep "$ramp"

stats() { curl -s -H "Authorization: Bearer $KEY" "127.0.0.1:$1/api/stats" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["media"]["packets_out"], d["media"]["packets_in"], d["participants"])'; }
hz=$(getconf CLK_TCK)
declare -a t0 p0 i0
for k in 0 1 2; do
  t0[$k]=$(awk '{print $14+$15}' "/proc/${srv[$k]}/stat")
  read -r p0[$k] i0[$k] _ < <(stats "${ports[$k]}")
done
sleep 15
echo "1 -> $N over 3 nodes ($BIN), 15 s window after the joins${LAYERS:+, simulcast, LAYERS=$LAYERS}:"
for k in 0 1 2; do
  t1=$(awk '{print $14+$15}' "/proc/${srv[$k]}/stat")
  read -r p1 i1 members < <(stats "${ports[$k]}")
  python3 -c "
cpu=($t1-${t0[$k]})/$hz; out=$p1-${p0[$k]}; inn=$i1-${i0[$k]}
role='owner' if $k==0 else 'edge '
print(f'  n$((k+1)) {role}: {$members} in the room here, {out/15:.0f} packets/s out, {inn/15:.0f} in, CPU {cpu/15*100:.0f}% of a core, {cpu/max(out,1)*1e6:.1f} us per forwarded packet')"
done
if [ -n "$LAYERS" ]; then
  read -r _ _ owner_members < <(stats "${ports[0]}")
  echo "  owner: $owner_members in the room: the presenter, $N viewers (the edges' as members) and $(( owner_members - 1 - N )) hidden relays"
  wait "$bots" "$bots2"
  python3 bench/cascade_layers.py "$work/bots.json" "$first"
  exit 0
fi
wait "$bots"
python3 - "$work/bots.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
by_node = {0: [], 1: [], 2: []}
for t in r["tracks"]:
    if t["kind"] != "video" or t.get("time_to_first_packet_ms") is None:
        continue
    name = t["subscriber"]
    if "-sub-" not in name:
        continue
    k = int(name.rsplit("-", 1)[1])
    by_node[(1 + k) % 3].append(t["time_to_first_packet_ms"])
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))] if v else float("nan")
for k, v in by_node.items():
    role = "owner" if k == 0 else "edge "
    print(f"  n{k+1} {role}: {len(v)} viewers, join -> first video packet p50 {pct(v,50):.0f} ms, p95 {pct(v,95):.0f} ms")
s = r["summary"]
print(f"  bots: {s['bots_joined']} joined, {s['bots_failed']} failed")
EOF
