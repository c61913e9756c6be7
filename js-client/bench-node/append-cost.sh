#!/usr/bin/env bash
# What a chat line costs Redis in a chatterbox cluster: three nodes (release build) on one
# redis-server (unix socket, no persistence), all on core 0, the generator on core 1,
# 20 members each sending RATE lines/s (each line to the 19 others) for SECS seconds;
# then Redis's own count of the commands it ran (`INFO commandstats`): the calls of the
# append script (EVALSHA) and of the nodes' reads (XREAD), and Redis's time in each, per
# line said.
#
#   js-client/bench-node/append-cost.sh                      # RATE=100 (2,000 lines/s), SECS=5
#   CHATTERBOX_BIN=path js-client/bench-node/append-cost.sh  # another build
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE=${RATE:-100}
SECS=${SECS:-5}
source js-client/bench-node/servers.sh
scratch_dir
build_release

redis_in "$out" --appendonly no
addrs=
for i in 1 2 3; do
  taskset -c 0 "$chatterbox" --host 127.0.0.1 --port 0 --ws-port off --tcp-json-port off \
    --tcp-text-port off --max-connections-per-ip 0 --rate-lines-per-sec 0 --rate-joins-per-min 0 \
    --redis-url "redis+unix://$sock" --cluster cost --node-id "node$i" 2>"$out/node$i.log" &
  pids+=($!)
  wait_listening "$out/node$i.log" "node $i"
  addrs="${addrs:+$addrs,}$addr"
done
taskset -c 1 "$bench" --addr "$addrs" --members 20 --senders 20 \
  --rate "$RATE" --duration-secs "$SECS" --json > "$out/report.json" || true
lines=$(redis-cli -s "$sock" get cost:line-id)
redis-cli -s "$sock" info commandstats | tr -d '\r' | awk -F'[:,=]' -v lines="$lines" '
  /^cmdstat_(evalsha|xread)/ {
    printf "%-8s calls %8d  per line %5.2f  usec per call %7.2f  usec per line %7.2f\n",
      substr($1, 9), $3, $3 / lines, $7, $5 / lines
  }'
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).rounds[0];
  console.log(`lines said ${process.argv[2]}: deliveries/s ${Math.round(r.deliveries_per_s)}, lost ${r.lost}, refused ${r.refused}, p99 ${r.p99_ms} ms, receivers out of one order ${r.receivers_out_of_order}`);' \
  "$out/report.json" "$lines"
