#!/usr/bin/env bash
# roomcast's benchmark suite: criterion micro-benchmarks of the per-packet path, then the
# end-to-end scenarios on loopback (server as its own release process, bots in another).
# Prints both tables and writes everything to target/bench/results.json.
#
#   bash bench/run.sh           # the full suite (about 8 minutes on 2 cores)
#   bash bench/run.sh --quick   # a small version of every scenario, under 3 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
micro_args=(--warm-up-time 2 --measurement-time 5)
if [[ "${1:-}" == "--quick" ]]; then
  quick="--quick"
  micro_args=(--warm-up-time 1 --measurement-time 2)
fi
out=target/bench
mkdir -p "$out"
[[ -f media/opus-48k.ogg ]] || { echo "media/ loops are missing (media/make-loops.sh makes them)" >&2; exit 1; }

echo "== building (release)" >&2
cargo bench --no-run --bench forward --bench e2e --bench switch >/dev/null 2>&1 || cargo bench --no-run --bench forward --bench e2e --bench switch

echo "== micro-benchmarks: one packet to one subscriber" >&2
cargo bench --bench forward -- "${micro_args[@]}" 2>/dev/null | tee "$out/forward.txt" |
  grep -E "^allocations|^forward/|^simulcast/|time:" || true

echo "== simulcast layer switch latency${quick:+ (quick)}" >&2
RUST_LOG=error cargo bench --bench switch -- $quick --json "$out/switch.json" 2>/dev/null | tee "$out/switch.txt"

echo "== end to end on loopback${quick:+ (quick)}" >&2
cargo bench --bench e2e -- $quick --json "$out/e2e.json" 2>"$out/e2e.log" | tee "$out/e2e.txt"

python3 - "$out" <<'PY'
import json, os, re, sys
out = sys.argv[1]
micro = {}
for kind in ("video", "audio"):
    for step in ("prepare", "prepare+srtp", "forward"):
        path = os.path.join("target/criterion/forward", step, kind, "new/estimates.json")
        try:
            micro[f"{step}/{kind}"] = {"ns_per_packet": round(json.load(open(path))["mean"]["point_estimate"], 1)}
        except (OSError, KeyError, ValueError):
            pass
for name, case in (("select+rewrite, 3 layers in turn", "select+rewrite, 3 layers in turn"), ("switch every packet", "switch every packet")):
    path = os.path.join("target/criterion/simulcast", case.replace(",", "_").replace(" ", "_").replace("+", "_"), "new/estimates.json")
    for candidate in (path, os.path.join("target/criterion/simulcast", case, "new/estimates.json")):
        try:
            micro[f"simulcast/{name}"] = {"ns_per_packet": round(json.load(open(candidate))["mean"]["point_estimate"], 1)}
            break
        except (OSError, KeyError, ValueError):
            pass
allocs = {}
for line in open(os.path.join(out, "forward.txt")):
    m = re.match(r"allocations per (\w+) packet: prepare\+srtp ([\d.]+), forward \(with sendto\) ([\d.]+)", line)
    if m:
        allocs[m.group(1)] = {"prepare+srtp": float(m.group(2)), "forward": float(m.group(3))}
e2e = json.load(open(os.path.join(out, "e2e.json")))
machine = {"cpus": os.cpu_count(), "kernel": os.uname().release}
try:
    machine["cpu_model"] = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
try:
    switch = json.load(open(os.path.join(out, "switch.json")))
except (OSError, ValueError):
    switch = None
results = {"machine": machine, "micro": micro, "allocations_per_packet": allocs, "e2e": e2e, "layer_switch": switch}
json.dump(results, open(os.path.join(out, "results.json"), "w"), indent=2)
print("\nmicro-benchmarks (ns per packet, one subscriber):")
for k, v in micro.items():
    print(f"  {k:<22} {v['ns_per_packet']:>9.1f} ns")
for k, v in allocs.items():
    print(f"  allocations per {k} packet: {v['forward']}")
print(f"\nall results: {os.path.join(out, 'results.json')}")
PY
