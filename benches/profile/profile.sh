#!/bin/bash
# Records the e2e benchmark's server with perf during one scenario, then groups it:
#   benches/profile/profile.sh <e2e bench binary> <server binary> <scenario> <out prefix> [delay s] [seconds]
#   perf script -i <out>.data -F comm,tid,ip,sym > <out>.script && python3 benches/profile/group.py <out>.script
set -u
E2E=$1; BIN=$2; SC=$3; OUT=$4; DELAY=${5:-15}; SECS=${6:-15}
cd "$(dirname "$0")/../.."
ROOMCAST_BIN=$BIN $E2E --only $SC --json $OUT.json > $OUT.out 2> $OUT.err &
BENCH=$!
# wait for the server child
for i in $(seq 1 100); do
  SPID=$(pgrep -P $BENCH | head -1)
  [ -n "$SPID" ] && break; sleep 0.2
done
echo "bench $BENCH server $SPID" > $OUT.pids
sleep $DELAY
perf record -e cpu-clock -F ${FREQ:-997} --call-graph dwarf,16384 -p $SPID -o $OUT.data -- sleep $SECS > $OUT.perf.log 2>&1
wait $BENCH
echo exit $? >> $OUT.pids
