#!/usr/bin/env bash
# Runs chatterbox and the Node original (server.js) through the same benchmark
# scenarios, each server pinned to core 0 and the load generator (chatterbox-bench) to
# core 1, a fresh server process per scenario, and prints one table side by side.
#
#   js-client/bench-node/compare.sh            # the full comparison (about 10 minutes)
#   ROUND_SECS=3 js-client/bench-node/compare.sh   # shorter rounds
#   REPORTS=dir js-client/bench-node/compare.sh    # also keep each run's JSON report in dir
#   SERVERS=chatterbox js-client/bench-node/compare.sh  # one server only (Node's column n/a,
#                                                  # no chart): before/after a change
#   CHATTERBOX_BIN=path js-client/bench-node/compare.sh # another chatterbox build (say, the
#                                                  # one before a change), same generator
#
# After the table it draws the same reports as docs/comparison.svg (chart.mjs), which
# README shows.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUND_SECS=${ROUND_SECS:-5}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$out"' EXIT

# 5,000 members and their server side need more descriptors than the usual 1,024.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(cd js-client/bench-node && npm ci --no-audit --no-fund --silent)
cargo build --release --bins --quiet
bench=target/release/chatterbox-bench
source js-client/bench-node/servers.sh

# start_server NAME: starts it on core 0; sets $pid and $addr.
start_server() {
  local log="$out/server.log"
  case "$1" in
    # CHATTERBOX_ARGS: extra flags, e.g. --no-history to measure what the history costs.
    # The generator's members all come from one address and its senders are scripts:
    # the connection limits and the message rate are off.
    chatterbox) rm -f "$out"/chatterbox.db*
      # shellcheck disable=SC2086
      taskset -c 0 "${CHATTERBOX_BIN:-target/release/chatterbox}" --host 127.0.0.1 --port 0 \
        --ws-port 0 --tcp-json-port 0 --tcp-text-port 0 --db "$out/chatterbox.db" \
        --max-connections 0 --max-connections-per-ip 0 --rate-lines-per-sec 0 --rate-joins-per-min 0 \
        ${CHATTERBOX_ARGS:-} 2>"$log" & ;;
    node) taskset -c 0 node js-client/bench-node/server.js 2>"$log" & ;;
  esac
  pid=$!
  wait_listening "$log" "$1"
}

stop_server() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# run NAME SCENARIO ARGS...: one scenario against a fresh server, JSON to $out.
run() {
  local server=$1 scenario=$2
  shift 2
  start_server "$server"
  echo "== $server: $scenario" >&2
  # The report is printed even when the run fails; only a run that printed none is n/a.
  taskset -c 1 "$bench" --addr "$addr" --server-pid "$pid" --json "$@" \
    > "$out/$server-$scenario.json" || true
  [ -s "$out/$server-$scenario.json" ] || echo '{}' > "$out/$server-$scenario.json"
  stop_server
}

for server in ${SERVERS:-chatterbox node}; do
  run "$server" n100 --members 100 --senders 10 --rate 20 --search --duration-secs "$ROUND_SECS"
  run "$server" n1000 --members 1000 --senders 10 --rate 2 --search --duration-secs "$ROUND_SECS"
  run "$server" n2000 --members 2000 --senders 5 --rate 2 --search --duration-secs "$ROUND_SECS"
  run "$server" p99 --members 1000 --senders 10 --rate 1.001 --duration-secs 10
  # A low rate's p99 is noisy: three runs, the table shows their median.
  for i in 1 2 3; do
    run "$server" "p99n100-$i" --members 100 --senders 10 --rate 0.99 --duration-secs 10
  done
  # Then a burst: 100 lines of 1 KiB in a second, to every member (memory after it).
  run "$server" idle1000 --members 1000 --idle --burst-lines 100 --burst-line-bytes 1024
  run "$server" idle5000 --members 5000 --idle --handshakes-in-flight 128
done

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GiB"
echo "command: js-client/bench-node/compare.sh (ROUND_SECS=$ROUND_SECS)"
node js-client/bench-node/table.mjs "$out"
if [ "${SERVERS:-chatterbox node}" = "chatterbox node" ]; then
  node js-client/bench-node/chart.mjs "$out" docs/comparison.svg \
    "js-client/bench-node/compare.sh, $(date -u +%F), ROUND_SECS=$ROUND_SECS, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  echo "chart: docs/comparison.svg"
fi
if [ -n "${REPORTS:-}" ]; then
  mkdir -p "$REPORTS" && cp "$out"/*.json "$REPORTS"/
fi
