#!/bin/bash
# Counts what wakes the e2e benchmark's server threads, 5 s into the measured window:
#   benches/profile/wakes.sh <e2e bench binary> <server binary> <scenario>
# Prints wake-ups a second by waker (the server itself, another process such as the bots,
# or an interrupt) and by cause (a timer, a futex, a socket becoming readable, ...).
# Needs perf and root (system-wide sched:sched_wakeup with kernel call chains).
set -u
E2E=$1; BIN=$2; SC=$3
cd "$(dirname "$0")/../.."
OUT=$(mktemp -d)
ROOMCAST_BIN=$BIN $E2E --only "$SC" > "$OUT/bench.out" 2>&1 &
BENCH=$!
SPID=
for _ in $(seq 1 100); do
  SPID=$(pgrep -P $BENCH | head -1)
  [ -n "$SPID" ] && break; sleep 0.2
done
sleep 20
PIDS=$(ls /proc/"$SPID"/task | tr '\n' ',')
perf record -e sched:sched_wakeup -a -g -o "$OUT/wake.data" -- sleep 5 > /dev/null 2>&1
perf script -i "$OUT/wake.data" 2>/dev/null > "$OUT/wake.txt"
wait $BENCH
python3 - "$PIDS" "$OUT/wake.txt" <<'PY'
import collections, re, sys
pids = set(p for p in sys.argv[1].split(',') if p)
counts = collections.Counter()
header, stack = None, []
def flush():
    if header is None:
        return
    m = re.search(r'pid=(\d+)', header)
    if not (m and m.group(1) in pids):
        return
    comm, tid = header.split()[:2]
    waker = 'server' if tid in pids else ('interrupt/idle' if comm == 'swapper' else 'other process: ' + comm)
    frames = [f.split()[1] for f in stack if len(f.split()) > 1]
    cause = next((k for k in ('hrtimer_wakeup', 'futex_wake', 'sock_def_readable', 'eventfd_write',
                              'sched_ttwu_pending') if any(k in f for f in frames)), 'other')
    counts[(waker, cause)] += 1
for line in open(sys.argv[2]):
    if not line.strip():
        flush(); header, stack = None, []
    elif not line.startswith((' ', '\t')):
        header, stack = line.strip(), []
    else:
        stack.append(line.strip())
flush()
print(f'wake-ups of the server threads a second: {sum(counts.values()) / 5:.1f}')
for (waker, cause), n in counts.most_common():
    print(f'{n / 5:8.1f}  {waker:28} {cause}')
PY
rm -rf "$OUT"
