"""What the first swarm of bench/cascade.sh's simulcast run (LAYERS=1|2) received, per
node: viewers, the frame size they ended on, video and audio packets/s each, first video
p50/p95.
    python3 bench/cascade_layers.py bots.json QUALITY_IT_ASKED_FOR
The first swarm is the presenter, then viewers (bot k on node (1 + k) % 3)."""
import json
import sys
from collections import Counter


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))] if v else float("nan")


def pps(t):
    """Packets/s while the track was live (its bitrate is over that time)."""
    if not t["bitrate_kbps"]:
        return 0.0
    live = t["bytes"] * 8 / (t["bitrate_kbps"] * 1000)
    return t["packets"] / live if live else 0.0


swarms = [(sys.argv[1], 1, sys.argv[2])]
for g, (path, offset, quality) in enumerate(swarms):
    r = json.load(open(path))
    per_node = {0: [], 1: [], 2: []}
    for t in r["tracks"]:
        name = t["subscriber"]
        if "-sub-" not in name:
            continue
        k = int(name.rsplit("-", 1)[1])
        per_node[(offset + k) % 3].append(t)
    for node, tracks in per_node.items():
        video = [t for t in tracks if t["kind"] == "video"]
        audio = [t for t in tracks if t["kind"] == "audio"]
        sizes = Counter(f'{t["frame_width"]}x{t["frame_height"]}' for t in video)
        first = [t["time_to_first_packet_ms"] for t in video
                 if t.get("time_to_first_packet_ms") is not None]
        v = sum(pps(t) for t in video) / max(len(video), 1)
        a = sum(pps(t) for t in audio) / max(len(audio), 1)
        role = "owner" if node == 0 else "edge "
        print(f"  swarm {g + 1} ({quality}), n{node + 1} {role}: {len(video)} viewers, "
              f"frames {dict(sizes)}, {v:.0f} video + {a:.0f} audio packets/s each, "
              f"first video p50 {pct(first, 50):.0f} ms p95 {pct(first, 95):.0f} ms")
    s = r["summary"]
    print(f"  swarm {g + 1}: {s['bots_joined']} joined, {s['bots_failed']} failed")
