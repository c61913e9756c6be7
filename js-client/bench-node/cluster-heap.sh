#!/usr/bin/env bash
# The heap of one cluster node through a 5,000-member join storm: three nodes (release
# build) on one redis-server (unix socket, no persistence), node 1 under heaptrack, all on
# core 0, the generator on core 1 joining 5,000 members spread over the three. Prints the
# join time and heaptrack's summary of node 1 (its peak heap is what the storm queued at
# once in its 1,667 members' sockets).
#
#   js-client/bench-node/cluster-heap.sh                      # this build
#   CHATTERBOX_BIN=path js-client/bench-node/cluster-heap.sh  # another build
set -euo pipefail
cd "$(dirname "$0")/../.."
source js-client/bench-node/servers.sh
scratch_dir
build_release

redis_in "$out" --appendonly no
args=(--host 127.0.0.1 --port 0 --ws-port off --tcp-json-port off --tcp-text-port off
  --max-connections 0 --max-connections-per-ip 0 --rate-lines-per-sec 0 --rate-joins-per-min 0
  --redis-url "redis+unix://$sock" --cluster heap)
addrs=
for i in 1 2 3; do
  if [ "$i" = 1 ]; then
    taskset -c 0 heaptrack -o "$out/node1" "$chatterbox" "${args[@]}" --node-id node1 \
      2>"$out/node1.log" >"$out/heaptrack.log" &
  else
    taskset -c 0 "$chatterbox" "${args[@]}" --node-id "node$i" 2>"$out/node$i.log" &
  fi
  pids+=($!)
  wait_listening "$out/node$i.log" "node $i"
  addrs="${addrs:+$addrs,}$addr"
done
taskset -c 1 "$bench" --addr "$addrs" --members 5000 --idle \
  --handshakes-in-flight 128 --json > "$out/report.json"
node -e 'console.log(`5,000 joins: ${JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).join_secs.toFixed(2)} s`)' "$out/report.json"
# Node 1 is stopped (SIGTERM) once the generator is done; heaptrack then writes its data.
for p in $(pgrep -f -- "--node-id node1"); do
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = chatterbox ] && kill "$p"
done
wait "${pids[1]}" || true
heaptrack_print -f "$out/node1.zst" -p 0 -a 0 -T 0 -l 0 2>/dev/null | grep -E '^(total runtime|peak heap|peak RSS|calls to)'
