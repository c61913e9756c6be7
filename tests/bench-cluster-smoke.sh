#!/usr/bin/env bash
# A smoke run of the benchmark against a cluster: a redis-server of its own (a unix
# socket in a temp dir) and three chatterbox nodes (debug build) on it, Socket.IO, plain
# WebSocket and TCP JSON members spread over the three, 5 seconds of lines. It must run
# and report no line lost, duplicated, reordered or echoed and every receiver in one
# order (chatterbox-bench exits 1 otherwise). No timing is asserted: the cluster's speed
# is measured by js-client/bench-node/compare-cluster.sh, on a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bins --quiet
debug=${CARGO_TARGET_DIR:-target}/debug
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
redis-server --port 0 --unixsocket "$dir/redis.sock" --unixsocketperm 700 --dir "$dir" --save '' \
  --logfile "$dir/redis.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -s "$dir/redis.sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
# The generator's members all come from 127.0.0.1 and its senders are scripts: the
# per-address connection limit and the message rate are off, as in compare.sh.
for i in 1 2 3; do
  "$debug/chatterbox" --host 127.0.0.1 --port 0 --ws-port 0 --tcp-json-port 0 --tcp-text-port 0 \
    --max-connections-per-ip 0 --rate-lines-per-sec 0 --rate-joins-per-min 0 --redis-url "redis+unix://$dir/redis.sock" \
    --cluster smoke --node-id "node$i" 2>"$dir/node$i.log" &
  pids+=($!)
done
address() { grep -o "listening $2=[0-9.:]*" "$dir/node$1.log" | head -1 | cut -d= -f2; }
# The three nodes' addresses of one listener, comma-separated, in node order.
addresses() { for i in 1 2 3; do address "$i" "$1"; done | paste -sd,; }
for i in 1 2 3; do
  for _ in $(seq 200); do
    [ -n "$(address "$i" tcp-json)" ] && [ -n "$(address "$i" http)" ] && [ -n "$(address "$i" websocket)" ] && break
    sleep 0.1
  done
done
"$debug/chatterbox-bench" --addr "$(addresses http)" --members 60 --senders 6 --rate 20 --duration-secs 5 \
  --ws-addr "$(addresses websocket)" --ws-members 9 \
  --tcp-json-addr "$(addresses tcp-json)" --tcp-json-members 9
echo "bench-cluster-smoke: 1 passed, 0 failed"
