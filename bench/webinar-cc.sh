#!/usr/bin/env bash
# The issue's first finding, measured: a webinar of 1 presenter and 300 viewers, `roomcast
# bots` against a release server with media on 127.0.0.1, 30 s, once with congestion control
# on (the default) and once with --no-congestion-control. Prints, per run, the tracks and
# freezes the bots saw and the CPU the bots and the server used (cores, averaged over the
# bots' whole run). Writes target/bench/webinar-cc-{on,off}.json.
#
#   bash bench/webinar-cc.sh [--subscribers 300] [--duration 30s] [--simulcast]
#
# On a shared machine take it alone: the finding is about a loaded receiver.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${ROOMCAST:-target/release/roomcast}"
[[ -x "$bin" ]] || cargo build --release --bin roomcast >&2
mkdir -p target/bench
exec python3 - "$bin" "$@" <<'PY'
import json, os, resource, signal, socket, subprocess, sys, time, urllib.request

binary, args = sys.argv[1], sys.argv[2:]
subscribers, duration, simulcast = "300", "30s", []
while args:
    a = args.pop(0)
    if a == "--subscribers": subscribers = args.pop(0)
    elif a == "--duration": duration = args.pop(0)
    elif a == "--simulcast": simulcast = ["--simulcast"]
    else: sys.exit(f"unknown argument {a}")

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

rows = []
for mode in ("on", "off"):
    port = free_port()
    flags = [] if mode == "on" else ["--no-congestion-control"]
    server = subprocess.Popen([binary, "serve", "--http-addr", f"127.0.0.1:{port}", "--udp-ip", "127.0.0.1",
                               "--udp-port", "0",
                               # Every bot joins from 127.0.0.1: the per-IP limits are not what is measured.
                               "--max-joins-per-ip-per-second", "0", "--max-websockets-per-ip", "0", *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        out = f"target/bench/webinar-cc-{mode}.json"
        server_before = cpu_seconds(server.pid)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        bots = subprocess.run([binary, "bots", "--url", f"ws://127.0.0.1:{port}/ws", "--publishers", "1",
                               "--subscribers", subscribers, "--join-rate", "50", "--duration", duration,
                               "--quiet", "--json", out, *simulcast], stdout=subprocess.DEVNULL)
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_cpu = cpu_seconds(server.pid) - server_before
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    bots_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = json.load(open(out))["summary"]
    rows.append((mode, bots.returncode, summary, bots_cpu / wall, server_cpu / wall, wall))

print(f"webinar: 1 presenter -> {subscribers} viewers, {duration} measured{' (simulcast)' if simulcast else ''}, machine load {os.getloadavg()[0]:.1f}")
print(f"{'congestion control':<20}{'exit':>5}{'tracks':>12}{'loss %':>8}{'freezes':>9}{'bots CPU':>10}{'server CPU':>12}")
for mode, code, s, bots_cores, server_cores, wall in rows:
    tracks = f"{s['tracks_received']}/{s['tracks_expected']}"
    print(f"{mode:<20}{code:>5}{tracks:>12}{s['loss_percent']:>8.2f}{s['freezes']:>9}{bots_cores*100:>9.0f}%{server_cores*100:>11.0f}%")
print("CPU: share of one core over the bots' whole run (joining included)")
PY
