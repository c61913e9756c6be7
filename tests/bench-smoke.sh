#!/usr/bin/env bash
# A smoke run of the benchmark against chatterbox (debug build): 10 seconds of lines to
# Socket.IO, plain WebSocket and TCP JSON members, then a burst of long lines to idle
# Socket.IO members. It must run and report no line lost,
# duplicated, reordered or echoed (chatterbox-bench exits 1 otherwise). No timing is
# asserted: speed is measured by js-client/bench-node/compare.sh, on a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bins --quiet
dir=$(mktemp -d)
log="$dir/server.log"
# The generator's members all come from 127.0.0.1 and its senders are scripts: the
# per-address connection limit and the message rate are off, as in compare.sh.
target/debug/chatterbox --host 127.0.0.1 --port 0 --ws-port 0 --tcp-json-port 0 --tcp-text-port 0 \
  --db "$dir/chatterbox.db" --max-connections-per-ip 0 --rate-lines-per-sec 0 --rate-joins-per-min 0 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
address() { grep -o "listening $1=[0-9.:]*" "$log" | head -1 | cut -d= -f2; }
for _ in $(seq 100); do
  [ -n "$(address tcp-json)" ] && [ -n "$(address http)" ] && [ -n "$(address websocket)" ] && break
  sleep 0.1
done
target/debug/chatterbox-bench --addr "$(address http)" --server-pid "$pid" \
  --members 50 --senders 5 --rate 20 --duration-secs 10 \
  --ws-addr "$(address websocket)" --ws-members 10 \
  --tcp-json-addr "$(address tcp-json)" --tcp-json-members 10
# The idle members' memory, then a burst of long lines to all of them: every line must
# arrive (the memory figures are compare.sh's, on a release build).
target/debug/chatterbox-bench --addr "$(address http)" --server-pid "$pid" \
  --members 50 --senders 5 --idle --burst-lines 50 --burst-line-bytes 1024
echo "bench-smoke: 2 passed, 0 failed"
